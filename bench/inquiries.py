"""Benchmark: sustained POST /api/inquiries against a real uvicorn on loopback, on PostgreSQL and
on SQLite, beside a ceiling that does the same database work without the framework.

    .venv/bin/python bench/inquiries.py [--seconds 20] [--server-procs 2] [--client-procs 1] [--only postgresql]

Each backend: a fresh database (PostgreSQL `tidings_bench_inquiries`, or `BENCH_PG_DB`, dropped afterwards; SQLite
in a temporary directory), migrated; uvicorn (uvloop + httptools, access log off) serving
`service.app:create_app` (no in-process outbox worker: queued mail stays queued) with
FORM_MIN_SECONDS=0 and TRUSTED_PROXIES=127.0.0.1; on PostgreSQL `--server-procs` uvicorn worker
processes share the listening socket. Load generator processes, each an asyncio loop with a
minimal keep-alive HTTP/1.1 client (httpx costs ~1 ms of CPU per request, more than the server
spends on /healthz), play visitors for the whole period: each comes from an address of its own
(X-Forwarded-For, as the reverse proxy would pass it on; so the per-IP limit FORM_RATE_LIMIT
keeps its default and every visitor writes its own counter row), fetches its own form token
(a token stores one inquiry) and posts a distinct inquiry; the POST is what is timed, and the
server CPU is per visitor (token fetch included; GET /api/form-token alone is measured as a
phase too). Afterwards every receipt answered (201) must name a stored inquiry, and none may be held.

The ceiling (PostgreSQL): as many connections as the load generator's, from as many processes as
uvicorn's, each running one INSERT of an inquiry and its two outbox rows (the rows the app
queues, `inquiry_emails`) with asyncpg for the same period: what the database work alone allows,
so the ratio shows what the framework and our checks cost. GET /healthz (no database) is
printed too.

The load generator runs on the same 2 cores as the server: the figures are a lower bound; the
server's CPU per request (printed) is the figure that does not depend on the machine's load.
`uptime`'s load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
PG_DB = os.environ.get("BENCH_PG_DB", "tidings_bench_inquiries")


@dataclass
class Result:
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # receipts of the accepted inquiries
    seconds: float = 0.0
    client_cpu: float = 0.0  # CPU seconds the load generator itself used


# -- load generator (runs in child processes) ------------------------------------------------


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: writes a request, collects one response (the server
    answers with Content-Length). A load generator this lean spends ~0.05 ms of CPU per request
    where httpx spends ~1 ms, which on a 2-core machine would otherwise eat the server's CPU."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buf[:end]).lower()
        length = 0
        for hline in head.split(b"\r\n")[1:]:
            if hline.startswith(b"content-length:"):
                length = int(hline[15:])
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        status = int(head[9:12])
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


def _http(method: str, host: str, path: str, body: bytes = b"", ip: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tidings-bench\r\n"
    if ip:  # the visitor's own address, as a reverse proxy in TRUSTED_PROXIES passes it on
        head += f"X-Forwarded-For: {ip}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def visitor_ip(slot: int, visitor: int) -> str:
    """A distinct address per visitor: 10.<slot>.x.y, a slot per load process and phase."""
    return f"10.{slot % 256}.{(visitor >> 8) % 256}.{visitor % 256}"


async def _load(url: str, path: str, seconds: float, concurrency: int, tag: str, slot: int) -> Result:
    import json

    result = Result()
    host_port = url.split("//", 1)[1]
    host, port = host_port.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    get = _http("GET", host_port, path)
    deadline = time.perf_counter() + seconds
    counter = 0

    async def one_worker(n: int) -> None:
        nonlocal counter
        conn: _Conn | None = None
        while time.perf_counter() < deadline:
            counter += 1
            visitor = counter  # taken now: other workers count on while this one awaits its token
            token = ""
            ip = visitor_ip(slot, visitor)
            if path == "/api/inquiries":  # a new visitor, from an address of their own: a form token of their own
                try:
                    if conn is None:
                        _t, conn = await loop.create_connection(_Conn, host, int(port))
                    status, body = await conn.request(_http("GET", host_port, "/api/form-token", ip=ip))
                    token = json.loads(body)["form_token"]
                except (OSError, ConnectionError, ValueError, KeyError):
                    result.errors += 1
                    conn = None
                    continue
                data = _http("POST", host_port, path, json.dumps({
                    "name": f"Bench {tag} {n}", "email": f"bench{tag}.{visitor}@example.org",
                    "topic": "anxiety", "contact_method": "email",
                    "message": f"Benchmark inquiry {tag} {visitor}: I would like to learn more.",
                    "consent": True, "form_token": token, "website": "",
                    "source_page": "https://blog.clinic.test/articles/bench", "utm_source": "bench",
                }).encode(), ip=ip)
            else:
                data = get
            started = time.perf_counter()
            try:
                if conn is None:
                    _t, conn = await loop.create_connection(_Conn, host, int(port))
                status, body = await conn.request(data)
            except (OSError, ConnectionError):
                result.errors += 1
                conn = None
                continue
            elapsed = (time.perf_counter() - started) * 1000
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status in (200, 201):
                result.ok += 1
                result.latencies_ms.append(elapsed)
                if status == 201:
                    result.ids.append(json.loads(body)["id"])
            else:
                result.errors += 1
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_worker(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.client_cpu = time.process_time() - cpu
    return result


def _client_process(args: tuple[str, str, float, int, str, int]) -> Result:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_load(*args))


_SLOTS = iter(range(1_000_000))  # a fresh address slot for every load process of every phase


def run_load(url: str, path: str, seconds: float, procs: int, concurrency: int) -> Result:
    ctx = mp.get_context("spawn")
    with ctx.Pool(procs) as pool:
        parts = pool.map(_client_process, [(url, path, seconds, concurrency, f"{os.getpid()}-{i}-{time.time_ns()}",
                                            next(_SLOTS)) for i in range(procs)])
    total = Result(seconds=max(p.seconds for p in parts))
    for p in parts:
        total.ok += p.ok
        total.errors += p.errors
        total.latencies_ms += p.latencies_ms
        total.ids += p.ids
        total.client_cpu += p.client_cpu
        for k, v in p.statuses.items():
            total.statuses[k] = total.statuses.get(k, 0) + v
    return total


# -- the database-work ceiling (runs in child processes) ------------------------------------------

_CEILING_SQL = """
WITH i AS (
    INSERT INTO inquiries (created_at, name, email, phone, topic, contact_method, message, consent,
                           newsletter_optin, status, status_changed_at, source_page, referrer, utm_source,
                           utm_medium, utm_campaign, utm_term, utm_content, ip, user_agent, dedupe_key, receipt,
                           form_nonce)
    VALUES (now(), $1, $2, '', 'anxiety', 'email', $3, true, false, 'new', now(),
            'https://blog.clinic.test/articles/bench', '', 'bench', '', '', '', '', $4, 'tidings-bench', $5, $6, $7)
    RETURNING id
)
INSERT INTO outbox_messages (created_at, kind, recipient, subject, message_id, template, context, headers, status,
                             attempts, next_attempt_at, inquiry_id)
SELECT now(), k.kind, k.recipient, k.subject, k.message_id, k.template, k.context, k.headers, 'queued', 0, now(), i.id
FROM i, (VALUES ($8, $9, $10, $11, $12, $13, $14), ($15, $16, $17, $18, $19, $20, $21))
     AS k (kind, recipient, subject, message_id, template, context, headers)
"""


def _outbox_rows() -> list[dict[str, object]]:
    """The two outbox rows the app queues for an inquiry (`inquiry_emails`), so that the ceiling
    writes rows of the same size as the app does."""
    from service.db import utcnow
    from service.inquiries.flows import inquiry_emails
    from service.inquiries.models import Inquiry
    from service.settings import Settings

    settings = Settings(database_url="postgresql+asyncpg://x/y", secret_key=secrets.token_urlsafe(48),
                        base_url="http://127.0.0.1:8000", mail_from="Clinic <hello@clinic.test>",
                        staff_inbox="staff@clinic.test")
    inquiry = Inquiry(id=1, created_at=utcnow(), name="Bench visitor", email="bench@example.org", phone="",
                      topic="anxiety", contact_method="email", newsletter_optin=False,
                      source_page="https://blog.clinic.test/articles/bench", language=None,
                      message="Benchmark inquiry: I would like to learn more.")
    return inquiry_emails(settings, inquiry)


async def _ceiling(dsn: str, seconds: float, concurrency: int, tag: str) -> Result:
    import asyncpg

    rows = _outbox_rows()
    result = Result()
    deadline = time.perf_counter() + seconds
    counter = 0

    async def one_connection() -> None:
        nonlocal counter
        conn = await asyncpg.connect(dsn)
        try:
            while time.perf_counter() < deadline:
                counter += 1
                n = f"{tag}.{counter}"
                outbox = [value for row in rows for value in (
                    row["kind"], row["recipient"], row["subject"], f"<{n}.{secrets.token_hex(8)}@clinic.test>",
                    row["template"], row["context"], row["headers"])]
                started = time.perf_counter()
                await conn.execute(_CEILING_SQL, f"Bench {n}", f"bench{n}@example.org",
                                   f"Benchmark inquiry {n}: I would like to learn more.", "10.0.0.1",
                                   secrets.token_hex(32), secrets.token_hex(16), secrets.token_hex(8), *outbox)
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.ok += 1
        finally:
            await conn.close()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.client_cpu = time.process_time() - cpu
    return result


def _ceiling_process(args: tuple[str, float, int, str]) -> Result:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_ceiling(*args))


def run_ceiling(url: str, seconds: float, procs: int, connections: int) -> Result:
    """The database work of one inquiry without the framework: one INSERT of the inquiry and its
    two outbox rows (asyncpg, one statement, autocommit), from `procs` processes holding
    `connections` connections in all, for `seconds`."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    ctx = mp.get_context("spawn")
    per = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
    with ctx.Pool(procs) as pool:
        parts = pool.map(_ceiling_process, [(dsn, seconds, n, f"c{i}-{time.time_ns()}")
                                            for i, n in enumerate(per) if n])
    total = Result(seconds=max(p.seconds for p in parts))
    for p in parts:
        total.ok += p.ok
        total.latencies_ms += p.latencies_ms
        total.client_cpu += p.client_cpu
    return total


# -- server and databases --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(database_url: str, procs: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "BASE_URL": f"http://127.0.0.1:{port}",
        "ALLOWED_ORIGINS": "https://blog.clinic.test",
        "FORM_MIN_SECONDS": "0",  # the visitor posts at once after fetching the token
        "TRUSTED_PROXIES": "127.0.0.1/32",  # the load generator stands in for the reverse proxy
        "LOG_LEVEL": "warning",
        "MAIL_FROM": "Clinic <hello@clinic.test>",
        "STAFF_INBOX": "staff@clinic.test",
    }
    return launch_uvicorn(port, env, ["--workers", str(procs), "--http", "httptools"])


def launch_uvicorn(port: int, env: dict[str, str], args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    """uvicorn serving the app on 127.0.0.1:`port` with `args`, once `/healthz` answers."""
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app", "--host", "127.0.0.1",
        "--port", str(port), "--loop", "uvloop", "--no-access-log", "--log-level", "warning", "--lifespan", "on",
        *args,
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120  # a loaded machine imports slowly
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("uvicorn did not start")


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each of these processes so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    times = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    return times


def cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_by_pid(pids).values())


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots, by processes alive at the second (new ones count whole)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def process_tree(pid: int) -> list[int]:
    """`pid` and its children (uvicorn's worker processes)."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            pids.append(int(stat.parent.name))
    return pids


async def _pg_backends() -> list[int]:
    from sqlalchemy import text

    from service.db import create_engine

    engine = create_engine(PG_ADMIN)
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :n"), {"n": PG_DB})
        pids = [int(r[0]) for r in rows]
    await engine.dispose()
    return pids


async def _pg_sessions() -> int:
    """Connections ever opened to the bench database (PostgreSQL 14+), to see pool churn."""
    from sqlalchemy import text

    from service.db import create_engine

    engine = create_engine(PG_ADMIN)
    async with engine.connect() as conn:
        n = await conn.scalar(text("SELECT sessions FROM pg_stat_database WHERE datname = :n"), {"n": PG_DB})
    await engine.dispose()
    return int(n or 0)


def measured(base: str, path: str, args: argparse.Namespace, server: subprocess.Popen[bytes],
             postgres: bool) -> tuple[Result, float, float]:
    """A load phase, with the CPU the server processes (and PostgreSQL backends) spent per request."""
    app_pids = process_tree(server.pid)
    db_pids = asyncio.run(_pg_backends()) if postgres else []
    sessions0 = asyncio.run(_pg_sessions()) if postgres else 0
    app0, db0 = cpu_seconds(app_pids), cpu_by_pid(db_pids)
    result = run_load(base, path, args.seconds, args.client_procs, args.concurrency)
    db_pids = asyncio.run(_pg_backends()) if postgres else []
    app_ms = (cpu_seconds(app_pids) - app0) * 1000 / max(1, result.ok)
    db_ms = cpu_spent(db0, cpu_by_pid(db_pids)) * 1000 / max(1, result.ok) if postgres else 0.0
    if postgres:
        opened = asyncio.run(_pg_sessions()) - sessions0
        print(f"  ({path}: {len(db_pids)} PostgreSQL backends at the end; {opened} connections opened "
              f"during the phase; backends that exited in it are not counted in their CPU)")
    return result, app_ms, db_ms


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


async def _pg(sql: str) -> None:
    from sqlalchemy import text

    from service.db import create_engine

    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
        ), {"n": PG_DB})
        await conn.execute(text(sql))
    await engine.dispose()


async def _migrate(url: str) -> None:
    from service.db import create_engine, migrate

    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()


async def _check(url: str, ids: list[str]) -> tuple[int, int, int, int]:
    """(accepted receipts naming no stored inquiry, inquiries in the table, held ones, outbox rows)"""
    from sqlalchemy import func, select

    import service.models  # noqa: F401 - every table in Base.metadata
    from service.db import create_engine, session_factory
    from service.inquiries.models import Inquiry
    from service.mail.models import OutboxMessage

    engine = create_engine(url)
    async with session_factory(engine)() as session:
        stored = set((await session.scalars(select(Inquiry.receipt))).all())
        held = await session.scalar(select(func.count()).select_from(Inquiry).where(Inquiry.status == "held"))
        outbox = await session.scalar(select(func.count()).select_from(OutboxMessage))
    await engine.dispose()
    return len(set(ids) - stored), len(stored), int(held or 0), int(outbox or 0)


# -- the run ------------------------------------------------------------------------------------


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def line(label: str, r: Result) -> str:
    rate = r.ok / r.seconds if r.seconds else 0.0
    return (f"  {label:<24} {rate:8.0f} req/s   p50 {pct(r.latencies_ms, 0.50):6.1f} ms   "
            f"p99 {pct(r.latencies_ms, 0.99):6.1f} ms   ok {r.ok}  errors {r.errors}  "
            f"statuses {dict(sorted(r.statuses.items()))}")


def postgres_backend(name: str) -> bool:
    return name == "PostgreSQL"


def bench_backend(name: str, url: str, args: argparse.Namespace) -> bool:
    asyncio.run(_migrate(url))
    procs = args.server_procs if name == "PostgreSQL" else args.sqlite_server_procs
    proc, base = start_server(url, procs)
    try:
        postgres = name == "PostgreSQL"
        run_load(base, "/healthz", 2, args.client_procs, args.concurrency)  # warm-up
        health, health_app, _ = measured(base, "/healthz", args, proc, postgres)
        tokens, token_app, _ = measured(base, "/api/form-token", args, proc, postgres)
        run_load(base, "/api/inquiries", 2, args.client_procs, args.concurrency)  # warm-up
        posts, post_app, post_db = measured(base, "/api/inquiries", args, proc, postgres)
    finally:
        stop_server(proc)
    missing, stored, held, outbox = asyncio.run(_check(url, posts.ids))
    ceiling = run_ceiling(url, args.seconds, procs, args.client_procs * args.concurrency) if postgres else None
    print(f"{name}: server {procs} uvicorn process(es); load {args.client_procs} process(es) x "
          f"{args.concurrency} connections; {args.seconds:.0f} s per phase; every visitor from its own address "
          f"(X-Forwarded-For through TRUSTED_PROXIES), FORM_RATE_LIMIT at its default")
    if ceiling is not None:
        print(line("database work (ceiling)", ceiling))
        print(f"  {'':<24} one INSERT of an inquiry and its two outbox rows with asyncpg, {procs} process(es), "
              f"{args.client_procs * args.concurrency} connections, no framework")
    print(line("GET /healthz (no database)", health))
    print(f"  {'':<24} server CPU {health_app:.2f} ms/request; load generator CPU "
          f"{health.client_cpu * 1000 / max(1, health.ok):.2f} ms/request")
    print(line("GET /api/form-token", tokens))
    print(f"  {'':<24} server CPU {token_app:.2f} ms/request")
    print(line("POST /api/inquiries", posts))
    if ceiling is not None and ceiling.ok:
        rate = posts.ok / posts.seconds if posts.seconds else 0.0
        print(f"  {'':<24} = {rate / (ceiling.ok / ceiling.seconds):.2f} of the database-work ceiling (target >= 0.5)")
    db_part = f" + PostgreSQL backends {post_db:.2f} ms" if postgres_backend(name) else ""
    cores = os.cpu_count() or 1
    print(f"  {'':<24} server CPU {post_app:.2f} ms/visitor (its token fetch included, about "
          f"{token_app:.2f} ms){db_part}: at most "
          f"{cores * 1000 / (post_app + post_db):.0f} inquiries/s if the {cores} cores did nothing else; "
          f"load generator CPU {posts.client_cpu * 1000 / max(1, posts.ok):.2f} ms/request")
    print(f"  check: {len(posts.ids)} accepted in the measured phase; {stored} inquiries ({held} held) and "
          f"{outbox} outbox messages in the database (incl. warm-up); accepted but missing: {missing}")
    return missing == 0 and held == 0 and posts.errors == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--server-procs", type=int, default=2)
    parser.add_argument("--sqlite-server-procs", type=int, default=1)
    parser.add_argument("--client-procs", type=int, default=1)
    # 12 keeps each of 2 server processes within its pool of 10 database connections: beyond that,
    # SQLAlchemy opens and closes overflow connections all the time and the figures collapse.
    parser.add_argument("--concurrency", type=int, default=12, help="connections per load process")
    parser.add_argument("--only", choices=("postgresql", "sqlite"))
    args = parser.parse_args()
    print(f"Tidings inquiry benchmark; {os.cpu_count()} CPUs (shared with other work on this machine)")
    print(f"load at the start: {uptime()}")
    ok = True
    if args.only in (None, "postgresql"):
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{PG_DB}"'))
        asyncio.run(_pg(f'CREATE DATABASE "{PG_DB}"'))
        try:
            ok &= bench_backend("PostgreSQL", PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_DB}", args)
        finally:
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{PG_DB}"'))
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            ok &= bench_backend("SQLite", f"sqlite+aiosqlite:///{tmp}/bench.db", args)
    print(f"load at the end: {uptime()}")
    print("result:", "every accepted inquiry is stored" if ok else "FAILED (errors or missing inquiries)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
