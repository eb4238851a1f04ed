"""A real `tidings worker` killed with SIGKILL in the middle of a digest, restarted, killed
again, restarted: every recipient gets exactly one message, counted at the SMTP server.

The engine's at-least-once window (docs/digests.md, "Crashes") is the group of results not yet
written when the process dies. The test makes it empty so the assertion can be exact: the SMTP
server holds one recipient's transaction at RCPT, and the kill comes only once the database
records every message the server accepted. The leases of the killed worker are then made to run
out (5 minutes in the engine) instead of waiting for them."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from service.settings import Settings
from tests.conftest import Database
from tests.factories import add_subscriber, make_campaign
from tests.faults.conftest import (
    ChaosHandler,
    campaign_status,
    count_status,
    expire_leases,
    start_worker,
    wait_for,
    worker_env,
)
from tests.smtp import SmtpServer


@pytest.mark.slow
async def test_worker_killed_twice_mid_campaign_serves_everyone_once(
    db: Database, settings: Settings, chaos_smtp: Callable[..., SmtpServer], tmp_path: Path
) -> None:
    smtp = chaos_smtp()
    handler = smtp.handler
    assert isinstance(handler, ChaosHandler)
    addresses = [f"k{i:02d}@example.org" for i in range(24)]
    for address in addresses:
        await add_subscriber(db, address)
    campaign_id = await make_campaign(db, settings)
    env = worker_env(db, smtp, SEND_RATE="20", SEND_CONCURRENCY="1")

    for run, held in enumerate((addresses[6], addresses[15]), start=1):
        handler.hold.add(held)
        worker = await start_worker(env, tmp_path, f"worker{run}")
        served = addresses.index(held)

        async def reached_the_held_recipient(served: int = served) -> bool:
            return len(handler.received) == served and (await count_status(db, campaign_id))["sent"] == served

        await wait_for(reached_the_held_recipient, seconds=60, what=f"run {run} to reach {held}", proc=worker)
        assert worker.proc is not None
        worker.kill()
        assert worker.proc.returncode == -signal.SIGKILL
        left = await count_status(db, campaign_id)
        assert left["sent"] == served and left["sending"] > 0  # the dead worker's leased rows
        assert await campaign_status(db, campaign_id) == "sending"
        assert await expire_leases(db, campaign_id) == left["sending"]
        handler.hold.clear()

    last = await start_worker(env, tmp_path, "worker3")
    try:
        async def finished() -> bool:
            return await campaign_status(db, campaign_id) == "sent"

        await wait_for(finished, seconds=90, what="the campaign to finish", proc=last)
    finally:
        assert last.stop() == 0, last.log()
    assert handler.per_recipient() == dict.fromkeys(addresses, 1)
    assert await count_status(db, campaign_id) == {"sent": len(addresses)}
