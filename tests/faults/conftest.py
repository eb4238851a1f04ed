"""Fault-injection helpers: an SMTP server that fails at random (seeded, so a failure can be
replayed), real `tidings worker` / `tidings campaign send` processes, and a clock that makes
the engine's retry back-off (30 s and more) pass at once."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from service.campaigns.models import Campaign, Delivery
from service.db import create_engine, migrate, utcnow
from tests.conftest import TEST_SECRET, Database
from tests.live import Process, tidings_env
from tests.smtp import RecordingHandler, SmtpServer, free_port


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


_STARTED: list[Process] = []


def tidings_process(args: list[str], env: dict[str, str], tmp_path: Path, name: str) -> Process:
    proc = Process(args, env, tmp_path / f"{name}.log")
    proc.start()
    _STARTED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """Kill every `tidings` process a test started, however the test ended: a worker left
    running after a failure would go on claiming the next tests' outbox rows and deliveries."""
    yield
    while _STARTED:
        _STARTED.pop().kill()


def heartbeat_path(tmp_path: Path, name: str) -> Path:
    return tmp_path / f"{name}.alive"


async def start_worker(env: dict[str, str], tmp_path: Path, name: str, *, seconds: float = 60) -> Process:
    """A `tidings worker --heartbeat FILE`, returned once it is ready: its heartbeat file exists
    (written once the database answered and the schema is current). No test races a worker's
    start-up by sleeping."""
    beat = heartbeat_path(tmp_path, name)
    proc = tidings_process(["worker", "--heartbeat", str(beat)], env, tmp_path, name)
    await wait_for(beat.exists, seconds=seconds, what=f"{name} to be ready (its heartbeat)", proc=proc)
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


# -- a throw-away PostgreSQL cluster (never the suite's shared one) -----------------------------


@dataclass
class Cluster:
    version: str
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/tidings_fault"

    def ctl(self, action: str, *extra: str) -> None:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action, *extra],
                       check=True, capture_output=True, timeout=60)

    def ensure_running(self) -> None:
        """Start the cluster unless it runs (a test that stops it calls this when it ends)."""
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "start"],
                       capture_output=True, timeout=60)

    def psql(self, *commands: str) -> None:
        args = [arg for command in commands for arg in ("-c", command)]
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q", *args],
                       check=True, capture_output=True, timeout=60)


def _pg_version() -> str | None:
    if not shutil.which("pg_createcluster") or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: float(v) if v.replace(".", "").isdigit() else 0)
    return versions[-1] if versions else None


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    version = _pg_version()
    if version is None:  # CI installs postgresql-common; a skip fails the CI run
        pytest.skip("pg_createcluster (Debian postgresql-common) is not installed")
    c = Cluster(version, f"tidings_fault_{secrets.token_hex(4)}", free_port())
    try:
        subprocess.run(["pg_createcluster", version, c.name, "-p", str(c.port), "--", "--auth=trust"],
                       check=True, capture_output=True, timeout=120)
        c.ctl("start")
        c.psql("CREATE DATABASE tidings_fault")
        yield c
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, c.name], capture_output=True, timeout=120)


@pytest.fixture(scope="package")
async def migrated(cluster: Cluster) -> Cluster:
    engine = create_engine(cluster.url)
    await migrate(engine)
    await engine.dispose()
    return cluster
