"""A real `tidings campaign send` process killed mid-campaign (SIGKILL) and started again: every
recipient ends up with exactly one message, counted at the SMTP server. Also: the foreground
command's summary and its --test copy."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from service.campaigns.models import Delivery
from service.settings import Settings
from tests.conftest import ROOT, TEST_SECRET, Database
from tests.factories import add_subscriber, deliveries, make_campaign
from tests.smtp import RecordingHandler, SmtpServer


class HoldingHandler(RecordingHandler):
    """Keeps the SMTP transaction of any address in `hold` waiting at RCPT (never delivered)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold: set[str] = set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        while address in self.hold:  # noqa: ASYNC110 - released from the test's thread
            await asyncio.sleep(0.02)
        return await super().handle_RCPT(server, session, envelope, address, options)


@pytest.fixture
def holding_smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.handler = HoldingHandler()
    server.start()
    yield server
    server.handler.hold.clear()  # type: ignore[attr-defined]
    server.stop()


def _env(db: Database, smtp: SmtpServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "SMTP_URL", "SEND_", "DKIM_"))}
    env.update(DATABASE_URL=db.url, SECRET_KEY=TEST_SECRET, SMTP_URL=smtp.url, BASE_URL="http://testserver",
               MAIL_FROM="Clinic <hello@clinic.test>", SEND_CONCURRENCY="1", PYTHONPATH=str(ROOT),
               ALLOW_HTTP_BASE_URL="true", ORG_POSTAL_ADDRESS="Clinic Street 1", **extra)
    return env


def _tidings(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def _count_sent(db: Database, campaign_id: int) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).where(
            Delivery.campaign_id == campaign_id, Delivery.status == "sent")) or 0)


@pytest.mark.slow
async def test_worker_killed_mid_campaign_and_restarted_serves_everyone_once(
    db: Database, settings: Settings, holding_smtp: SmtpServer, tmp_path: Path
) -> None:
    smtp = holding_smtp
    addresses = [f"k{i:02d}@example.org" for i in range(16)]
    for address in addresses:
        await add_subscriber(db, address)
    campaign_id = await make_campaign(db, settings, start=False)
    smtp.handler.hold.add(addresses[7])  # type: ignore[attr-defined]
    env = _env(db, smtp, SEND_RATE="10")

    first = _tidings(["campaign", "send", str(campaign_id)], env, tmp_path)
    deadline = time.monotonic() + 60
    while not (len(smtp.received) == 7 and await _count_sent(db, campaign_id) == 7):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the worker did not reach the held recipient"
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL

    rows = await deliveries(db, campaign_id)
    left = Counter(r.status for r in rows)
    # Nothing lost: 7 sent, the dead worker's leased rows in "sending" and, depending on how far it
    # had leased ahead when it died (one row per chunk at this rate), the rest still "queued".
    assert left["sent"] == 7 and left["sending"] >= 1 and left["sending"] + left["queued"] == 9, left
    async with db.sessions.begin() as session:  # its lease runs out
        await session.execute(update(Delivery).where(Delivery.status == "sending")
                              .values(lease_expires_at=Delivery.created_at))
    smtp.handler.hold.clear()  # type: ignore[attr-defined]

    second = _tidings(["campaign", "send", str(campaign_id)], env, tmp_path)
    out, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    assert f"campaign {campaign_id}: sent; sent 16" in out
    assert Counter(r for m in smtp.received for r in m.recipients) == dict.fromkeys(addresses, 1)
    assert {r.status for r in await deliveries(db, campaign_id)} == {"sent"}


@pytest.mark.slow
async def test_test_send_is_marked_and_not_recorded(
    db: Database, settings: Settings, smtp: SmtpServer, tmp_path: Path
) -> None:
    await add_subscriber(db, "ana@example.org")
    campaign_id = await make_campaign(db, settings, start=False)
    proc = _tidings(["campaign", "send", str(campaign_id), "--test", "staff@example.org"], _env(db, smtp), tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    (received,) = smtp.received
    assert received.recipients == ["staff@example.org"]
    assert received.message["Subject"] == "[TEST] This month at the clinic"
    assert await deliveries(db, campaign_id) == []

    bad = _tidings(["campaign", "send", str(campaign_id), "--test", "not-an-address"], _env(db, smtp), tmp_path)
    _out, err = bad.communicate(timeout=60)
    assert bad.returncode == 1 and err.strip().startswith("error: --test:") and len(err.strip().splitlines()) == 1


@pytest.mark.slow
async def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(
    db: Database, settings: Settings, smtp: SmtpServer, tmp_path: Path
) -> None:
    addresses = [f"i{i:02d}@example.org" for i in range(20)]
    for address in addresses:
        await add_subscriber(db, address)
    campaign_id = await make_campaign(db, settings, start=False)
    env = _env(db, smtp, SEND_RATE="10")
    first = _tidings(["campaign", "send", str(campaign_id)], env, tmp_path)
    deadline = time.monotonic() + 60
    while len(smtp.received) < 3:
        assert first.poll() is None and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _out, err = first.communicate(timeout=30)
    assert first.returncode == 1
    assert "run the same command again to resume" in err and err.strip().endswith("error: interrupted")
    rows = await deliveries(db, campaign_id)
    assert {r.status for r in rows} <= {"sent", "queued"}  # nothing left leased
    stopped_at = len(smtp.received)
    assert sum(r.status == "sent" for r in rows) == stopped_at < 20

    second = _tidings(["campaign", "send", str(campaign_id)], env, tmp_path)
    out, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    assert Counter(r for m in smtp.received for r in m.recipients) == dict.fromkeys(addresses, 1)
