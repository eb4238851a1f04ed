"""The database is away when the processes start, or goes away while they run: `tidings worker`
and `tidings serve` (with its in-process worker) wait with backoff, log one line per attempt,
never exit for it, say when they recovered, and then work; a worker stopped during an outage
exits cleanly. A database that answers with a schema that is not current still stops them with
one line. All on a throw-away PostgreSQL cluster (tests/faults/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from service.db import create_engine, session_factory
from service.mail.models import OutboxMessage
from tests.conftest import TEST_SECRET, Database
from tests.faults.conftest import Cluster, heartbeat_path, tidings_process, wait_for
from tests.live import LiveServer, Process, tidings_env
from tests.smtp import SmtpServer

INQUIRY = {"name": "Early Bird", "email": "early.bird@example.org", "phone": "", "topic": "anxiety",
           "contact_method": "email", "consent": True, "website": "",
           "message": "Sent just after the database came back."}


def _readyz(server: LiveServer) -> int:
    return httpx.get(f"{server.url}/readyz", timeout=5).status_code


async def _pending_outbox(cluster: Cluster) -> int:
    engine = create_engine(cluster.url)
    try:
        async with session_factory(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.status.in_(("queued", "sending")))) or 0)
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_worker_and_server_started_while_postgres_is_down_wait_then_work(
    migrated: Cluster, smtp: SmtpServer, tmp_path: Path
) -> None:
    env = tidings_env(migrated.url, TEST_SECRET, FORM_MIN_SECONDS="0", SMTP_URL=smtp.url)
    beat = heartbeat_path(tmp_path, "worker")
    migrated.ctl("stop", "-m", "fast")
    server = LiveServer(env, tmp_path / "serve.log")  # with its in-process worker
    worker = tidings_process(["worker", "--heartbeat", str(beat)], env, tmp_path, "worker")
    try:
        server.start()  # listens although the database is away
        await wait_for(lambda: worker.log().count("database not reachable") >= 2, seconds=60,
                       what="the worker to retry", proc=worker)
        await wait_for(lambda: "tidings.worker: database not reachable" in server.log(), seconds=60,
                       what="the in-process worker to retry", proc=server)
        assert _readyz(server) == 503
        assert not beat.exists()  # not ready: nothing may wait on it yet
        assert "retrying in 1 s" in worker.log() and "retrying in 2 s" in worker.log()  # backoff

        migrated.ctl("start")
        await wait_for(beat.exists, seconds=60, what="the worker's heartbeat", proc=worker)
        await wait_for(lambda: _readyz(server) == 200, seconds=30, what="/readyz to say ready", proc=server)
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            token = (await client.get("/api/form-token")).json()["form_token"]
            answer = await client.post("/api/inquiries", json={**INQUIRY, "form_token": token})
        assert answer.status_code == 201, answer.text

        async def delivered() -> bool:
            mailed = {r.lower() for m in smtp.received for r in m.recipients}
            return "early.bird@example.org" in mailed and await _pending_outbox(migrated) == 0

        await wait_for(delivered, seconds=60, what="the acknowledgement to be sent", proc=worker)
        assert "recovered after" in worker.log()
        assert "recovered after" in server.log()

        # Gone again while running; stopped during the outage: the worker exits cleanly.
        migrated.ctl("stop", "-m", "fast")
        await wait_for(lambda: "worker loop" in worker.log().split("recovered after")[-1], seconds=60,
                       what="a worker loop to meet the outage", proc=worker)
        assert worker.proc is not None and worker.proc.poll() is None
        assert worker.stop() == 0, worker.log()
        assert not beat.exists()  # removed on exit
    finally:
        server.stop()
        worker.stop()
        migrated.ensure_running()
    for log in (worker.log(), server.log()):
        assert "Traceback" not in log, log[-4000:]
        assert "cannot reach the database" not in log
        assert TEST_SECRET not in log


@pytest.mark.slow
async def test_a_database_that_comes_back_unmigrated_stops_worker_and_server_with_one_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.psql("DROP DATABASE IF EXISTS tidings_empty", "CREATE DATABASE tidings_empty")
    env = tidings_env(cluster.url.rsplit("/", 1)[0] + "/tidings_empty", TEST_SECRET)
    cluster.ctl("stop", "-m", "fast")
    procs: list[Process] = []
    try:
        server = LiveServer(env, tmp_path / "serve.log", worker=False)
        procs.append(server)
        server.start()
        procs.append(tidings_process(["worker"], env, tmp_path, "worker"))
        for proc in procs:
            await wait_for(lambda proc=proc: "database not reachable" in proc.log(), seconds=60,  # type: ignore[misc]
                           what="a retry", proc=proc)
        cluster.ctl("start")
        for proc in procs:
            assert proc.proc is not None
            await wait_for(lambda proc=proc: proc.proc.poll() is not None, seconds=60,  # type: ignore[misc]
                           what="the process to stop")
            assert proc.proc.returncode == 1, proc.log()
            assert "error: the database schema is at nothing" in proc.log(), proc.log()
            assert "run `tidings migrate`" in proc.log() and "Traceback" not in proc.log()
    finally:
        for proc in procs:
            proc.stop()
        cluster.ensure_running()


@pytest.mark.slow
async def test_a_heartbeat_that_cannot_be_written_does_not_stop_the_worker(
    db: Database, smtp: SmtpServer, tmp_path: Path
) -> None:
    env = tidings_env(db.url, TEST_SECRET, SMTP_URL=smtp.url)
    worker = tidings_process(["worker", "--heartbeat", str(tmp_path / "no-such-dir" / "alive")], env, tmp_path,
                             "worker")
    try:
        await wait_for(lambda: "cannot write the heartbeat file" in worker.log(), seconds=60,
                       what="the failed heartbeat to be logged", proc=worker)
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        assert worker.stop() == 0, worker.log()
    assert "No such file or directory" in worker.log() and "Traceback" not in worker.log()


@pytest.mark.slow
async def test_a_database_that_refuses_the_login_stops_worker_and_server_with_one_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = tidings_env(cluster.url.replace("postgres@", "no_such_role@"), TEST_SECRET)
    for args in (["worker"], ["serve", "--no-worker", "--port", "1"]):
        proc = tidings_process(args, env, tmp_path, args[0])
        assert proc.proc is not None
        await wait_for(lambda proc=proc: proc.proc.poll() is not None, seconds=60,  # type: ignore[misc]
                       what=f"tidings {args[0]} to stop")
        assert proc.proc.returncode == 1, proc.log()
        assert proc.log().strip().splitlines()[-1] == ('error: the database refused the connection: '
                                                       'InvalidAuthorizationSpecificationError: role "no_such_role" '
                                                       'does not exist'), proc.log()
