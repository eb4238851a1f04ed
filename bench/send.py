"""Benchmark: a digest of the sample articles to 20,000 confirmed subscribers on PostgreSQL,
sent by a real `tidings campaign send` process to Postfix's smtp-sink on loopback with SEND_RATE
unlimited; smtp-source sending as many messages of the same size to the same sink, in the same
run, is the ceiling of the machine. Then 100,000 subscribers: queueing time and worker memory.

    .venv/bin/python bench/send.py [--subscribers 20000] [--large 100000] [--concurrency 8]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and the Debian package `postfix`
(for /usr/sbin/smtp-sink and /usr/sbin/smtp-source). Creates and drops tidings_bench_digests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.articles.flows import import_articles  # noqa: E402
from service.campaigns import queries as q  # noqa: E402
from service.campaigns.stats import campaign_stats  # noqa: E402
from service.db import create_engine, migrate, session_factory, utcnow  # noqa: E402
from service.settings import Settings  # noqa: E402

DB_NAME = "tidings_bench_digests"
ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DB_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DB_NAME}"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105 - a throwaway database
SAMPLE = Path(os.environ.get("SAMPLE_BLOG", "/work/shared/sample-blog"))
if not SAMPLE.exists():
    SAMPLE = ROOT.parent.parent / "shared" / "sample-blog"
SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
PROFILE = os.environ.get("BENCH_PROFILE")  # a path: record the worker with py-spy (collapsed stacks)
TOPICS = ("depression", "anxiety", "PTSD", "chronic pain", "OCD", "other")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def recreate_database() -> None:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    await admin.dispose()


async def drop_database() -> None:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    await admin.dispose()


async def add_subscribers(engine, first: int, last: int) -> None:  # type: ignore[no-untyped-def]
    """Confirmed subscribers first..last; one in three chose one or two topics, others all."""
    async with engine.begin() as conn:
        await conn.execute(text("""
            INSERT INTO subscribers (id, email, email_key, name, status, created_at, status_changed_at, confirmed_at)
            SELECT i, 'reader' || i || '@bench.example.org', 'reader' || i || '@bench.example.org',
                   'Reader ' || i, 'confirmed', now(), now(), now()
            FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS i
        """), {"first": first, "last": last})
        for n, topic in enumerate(TOPICS):
            await conn.execute(text("""
                INSERT INTO subscriber_topics (subscriber_id, topic)
                SELECT i, :topic FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS i
                WHERE i % 3 = 0 AND (i / 3) % 6 IN (:n, (:n + 1) % 6)
            """), {"topic": topic, "first": first, "last": last, "n": n})
        await conn.execute(text("SELECT setval('subscribers_id_seq', (SELECT max(id) FROM subscribers))"))
        await conn.execute(text("ANALYZE"))


async def new_campaign(sessions, settings: Settings, subject: str) -> int:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        ids = (await session.scalars(text("SELECT id FROM articles ORDER BY published_at DESC"))).all()
        campaign = await q.create_campaign(session, subject=subject, article_ids=list(ids), now=utcnow(),
                                           intro="Five articles from the clinic's blog.")
        return campaign.id


async def queue(sessions, campaign_id: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    async with sessions.begin() as session:
        queued = await q.start_campaign(session, campaign_id=campaign_id, now=utcnow())
    return queued, time.perf_counter() - started


def run_worker(campaign_id: int, port: int, concurrency: int) -> tuple[float, float, str]:
    """Run `tidings campaign send` to completion: (seconds, peak RSS in MB, its output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEND_", "SMTP_", "DKIM_"))}
    env.update(DATABASE_URL=DB_URL, SECRET_KEY=SECRET, SMTP_URL=f"smtp://127.0.0.1:{port}", SEND_RATE="0",
               SEND_CONCURRENCY=str(concurrency), BASE_URL="https://news.clinic.example",
               MAIL_FROM="Clinic <hello@clinic.example>", PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    command = [sys.executable, "-m", "service.cli", "campaign", "send", str(campaign_id)]
    if PROFILE:
        command = [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "-o", PROFILE,
                   "--", *command]
    proc = subprocess.Popen(command,
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    output = proc.stdout.read().decode() if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({proc.returncode}):\n{output}")
    return elapsed, usage.ru_maxrss / 1024, output.strip().splitlines()[-1]


async def sample_message_size(sessions, campaign_id: int) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        sizes = (await session.execute(text(
            "SELECT length(smtp_response) FROM deliveries WHERE campaign_id = :c LIMIT 1"), {"c": campaign_id}))
        _ = sizes
    # the size of one assembled message for a subscriber of every topic
    from service.campaigns.sender import CampaignSender
    from service.mail.bulk import LocalBulkTransport

    settings = bench_settings()
    sender = CampaignSender(sessions, settings, LocalBulkTransport(sessions), owner="size")
    prepared = await sender.prepare(campaign_id)
    personal = prepared.template.personalise(name="Reader 1", topics=(), unsubscribe_url="https://x/unsubscribe/"
                                             + "t" * 40)
    assert personal is not None
    _mid, raw = prepared.factory.build(delivery_id=1, to_email="reader1@bench.example.org", to_name="Reader 1",
                                       html=personal.html, text=personal.text, unsubscribe_url="https://x/u")
    return len(raw)


def bench_settings() -> Settings:
    return Settings(database_url=DB_URL, secret_key=SECRET, base_url="https://news.clinic.example",
                    mail_from="Clinic <hello@clinic.example>", send_rate=0)


def smtp_source(port: int, messages: int, size: int, sessions: int) -> float:
    started = time.perf_counter()
    subprocess.run([SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size), "-f", "hello@clinic.example",
                    "-t", "reader@bench.example.org", f"127.0.0.1:{port}"], check=True, timeout=600)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8, help="SEND_CONCURRENCY (SMTP connections)")
    parser.add_argument("--skip-large-send", action="store_true", help="only queue the large campaign")
    args = parser.parse_args()
    for tool in (SINK, SOURCE):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install -y postfix")

    await recreate_database()
    engine = create_engine(DB_URL)
    sessions = session_factory(engine)
    port = free_port()
    sink = subprocess.Popen([SINK, "-u", "nobody", f"127.0.0.1:{port}", "1024"])  # noqa: ASYNC220
    try:
        await migrate(engine)
        settings = bench_settings()
        await import_articles(sessions, settings, [str(SAMPLE / "feed.xml")])
        await add_subscribers(engine, 1, args.subscribers)
        await asyncio.sleep(0.3)

        print(f"== {args.subscribers:,} subscribers, SEND_RATE unlimited, SEND_CONCURRENCY {args.concurrency} ==")
        campaign_id = await new_campaign(sessions, settings, "Bench digest")
        queued, seconds = await queue(sessions, campaign_id)
        print(f"queue deliveries:        {queued:,} rows in {seconds:.2f} s")
        elapsed, rss, last = run_worker(campaign_id, port, args.concurrency)
        async with sessions() as session:
            stats = await campaign_stats(session, campaign_id=campaign_id, now=utcnow())
            span = (await session.execute(text(
                "SELECT extract(epoch FROM max(sent_at) - min(sent_at)) FROM deliveries WHERE campaign_id = :c"),
                {"c": campaign_id})).scalar()
        sent = stats.sent
        print(f"worker:                  {last}")
        print(f"end to end:              {sent:,} messages in {elapsed:.2f} s = {sent / elapsed:,.0f} msgs/s "
              f"(process start to exit)")
        if span:
            print(f"steady state:            {sent / float(span):,.0f} msgs/s (first to last sent_at)")
        print(f"worker peak RSS:         {rss:.0f} MB")
        size = await sample_message_size(sessions, campaign_id)
        ceiling = smtp_source(port, sent, size, args.concurrency)
        print(f"ceiling (smtp-source):   {sent:,} messages of {size:,} bytes in {ceiling:.2f} s = "
              f"{sent / ceiling:,.0f} msgs/s with {args.concurrency} sessions")

        print(f"== {args.large:,} subscribers ==")
        await add_subscribers(engine, args.subscribers + 1, args.large)
        large_id = await new_campaign(sessions, settings, "Bench digest, large")
        queued, seconds = await queue(sessions, large_id)
        print(f"queue deliveries:        {queued:,} rows in {seconds:.2f} s")
        if not args.skip_large_send:
            elapsed, rss_large, last = run_worker(large_id, port, args.concurrency)
            print(f"worker:                  {last}")
            print(f"end to end:              {queued / elapsed:,.0f} msgs/s over {elapsed:.1f} s")
            print(f"worker peak RSS:         {rss_large:.0f} MB (vs {rss:.0f} MB for {args.subscribers:,})")
    finally:
        sink.terminate()
        sink.wait(10)
        await engine.dispose()
        await drop_database()


if __name__ == "__main__":
    asyncio.run(main())
