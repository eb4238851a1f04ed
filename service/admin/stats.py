"""Dashboard figures (inquiries this week and by status, subscribers by status and their daily
growth over 90 days, mail that failed or waits) and the small SVG bar charts that show them,
computed on the server. The all-time figures come from the counters the triggers keep
(`service.inquiries.counts`, `service.newsletter.counts`), not from counting the rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import as_date, day_bucket, utcnow
from service.inquiries.counts import inquiry_counts
from service.inquiries.models import INQUIRY_STATUSES, Inquiry
from service.mail.models import OutboxMessage
from service.newsletter.counts import subscribers_per_day

GROWTH_DAYS = 90
MAIL_WAITING = dt.timedelta(hours=1)


async def inquiries_by_status(session: AsyncSession, *, since: dt.datetime | None = None) -> dict[str, int]:
    """Inquiries per status (held left out): all of them from the counters, or those since `since`."""
    if since is None:
        counts = await inquiry_counts(session)
        return {status: counts[status] for status in INQUIRY_STATUSES}
    stmt = select(Inquiry.status, func.count()).where(Inquiry.created_at >= since).group_by(Inquiry.status)
    found = {status: int(n) for status, n in (await session.execute(stmt)).all()}
    return {status: found.get(status, 0) for status in INQUIRY_STATUSES}


async def inquiries_per_day(session: AsyncSession, *, days: int, now: dt.datetime) -> list[tuple[dt.date, int]]:
    start = (now - dt.timedelta(days=days - 1)).date()
    day = day_bucket(session, Inquiry.created_at)
    stmt = (select(day, func.count()).where(Inquiry.created_at >= dt.datetime.combine(start, dt.time(), dt.UTC))
            .group_by(day))
    found = {as_date(d): int(n) for d, n in (await session.execute(stmt)).all()}
    return [(start + dt.timedelta(days=i), found.get(start + dt.timedelta(days=i), 0)) for i in range(days)]


@dataclass(frozen=True)
class MailTrouble:
    failed: int  # outbox messages that gave up (5xx, OUTBOX_MAX_AGE, a broken template)
    waiting: int  # outbox messages still queued more than MAIL_WAITING after they were queued


async def mail_trouble(session: AsyncSession, *, now: dt.datetime) -> MailTrouble:
    """Transactional mail that needs a look: failed, or waiting (an SMTP outage, 4xx) > 1 hour."""
    failed = func.count().filter(OutboxMessage.status == "failed")
    waiting = func.count().filter(OutboxMessage.status.in_(("queued", "sending")),
                                  OutboxMessage.created_at < now - MAIL_WAITING)
    row = (await session.execute(select(failed, waiting).select_from(OutboxMessage))).one()
    return MailTrouble(failed=int(row[0] or 0), waiting=int(row[1] or 0))


@dataclass(frozen=True)
class GrowthDay:
    day: dt.date
    confirmed: int
    unsubscribed: int


async def subscriber_growth(session: AsyncSession, *, days: int = GROWTH_DAYS,
                            now: dt.datetime | None = None) -> list[GrowthDay]:
    """Per UTC day over the last `days` days: new confirmations and unsubscriptions (from the
    day counters the triggers keep, `service.newsletter.counts`)."""
    now = now or utcnow()
    start = (now - dt.timedelta(days=days - 1)).date()
    found = await subscribers_per_day(session, since=start)
    return [GrowthDay(d, *found.get(d, (0, 0))) for d in (start + dt.timedelta(days=i) for i in range(days))]


# -- SVG --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    css: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    max_value: int
    axis_labels: list[tuple[float, str]]


def bar_chart(series: list[tuple[str, list[int]]], labels: list[str], *, width: int = 720,
              height: int = 160) -> Chart:
    """Grouped bars, one group per label; `series` is [(css class, values)]."""
    top = max([1, *(v for _, values in series for v in values)])
    groups = max(1, len(labels))
    slot = width / groups
    bar_w = max(1.0, (slot * 0.8) / max(1, len(series)))
    bars = []
    for g, label in enumerate(labels):
        for s, (css, values) in enumerate(series):
            value = values[g]
            h = (height - 20) * value / top
            bars.append(Bar(round(g * slot + slot * 0.1 + s * bar_w, 2), round(height - 16 - h, 2), round(bar_w, 2),
                            round(h, 2), f"{label}: {value}", css))
    step = max(1, groups // 6)
    # Ticks counted back from the newest day, which is always labelled; the oldest may be clipped.
    axis = [(round(g * slot + slot / 2, 2), labels[g]) for g in range(groups - 1, -1, -step) if g * slot > 20]
    return Chart(width, height, bars, top, axis)
