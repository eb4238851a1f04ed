"""An SMTP server that answers 421 and drops connections at random (seeded) while a real
`tidings worker` process sends a digest: every recipient is served exactly once, counted at
the server, and every delivery ends 'sent'."""

from __future__ import annotations

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
    make_retries_due,
    start_worker,
    wait_for,
    worker_env,
)
from tests.smtp import SmtpServer


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 2026])
async def test_flaky_smtp_server_during_a_digest_serves_every_recipient_once(
    db: Database, settings: Settings, chaos_smtp: Callable[..., SmtpServer], tmp_path: Path, seed: int
) -> None:
    smtp = chaos_smtp(seed, rcpt_421=0.08, data_421=0.12, data_drop=0.12)
    handler = smtp.handler
    assert isinstance(handler, ChaosHandler)
    addresses = [f"f{i:03d}@example.org" for i in range(120)]
    for address in addresses:
        await add_subscriber(db, address)
    campaign_id = await make_campaign(db, settings)  # status 'sending': the worker picks it up

    worker = await start_worker(worker_env(db, smtp, SEND_RATE="0", SEND_CONCURRENCY="3"), tmp_path, "worker")
    try:
        async def finished() -> bool:
            await make_retries_due(db, campaign_id)
            return await campaign_status(db, campaign_id) == "sent"

        await wait_for(finished, seconds=120, what="the campaign to finish", proc=worker)
    finally:
        assert worker.stop() == 0, worker.log()

    assert sum(handler.faults.values()) >= 20, handler.faults  # the faults really happened
    assert {"rcpt 421", "data 421", "data dropped"} <= set(handler.faults)
    assert handler.per_recipient() == dict.fromkeys(addresses, 1)
    assert await count_status(db, campaign_id) == {"sent": len(addresses)}
    assert "Traceback" not in worker.log()
