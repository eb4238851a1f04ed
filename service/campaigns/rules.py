"""Recurring digest rules: "weekly on Monday 09:00 Europe/London" (a weekday, a local time, an
IANA time zone through zoneinfo, so the digest keeps its local hour across DST changes)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.campaigns.models import DigestRule

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SPEC = re.compile(r"^\s*(?:weekly\s+)?(?:on\s+)?([a-z]+)\s+(?:at\s+)?(\d{1,2}):(\d{2})\s+(\S+)\s*$", re.IGNORECASE)


class RuleError(ValueError):
    """A malformed rule; the message says what is expected."""


def parse_rule(spec: str) -> tuple[int, str, str]:
    """'weekly on Monday 09:00 Europe/London' -> (0, '09:00', 'Europe/London')."""
    match = _SPEC.match(spec)
    if not match:
        raise RuleError(f"rule: expected something like 'weekly on Monday 09:00 Europe/London', got {spec!r}")
    day, hour, minute, zone = match.groups()
    day = day.lower()
    weekday = next((i for i, name in enumerate(WEEKDAYS) if name.startswith(day) and len(day) >= 3), None)
    if weekday is None:
        raise RuleError(f"rule: {day!r} is not a weekday")
    if int(hour) > 23 or int(minute) > 59:
        raise RuleError(f"rule: {hour}:{minute} is not a time of day")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleError(f"rule: {zone!r} is not an IANA time zone such as Europe/London") from None
    return weekday, f"{int(hour):02d}:{minute}", zone


def next_run(weekday: int, at_time: str, timezone: str, *, after: dt.datetime) -> dt.datetime:
    """The first moment after `after` that is `weekday` at `at_time` local time (as UTC)."""
    zone = ZoneInfo(timezone)
    hour, minute = (int(v) for v in at_time.split(":"))
    local = after.astimezone(zone)
    day = local.date() + dt.timedelta(days=(weekday - local.weekday()) % 7)
    for _ in range(3):
        candidate = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone)
        if candidate.astimezone(dt.UTC) > after:
            return candidate.astimezone(dt.UTC)
        day += dt.timedelta(days=7)
    raise AssertionError("unreachable")


async def create_rule(
    session: AsyncSession, *, spec: str, now: dt.datetime, name: str = "", subject: str = "",
    audience_topics: Sequence[str] = (), requires_approval: bool = False,
) -> DigestRule:
    weekday, at_time, zone = parse_rule(spec)
    rule = DigestRule(
        name=name or f"weekly on {WEEKDAYS[weekday].title()} {at_time} {zone}", weekday=weekday, at_time=at_time,
        timezone=zone, subject=subject, audience_topics=list(audience_topics), requires_approval=requires_approval,
        active=True, next_run_at=next_run(weekday, at_time, zone, after=now), created_at=now,
    )
    session.add(rule)
    await session.flush()
    return rule


async def update_rule(
    session: AsyncSession, rule: DigestRule, *, spec: str, now: dt.datetime, name: str = "", subject: str = "",
    audience_topics: Sequence[str] = (), requires_approval: bool = False,
) -> DigestRule:
    """Change a rule's schedule, subject, audience and approval; the next run is recomputed."""
    weekday, at_time, zone = parse_rule(spec)
    rule.name = name or f"weekly on {WEEKDAYS[weekday].title()} {at_time} {zone}"
    rule.weekday, rule.at_time, rule.timezone = weekday, at_time, zone
    rule.subject, rule.audience_topics, rule.requires_approval = subject, list(audience_topics), requires_approval
    rule.next_run_at = next_run(weekday, at_time, zone, after=now)
    await session.flush()
    return rule


async def set_rule_active(session: AsyncSession, rule: DigestRule, *, active: bool, now: dt.datetime) -> None:
    """Activate (next run recomputed from now, so a long-paused rule does not fire at once) or deactivate."""
    rule.active = active
    if active:
        rule.next_run_at = next_run(rule.weekday, rule.at_time, rule.timezone, after=now)
    await session.flush()


async def list_rules(session: AsyncSession) -> Sequence[DigestRule]:
    return (await session.scalars(select(DigestRule).order_by(DigestRule.id))).all()
