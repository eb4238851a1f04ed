"""A campaign's deliveries per status from the counters the triggers keep (`delivery_counts`,
migration 0013m_counters), so its live figures cost a few rows however many recipients it has,
and the fold that keeps those counters few (the worker, every few seconds)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import case, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.campaigns.models import Campaign, DeliveryCount
from service.db import take_oldest

FOLD_AT_MOST = 50_000  # counter rows folded per run (the worker runs again at once while there are more)
KEEP_SECONDS = 120  # rows of the last two minutes keep their second: the send rate is read from them


@dataclass
class DeliveryCounts:
    """One campaign's deliveries: per status ('queued' = queued or being sent), those flagged
    bounced per status, and how many were sent at or after the second asked for."""

    by_status: Counter[str] = field(default_factory=Counter)
    bounced: Counter[str] = field(default_factory=Counter)
    sent_since: int = 0


async def delivery_counts(session: AsyncSession, campaign_ids: Sequence[int], *,
                          sent_since: dt.datetime | None = None) -> dict[int, DeliveryCounts]:
    """`DeliveryCounts` of each of `campaign_ids` (absent ones: none), in one grouped query."""
    ids = list(dict.fromkeys(campaign_ids))
    if not ids:
        return {}
    since = int(sent_since.timestamp()) if sent_since is not None else None
    recent = (func.sum(case((DeliveryCount.second >= since, DeliveryCount.n), else_=0)) if since is not None
              else func.sum(0))
    rows = await session.execute(
        select(DeliveryCount.campaign_id, DeliveryCount.status, DeliveryCount.bounced, func.sum(DeliveryCount.n),
               recent)
        .where(DeliveryCount.campaign_id.in_(ids)).group_by(DeliveryCount.campaign_id, DeliveryCount.status,
                                                             DeliveryCount.bounced))
    found: dict[int, DeliveryCounts] = {}
    for cid, status, bounced, n, new in rows.all():
        counts = found.setdefault(int(cid), DeliveryCounts())
        counts.by_status[status] += int(n or 0)
        if bounced:
            counts.bounced[status] += int(n or 0)
        if status == "sent":
            counts.sent_since += int(new or 0)
    return found


async def fold_delivery_counts(session: AsyncSession, *, now: dt.datetime) -> int:
    """Fold the oldest appended counter rows into one per campaign, status, bounce flag and
    (for the last two minutes) second; rows of deleted campaigns go. How many rows fewer there
    are now (0: nothing to fold)."""
    gone = await take_oldest(session, DeliveryCount, DeliveryCount.campaign_id, DeliveryCount.status,
                             DeliveryCount.bounced, DeliveryCount.second, DeliveryCount.n,
                             lock="campaigns-delivery-counts", limit=FOLD_AT_MOST)
    keep_from = int(now.timestamp()) - KEEP_SECONDS
    sums: Counter[tuple[int, str, bool, int | None]] = Counter()
    for cid, status, bounced, second, n in gone:
        sums[(int(cid), status, bool(bounced), second if second is not None and second >= keep_from else None)] += n
    existing = set((await session.scalars(select(Campaign.id).where(
        Campaign.id.in_({key[0] for key in sums})))).all()) if sums else set()
    kept = [{"campaign_id": c, "status": s, "bounced": b, "second": sec, "n": n}
            for (c, s, b, sec), n in sums.items() if n and c in existing]
    if kept:
        await session.execute(insert(DeliveryCount), kept)
    return len(gone) - len(kept)
