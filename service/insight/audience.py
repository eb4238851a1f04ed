"""The audience report: per week, signups, the share of them confirmed, confirmations,
unsubscribes, bounces and complaints, and the net growth; and topics by popularity among
confirmed subscribers. Read-only; counts only, from the subscribers' own timestamps (a
re-signup moves a subscriber's signup time, so a week's figures are those of its latest events)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import as_date, week_bucket
from service.newsletter.models import Subscriber, SubscriberTopic

WEEKS = 26
EVERY_TOPIC = "(every topic)"


@dataclass(frozen=True)
class Week:
    start: dt.date
    signups: int
    signups_confirmed: int  # of this week's signups, how many are confirmed (or were, then left)
    confirmed: int
    unsubscribed: int
    bounced: int
    complained: int

    @property
    def confirmation_rate(self) -> float | None:
        return self.signups_confirmed / self.signups if self.signups else None

    @property
    def net(self) -> int:
        return self.confirmed - self.unsubscribed - self.bounced - self.complained


def monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


async def audience_weeks(session: AsyncSession, *, now: dt.datetime, weeks: int = WEEKS) -> list[Week]:
    """The last `weeks` weeks (Monday to Sunday, UTC), oldest first."""
    first = monday(now.date()) - dt.timedelta(weeks=weeks - 1)
    since = dt.datetime.combine(first, dt.time(), dt.UTC)
    series: dict[str, dict[dt.date, int]] = {"signups": {}, "signups_confirmed": {}}
    week = week_bucket(session, Subscriber.signup_at)
    rows = await session.execute(select(week, func.count(), func.count(Subscriber.confirmed_at))
                                 .where(Subscriber.signup_at >= since).group_by(week))
    for w, signups, confirmed in rows.all():  # both from one scan of the (signup_at, confirmed_at) index
        series["signups"][as_date(w)] = int(signups)
        series["signups_confirmed"][as_date(w)] = int(confirmed)
    for name, column in (("confirmed", Subscriber.confirmed_at), ("unsubscribed", Subscriber.unsubscribed_at),
                         ("bounced", Subscriber.bounced_at), ("complained", Subscriber.complained_at)):
        week = week_bucket(session, column)
        rows = await session.execute(select(week, func.count()).where(column >= since).group_by(week))
        series[name] = {as_date(w): int(n) for w, n in rows.all()}
    starts = [first + dt.timedelta(weeks=i) for i in range(weeks)]
    return [Week(d, *(series[k].get(d, 0) for k in ("signups", "signups_confirmed", "confirmed", "unsubscribed",
                                                      "bounced", "complained"))) for d in starts]


async def topics_by_popularity(session: AsyncSession) -> list[tuple[str, int]]:
    """Confirmed subscribers per topic, most popular first; those who chose none get every topic."""
    rows = await session.execute(  # one join: a subscriber with no topic comes out once, with NULL
        select(SubscriberTopic.topic, func.count()).select_from(Subscriber)
        .outerjoin(SubscriberTopic, SubscriberTopic.subscriber_id == Subscriber.id)
        .where(Subscriber.status == "confirmed").group_by(SubscriberTopic.topic))
    found = [(EVERY_TOPIC if t is None else str(t), int(n)) for t, n in rows.all()]
    return sorted(found, key=lambda r: (-r[1], r[0]))
