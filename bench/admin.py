"""Admin pages under load: p50/p95 of the subscriber list (first page, by status, by topic, a
keyset page 90% deep, a search, a search by e-mail domain), the inquiry list (first page, a deep
keyset page, full-text searches, filters) and the dashboard, with `--rows` inquiries and as many
subscribers in PostgreSQL, over a real uvicorn. `--clients` staff (default 6) work at once, each
signed in through the login form with its own account and session, each going through the pages
in its own order. GET /healthz is fetched the same way in the same run as the baseline. The
campaign page and its live figures, queueing, import: bench/million.py.

`--explain` runs every page once in this process against the same database and prints each SQL
statement it ran with its time, and EXPLAIN (ANALYZE, BUFFERS) of those over `--explain-ms`.

    .venv/bin/python bench/admin.py [--rows 100000] [--requests 200] [--clients 6] [--explain]
                                    [--rate 10] [--seconds 60] [--keep] [--reuse]

Two runs: saturated (each staff member clicks again the moment a page arrives: the throughput
limit, where p95 is mostly waiting in line) and paced (`--rate` page views a second in all from
the same staff, open loop: what a person at the desk feels at that load).

Creates and drops its own database (tidings_bench_admin) on 127.0.0.1:5432; loopback only.
`--keep` keeps it; `--reuse` reuses a kept one (migrated to the newest revision, not refilled).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from staff import paced_views  # noqa: E402

import service.models  # noqa: E402, F401 - every table in Base.metadata
from service.admin.auth import create_staff_user  # noqa: E402
from service.admin.filters import format_cursor  # noqa: E402
from service.db import create_engine, migrate, session_factory  # noqa: E402

PG = os.environ.get("BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
DB_NAME = "tidings_bench_admin"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105 - a throwaway database
PASSWORD = "bench password 123"  # noqa: S105
TARGET_MS = 100.0
CLIENTS_MAX = 8

INQUIRIES_SQL = """
INSERT INTO inquiries (created_at, name, email, phone, topic, contact_method, message, consent, newsletter_optin,
    status, status_changed_at, source_page, referrer, utm_source, utm_medium, utm_campaign, utm_term, utm_content,
    ip, user_agent, dedupe_key)
SELECT now() - (i * interval '5 minutes'),
       (ARRAY['Maria','John','Aisha','Wei','Olga','Pedro','Fatima','Liam'])[i % 8 + 1] || ' ' ||
       (ARRAY['Lopez','Smith','Khan','Chen','Ivanova','Silva','Haddad','Murphy'])[i / 8 % 8 + 1] || ' ' || i,
       'person' || i || '@example' || (i % 50) || '.org', '',
       (ARRAY['depression','anxiety','PTSD','chronic pain','OCD','other'])[i % 6 + 1], 'email',
       (ARRAY['I have had treatment-resistant depression for years and read about ketamine.',
              'My anxiety makes it hard to work. Is ketamine-assisted therapy an option for me?',
              'Looking for help with PTSD after an accident; what does a first session look like?',
              'Chronic pain since surgery. Do you accept insurance and how long are sessions?',
              'Asking for my brother, who has OCD. Could we call next week?'])[i % 5 + 1]
         || ' Reference ' || md5(i::text),
       true, i % 3 = 0, (ARRAY['new','contacted','qualified','closed','spam'])[i % 5 + 1],
       now() - (i * interval '5 minutes'), 'https://blog.clinic.test/posts/' || (i % 40), '', 'newsletter', 'email',
       'digest-' || (i % 12), '', '', '198.51.100.' || (i % 250), 'Mozilla/5.0', md5('d' || i::text)
FROM generate_series(1, :n) AS g(i)
"""

SUBSCRIBERS_SQL = """
INSERT INTO subscribers (email, email_key, name, status, created_at, status_changed_at, signup_at, signup_ip,
    signup_source, confirmed_at, unsubscribed_at)
SELECT 'reader' || i || '@example' || (i % 80) || '.org', 'reader' || i || '@example' || (i % 80) || '.org',
       'Reader ' || i, (ARRAY['confirmed','confirmed','confirmed','pending','unsubscribed','bounced'])[i % 6 + 1],
       now() - (i * interval '3 minutes'), now() - (i * interval '3 minutes'), now() - (i * interval '3 minutes'),
       '203.0.113.' || (i % 250), 'signup form',
       CASE WHEN i % 6 IN (0, 1, 2, 4) THEN now() - (i * interval '3 minutes') + interval '10 minutes' END,
       CASE WHEN i % 6 = 4 THEN now() - (i * interval '2 minutes') END
FROM generate_series(1, :n) AS g(i)
"""


async def recreate_database() -> None:
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": DB_NAME})
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}"'))
        await conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    await admin.dispose()


async def database_exists() -> bool:
    admin = create_engine(f"{PG}/postgres")
    async with admin.connect() as conn:
        found = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DB_NAME})
    await admin.dispose()
    return found is not None


async def drop_database() -> None:
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    await admin.dispose()


async def populate(rows: int) -> float:
    """Fill the database; returns the seconds it took."""
    engine = create_engine(f"{PG}/{DB_NAME}")
    started = time.perf_counter()
    await migrate(engine)
    async with engine.begin() as conn:
        await conn.execute(text(INQUIRIES_SQL), {"n": rows})
        await conn.execute(text(SUBSCRIBERS_SQL), {"n": rows})
        await conn.execute(text("INSERT INTO subscriber_topics (subscriber_id, topic) SELECT id, "
                                "(ARRAY['depression','anxiety','PTSD','chronic pain'])[id % 4 + 1] "
                                "FROM subscribers WHERE id % 2 = 0"))
    async with session_factory(engine).begin() as session:
        for n in range(CLIENTS_MAX):
            await create_staff_user(session, email=f"bench{n}@clinic.test", role="admin", password=PASSWORD)
    await engine.dispose()
    return time.perf_counter() - started


async def settle() -> None:
    """Migrate (a reused database) and VACUUM ANALYZE, so every run starts from the same state."""
    engine = create_engine(f"{PG}/{DB_NAME}")
    await migrate(engine)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    await engine.dispose()


async def page_urls() -> dict[str, str]:
    """The pages staff open, by name; the deep pages start 90% down each list."""
    engine = create_engine(f"{PG}/{DB_NAME}")
    async with engine.connect() as conn:
        deep = {}
        for table in ("subscribers", "inquiries"):
            n = int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)  # noqa: S608 - two names
            row = (await conn.execute(text(f"SELECT created_at, id FROM {table} "  # noqa: S608
                                           "ORDER BY created_at DESC, id DESC OFFSET :o LIMIT 1"),
                                      {"o": int(n * 0.9)})).one()
            deep[table] = (n, format_cursor(row[0], row[1]))
    await engine.dispose()
    n_subscribers = deep["subscribers"][0]
    return {
        "GET /healthz (baseline)": "/healthz",
        "subscribers, first page": "/admin/subscribers",
        "subscribers, confirmed": "/admin/subscribers?status=confirmed",
        "subscribers, topic": "/admin/subscribers?status=confirmed&topic=PTSD",
        "subscribers, deep page (90%)": "/admin/subscribers?" + urlencode({"after": deep["subscribers"][1]}),
        "subscribers, search": f"/admin/subscribers?q=reader{n_subscribers // 2 + 7}",
        "subscribers, search by domain": "/admin/subscribers?q=@example42.org",
        "inquiries, first page": "/admin/inquiries",
        "inquiries, status + topic": "/admin/inquiries?status=qualified&topic=PTSD",
        "inquiries, deep page (90%)": "/admin/inquiries?" + urlencode({"after": deep["inquiries"][1]}),
        "inquiries, search": "/admin/inquiries?q=ketamine+depression",
        "inquiries, search + status": "/admin/inquiries?q=maria&status=qualified",
        "inquiries, search (every row)": "/admin/inquiries?q=reference",
        "inquiries, search by email": "/admin/inquiries?q=person77%40example27.org",
        "inquiries, search by domain": "/admin/inquiries?q=example27.org",
        "inquiries, topic + date range": "/admin/inquiries?topic=PTSD&from=2026-01-01&to=2027-12-31",
        "dashboard": "/admin/",
    }


def bench_settings() -> Any:
    from service.settings import Settings

    return Settings.from_env({"DATABASE_URL": f"{PG}/{DB_NAME}", "SECRET_KEY": SECRET,
                              "BASE_URL": "http://127.0.0.1", "LOG_LEVEL": "warning"}, env_file=None)


async def sign_in(client: httpx.AsyncClient, n: int) -> None:
    page = await client.get("/admin/login")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = await client.post("/admin/login", data={"email": f"bench{n}@clinic.test", "password": PASSWORD,
                                                "form_token": token})
    assert r.status_code == 303, r.text


async def explain(urls: dict[str, str], threshold_ms: float) -> None:
    """Every page once, in this process: each statement it ran with its time, and the plan
    (EXPLAIN (ANALYZE, BUFFERS), with the same parameters) of those slower than `threshold_ms`."""
    from sqlalchemy import event

    from service.app import create_app

    engine = create_engine(f"{PG}/{DB_NAME}")
    ran: list[tuple[str, Any, float]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        ran.append((statement, parameters, (time.perf_counter() - conn.info.pop("bench_started")) * 1000))

    app = create_app(bench_settings(), sessions=session_factory(engine))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        await sign_in(client, 0)
        for name, url in urls.items():
            await client.get(url)  # warm: caches, prepared statements
            ran.clear()
            started = time.perf_counter()
            r = await client.get(url)
            took = (time.perf_counter() - started) * 1000
            assert r.status_code == 200, (url, r.status_code)
            print(f"\n== {name}: {url}  ({took:.1f} ms in all, {len(ran)} statements)")
            slow = []
            for statement, parameters, ms in ran:
                print(f"  {ms:7.1f} ms  {' '.join(statement.split())[:150]}")
                if ms >= threshold_ms and statement.lstrip().upper().startswith("SELECT"):
                    slow.append((statement, parameters))
            for statement, parameters in slow:
                async with engine.connect() as conn:
                    raw = (await conn.get_raw_connection()).driver_connection
                    plan = await raw.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *(parameters or ()))  # type: ignore[union-attr]
                print("\n  " + " ".join(statement.split()) + f"\n  -- parameters {parameters!r}")
                print("\n".join("    " + row[0] for row in plan))
    await engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": f"{PG}/{DB_NAME}", "SECRET_KEY": SECRET, "BASE_URL": "http://127.0.0.1",
           "LOG_LEVEL": "warning"}
    env.pop("SMTP_URL", None)
    return subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--no-worker", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def wait_ready(base: str) -> None:
    deadline = time.monotonic() + 30.0
    async with httpx.AsyncClient(base_url=base) as c:
        while time.monotonic() < deadline:
            try:
                if (await c.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the server did not start")


async def measure(base: str, urls: dict[str, str], requests: int, clients: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in urls}

    async def staff(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            await sign_in(c, n)
            order = list(urls.items())
            random.Random(n).shuffle(order)
            for i in range(requests // clients + 2):
                for name, url in order:
                    started = time.perf_counter()
                    r = await c.get(url)
                    elapsed = (time.perf_counter() - started) * 1000
                    assert r.status_code == 200, (url, r.status_code)
                    if i >= 2:  # warm-up
                        timings[name].append(elapsed)

    await asyncio.gather(*(staff(n) for n in range(clients)))
    return timings


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="per page, shared by the clients")
    parser.add_argument("--clients", type=int, default=6, help=f"staff at once, 1-{CLIENTS_MAX}")
    parser.add_argument("--explain", action="store_true", help="print each page's statements and slow plans")
    parser.add_argument("--explain-ms", type=float, default=5.0, help="plan the statements slower than this")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="page views a second in all for the paced run (open loop); 0: no paced run")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the paced run")
    parser.add_argument("--keep", action="store_true", help=f"keep the database {DB_NAME}")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database instead of filling a new one")
    args = parser.parse_args()
    reuse = args.reuse and await database_exists()
    if not reuse:
        await recreate_database()
    server = None
    try:
        if reuse:
            print(f"reusing {DB_NAME} (--reuse)")
        else:
            seconds = await populate(args.rows)
            print(f"{args.rows:,} inquiries and {args.rows:,} subscribers generated in {seconds:.1f}s")
        await settle()
        urls = await page_urls()
        if args.explain:
            await explain(urls, args.explain_ms)
        port = free_port()
        server = start_server(port)
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base)
        cpu = cpu_seconds(server.pid)
        clients = max(1, min(CLIENTS_MAX, args.clients))
        timings = await measure(base, urls, args.requests, clients)
        cpu = cpu_seconds(server.pid) - cpu
        served = sum(len(v) for v in timings.values()) + len(urls) * 2 * clients  # with the warm-up
        paced = None
        if args.rate > 0:
            staff = [httpx.AsyncClient(base_url=base, timeout=60) for _ in range(clients)]
            try:
                for n, c in enumerate(staff):
                    await sign_in(c, n)
                paced = await paced_views(staff, urls, args.rate, args.seconds)
            finally:
                for c in staff:
                    await c.aclose()
        print(f"\nsaturated: {clients} staff at once, each clicking again the moment a page arrives (closed loop)")
        if paced is not None:
            print(f"paced: {args.rate:g} page views a second from the same {clients} staff for {args.seconds:g} s "
                  f"(open loop, Poisson arrivals; the issue's staff load is 10 a second from 4)")
        print(f"one uvicorn worker; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
        print(f"{'request':32} {'saturated':>19} {'paced':>19}")
        print(f"{'':32} {'p50 ms':>9} {'p95 ms':>9} {'p50 ms':>9} {'p95 ms':>9}")
        worst = {"saturated": 0.0, "paced": 0.0}
        for name, values in timings.items():
            row = f"{name:32} {statistics.median(values):9.1f} {p95(values):9.1f}"
            if "healthz" not in name:
                worst["saturated"] = max(worst["saturated"], p95(values))
            if paced is not None and len(paced[name]) >= 2:
                row += f" {statistics.median(paced[name]):9.1f} {p95(paced[name]):9.1f}  (n={len(paced[name])})"
                if "healthz" not in name:
                    worst["paced"] = max(worst["paced"], p95(paced[name]))
            print(row)
        print(f"\nserver CPU: {cpu * 1000 / served:.1f} ms per request on average ({served:,} requests, saturated run)")
        for mode, ms in worst.items():
            if mode == "saturated" or paced is not None:
                print(f"worst admin p95, {mode}: {ms:.1f} ms (target < {TARGET_MS:.0f} ms): "
                      f"{'OK' if ms < TARGET_MS else 'OVER TARGET'}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if not args.keep:
            with contextlib.suppress(Exception):
                await drop_database()


if __name__ == "__main__":
    asyncio.run(main())
