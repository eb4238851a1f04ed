"""Pause, resume and cancel hold; two workers never send the same delivery."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from service.campaigns import queries as q
from service.campaigns.sender import ChunkResult
from service.campaigns.stats import campaign_stats
from service.campaigns.throttle import TokenBucket
from service.db import utcnow
from service.settings import Settings
from tests.conftest import Database
from tests.factories import add_subscriber, deliveries, make_campaign, sender_for
from tests.smtp import SmtpServer


async def _wait_for(predicate, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def _set_status(db: Database, campaign_id: int, status: str) -> None:
    async with db.sessions.begin() as session:
        await q.set_campaign_status(session, campaign_id=campaign_id, status=status, now=utcnow())


async def test_pause_holds_and_resume_finishes_without_resending(
    db: Database, settings: Settings, smtp: SmtpServer
) -> None:
    for i in range(30):
        await add_subscriber(db, f"p{i}@example.org")
    campaign_id = await make_campaign(db, settings)
    # 10 a second: the pause must land before all 30 are sent, which leaves it ~2.6 s after the
    # 4th message even on a loaded machine (at 40 a second it had 0.65 s)
    sender = sender_for(db, settings, smtp.url, bucket=TokenBucket(10))
    task = asyncio.create_task(sender.run_campaign(campaign_id))
    await _wait_for(lambda: len(smtp.received) >= 4)
    await _set_status(db, campaign_id, "paused")
    assert await asyncio.wait_for(task, 10) == "paused"
    at_pause = len(smtp.received)
    await asyncio.sleep(0.5)
    assert len(smtp.received) == at_pause < 30
    rows = await deliveries(db, campaign_id)
    assert Counter(r.status for r in rows) == {"sent": at_pause, "queued": 30 - at_pause}
    # a worker that looks for work while the campaign is paused finds none
    assert await sender.run_once() == 0

    await _set_status(db, campaign_id, "sending")
    assert await sender.run_campaign(campaign_id) == "sent"
    await sender.transport.close()
    assert Counter(r for m in smtp.received for r in m.recipients) == {f"p{i}@example.org": 1 for i in range(30)}


async def test_cancel_holds(db: Database, settings: Settings, smtp: SmtpServer) -> None:
    for i in range(30):
        await add_subscriber(db, f"c{i}@example.org")
    campaign_id = await make_campaign(db, settings)
    # 10 a second: the cancel must land before all 30 are sent, which leaves it ~2.6 s after the
    # 4th message even on a loaded machine (at 40 a second it had 0.65 s)
    sender = sender_for(db, settings, smtp.url, bucket=TokenBucket(10))
    task = asyncio.create_task(sender.run_campaign(campaign_id))
    await _wait_for(lambda: len(smtp.received) >= 4)
    await _set_status(db, campaign_id, "cancelled")
    assert await asyncio.wait_for(task, 10) == "cancelled"
    at_cancel = len(smtp.received)
    assert await sender.run_once() == 0
    await asyncio.sleep(0.3)
    await sender.transport.close()
    assert len(smtp.received) == at_cancel < 30
    async with db.sessions() as session:
        stats = await campaign_stats(session, campaign_id=campaign_id, now=utcnow())
    assert (stats.status, stats.sent, stats.queued) == ("cancelled", at_cancel, 30 - at_cancel)
    async with db.sessions.begin() as session:
        try:
            await q.start_campaign(session, campaign_id=campaign_id, now=utcnow())
        except q.CampaignError as exc:
            assert "cancelled" in str(exc)
        else:
            raise AssertionError("a cancelled campaign was started again")


@pytest.mark.slow  # two senders racing over many deliveries
async def test_two_workers_never_send_the_same_delivery(db: Database, settings: Settings, smtp: SmtpServer) -> None:
    for i in range(300):
        await add_subscriber(db, f"w{i}@example.org")
    campaign_id = await make_campaign(db, settings)
    counts = {"a": 0, "b": 0}

    def tally(name: str):  # type: ignore[no-untyped-def]
        def on_progress(result: ChunkResult) -> None:
            counts[name] += result.sent
        return on_progress

    a = sender_for(db, settings, smtp.url, owner="worker-a", batch_size=20, on_progress=tally("a"))
    b = sender_for(db, settings, smtp.url, owner="worker-b", batch_size=20, on_progress=tally("b"))
    statuses = await asyncio.gather(a.run_campaign(campaign_id), b.run_campaign(campaign_id))
    await a.transport.close()
    await b.transport.close()
    assert statuses == ["sent", "sent"]
    per_rcpt = Counter(r for m in smtp.received for r in m.recipients)
    assert len(per_rcpt) == 300 and set(per_rcpt.values()) == {1}
    assert counts["a"] + counts["b"] == 300
    if db.is_postgres:  # SKIP LOCKED lets both claim side by side (SQLite runs them in turn)
        assert counts["a"] > 0 and counts["b"] > 0
