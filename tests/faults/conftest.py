"""Fault-injection helpers: an SMTP server that fails at random (seeded, so a failure can be
replayed), real `tidings worker` / `tidings campaign send` processes, and a clock that makes
the engine's retry back-off (30 s and more) pass at once."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from service.campaigns.models import Campaign, Delivery
from service.db import utcnow
from tests.conftest import TEST_SECRET, Database
from tests.live import Process, tidings_env
from tests.smtp import RecordingHandler, SmtpServer


class ChaosHandler(RecordingHandler):
    """Answers 421 or drops the connection at random, at RCPT and at DATA, from a seeded RNG;
    `hold` keeps the transaction of any address in it waiting at RCPT (as tests/campaigns does)
    so that a test can stop a worker at an exact point."""

    def __init__(self, seed: int = 0, *, rcpt_421: float = 0.0, data_421: float = 0.0, data_drop: float = 0.0) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.rcpt_421 = rcpt_421
        self.data_421 = data_421
        self.data_drop = data_drop
        self.hold: set[str] = set()
        self.faults: Counter[str] = Counter()

    def _roll(self, p: float) -> bool:
        with self.lock:
            return p > 0 and self.rng.random() < p

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        while address in self.hold:  # noqa: ASYNC110 - released from the test's thread
            await asyncio.sleep(0.02)
        if self._roll(self.rcpt_421):
            self.faults["rcpt 421"] += 1
            return "421 4.7.0 try again later"
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self._roll(self.data_drop):
            self.faults["data dropped"] += 1
            server.transport.close()
            return "421 closing"
        if self._roll(self.data_421):
            self.faults["data 421"] += 1
            return "421 4.3.2 service not available, try again"
        return await super().handle_DATA(server, session, envelope)

    def per_recipient(self) -> Counter[str]:
        with self.lock:
            return Counter(r for m in self.received for r in m.recipients)


@pytest.fixture
def chaos_smtp() -> Iterator[Callable[..., SmtpServer]]:
    servers: list[SmtpServer] = []

    def start(seed: int = 0, **odds: float) -> SmtpServer:
        server = SmtpServer()
        server.handler = ChaosHandler(seed, **odds)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.handler.hold.clear()  # type: ignore[attr-defined]
        server.stop()


def worker_env(db: Database, smtp: SmtpServer, **extra: str) -> dict[str, str]:
    return tidings_env(db.url, TEST_SECRET, SMTP_URL=smtp.url, BASE_URL="http://testserver",
                       MAIL_FROM="Clinic <hello@clinic.test>", **extra)


def tidings_process(args: list[str], env: dict[str, str], tmp_path: Path, name: str) -> Process:
    proc = Process(args, env, tmp_path / f"{name}.log")
    proc.start()
    return proc


async def campaign_status(db: Database, campaign_id: int) -> str:
    async with db.sessions() as session:
        return str(await session.scalar(select(Campaign.status).where(Campaign.id == campaign_id)))


async def count_status(db: Database, campaign_id: int) -> Counter[str]:
    async with db.sessions() as session:
        rows = await session.execute(select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign_id)
                                     .group_by(Delivery.status))
        return Counter({status: int(n) for status, n in rows.all()})


async def make_retries_due(db: Database, campaign_id: int) -> int:
    """Time passes: every delivery waiting for its back-off is due now (the engine's back-off
    starts at 30 s; a test does not wait for it)."""
    async with db.sessions.begin() as session:
        result = await session.execute(update(Delivery).where(
            Delivery.campaign_id == campaign_id, Delivery.status == "queued", Delivery.next_attempt_at > utcnow(),
        ).values(next_attempt_at=Delivery.created_at))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def expire_leases(db: Database, campaign_id: int) -> int:
    """Time passes: the leases of a dead worker run out (5 minutes in the engine)."""
    async with db.sessions.begin() as session:
        result = await session.execute(update(Delivery).where(
            Delivery.campaign_id == campaign_id, Delivery.status == "sending",
        ).values(lease_expires_at=Delivery.created_at))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def wait_for(condition: Callable[[], Any], *, seconds: float, what: str, proc: Process | None = None) -> None:
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if proc is not None and proc.proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({proc.proc.returncode}):\n{proc.log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f":\n{proc.log()}" if proc else ""))
        await asyncio.sleep(0.05)
