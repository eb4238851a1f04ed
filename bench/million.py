"""A million subscribers on PostgreSQL, in one command: every figure beside a baseline measured in
the same run.

1. Queueing a digest (the admin's Send action, `send_campaign_now` -> `queue_deliveries`) to
   100,000 and then to 1,000,000 confirmed subscribers, beside a plain `INSERT … SELECT` of the
   same rows into a copy of `deliveries` with its indexes (no foreign keys, triggers, audience
   predicate or ON CONFLICT): what writing those rows costs at all.
2. The worker's memory: one real `tidings worker` sending each of those campaigns to Postfix's
   smtp-sink (SEND_RATE 0) for `--send-seconds`: RSS at start and its peak, and how many it sent.
3. Staff at work: `--clients` concurrent clients (default 6), each signed in through the real
   login form with its own account, each cycling through the admin's pages in its own order
   (subscriber and inquiry lists with filters, deep keyset pages, searches, the dashboard, the
   campaign page and its live figures, polled as the page does): p50/p95 per page, beside
   GET /healthz fetched the same way in the same run (targets: p95 < 100 ms, live figures < 50).
   Then the same staff paced (bench/staff.py): `--rate` page views a second in all, open loop,
   which is what a person at the desk feels at that load; the first run is the saturation limit.
4. Import: `tidings subscribers import` (a real process) of 100,000 and of 1,000,000 rows into
   fresh databases: rows/s and peak RSS, beside asyncpg's COPY of the same file (the floor).

    .venv/bin/python bench/million.py [--subscribers 1000000] [--clients 6] [--seconds 20]
                                      [--rate 10] [--paced-seconds 60]
                                      [--skip-import] [--skip-send] [--keep] [--reuse]

Fills the rows with generate_series (100,000 inquiries beside them). Creates and drops its own
databases (tidings_bench_million, tidings_bench_million_import) on 127.0.0.1:5432 (BENCH_PG);
needs /usr/sbin/smtp-sink (Debian's postfix) for step 2. Prints the load average beside each step.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from staff import paced_views  # noqa: E402

import service.models  # noqa: E402, F401 - every table in Base.metadata
from service.admin.audit import Actor  # noqa: E402
from service.admin.auth import create_staff_user  # noqa: E402
from service.admin.filters import format_cursor  # noqa: E402
from service.articles.flows import import_articles  # noqa: E402
from service.campaigns import actions  # noqa: E402
from service.campaigns import queries as cq  # noqa: E402
from service.db import create_engine, migrate, session_factory, utcnow  # noqa: E402
from service.settings import Settings  # noqa: E402

PG = os.environ.get("BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
DB_NAME = "tidings_bench_million"
IMPORT_DB = "tidings_bench_million_import"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105 - a throwaway database
PASSWORD = "bench password 123"  # noqa: S105
SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SAMPLE = Path(os.environ.get("SAMPLE_BLOG", "/work/shared/sample-blog"))
TOPICS = ("depression", "anxiety", "PTSD", "chronic pain", "OCD", "other")
ENV = {"SECRET_KEY": SECRET, "BASE_URL": "https://news.clinic.example", "MAIL_FROM": "Clinic <hello@clinic.example>",
       "ORG_POSTAL_ADDRESS": "1 Clinic Road, Springfield", "LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT)}

SUBSCRIBERS_SQL = """
INSERT INTO subscribers (id, email, email_key, name, status, created_at, status_changed_at, signup_at, signup_ip,
    signup_source, confirmed_at)
SELECT i, 'reader' || i || '@example' || (i % 80) || '.org', 'reader' || i || '@example' || (i % 80) || '.org',
       'Reader ' || i, 'confirmed', ts, ts, ts, '203.0.113.' || (i % 250), 'signup form', ts + interval '10 minutes'
FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g(i),
     LATERAL (SELECT now() - ((:last - i) * interval '20 seconds')) AS t(ts)
"""
TOPICS_SQL = """
INSERT INTO subscriber_topics (subscriber_id, topic)
SELECT i, (ARRAY['depression','anxiety','PTSD','chronic pain','OCD','other'])[i / 3 % 6 + 1]
FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g(i) WHERE i % 3 = 0
"""
INQUIRIES_SQL = """
INSERT INTO inquiries (created_at, name, email, phone, topic, contact_method, message, consent, newsletter_optin,
    status, status_changed_at, source_page, referrer, utm_source, utm_medium, utm_campaign, utm_term, utm_content,
    ip, user_agent, dedupe_key)
SELECT now() - (i * interval '5 minutes'), 'Maria Lopez ' || i, 'person' || i || '@example' || (i % 50) || '.org', '',
       (ARRAY['depression','anxiety','PTSD','chronic pain','OCD','other'])[i % 6 + 1], 'email',
       (ARRAY['I have had treatment-resistant depression for years and read about ketamine.',
              'My anxiety makes it hard to work. Is ketamine-assisted therapy an option for me?',
              'Chronic pain since surgery. Do you accept insurance and how long are sessions?'])[i % 3 + 1]
         || ' Reference ' || md5(i::text),
       true, i % 3 = 0, (ARRAY['new','contacted','qualified','closed','spam'])[i % 5 + 1],
       now() - (i * interval '5 minutes'), 'https://blog.clinic.test/posts/' || (i % 40), '', 'newsletter', 'email',
       'digest-' || (i % 12), '', '', '198.51.100.' || (i % 250), 'Mozilla/5.0', md5('d' || i::text)
FROM generate_series(1, :n) AS g(i)
"""


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else values[0]


async def recreate(name: str) -> None:
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


async def drop(name: str) -> None:
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def subscribers_kept(wanted: int) -> int:
    """How many subscribers the kept database has (0: none kept, or fewer than `wanted`)."""
    admin = create_engine(f"{PG}/postgres")
    try:
        async with admin.connect() as conn:
            if not await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": DB_NAME}):
                return 0
    finally:
        await admin.dispose()
    engine = create_engine(f"{PG}/{DB_NAME}")
    try:
        async with engine.connect() as conn:
            n = int(await conn.scalar(text("SELECT count(*) FROM subscribers")) or 0)
    finally:
        await engine.dispose()
    return n if n >= wanted else 0


async def vacuum(engine) -> None:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))


async def add_subscribers(engine, first: int, last: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(text(SUBSCRIBERS_SQL), {"first": first, "last": last})
        await conn.execute(text(TOPICS_SQL), {"first": first, "last": last})
        await conn.execute(text("SELECT setval('subscribers_id_seq', (SELECT max(id) FROM subscribers))"))
    await vacuum(engine)
    return time.perf_counter() - started


async def new_campaign(sessions, subject: str) -> int:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        ids = (await session.scalars(text("SELECT id FROM articles ORDER BY published_at DESC"))).all()
        campaign = await cq.create_campaign(session, subject=subject, article_ids=list(ids), now=utcnow(),
                                            intro="Five articles from the clinic's blog.")
        return int(campaign.id)


async def queue(engine, sessions, subject: str) -> tuple[int, int, float, float]:  # type: ignore[no-untyped-def]
    """(campaign id, rows queued, seconds of the Send action, seconds of the plain INSERT … SELECT)."""
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS bench_floor"))
        await conn.execute(text("CREATE TABLE bench_floor (LIKE deliveries INCLUDING ALL)"))
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO bench_floor (campaign_id, subscriber_id, email, status, attempts, next_attempt_at, bounced, "
            "created_at) SELECT 0, id, email, 'queued', 0, now(), false, now() FROM subscribers "
            "WHERE status = 'confirmed' ORDER BY id"))
    floor = time.perf_counter() - started
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE bench_floor"))
    campaign_id = await new_campaign(sessions, subject)
    settings = Settings.from_env({**ENV, "DATABASE_URL": f"{PG}/{DB_NAME}", "SMTP_URL": "smtp://127.0.0.1:25"},
                                 env_file=None)
    started = time.perf_counter()
    async with sessions.begin() as session:
        queued = await actions.send_campaign_now(session, settings=settings, campaign_id=campaign_id,
                                                 actor=Actor(name="cli:bench", ip="cli"), now=utcnow())
    return campaign_id, queued, time.perf_counter() - started, floor


async def pause(sessions, campaign_id: int) -> None:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        await cq.set_campaign_status(session, campaign_id=campaign_id, status="paused", now=utcnow())


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def start_sink_and_worker(beat: Path) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """Postfix's smtp-sink on a free port and a real `tidings worker` sending to it (SEND_RATE 0)."""
    port = free_port()
    sink = subprocess.Popen([SINK, "-u", "nobody", "-c", f"127.0.0.1:{port}", "1024"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEND_", "SMTP_", "DKIM_"))}
    env.update(ENV, DATABASE_URL=f"{PG}/{DB_NAME}", SMTP_URL=f"smtp://127.0.0.1:{port}", SEND_RATE="0",
               SEND_CONCURRENCY="8")
    worker = subprocess.Popen([sys.executable, "-m", "service.cli", "worker", "--heartbeat", str(beat)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return sink, worker


def stop(proc: subprocess.Popen[bytes]) -> float:
    """SIGTERM and wait: the process's peak RSS in MB."""
    if proc.returncode is not None:  # already reaped
        return 0.0
    proc.terminate()
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = _status
    return usage.ru_maxrss / 1024


async def worker_window(sessions, campaign_id: int, seconds: float) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """A real worker sends `campaign_id` to smtp-sink for `seconds`: (RSS when ready, peak RSS, sent)."""
    folder = Path(tempfile.mkdtemp(prefix="tidings-million-"))
    beat = folder / "ready"
    sink, worker = start_sink_and_worker(beat)
    peak = 0.0
    try:
        while not beat.exists():
            if worker.poll() is not None:
                raise SystemExit("the worker did not start")
            await asyncio.sleep(0.05)
        ready = rss_mb(worker.pid)
        async with sessions.begin() as session:  # resume: the worker starts on it now
            await cq.set_campaign_status(session, campaign_id=campaign_id, status="sending", now=utcnow())
        peak = ready
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            peak = max(peak, rss_mb(worker.pid))
            await asyncio.sleep(0.2)
        await pause(sessions, campaign_id)
    finally:
        peak = max(peak, stop(worker))
        stop(sink)
        shutil.rmtree(folder, ignore_errors=True)
    async with sessions() as session:
        sent = int(await session.scalar(text(
            "SELECT count(*) FROM deliveries WHERE campaign_id = :c AND status = 'sent'"), {"c": campaign_id}) or 0)
    return ready, peak, sent


# -- staff at work -------------------------------------------------------------------------------


async def page_urls(engine, campaign_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        n = int(await conn.scalar(text("SELECT count(*) FROM subscribers")) or 0)
        deep_s = (await conn.execute(text("SELECT created_at, id FROM subscribers ORDER BY created_at DESC, id DESC "
                                          "OFFSET :o LIMIT 1"), {"o": int(n * 0.9)})).one()
        ni = int(await conn.scalar(text("SELECT count(*) FROM inquiries")) or 0)
        deep_i = (await conn.execute(text("SELECT created_at, id FROM inquiries ORDER BY created_at DESC, id DESC "
                                          "OFFSET :o LIMIT 1"), {"o": int(ni * 0.9)})).one()
    return {
        "subscribers, first page": "/admin/subscribers",
        "subscribers, confirmed": "/admin/subscribers?status=confirmed",
        "subscribers, topic": "/admin/subscribers?status=confirmed&topic=PTSD",
        "subscribers, deep page (90%)": "/admin/subscribers?" + urlencode({"after": format_cursor(*deep_s)}),
        "subscribers, search": f"/admin/subscribers?q=reader{n // 2 + 7}",
        "subscribers, search by domain": "/admin/subscribers?q=@example42.org",
        "inquiries, first page": "/admin/inquiries",
        "inquiries, status + topic": "/admin/inquiries?status=qualified&topic=PTSD",
        "inquiries, deep page (90%)": "/admin/inquiries?" + urlencode({"after": format_cursor(*deep_i)}),
        "inquiries, search": "/admin/inquiries?q=ketamine+depression",
        "dashboard": "/admin/",
        "campaign page": f"/admin/campaigns/{campaign_id}",
        "campaign live figures": f"/admin/campaigns/{campaign_id}/progress",
        "GET /healthz (baseline)": "/healthz",
    }


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENV, "DATABASE_URL": f"{PG}/{DB_NAME}", "BASE_URL": "http://127.0.0.1"}
    env.pop("SMTP_URL", None)
    return subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--no-worker", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def wait_ready(base: str) -> None:
    deadline = time.monotonic() + 60.0
    async with httpx.AsyncClient(base_url=base) as c:
        while time.monotonic() < deadline:
            try:
                if (await c.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the server did not start")


async def sign_in(base: str, email: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=60)
    page = await client.get("/admin/login")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = await client.post("/admin/login", data={"email": email, "password": PASSWORD, "form_token": token})
    assert r.status_code == 303, r.text
    return client


async def staff_at_work(base: str, urls: dict[str, str], clients: int, seconds: float) -> dict[str, list[float]]:
    """`clients` signed-in staff, each cycling through every page in its own shuffled order; the
    live figures are fetched twice as often (the campaign page polls them)."""
    timings: dict[str, list[float]] = {name: [] for name in urls}
    sessions = [await sign_in(base, f"staff{n}@clinic.test") for n in range(clients)]
    for c in sessions:  # warm every page once per client
        for url in urls.values():
            assert (await c.get(url)).status_code == 200, url
    end = time.monotonic() + seconds

    async def one(c: httpx.AsyncClient, seed: int) -> None:
        order = [*urls.items(), ("campaign live figures", urls["campaign live figures"])]
        random.Random(seed).shuffle(order)
        while time.monotonic() < end:
            for name, url in order:
                started = time.perf_counter()
                r = await c.get(url)
                timings[name].append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200, (url, r.status_code)

    await asyncio.gather(*(one(c, n) for n, c in enumerate(sessions)))
    for c in sessions:
        await c.aclose()
    return timings


def print_pages(timings: dict[str, list[float]]) -> float:
    """Print n, p50 and p95 of each page beside its target; the worst admin p95 (healthz aside)."""
    print(f"{'page':32} {'n':>6} {'p50 ms':>8} {'p95 ms':>8}  target")
    worst = 0.0
    for name, values in timings.items():
        if len(values) < 2:
            continue
        target = None if "healthz" in name else 50.0 if "live" in name else 100.0
        ok = "" if target is None else ("OK" if p95(values) < target else "OVER")
        print(f"{name:32} {len(values):>6} {statistics.median(values):8.1f} {p95(values):8.1f}  "
              f"{'' if target is None else f'< {target:.0f} {ok}'}")
        if target is not None:
            worst = max(worst, p95(values))
    return worst


# -- import --------------------------------------------------------------------------------------


def make_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "name", "topics", "status", "signup_at", "signup_source"])
        for i in range(rows):
            w.writerow([f"reader.{i}@mail{i % 97}.example.org", f"Reader {i}", TOPICS[i % 6] if i % 3 == 0 else "",
                        "confirmed", "2024-05-01T09:30:00Z", "old-list"])


async def copy_floor(path: Path) -> float:
    await recreate(IMPORT_DB)
    conn = await asyncpg.connect(f"postgresql://{PG.split('://', 1)[1]}/{IMPORT_DB}")
    try:
        await conn.execute("CREATE TABLE floor (email text, name text, topics text, status text, signup_at text, "
                           "signup_source text)")
        started = time.perf_counter()
        await conn.copy_to_table("floor", source=str(path), format="csv", header=True)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def run_import(path: Path) -> tuple[float, float, str]:
    """`tidings subscribers import` into a fresh database: (seconds, peak RSS in MB, its summary line)."""
    await recreate(IMPORT_DB)
    engine = create_engine(f"{PG}/{IMPORT_DB}")
    await migrate(engine)
    await engine.dispose()
    started = time.perf_counter()
    status, rss, out = await asyncio.to_thread(import_process, path)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"import failed:\n{out}")
    added = next((line.strip() for line in out.splitlines() if "added" in line), out.strip().splitlines()[-1])
    return seconds, rss, added


def import_process(path: Path) -> tuple[int, float, str]:
    """Run `tidings subscribers import PATH`: (exit status, peak RSS in MB, its output)."""
    env = {**os.environ, **ENV, "DATABASE_URL": f"{PG}/{IMPORT_DB}"}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "subscribers", "import", str(path)], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode() if proc.stdout else ""
    _pid, status, usage = os.wait4(proc.pid, 0)
    return status, usage.ru_maxrss / 1024, out


async def imports(sizes: list[int]) -> None:
    print(f"\n== import (`tidings subscribers import`, fresh database each; load average {load()})")
    folder = Path(tempfile.mkdtemp(prefix="tidings-million-csv-"))
    try:
        make_csv(folder / "1.csv", 1)
        start_up, rss, _ = await run_import(folder / "1.csv")
        print(f"a one-row import (the command's start-up): {start_up:.1f} s, peak RSS {rss:.0f} MB; rows/s below "
              "are net of it")
        print(f"{'rows':>10} {'import rows/s':>14} {'peak RSS MB':>12} {'COPY rows/s (floor)':>20}")
        for rows in sizes:
            path = folder / f"{rows}.csv"
            make_csv(path, rows)
            floor = await copy_floor(path)
            seconds, rss, summary = await run_import(path)
            print(f"{rows:>10,} {rows / max(seconds - start_up, 0.001):>14,.0f} {rss:>12.0f} {rows / floor:>20,.0f}"
                  f"   ({seconds:.1f} s; {summary}; load {load()})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        await drop(IMPORT_DB)


# -- main ----------------------------------------------------------------------------------------


async def prepare(engine, sessions, clients: int) -> None:  # type: ignore[no-untyped-def]
    await migrate(engine)
    settings = Settings.from_env({**ENV, "DATABASE_URL": f"{PG}/{DB_NAME}"}, env_file=None)
    await import_articles(sessions, settings, [str(SAMPLE / "feed.xml")])
    async with sessions.begin() as session:
        for n in range(clients):
            await create_staff_user(session, email=f"staff{n}@clinic.test", role="admin", password=PASSWORD)
    async with engine.begin() as conn:
        await conn.execute(text(INQUIRIES_SQL), {"n": 100_000})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="the first scale (default 100,000)")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0, help="of concurrent staff")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="page views a second in all for the paced staff run (open loop); 0: none")
    parser.add_argument("--paced-seconds", type=float, default=60.0, help="of the paced staff run")
    parser.add_argument("--send-seconds", type=float, default=10.0, help="of sending, per scale")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-send", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the database a --keep run left (migrated to head; queues one more digest at the "
                             "largest scale only)")
    args = parser.parse_args()
    small, big = min(args.small, args.subscribers), args.subscribers
    have = await subscribers_kept(big) if args.reuse else 0
    if not have:
        await recreate(DB_NAME)
    engine = create_engine(f"{PG}/{DB_NAME}")
    sessions = session_factory(engine)
    server = None
    try:
        if have:
            await migrate(engine)
        else:
            await prepare(engine, sessions, args.clients)
        results = []
        for n in dict.fromkeys((small, big)):
            if have >= n and n != big:
                continue
            if have < n:
                seconds = await add_subscribers(engine, have + 1, n)
                have = n
                print(f"{n:,} confirmed subscribers ({seconds:.1f} s with generate_series), 100,000 inquiries")
            else:
                print(f"{n:,} confirmed subscribers (the database kept by --keep), 100,000 inquiries")
            cid, queued, took, floor = await queue(engine, sessions, f"Digest to {n:,}")
            print(f"  queueing the digest (Send action): {queued:,} deliveries in {took:.2f} s "
                  f"(target < 15 s); plain INSERT … SELECT into an indexed copy: {floor:.2f} s  [load {load()}]")
            await pause(sessions, cid)
            if not args.skip_send:
                ready, peak, sent = await worker_window(sessions, cid, args.send_seconds)
                print(f"  worker sending it for {args.send_seconds:.0f} s: RSS {ready:.0f} MB when ready, peak "
                      f"{peak:.0f} MB; {sent:,} sent  [load {load()}]")
            results.append((n, cid))
        await vacuum(engine)
        port = free_port()
        server = start_server(port)
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base)
        urls = await page_urls(engine, results[-1][1])
        print(f"\n== {args.clients} staff at once, each its own session, {args.seconds:.0f} s, one uvicorn "
              f"process, {big:,} subscribers  [load {load()}]")
        timings = await staff_at_work(base, urls, args.clients, args.seconds)
        print(f"worst admin p95: {print_pages(timings):.1f} ms  [load {load()}]")
        if args.rate > 0:
            print(f"\n== paced: {args.rate:g} page views a second in all from the same {args.clients} staff, "
                  f"{args.paced_seconds:.0f} s (open loop, Poisson arrivals; the issue's staff load is 10 a second "
                  f"from 4)  [load {load()}]")
            staff = [await sign_in(base, f"staff{n}@clinic.test") for n in range(args.clients)]
            try:
                paced = await paced_views(staff, urls, args.rate, args.paced_seconds)
            finally:
                for c in staff:
                    await c.aclose()
            print(f"worst admin p95, paced: {print_pages(paced):.1f} ms  [load {load()}]")
        server.terminate()
        server.wait(10)
        server = None
        if not args.keep:
            await engine.dispose()
            await drop(DB_NAME)
        if not args.skip_import:
            await imports(list(dict.fromkeys((small, big))))
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        await engine.dispose()
        if not args.keep:
            await drop(DB_NAME)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    asyncio.run(main())
