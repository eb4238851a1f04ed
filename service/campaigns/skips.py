"""Why a campaign's recipients were skipped, in words. A delivery is 'skipped' (never sent) at
one of two moments, and the code of the reason is stored on it there: when the campaign is
queued (`queries.queue_deliveries`: none of its articles is on the subscriber's topics) or just
before its message would go (`sender`: the subscriber unsubscribed, bounced, complained or was
erased meanwhile, or changed topics so that no article is left for them). The campaign page
shows the counts per reason and, on request, who."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.campaigns.models import Delivery

SKIP_REASONS = {
    "no_article": "none of its articles is on the topics they chose",
    "unsubscribed": "they unsubscribed after it was queued",
    "bounced": "their address bounced (suppressed) after it was queued",
    "complained": "they marked an earlier email as spam (suppressed)",
    "not_confirmed": "their subscription was no longer confirmed",
    "erased": "they were erased after it was queued",
}
UNRECORDED = "not recorded (skipped before Tidings kept reasons)"
LIST_LIMIT = 100


def skip_reason_for_status(status: str | None) -> str:
    """The reason code for a subscriber who is no longer mailable (None: the row is gone)."""
    if status is None:
        return "erased"
    return status if status in ("unsubscribed", "bounced", "complained") else "not_confirmed"


def reason_words(code: str | None) -> str:
    return SKIP_REASONS.get(code or "", UNRECORDED)


@dataclass(frozen=True)
class SkipCount:
    reason: str  # the stored code ("" when none was recorded)
    words: str
    count: int


@dataclass(frozen=True)
class SkippedRecipient:
    email: str
    subscriber_id: int
    words: str


async def count_skips(session: AsyncSession, *, campaign_id: int) -> list[SkipCount]:
    """The skipped deliveries of a campaign per reason, most first."""
    rows = (await session.execute(
        select(Delivery.skip_reason, func.count()).where(Delivery.campaign_id == campaign_id,
                                                         Delivery.status == "skipped")
        .group_by(Delivery.skip_reason)
    )).all()
    counts = [SkipCount(code or "", reason_words(code), n) for code, n in rows]
    return sorted(counts, key=lambda c: (-c.count, c.reason))


async def list_skipped(session: AsyncSession, *, campaign_id: int, reason: str | None) -> list[SkippedRecipient]:
    """Up to LIST_LIMIT skipped recipients, of one reason (a code, "" for unrecorded) or all."""
    stmt = select(Delivery.email, Delivery.subscriber_id, Delivery.skip_reason).where(
        Delivery.campaign_id == campaign_id, Delivery.status == "skipped")
    if reason is not None:
        stmt = stmt.where(Delivery.skip_reason.is_(None) if reason == "" else Delivery.skip_reason == reason)
    rows = (await session.execute(stmt.order_by(Delivery.email).limit(LIST_LIMIT))).all()
    return [SkippedRecipient(email, sid, reason_words(code)) for email, sid, code in rows]
