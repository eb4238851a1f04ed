"""The worker's loop machinery: a failing loop backs off (never less than a second, whatever its
interval), logs one line per failed attempt and one when it recovers; a worker whose database
does not answer waits for it and stops cleanly when asked. The processes themselves, against a
real PostgreSQL going away, are in tests/faults/test_database_away.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from service.db import create_engine, outage_delay, session_factory
from service.mail.transport import make_mailer
from service.settings import Settings
from service.worker import Loop, WorkerContext, run_loop, run_worker
from tests.conftest import TEST_SECRET
from tests.smtp import free_port


def test_outage_backoff_doubles_to_thirty_seconds_and_never_drops_below_one() -> None:
    assert [outage_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert outage_delay(1, first=0.0) == 1.0  # a loop with interval 0 does not spin when failing
    assert outage_delay(1, first=30.0) == 30.0 and outage_delay(50) == 30.0


def _context(database_url: str) -> WorkerContext:
    settings = Settings(database_url=database_url, secret_key=TEST_SECRET)
    sessions = session_factory(create_engine(database_url))
    return WorkerContext(settings=settings, sessions=sessions, mailer=make_mailer(None, sessions))


@pytest.mark.slow  # waits out the real 1 s + 2 s backoff
async def test_a_failing_loop_backs_off_logs_each_attempt_and_says_when_it_recovered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    calls = 0

    async def flaky(_ctx: WorkerContext) -> int:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        stop.set()
        return 0

    ctx = _context("sqlite+aiosqlite:///:memory:")
    with caplog.at_level(logging.WARNING, logger="tidings.worker"):
        await asyncio.wait_for(run_loop(Loop("probe", flaky, 0.0), ctx, stop), timeout=30)
    lines = [r.getMessage() for r in caplog.records if r.name == "tidings.worker"]
    assert lines == [
        "worker loop probe: database not reachable (ConnectionRefusedError: [Errno 111] Connect call failed "
        "('127.0.0.1', 5432)), retrying in 1 s",
        "worker loop probe: database not reachable (ConnectionRefusedError: [Errno 111] Connect call failed "
        "('127.0.0.1', 5432)), retrying in 2 s",
        "worker loop probe recovered after 2 failed attempts",
    ]
    assert calls == 3


async def test_a_worker_whose_database_is_unreachable_waits_and_stops_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = _context(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing_listens_here")
    ran = asyncio.Event()

    async def job(_ctx: WorkerContext) -> int:
        ran.set()
        return 0

    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="tidings.worker"):
        task = asyncio.create_task(run_worker(ctx, stop, [Loop("probe", job, 1.0)]))
        while not any("database not reachable" in r.getMessage() for r in caplog.records):
            assert not task.done(), "the worker ended while the database was away"
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, timeout=10)  # returns, raises nothing
    assert not ran.is_set()  # no loop ran before the database answered
    message = next(r.getMessage() for r in caplog.records if "database not reachable" in r.getMessage())
    assert message.startswith("database not reachable (ConnectionRefusedError") and "retrying in 1 s" in message
    await ctx.mailer.close()


async def test_each_worker_keeps_its_own_campaign_sender_and_every_loop_runs(tmp_path: Path) -> None:
    from service.campaigns.jobs import sender_for
    from service.worker import default_loops

    first, second = (_context(f"sqlite+aiosqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    assert sender_for(first) is sender_for(first)
    assert sender_for(second) is not sender_for(first) and sender_for(second).owner == second.owner
    assert {loop.name for loop in default_loops(first.settings)} == {
        "outbox", "housekeeping", "newsletter-purge", "held-purge", "inquiry-counts", "held-signup-purge",
        "subscriber-counts", "campaigns", "campaign-schedule", "delivery-counts", "inquiry-retention",
        "bounce-retention", "insight-days",
        "webhooks", "webhook-retention"}
    polling = first.settings.with_(feed_url="https://blog.example.org/feed.xml")
    assert "feed" in {loop.name for loop in default_loops(polling)}
