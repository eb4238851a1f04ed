"""Admin pages under load: p50/p95 of the inquiry list (first page, a deep keyset page, a
full-text search, a filtered search), the subscriber list and the dashboard, with 100,000
inquiries and 100,000 subscribers in PostgreSQL, over a real uvicorn. `--clients` staff (default
6) work at once, each signed in through the login form with its own account and session, each
going through the pages in its own order. GET /healthz is fetched the same way in the same run
as the baseline. A million subscribers, the campaign page and its live figures: bench/million.py.

    .venv/bin/python bench/admin.py [--rows 100000] [--requests 200] [--clients 6] [--explain]

Creates and drops its own database (tidings_bench_admin) on 127.0.0.1:5432; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import service.models  # noqa: E402, F401 - every table in Base.metadata
from service.admin.auth import create_staff_user  # noqa: E402
from service.admin.filters import format_cursor  # noqa: E402
from service.db import create_engine, migrate, session_factory  # noqa: E402
from service.inquiries.queries import InquiryFilter, filtered_inquiries  # noqa: E402

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


async def drop_database() -> None:
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    await admin.dispose()


async def populate(rows: int) -> tuple[str, float]:
    """Fill the database; returns the cursor of a page ~90% deep and the seconds it took."""
    engine = create_engine(f"{PG}/{DB_NAME}")
    started = time.perf_counter()
    await migrate(engine)
    async with engine.begin() as conn:
        await conn.execute(text(INQUIRIES_SQL), {"n": rows})
        await conn.execute(text(SUBSCRIBERS_SQL), {"n": rows})
        await conn.execute(text("INSERT INTO subscriber_topics (subscriber_id, topic) SELECT id, "
                                "(ARRAY['depression','anxiety','PTSD','chronic pain'])[id % 4 + 1] "
                                "FROM subscribers WHERE id % 2 = 0"))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    async with session_factory(engine).begin() as session:
        for n in range(CLIENTS_MAX):
            await create_staff_user(session, email=f"bench{n}@clinic.test", role="admin", password=PASSWORD)
    async with engine.connect() as conn:
        deep = (await conn.execute(text("SELECT created_at, id FROM inquiries ORDER BY created_at DESC, id DESC "
                                        "OFFSET :o LIMIT 1"), {"o": int(rows * 0.9)})).one()
    await engine.dispose()
    return format_cursor(deep[0], deep[1]), time.perf_counter() - started


async def explain(cursor: str) -> None:
    from sqlalchemy.dialects import postgresql

    from service.admin.filters import parse_cursor

    engine = create_engine(f"{PG}/{DB_NAME}")
    after = parse_cursor(cursor)
    cases = {"first page": (InquiryFilter(), None), "deep page": (InquiryFilter(), after),
             "search": (InquiryFilter(q="ketamine depression"), None),
             "search+status": (InquiryFilter(q="maria", status="qualified"), None)}
    async with session_factory(engine)() as session:
        for name, (flt, cur) in cases.items():
            stmt = filtered_inquiries(session, flt)
            if cur:
                from sqlalchemy import tuple_

                from service.inquiries.models import Inquiry
                stmt = stmt.where(tuple_(Inquiry.created_at, Inquiry.id) < tuple_(*cur))
            from service.inquiries.models import Inquiry
            stmt = stmt.order_by(Inquiry.created_at.desc(), Inquiry.id.desc()).limit(51)
            sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            plan = (await session.execute(text("EXPLAIN ANALYZE " + sql))).scalars().all()
            print(f"\n-- {name}\n" + "\n".join(plan))
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


async def measure(base: str, cursor: str, requests: int, clients: int) -> dict[str, list[float]]:
    urls = {
        "GET /healthz (baseline)": "/healthz",
        "inquiries, first page": "/admin/inquiries",
        "inquiries, deep page (90%)": "/admin/inquiries?" + urlencode({"after": cursor}),
        "inquiries, search": "/admin/inquiries?q=ketamine+depression",
        "inquiries, search + status": "/admin/inquiries?q=maria&status=qualified",
        "inquiries, search (every row)": "/admin/inquiries?q=reference",
        "inquiries, search by email": "/admin/inquiries?q=person77%40example27.org",
        "inquiries, topic + date range": "/admin/inquiries?topic=PTSD&from=2026-01-01&to=2027-12-31",
        "subscribers, first page": "/admin/subscribers?status=confirmed",
        "subscribers, search": "/admin/subscribers?q=reader4242",
        "dashboard": "/admin/",
    }
    timings: dict[str, list[float]] = {name: [] for name in urls}

    async def staff(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            page = await c.get("/admin/login")
            token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            r = await c.post("/admin/login", data={"email": f"bench{n}@clinic.test", "password": PASSWORD,
                                                   "form_token": token})
            assert r.status_code == 303, r.text
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="per page, shared by the clients")
    parser.add_argument("--clients", type=int, default=6, help=f"staff at once, 1-{CLIENTS_MAX}")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the inquiry queries")
    args = parser.parse_args()
    await recreate_database()
    server = None
    try:
        cursor, seconds = await populate(args.rows)
        print(f"{args.rows:,} inquiries and {args.rows:,} subscribers generated in {seconds:.1f}s")
        if args.explain:
            await explain(cursor)
        port = free_port()
        server = start_server(port)
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base)
        timings = await measure(base, cursor, args.requests, max(1, min(CLIENTS_MAX, args.clients)))
        print(f"\n{'request':32} {'p50 ms':>8} {'p95 ms':>8}   (n≈{args.requests} each, {args.clients} staff at "
              f"once, one uvicorn worker; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})")
        worst = 0.0
        for name, values in timings.items():
            worst = max(worst, p95(values)) if "healthz" not in name else worst
            print(f"{name:32} {statistics.median(values):8.1f} {p95(values):8.1f}")
        print(f"\nworst admin p95: {worst:.1f} ms (target < {TARGET_MS:.0f} ms): "
              f"{'OK' if worst < TARGET_MS else 'OVER TARGET'}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        await drop_database()


if __name__ == "__main__":
    asyncio.run(main())
