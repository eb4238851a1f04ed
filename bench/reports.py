"""Insight's report pages with a year of data: 52 weekly campaigns whose counters and daily
reader counts add up to about 10 million clicks (generated directly, not clicked), 100,000
inquiries and 100,000 subscribers, in PostgreSQL; p50/p95 of every report page and its CSV over
a real uvicorn with a signed-in session, `/healthz` as the baseline.

    .venv/bin/python bench/reports.py [--requests 50]

Creates and drops its own database (tidings_bench_reports) on 127.0.0.1:5432. Target: p95 under
200 ms for every report page. Exit status 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.admin as admin_bench  # noqa: E402 - the same inquiries, subscribers, server and sign-in
from service.admin.auth import create_staff_user  # noqa: E402
from service.db import create_engine, migrate, session_factory  # noqa: E402

DB_NAME = "tidings_bench_reports"
PG = admin_bench.PG
TARGET_MS = 200.0
CAMPAIGNS = 52

ARTICLES_SQL = """
INSERT INTO articles (guid, link, title, summary, content_html, image_alt, published_at, tags, source, created_at,
                      updated_at)
SELECT 'post-' || i, 'https://blog.clinic.test/posts/' || i, 'Article number ' || i, 'Summary', '<p>Body</p>', '',
       now() - (i * interval '6 days'), '[]', 'bench', now(), now()
FROM generate_series(0, 59) AS g(i)
"""
CAMPAIGNS_SQL = """
INSERT INTO campaigns (slug, subject, preheader, intro, body, audience_topics, status, requires_approval, created_at,
                       updated_at, started_at, sent_at)
SELECT 'digest-' || c, 'Digest ' || c, '', '', '', '[]', 'sent', false, at, at, at, at + interval '1 hour'
FROM generate_series(0, CAST(:n AS int) - 1) AS g(c), LATERAL (SELECT now() - (c * interval '7 days') AS at) AS t
"""
CAMPAIGN_ARTICLES_SQL = """
INSERT INTO campaign_articles (campaign_id, article_id, position)
SELECT c.id, a.id, p FROM campaigns c
CROSS JOIN generate_series(0, 5) AS g(p)
JOIN articles a ON a.guid = 'post-' || ((c.id + p) % 60)
"""
DELIVERIES_SQL = """
INSERT INTO deliveries (campaign_id, subscriber_id, email, status, attempts, next_attempt_at, bounced, sent_at,
                        created_at)
SELECT c.id, s.id, s.email, CASE WHEN s.id % 97 = 0 THEN 'failed' ELSE 'sent' END, 1, c.started_at, s.id % 97 = 0,
       c.started_at, c.started_at
FROM campaigns c JOIN subscribers s ON s.id <= 5000
"""
# People's clicks per link and hour over the 14 days after each campaign started, decaying with
# the hours, plus scanners' HEAD requests in the first hours: about 10 million clicks in all.
CLICKS_SQL = """
INSERT INTO click_counts (campaign_id, link, hour, kind, clicks)
SELECT ca.campaign_id, ca.article_id, date_trunc('hour', c.started_at) + h * interval '1 hour', 'person',
       greatest(1, (7000 / (h + 4))::int)
FROM campaign_articles ca JOIN campaigns c ON c.id = ca.campaign_id CROSS JOIN generate_series(0, 335) AS g(h)
UNION ALL
SELECT c.id, 0, date_trunc('hour', c.started_at) + h * interval '1 hour', 'person', greatest(1, (200 / (h + 4))::int)
FROM campaigns c CROSS JOIN generate_series(0, 335) AS g(h)
UNION ALL
SELECT ca.campaign_id, ca.article_id, date_trunc('hour', c.started_at) + h * interval '1 hour', 'head', 40
FROM campaign_articles ca JOIN campaigns c ON c.id = ca.campaign_id CROSS JOIN generate_series(0, 2) AS g(h)
"""
READER_COUNTS_SQL = """
INSERT INTO click_reader_counts (campaign_id, link, day, readers)
SELECT ca.campaign_id, ca.article_id, (c.started_at + d * interval '1 day')::date, 3000 / (d + 1)
FROM campaign_articles ca JOIN campaigns c ON c.id = ca.campaign_id CROSS JOIN generate_series(0, 13) AS g(d)
UNION ALL
SELECT c.id, -1, (c.started_at + d * interval '1 day')::date, 12000 / (d + 1)
FROM campaigns c CROSS JOIN generate_series(1, 13) AS g(d)
"""
TODAY_READERS_SQL = """
INSERT INTO click_readers (campaign_id, link, day, reader)
SELECT ca.campaign_id, ca.article_id, current_date, lpad(to_hex(r), 16, '0')
FROM campaign_articles ca CROSS JOIN generate_series(1, 300) AS g(r) WHERE ca.campaign_id <= 2
"""


async def filled(database: str) -> int | None:
    """The newest campaign's id when `database` already holds the bench's data (migrated to the
    head, so a new migration's indexes are measured), else None."""
    engine = create_engine(f"{PG}/{database}")
    try:
        async with engine.connect() as conn:
            newest = (await conn.execute(text("SELECT id FROM campaigns WHERE EXISTS (SELECT 1 FROM staff_users) "
                                              "ORDER BY started_at DESC LIMIT 1"))).scalar_one_or_none()
    except Exception:  # noqa: BLE001 - no such database (yet)
        return None
    try:
        if newest is not None:
            await migrate(engine)
        return newest
    finally:
        await engine.dispose()


async def populate(rows: int) -> tuple[int, int, float]:
    """Fill the database; (clicks generated, the newest campaign's id, seconds)."""
    engine = create_engine(f"{PG}/{admin_bench.DB_NAME}")
    started = time.perf_counter()
    await migrate(engine)
    async with engine.begin() as conn:
        await conn.execute(text(admin_bench.INQUIRIES_SQL), {"n": rows})
        await conn.execute(text(admin_bench.SUBSCRIBERS_SQL), {"n": rows})
        await conn.execute(text("INSERT INTO subscriber_topics (subscriber_id, topic) SELECT id, "
                                "(ARRAY['depression','anxiety','PTSD','chronic pain'])[id % 4 + 1] "
                                "FROM subscribers WHERE id % 2 = 0"))
        await conn.execute(text("UPDATE subscribers SET signup_page = 'https://blog.clinic.test/posts/' || (id % 60) "
                                "WHERE id % 3 = 0"))
        for sql in (ARTICLES_SQL, CAMPAIGNS_SQL, CAMPAIGN_ARTICLES_SQL, DELIVERIES_SQL, CLICKS_SQL, READER_COUNTS_SQL,
                    TODAY_READERS_SQL):
            await conn.execute(text(sql), {"n": CAMPAIGNS} if ":n" in sql else {})
        clicks = int((await conn.execute(text("SELECT sum(clicks) FROM click_counts"))).scalar_one())
        newest = int((await conn.execute(text("SELECT id FROM campaigns ORDER BY started_at DESC LIMIT 1")))
                     .scalar_one())
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    async with session_factory(engine).begin() as session:
        await create_staff_user(session, email="bench@clinic.test", role="admin", password=admin_bench.PASSWORD)
    await engine.dispose()
    return clicks, newest, time.perf_counter() - started


async def measure(base: str, urls: dict[str, str], requests: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in urls}
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        page = await c.get("/admin/login")
        token = page.text.split('name="form_token" value="', 1)[1].split('"', 1)[0]
        r = await c.post("/admin/login", data={"email": "bench@clinic.test", "password": admin_bench.PASSWORD,
                                               "form_token": token})
        assert r.status_code == 303, r.text
        for name, url in urls.items():
            for i in range(requests + 3):
                started = time.perf_counter()
                r = await c.get(url)
                elapsed = (time.perf_counter() - started) * 1000
                assert r.status_code == 200, (url, r.status_code)
                if i >= 3:  # warm-up
                    timings[name].append(elapsed)
    return timings


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--database", default=DB_NAME, help=f"database to create and drop (default {DB_NAME})")
    parser.add_argument("--keep", action="store_true", help="reuse the database if it is filled, and keep it "
                        "afterwards (to EXPLAIN its queries)")
    args = parser.parse_args()
    admin_bench.DB_NAME = args.database
    server = None
    try:
        newest = await filled(args.database) if args.keep else None
        if newest is None:
            await admin_bench.recreate_database()
            clicks, newest, seconds = await populate(args.rows)
            print(f"{clicks:,} clicks in {CAMPAIGNS} campaigns, {args.rows:,} inquiries and {args.rows:,} "
                  f"subscribers generated in {seconds:.1f}s")
        port = admin_bench.free_port()
        server = admin_bench.start_server(port)
        base = f"http://127.0.0.1:{port}"
        await admin_bench.wait_ready(base)
        urls = {"GET /healthz (baseline)": "/healthz", "reports (campaign list)": "/admin/reports",
                "campaign report": f"/admin/reports/campaigns/{newest}",
                "campaign report CSV": f"/admin/reports/campaigns/{newest}.csv",
                "content report": "/admin/reports/content", "lead sources (12 months)": "/admin/reports/leads",
                "lead sources CSV": "/admin/reports/leads.csv", "audience": "/admin/reports/audience",
                # the pages that share the campaigns' bounce rates, shown beside the reports (not in the target)
                "dashboard (beside)": "/admin/", "campaign page (beside)": f"/admin/campaigns/{newest}",
                "campaign list (beside)": "/admin/campaigns"}
        timings = await measure(base, urls, args.requests)
        print(f"\n{'request':28} {'p50 ms':>8} {'p95 ms':>8}   (n={args.requests} each, sequential, one uvicorn "
              "process, signed-in cookie)")
        worst = 0.0
        for name, values in timings.items():
            p95 = statistics.quantiles(values, n=20)[18]
            worst = worst if "healthz" in name or "beside" in name else max(worst, p95)
            print(f"{name:28} {statistics.median(values):8.1f} {p95:8.1f}")
        print(f"\nworst report p95: {worst:.1f} ms (target < {TARGET_MS:.0f} ms): "
              f"{'OK' if worst < TARGET_MS else 'OVER TARGET'}")
        return 0 if worst < TARGET_MS else 1
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if not args.keep:
            await admin_bench.drop_database()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
