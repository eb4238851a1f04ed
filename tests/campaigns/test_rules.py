"""Recurring digests: a weekly rule in local time (DST-safe), sends when there are new articles,
skips when there are none, and waits for approval when it must."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from service.campaigns import queries as q
from service.campaigns.flows import run_due_rules, start_due_campaigns
from service.campaigns.models import Campaign, DigestRule
from service.campaigns.rules import RuleError, create_rule, next_run, parse_rule
from service.settings import Settings
from tests.conftest import Database
from tests.factories import add_subscriber, sample_articles

UTC = dt.UTC


def test_rule_spec_is_parsed_and_bad_specs_are_refused() -> None:
    assert parse_rule("weekly on Monday 09:00 Europe/London") == (0, "09:00", "Europe/London")
    assert parse_rule("fri 7:30 America/New_York") == (4, "07:30", "America/New_York")
    for bad, message in (("weekly on Funday 09:00 Europe/London", "not a weekday"),
                         ("weekly on Monday 25:00 Europe/London", "not a time of day"),
                         ("weekly on Monday 09:00 Mars/Base", "not an IANA time zone"),
                         ("every day", "expected something like")):
        with pytest.raises(RuleError, match=message):
            parse_rule(bad)


def test_next_run_keeps_local_time_across_daylight_saving() -> None:
    summer = next_run(0, "09:00", "Europe/London", after=dt.datetime(2025, 7, 2, tzinfo=UTC))
    winter = next_run(0, "09:00", "Europe/London", after=dt.datetime(2025, 12, 2, tzinfo=UTC))
    assert summer == dt.datetime(2025, 7, 7, 8, 0, tzinfo=UTC)
    assert winter == dt.datetime(2025, 12, 8, 9, 0, tzinfo=UTC)
    at_the_time = dt.datetime(2025, 12, 8, 9, 0, tzinfo=UTC)
    assert next_run(0, "09:00", "Europe/London", after=at_the_time) == dt.datetime(2025, 12, 15, 9, 0, tzinfo=UTC)


async def _rule(db: Database, now: dt.datetime, **kw: object) -> int:
    async with db.sessions.begin() as session:
        rule = await create_rule(session, spec="weekly on Monday 09:00 Europe/London", now=now, **kw)  # type: ignore[arg-type]
        return rule.id


async def _run(db: Database, settings: Settings, now: dt.datetime) -> None:
    async with db.sessions.begin() as session:
        await run_due_rules(session, settings, now=now)
        await start_due_campaigns(session, settings, now=now)


async def _campaigns(db: Database) -> list[Campaign]:
    async with db.sessions() as session:
        return list((await session.scalars(select(Campaign).order_by(Campaign.id))).all())


async def test_rule_sends_when_there_are_new_articles_and_skips_when_none(db: Database, settings: Settings) -> None:
    await add_subscriber(db, "ana@example.org")
    await sample_articles(db, settings)
    monday_early = dt.datetime.now(UTC)
    rule_id = await _rule(db, monday_early)
    async with db.sessions() as session:
        rule = await session.get(DigestRule, rule_id)
        assert rule is not None and rule.next_run_at > monday_early
        due = rule.next_run_at
    await _run(db, settings, due - dt.timedelta(minutes=1))
    assert await _campaigns(db) == []  # not yet
    await _run(db, settings, due)
    (campaign,) = await _campaigns(db)
    assert campaign.status == "sending" and campaign.rule_id == rule_id and len(campaign.article_rows) == 5
    week_later = due + dt.timedelta(days=7)
    await _run(db, settings, week_later)
    assert len(await _campaigns(db)) == 1  # no new articles: skipped
    async with db.sessions() as session:
        rule = await session.get(DigestRule, rule_id)
        assert rule is not None and rule.last_result and rule.last_result.startswith("skipped: no new articles")
        assert rule.next_run_at == due + dt.timedelta(days=14)


async def test_rule_with_approval_waits_for_staff(db: Database, settings: Settings) -> None:
    await add_subscriber(db, "ana@example.org")
    await sample_articles(db, settings)
    now = dt.datetime.now(UTC)
    rule_id = await _rule(db, now, requires_approval=True)
    async with db.sessions() as session:
        rule = await session.get(DigestRule, rule_id)
        assert rule is not None
        due = rule.next_run_at
    await _run(db, settings, due)
    (campaign,) = await _campaigns(db)
    assert campaign.status == "scheduled" and campaign.requires_approval and campaign.approved_at is None
    await _run(db, settings, due + dt.timedelta(hours=1))
    assert (await _campaigns(db))[0].status == "scheduled"
    async with db.sessions.begin() as session:
        with pytest.raises(q.CampaignError, match="awaits a staff approval"):
            await q.start_campaign(session, campaign_id=campaign.id, now=due)
    async with db.sessions.begin() as session:
        await q.approve_campaign(session, campaign_id=campaign.id, now=due + dt.timedelta(hours=2))
    await _run(db, settings, due + dt.timedelta(hours=2))
    assert (await _campaigns(db))[0].status == "sending"
