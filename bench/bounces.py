"""Benchmark: bounces in, by both routes, on PostgreSQL.

    ./dev bench bounces [--events 100000] [--connections 20] [--inbound-procs 1] [--batch 100]
                        [--requests 16] [--server-procs 2]

A fresh database (`tidings_bench_bounces`, or BENCH_PG_DB; dropped afterwards), migrated, with
2 x EVENTS confirmed subscribers: the first half each received a delivery of one sent campaign
(the rows a real send leaves), the second half is reported on by webhook.

1. LMTP: `tidings inbound` (a real process; `--inbound-procs` receivers on one port) receives
   one RFC 3464 delivery-status report per delivery, each to that delivery's signed VERP return
   path, over `--connections` LMTP connections (pipelined, as Postfix does); every message must
   get 250 for its recipient. Each reply waits for its report's commit, so the connections are
   what keeps transactions full. 20 by default, because that is what Postfix opens to one LMTP
   destination (lmtp_destination_concurrency_limit = default_destination_concurrency_limit = 20);
   an operator can raise it, up to its 100 delivery agents (default_process_limit).
   Ceiling, same run: the same client against a null LMTP server that answers at once.
2. Webhook: uvicorn (`--server-procs` processes) serves the app with WEBHOOK_SECRET; the
   generic webhook gets EVENTS hard bounces in signed batches of `--batch`, `--requests` at once.
3. Exactly once: every report is sent again (the first 1 %), and afterwards each route must have
   stored exactly EVENTS events, one per subscriber, every subscriber bounced.
4. Baseline, same run: the same rows INSERTed into a copy of `bounce_events` directly with
   asyncpg, in transactions of `--batch` rows (what the database alone costs).

The load generators run on the same cores as the servers: the figures are a lower bound. The
first line gives the load average: other work on the machine takes its share of the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from inquiries import cpu_seconds, free_port, launch_uvicorn, process_tree, stop_server  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
PG_DB = os.environ.get("BENCH_PG_DB", "tidings_bench_bounces")
DB_URL = PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_DB
SECRET = secrets.token_urlsafe(48)
WEBHOOK_SECRET = secrets.token_urlsafe(48)
DOMAIN = "bounces.clinic.test"
RESEND_SHARE = 100  # 1 in 100 reports is sent twice


def settings():  # type: ignore[no-untyped-def]
    from service.settings import Settings

    return Settings(database_url=DB_URL, secret_key=SECRET, mail_from="Clinic <hello@clinic.test>",
                    return_path=f"bounces+{{token}}@{DOMAIN}")


def env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SECRET_", "WEBHOOK_", "BOUNCE_"))}
    return {**keep, "DATABASE_URL": DB_URL, "SECRET_KEY": SECRET, "BOUNCE_DOMAIN": DOMAIN,
            "WEBHOOK_SECRET": WEBHOOK_SECRET, "MAIL_FROM": "Clinic <hello@clinic.test>", "LOG_LEVEL": "warning",
            "MAX_BODY_BYTES": str(1024 * 1024)}


# -- database --------------------------------------------------------------------------------


async def admin_sql(sql: str) -> None:
    from sqlalchemy import text

    from service.db import create_engine

    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
        ), {"n": PG_DB})
        await conn.execute(text(sql))
    await engine.dispose()


async def prepare(events: int) -> int:
    """Schema, 2 x `events` subscribers, a sent campaign with a delivery to each of the first
    half; the campaign id."""
    from sqlalchemy import text

    from service.campaigns import queries as q
    from service.db import create_engine, migrate, session_factory, utcnow

    await admin_sql(f'DROP DATABASE IF EXISTS "{PG_DB}"')
    await admin_sql(f'CREATE DATABASE "{PG_DB}"')
    engine = create_engine(DB_URL)
    await migrate(engine)
    async with session_factory(engine).begin() as session:
        campaign_id = (await q.create_campaign(session, subject="Bench digest", article_ids=[], now=utcnow(),
                                               status="sent")).id
    async with engine.begin() as conn:
        await conn.execute(text("""
            INSERT INTO subscribers (id, email, email_key, name, status, created_at, status_changed_at, signup_at,
                                     confirmed_at)
            SELECT i, 'reader' || i || '@bench.example.org', 'reader' || i || '@bench.example.org', '',
                   'confirmed', now() - interval '1 day', now(), now(), now() - interval '1 day'
            FROM generate_series(1, CAST(:n AS int)) AS i"""), {"n": 2 * events})
        await conn.execute(text("SELECT setval('subscribers_id_seq', (SELECT max(id) FROM subscribers))"))
        await conn.execute(text("""
            INSERT INTO deliveries (id, campaign_id, subscriber_id, email, status, attempts, next_attempt_at,
                                    message_id, bounced, sent_at, created_at)
            SELECT i, :c, i, 'reader' || i || '@bench.example.org', 'sent', 1, now(),
                   '<bench.' || i || '@clinic.test>', false, now(), now()
            FROM generate_series(1, CAST(:n AS int)) AS i"""), {"n": events, "c": campaign_id})
        await conn.execute(text("SELECT setval('deliveries_id_seq', (SELECT max(id) FROM deliveries))"))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    await engine.dispose()
    return campaign_id


async def check(events: int) -> list[str]:
    """What is wrong with the stored events (nothing: an empty list)."""
    from sqlalchemy import text

    from service.db import create_engine

    engine = create_engine(DB_URL)
    problems = []
    async with engine.connect() as conn:
        for source, low, high in (("lmtp", 1, events), ("webhook", events + 1, 2 * events)):
            rows, people, outside = (await conn.execute(text(
                "SELECT count(*), count(DISTINCT subscriber_id), "
                "count(*) FILTER (WHERE subscriber_id NOT BETWEEN :low AND :high) "
                "FROM bounce_events WHERE source = :s"), {"s": source, "low": low, "high": high})).one()
            if (rows, people, outside) != (events, events, 0):
                problems.append(f"{source}: {rows} events for {people} subscribers ({outside} outside the range), "
                                f"expected {events} for {events}")
        bounced = await conn.scalar(text("SELECT count(*) FROM subscribers WHERE status = 'bounced'"))
        if bounced != 2 * events:
            problems.append(f"{bounced} subscribers bounced, expected {2 * events}")
        flagged = await conn.scalar(text("SELECT count(*) FROM deliveries WHERE bounced"))
        if flagged != events:
            problems.append(f"{flagged} deliveries marked bounced, expected {events}")
    await engine.dispose()
    return problems


# -- LMTP ------------------------------------------------------------------------------------


def dsn(n: int, recipient: str, return_path: str) -> bytes:
    """An RFC 3464 report as Postfix writes it, for delivery `n`."""
    boundary = f"bench-{n}"
    return (
        f"Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.bench.test (Mail Delivery System)\r\n"
        f"To: {return_path}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn.{n}@mx.bench.test>\r\nDate: Wed, 02 Dec 2026 12:00:00 +0000\r\n"
        f"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
        f"<{recipient}>: host mx.example.org said: 550 5.1.1 no such user\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.bench.test\r\nArrival-Date: Wed, 02 Dec 2026 11:59:59 +0000\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\nAction: failed\r\n"
        f"Status: 5.1.1\r\nRemote-MTA: dns; mx.example.org\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: no such user\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: Clinic <hello@clinic.test>\r\nTo: {recipient}\r\nSubject: Bench digest\r\n"
        f"Message-ID: <bench.{n}@clinic.test>\r\n\r\n--{boundary}--\r\n"
    ).encode()


class Lmtp:
    """A minimal LMTP client on one connection: one message, one recipient at a time. Like
    Postfix, it pipelines MAIL, RCPT and DATA when the server offers PIPELINING."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.pipelining = False

    @classmethod
    async def open(cls, port: int) -> Lmtp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = cls(reader, writer)
        await conn.reply()
        writer.write(b"LHLO bench.test\r\n")
        conn.pipelining = "PIPELINING" in await conn.reply(everything=True)
        return conn

    async def reply(self, *, everything: bool = False) -> str:
        lines = ""
        while True:
            line = (await self.reader.readline()).decode()
            if not line:
                raise ConnectionError("LMTP connection closed")
            lines += line
            if line[3:4] != "-":
                return lines if everything else line

    async def send(self, rcpt: str, body: bytes) -> str:
        commands = (b"MAIL FROM:<>", f"RCPT TO:<{rcpt}>".encode(), b"DATA")
        if self.pipelining:
            self.writer.write(b"".join(c + b"\r\n" for c in commands))
            answers = [await self.reply() for _ in commands]
        else:
            answers = []
            for command in commands:
                self.writer.write(command + b"\r\n")
                answers.append(await self.reply())
                if not answers[-1].startswith(("250", "354")):
                    break
        if not all(a.startswith(("250", "354")) for a in answers):
            self.writer.write(b"RSET\r\n")
            await self.reply()
            return next(a for a in answers if not a.startswith(("250", "354")))
        self.writer.write(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        return await self.reply()

    async def close(self) -> None:
        self.writer.write(b"QUIT\r\n")
        self.writer.close()


async def lmtp_load(port: int, jobs: list[tuple[str, bytes]], connections: int) -> tuple[float, list[str]]:
    """Seconds to deliver every job, and the replies that were not 250."""
    queue = list(reversed(jobs))
    bad: list[str] = []

    async def one() -> None:
        conn = await Lmtp.open(port)
        while queue:
            rcpt, body = queue.pop()
            answer = await conn.send(rcpt, body)
            if not answer.startswith("250"):
                bad.append(answer.strip())
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    return time.perf_counter() - started, bad


class NullLmtp(asyncio.Protocol):
    """An LMTP server that does nothing: 250 to every command and message, at once. The bench
    client against it is the ceiling of what the client can send on this machine."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.buffer, self.in_data = transport, b"", False
        transport.write(b"220 null LMTP\r\n")

    def data_received(self, data: bytes) -> None:
        lines = (self.buffer + data).split(b"\r\n")
        self.buffer = lines.pop()
        out = []
        for line in lines:
            if self.in_data:
                if line == b".":
                    self.in_data = False
                    out.append(b"250 2.0.0 ok")
                continue
            verb = line[:4].upper()
            if verb == b"LHLO":
                out.append(b"250-null\r\n250 PIPELINING")
            elif verb == b"DATA":
                self.in_data = True
                out.append(b"354 go on")
            elif verb == b"QUIT":
                self.transport.write(b"221 bye\r\n")
                self.transport.close()
                return
            else:
                out.append(b"250 ok")
        if out:
            self.transport.write(b"\r\n".join(out) + b"\r\n")


def serve_null_lmtp(port: int) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(NullLmtp, "127.0.0.1", port)
        print("LMTP on", port, flush=True)
        await server.serve_forever()

    asyncio.run(serve())


def start_inbound(port: int, log: Path, processes: int = 1) -> subprocess.Popen[bytes]:
    """`tidings inbound` on `port`, once it says it listens (its output goes to `log`)."""
    with log.open("wb") as out:
        inbound = [sys.executable, "-m", "service.cli", "inbound", "--host", "127.0.0.1", "--port", str(port),
                   "--processes", str(processes)]
        command = inbound if processes else [sys.executable, __file__, "--null-lmtp", str(port)]
        proc = subprocess.Popen(command, cwd=ROOT, env=env(), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline and proc.poll() is None:
        if log.read_bytes().count(b"LMTP on") >= max(processes, 1):
            return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"tidings inbound did not start: {log.read_text()}")


def lmtp_jobs(events: int) -> list[tuple[str, bytes]]:
    """(VERP return path, DSN) for each delivery."""
    from service.bounces.returnpath import return_path

    s = settings()
    jobs = []
    for n in range(1, events + 1):
        rcpt = return_path(s, "delivery", n)
        assert rcpt is not None
        jobs.append((rcpt, dsn(n, f"reader{n}@bench.example.org", rcpt)))
    return jobs


async def bench_lmtp(jobs: list[tuple[str, bytes]], connections: int, processes: int
                     ) -> tuple[float, float, float, int]:
    """(events/s, server CPU seconds, client CPU seconds, the reports refused); `processes` 0:
    the null server (the ceiling; nothing is recorded and nothing sent again)."""
    port = free_port()
    proc = start_inbound(port, Path(tempfile.gettempdir()) / f"bench-bounces-inbound-{os.getpid()}.log", processes)
    try:
        pids = process_tree(proc.pid)
        cpu_before, client_before = cpu_seconds(pids), time.process_time()
        seconds, bad = await lmtp_load(port, jobs, connections)
        cpu, client = cpu_seconds(pids) - cpu_before, time.process_time() - client_before
        again: list[str] = []
        if processes:
            _, again = await lmtp_load(port, jobs[::RESEND_SHARE], connections)  # duplicates: 250, counted once
    finally:
        proc.terminate()
        proc.wait(15)
    return len(jobs) / seconds, cpu, client, len(bad) + len(again)


# -- webhook ---------------------------------------------------------------------------------


def batches(events: int, size: int) -> list[bytes]:
    out = []
    for start in range(events + 1, 2 * events + 1, size):
        out.append(json.dumps({"events": [
            {"id": f"bench-{i}", "type": "hard", "recipient": f"reader{i}@bench.example.org", "status": "5.1.1",
             "diagnostic": "smtp; 550 5.1.1 no such user", "occurred_at": "2026-12-02T12:00:00Z"}
            for i in range(start, min(start + size, 2 * events + 1))]}).encode())
    return out


async def post_all(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[str]]:
    queue = list(reversed(bodies))
    bad: list[str] = []

    async def one(client: httpx.AsyncClient) -> None:
        while queue:
            body = queue.pop()
            mac = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            answer = await client.post("/webhooks/generic", content=body, headers={
                "X-Tidings-Signature": f"sha256={mac}", "Content-Type": "application/json"})
            if answer.status_code != 200:
                bad.append(f"{answer.status_code} {answer.text[:200]}")

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))
    return time.perf_counter() - started, bad


def bench_webhook(events: int, batch: int, procs: int, concurrency: int) -> tuple[float, float, int]:
    """(events/s, server CPU seconds, the requests refused)."""
    bodies = batches(events, batch)
    proc, url = launch_uvicorn(free_port(), env(), ["--workers", str(procs), "--http", "httptools"])
    try:
        pids = process_tree(proc.pid)
        cpu_before = cpu_seconds(pids)
        seconds, bad = asyncio.run(post_all(url, bodies, concurrency=concurrency))
        cpu = cpu_seconds(pids) - cpu_before
        _, again = asyncio.run(post_all(url, bodies[::RESEND_SHARE], concurrency=concurrency))
    finally:
        stop_server(proc)
    return events / seconds, cpu, len(bad) + len(again)


# -- baseline --------------------------------------------------------------------------------


async def baseline(events: int, batch: int) -> float:
    """Rows/s of INSERTing the same event rows directly (asyncpg, one transaction per batch)."""
    import datetime as dt

    import asyncpg

    conn = await asyncpg.connect(DB_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("CREATE TABLE bench_baseline (LIKE bounce_events INCLUDING ALL)")
        now = dt.datetime.now(dt.UTC)
        rows = [(f"baseline-{i}", "hard", "webhook", f"reader{i}@bench.example.org", f"reader{i}@bench.example.org",
                 now, now, "smtp; 550 5.1.1 no such user", "5.1.1", "suppressed") for i in range(events)]
        sql = ("INSERT INTO bench_baseline (event_key, kind, source, recipient, recipient_key, occurred_at, "
               "received_at, diagnostic, status, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
               "ON CONFLICT (event_key) DO NOTHING")
        started = time.perf_counter()
        for start in range(0, events, batch):
            async with conn.transaction():
                await conn.executemany(sql, rows[start:start + batch])
        seconds = time.perf_counter() - started
        await conn.execute("DROP TABLE bench_baseline")
    finally:
        await conn.close()
    return events / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events per route (default 100000)")
    parser.add_argument("--connections", type=int, default=20,
                        help="LMTP connections (default 20: Postfix's lmtp_destination_concurrency_limit)")
    parser.add_argument("--inbound-procs", type=int, default=1, help="tidings inbound --processes (default 1)")
    parser.add_argument("--batch", type=int, default=100, help="events per webhook request (default 100)")
    parser.add_argument("--server-procs", type=int, default=2, help="uvicorn processes (default 2)")
    parser.add_argument("--requests", type=int, default=16,
                        help="webhook requests in flight at once, as a provider posts them (default 16)")
    parser.add_argument("--null-lmtp", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.null_lmtp:
        serve_null_lmtp(args.null_lmtp)
        return 0
    print(f"bounces bench: {args.events} events per route, PostgreSQL {PG_DB}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    asyncio.run(prepare(args.events))
    try:
        jobs = lmtp_jobs(args.events)
        rate, cpu, client, _ = asyncio.run(bench_lmtp(jobs, args.connections, 0))
        print(f"ceiling (the LMTP client against a null server, {args.connections} connections): {rate:8.0f} events/s, "
              f"client CPU {1000 * client / args.events:.2f} ms/event", flush=True)
        rate, cpu, client, refused = asyncio.run(bench_lmtp(jobs, args.connections, args.inbound_procs))
        print(f"LMTP    (tidings inbound --processes {args.inbound_procs}, {args.connections} connections): "
              f"{rate:8.0f} events/s, server CPU {1000 * cpu / args.events:.2f} ms/event, "
              f"client CPU {1000 * client / args.events:.2f} ms/event, refused {refused}", flush=True)
        rate, cpu, refused = bench_webhook(args.events, args.batch, args.server_procs, args.requests)
        print(f"webhook (generic, batches of {args.batch}, {args.requests} requests at once, {args.server_procs} "
              f"uvicorn procs): {rate:8.0f} events/s, "
              f"server CPU {1000 * cpu / args.events:.2f} ms/event, refused {refused}", flush=True)
        print(f"baseline (INSERT of the same rows, {args.batch} per transaction): "
              f"{asyncio.run(baseline(args.events, args.batch)):8.0f} rows/s", flush=True)
        problems = asyncio.run(check(args.events))
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{PG_DB}"'))
    for problem in problems:
        print("FAIL:", problem)
    if not problems:
        print(f"exactly once: {args.events} events per route stored once (1 in {RESEND_SHARE} sent twice), "
              f"{2 * args.events} subscribers bounced")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
