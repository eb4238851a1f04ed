"""Mixed load on PostgreSQL: two app processes (`tidings serve --no-worker` on two ports) and one
`tidings worker`, while a 20,000-recipient digest is sending: inquiries, newsletter signups,
confirmations (the link followed from the received email), one-click unsubscribes and signed-in
admin list pages, all at once, for 60 s. Prints throughput and latency (p50/p99) per kind and the
errors, then checks that every accepted write is stored and that every subscriber in the digest's
audience got it exactly once (counted per recipient at the SMTP server).

    .venv/bin/python bench/load.py [--seconds 60] [--subscribers 20000] [--send-rate 350]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and the test extras (aiosmtpd).
Creates and drops the database tidings_bench_load; everything runs on loopback. The SMTP
server is an aiosmtpd sink in a child process: it counts messages per recipient and hands the
confirmation links back to the load generator. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import queue
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.admin.auth import create_staff_user  # noqa: E402
from service.articles.flows import import_articles  # noqa: E402
from service.campaigns import queries as q  # noqa: E402
from service.campaigns.models import Campaign, Delivery  # noqa: E402
from service.db import create_engine, migrate, session_factory, utcnow  # noqa: E402
from service.inquiries.models import Inquiry  # noqa: E402
from service.newsletter.models import Subscriber  # noqa: E402
from service.newsletter.tokens import unsubscribe_url  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.tokens import Tokens  # noqa: E402

DB_NAME = "tidings_bench_load"
ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DB_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DB_NAME}"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105 - a throwaway database
PASSWORD = "bench password 123"  # noqa: S105
ADMIN_EMAIL = "bench-admin@clinic.test"
BASE_URL = "http://news.clinic.test"
SAMPLE = Path(os.environ.get("SAMPLE_BLOG", "/work/shared/sample-blog"))
if not SAMPLE.exists():
    SAMPLE = ROOT / "service" / "demo_data" / "sample-blog"
CONFIRM_LINK = re.compile(r"/confirm/([A-Za-z0-9_\-.]+)")
ADMIN_PAGES = ("/admin/inquiries", "/admin/subscribers", "/admin/subscribers?status=confirmed", "/admin/")
KINDS = ("inquiry", "signup", "confirm", "unsubscribe", "admin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the SMTP sink (a child process) -------------------------------------------------------------


def run_sink(port: int, links: Any, results: Any, stop: Any) -> None:
    """aiosmtpd on 127.0.0.1:port: counts digests per recipient, passes confirmation links on."""
    from aiosmtpd.controller import Controller

    digests: Counter[str] = Counter()
    other: Counter[str] = Counter()

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            raw: bytes = envelope.original_content or envelope.content
            head = raw.split(b"\r\n\r\n", 1)[0]
            if b":digest:tidings" in head:  # Feedback-ID: CAMPAIGN:digest:tidings
                for rcpt in envelope.rcpt_tos:
                    digests[rcpt.lower()] += 1
                return "250 OK"
            for rcpt in envelope.rcpt_tos:
                other[rcpt.lower()] += 1
            if b"/confirm/" in raw or b"confirm" in head.lower():
                msg = message_from_bytes(raw, policy=policy.default)
                body = msg.get_body(preferencelist=("plain",))
                match = CONFIRM_LINK.search(body.get_content() if body else "")
                if match:
                    links.put((envelope.rcpt_tos[0].lower(), match.group(1)))
            return "250 OK"

    controller = Controller(Sink(), hostname="127.0.0.1", port=port, decode_data=False,
                            data_size_limit=10 * 1024 * 1024)
    controller.start()
    stop.wait()
    controller.stop()
    results.put({"digests": dict(digests), "other": dict(other)})


# -- setup ---------------------------------------------------------------------------------------


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


def bench_settings(**changes: Any) -> Settings:
    return Settings(database_url=DB_URL, secret_key=SECRET, base_url=BASE_URL, mail_from="Clinic <hello@clinic.test>",
                    **changes)


async def prepare(engine: Any, subscribers: int) -> int:
    """Schema, the sample articles, the audience, an admin, and a digest (a draft): its id."""
    await migrate(engine)
    sessions = session_factory(engine)
    settings = bench_settings()
    await import_articles(sessions, settings, [str(SAMPLE / "feed.xml")])
    async with engine.begin() as conn:
        await conn.execute(text("""
            INSERT INTO subscribers (id, email, email_key, name, status, created_at, status_changed_at, signup_at,
                                     confirmed_at)
            SELECT i, 'reader' || i || '@bench.example.org', 'reader' || i || '@bench.example.org', 'Reader ' || i,
                   'confirmed', now(), now(), now(), now()
            FROM generate_series(1, CAST(:n AS int)) AS i"""), {"n": subscribers})
        await conn.execute(text("SELECT setval('subscribers_id_seq', (SELECT max(id) FROM subscribers))"))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    async with sessions.begin() as session:
        await create_staff_user(session, email=ADMIN_EMAIL, role="admin", password=PASSWORD)
        ids = (await session.scalars(text("SELECT id FROM articles ORDER BY published_at DESC"))).all()
        campaign = await q.create_campaign(session, subject="Load-test digest", article_ids=list(ids), now=utcnow(),
                                           intro="Five articles from the clinic's blog.")
        return campaign.id


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=env, cwd=ROOT,
                                         stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def tidings_env(smtp_port: int, send_rate: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMTP_", "DATABASE_", "SECRET_", "BASE_", "FORM_", "SEND_", "DKIM_"))}
    env.update(DATABASE_URL=DB_URL, SECRET_KEY=SECRET, BASE_URL=BASE_URL, SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
               MAIL_FROM="Clinic <hello@clinic.test>", STAFF_INBOX="staff@clinic.test", FORM_MIN_SECONDS="0",
               FORM_RATE_LIMIT="10000000/600", SEND_RATE=str(send_rate), SEND_CONCURRENCY="4",
               LOG_LEVEL="warning", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return env


async def wait_healthy(url: str, proc: Proc, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as c:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await c.get(f"{url}/healthz", timeout=1)).status_code == 200:
                    return
            if proc.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"tidings serve did not start:\n{proc.log.read_text(errors='replace')}")
            await asyncio.sleep(0.1)


# -- the load ------------------------------------------------------------------------------------


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    inquiries: dict[str, str] = field(default_factory=dict)  # receipt -> email, answered 201
    signups: set[str] = field(default_factory=set)  # answered 202
    confirmed: set[str] = field(default_factory=set)  # confirm answered 200
    unsubscribed: set[int] = field(default_factory=set)  # one-click answered 200

    def ok(self, kind: str, started: float) -> None:
        self.latencies[kind].append(time.perf_counter() - started)

    def error(self, kind: str, what: str) -> None:
        self.errors[kind][what] += 1


class Load:
    USERS = {"inquiry": 6, "signup": 4, "confirm": 2, "unsubscribe": 2, "admin": 2}  # concurrent users per kind

    def __init__(self, clients: list[httpx.AsyncClient], admins: list[httpx.AsyncClient], links: Any,
                 subscribers: int) -> None:
        self.clients = clients
        self.admins = admins
        self.links = links
        self.until = 0.0
        self.stats = Stats()
        self.phases: dict[str, tuple[Stats, float]] = {}
        self.counter = 0
        self.rng = random.Random(2026)
        tokens = Tokens(bench_settings())
        # one-click unsubscribes of audience members while their digest is being sent
        ids = self.rng.sample(range(1, subscribers + 1), min(subscribers, 5000))
        self.unsubscribe_paths = [(i, unsubscribe_url(bench_settings(), tokens, i).removeprefix(BASE_URL))
                                  for i in ids]

    def client(self) -> httpx.AsyncClient:
        return self.rng.choice(self.clients)

    def next_n(self) -> int:
        self.counter += 1
        return self.counter

    async def timed(self, kind: str, call: Any, expect: int) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            r: httpx.Response = await call()
        except httpx.HTTPError as exc:
            self.stats.error(kind, type(exc).__name__)
            return None
        if r.status_code != expect:
            self.stats.error(kind, f"HTTP {r.status_code}")
            return None
        self.stats.ok(kind, started)
        return r

    async def inquiry(self) -> None:
        c = self.client()
        n = self.next_n()
        email = f"visitor{n}@load.example.org"
        token = (await c.get("/api/form-token")).json()["form_token"]  # each visitor's own: one stores one
        body = {"name": f"Visitor {n}", "email": email, "topic": "anxiety", "contact_method": "email",
                "message": f"Load-test inquiry {n}: could ketamine-assisted therapy help with my anxiety?",
                "consent": True, "form_token": token}
        r = await self.timed("inquiry", lambda: c.post("/api/inquiries", json=body), 201)
        if r is not None:
            self.stats.inquiries[str(r.json()["id"])] = email

    async def signup(self) -> None:
        c = self.client()
        email = f"newreader{self.next_n()}@load.example.org"
        token = (await c.get("/api/subscriptions")).json()["form_token"]
        body = {"email": email, "name": "New Reader", "topics": ["PTSD"], "form_token": token}
        if await self.timed("signup", lambda: c.post("/api/subscriptions", json=body), 202) is not None:
            self.stats.signups.add(email)

    async def confirm(self) -> None:
        try:
            email, token = await asyncio.to_thread(self.links.get, True, 0.5)
        except queue.Empty:
            return
        c = self.client()
        if await self.timed("confirm", lambda: c.post(f"/confirm/{token}"), 200) is not None:
            self.stats.confirmed.add(email)

    async def unsubscribe(self) -> None:
        if not self.unsubscribe_paths:
            await asyncio.sleep(0.1)
            return
        subscriber_id, path = self.unsubscribe_paths.pop()
        c = self.client()
        call = lambda: c.post(path, content=b"List-Unsubscribe=One-Click",  # noqa: E731
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        if await self.timed("unsubscribe", call, 200) is not None:
            self.stats.unsubscribed.add(subscriber_id)

    async def admin(self) -> None:
        c = self.rng.choice(self.admins)
        page = self.rng.choice(ADMIN_PAGES)
        await self.timed("admin", lambda: c.get(page), 200)

    async def run(self, phase: str, seconds: float) -> None:
        """The mix for `seconds`: every kind's users at once, each sending its next request when
        the last one is answered (a closed loop)."""
        self.stats = Stats()
        started = time.monotonic()
        self.until = started + seconds
        await asyncio.gather(*(self.user(kind) for kind, n in self.USERS.items() for _ in range(n)))
        self.phases[phase] = (self.stats, time.monotonic() - started)

    def report(self, phase: str) -> None:
        stats, elapsed = self.phases[phase]
        print(f"\n{phase}\n{'kind':<12}{'ok':>8}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}  errors")
        for kind in KINDS:
            lat = stats.latencies.get(kind, [])
            errors = ", ".join(f"{what} ×{n}" for what, n in stats.errors.get(kind, Counter()).items()) or "-"
            p50 = statistics.median(lat) * 1000 if lat else float("nan")
            print(f"{kind:<12}{len(lat):>8}{len(lat) / elapsed:>9.1f}{p50:>9.0f}{percentile(lat, 99) * 1000:>9.0f}  "
                  f"{errors}")

    def all_writes(self) -> Stats:
        merged = Stats()
        for stats, _ in self.phases.values():
            merged.inquiries.update(stats.inquiries)
            merged.signups |= stats.signups
            merged.confirmed |= stats.confirmed
            merged.unsubscribed |= stats.unsubscribed
            for kind, errors in stats.errors.items():
                merged.errors[kind].update(errors)
        return merged

    async def user(self, kind: str) -> None:
        action = getattr(self, kind)
        while time.monotonic() < self.until:
            try:
                await action()
            except (httpx.HTTPError, ValueError, KeyError) as exc:  # a token fetch that failed
                self.stats.error(kind, f"token: {type(exc).__name__}")


async def sign_in(url: str) -> httpx.AsyncClient:
    c = httpx.AsyncClient(base_url=url, timeout=30)
    page = await c.get("/admin/login")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert token, "the sign-in page has a form token"
    r = await c.post("/admin/login", data={"email": ADMIN_EMAIL, "password": PASSWORD, "form_token": token.group(1)})
    if r.status_code != 303:
        raise SystemExit(f"admin sign-in failed: {r.status_code}")
    return c


# -- checks ----------------------------------------------------------------------------------------


async def check(sessions: Any, stats: Stats, campaign_id: int, digests: dict[str, int]) -> list[str]:
    problems: list[str] = []
    async with sessions() as session:
        stored = dict((await session.execute(select(Inquiry.receipt, Inquiry.email).where(
            Inquiry.receipt.in_(list(stats.inquiries) or [""]), Inquiry.status != "held"))).all())
        missing = [i for i, email in stats.inquiries.items() if stored.get(i) != email]
        if missing:
            problems.append(f"{len(missing)} inquiries answered 201 are not stored as new (e.g. receipt {missing[0]})")
        subs = dict((await session.execute(select(Subscriber.email, Subscriber.status).where(
            Subscriber.email.like("%@load.example.org")))).all())
        lost = [e for e in stats.signups if e not in subs]
        if lost:
            problems.append(f"{len(lost)} signups answered 202 are not stored (e.g. {lost[0]})")
        unconfirmed = [e for e in stats.confirmed if subs.get(e) != "confirmed"]
        if unconfirmed:
            problems.append(f"{len(unconfirmed)} confirmations answered 200 are not confirmed (e.g. {unconfirmed[0]})")
        status = dict((await session.execute(select(Subscriber.id, Subscriber.status).where(
            Subscriber.id.in_(list(stats.unsubscribed) or [0])))).all())
        still = [i for i in stats.unsubscribed if status.get(i) != "unsubscribed"]
        if still:
            problems.append(f"{len(still)} one-click unsubscribes answered 200 are not unsubscribed")
        rows = (await session.execute(select(Delivery.email, Delivery.status, Delivery.subscriber_id).where(
            Delivery.campaign_id == campaign_id))).all()
    audience = {email.lower(): (st, sid) for email, st, sid in rows}
    twice = {e: n for e, n in digests.items() if n > 1}
    if twice:
        problems.append(f"{len(twice)} recipients got the digest more than once (e.g. {next(iter(twice.items()))})")
    strangers = [e for e in digests if e not in audience]
    if strangers:
        problems.append(f"{len(strangers)} digests went to addresses outside the audience")
    for email, (st, sid) in audience.items():
        got = digests.get(email, 0)
        if st == "sent" and got != 1:
            problems.append(f"{email}: delivery 'sent' but {got} digests at the server")
            break
        if st != "sent" and (got != 0 or sid not in stats.unsubscribed):
            problems.append(f"{email}: delivery '{st}' ({got} digests at the server), not an unsubscribe")
            break
    return problems


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def main(args: argparse.Namespace, links: Any, sink_port: int, stop_sink: Any, sink_results: Any) -> int:
    await recreate_database()
    engine = create_engine(DB_URL)
    sessions = session_factory(engine)
    procs: list[Proc] = []
    clients: list[httpx.AsyncClient] = []
    logs = Path(args.logs)
    try:
        t0 = time.perf_counter()
        campaign_id = await prepare(engine, args.subscribers)
        print(f"setup: {args.subscribers:,} confirmed subscribers, the sample articles, an admin "
              f"({time.perf_counter() - t0:.1f} s)")
        env = tidings_env(sink_port, args.send_rate)
        urls = []
        for i in range(2):
            port = free_port()
            procs.append(Proc(["serve", "--no-worker", "--port", str(port)], env, logs / f"serve{i}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        procs.append(Proc(["worker"], env, logs / "worker.log"))
        for url, proc in zip(urls, procs, strict=False):
            await wait_healthy(url, proc)
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        clients = [httpx.AsyncClient(base_url=u, timeout=30, limits=limits) for u in urls]
        admins = [await sign_in(u) for u in urls]
        clients += admins

        load = Load(clients[:2], admins, links, args.subscribers)
        users = ", ".join(f"{n} {kind}" for kind, n in Load.USERS.items())
        print(f"load: concurrent users: {users}; 2 app processes, 1 worker (logs in {logs})")
        if args.baseline_seconds:
            await load.run(f"baseline: {args.baseline_seconds} s of the same load, no digest sending",
                           args.baseline_seconds)
        async with sessions.begin() as session:
            queued = await q.start_campaign(session, campaign_id=campaign_id, now=utcnow())
        started = time.monotonic()
        phase = f"{args.seconds} s while digest {campaign_id} sends to {queued:,} subscribers " \
                f"(SEND_RATE {args.send_rate or 'unlimited'})"
        await load.run(phase, args.seconds)
        elapsed = time.monotonic() - started
        async with sessions() as session:
            sent_during = int(await session.scalar(select(func.count()).where(
                Delivery.campaign_id == campaign_id, Delivery.status == "sent")) or 0)
        for name in load.phases:
            load.report(name)
        print(f"\ndigest: {sent_during:,} of {queued:,} sent during the {elapsed:.0f} s of load "
              f"({sent_during / elapsed:,.0f}/s)")

        deadline = time.monotonic() + args.drain_seconds
        while True:
            async with sessions() as session:
                status = await session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
            if status == "sent" or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        after = time.monotonic() - started - elapsed
        async with sessions() as session:
            sent_total = int(await session.scalar(select(func.count()).where(
                Delivery.campaign_id == campaign_id, Delivery.status == "sent")) or 0)
        alone = sent_total - sent_during
        print(f"digest: status '{status}' {time.monotonic() - started:.0f} s after its start; alone after the load: "
              f"{alone:,} in {after:.0f} s ({alone / max(after, 0.001):,.0f}/s)")
        for proc in procs:
            proc.stop()
        procs = []
        stop_sink.set()
        counts = await asyncio.to_thread(sink_results.get, True, 60)
        digests: dict[str, int] = counts["digests"]
        if status != "sent":
            print(f"FAILED: the digest did not finish within --drain-seconds ({args.drain_seconds} s)")
            return 1
        s = load.all_writes()
        problems = await check(sessions, s, campaign_id, digests)
        print(f"checks: {len(s.inquiries):,} inquiries, {len(s.signups):,} signups, {len(s.confirmed):,} "
              f"confirmations, {len(s.unsubscribed):,} unsubscribes: each stored as answered; "
              f"{len(digests):,} recipients got the digest, {sum(digests.values()) - len(digests)} duplicates")
        for p in problems:
            print(f"FAILED: {p}")
        if not problems:
            print("all checks passed")
        return 1 if problems else 0
    finally:
        for c in clients:
            await c.aclose()
        for proc in procs:
            proc.stop()
        await engine.dispose()
        await drop_database()


def cli() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--baseline-seconds", type=int, default=15,
                        help="the same load first, without the digest (0 = skip)")
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--send-rate", type=int, default=350, help="SEND_RATE of the worker (0 = unlimited)")
    parser.add_argument("--drain-seconds", type=int, default=240, help="how long to wait for the digest afterwards")
    parser.add_argument("--logs", default=str(Path(tempfile.gettempdir()) / "tidings-bench-load"),
                        help="where the processes' logs go")
    args = parser.parse_args()
    Path(args.logs).mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("fork")
    links, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    sink_port = free_port()
    sink = ctx.Process(target=run_sink, args=(sink_port, links, results, stop), daemon=True)
    sink.start()
    try:
        return asyncio.run(main(args, links, sink_port, stop, results))
    finally:
        stop.set()
        sink.join(10)
        if sink.is_alive():
            sink.kill()


if __name__ == "__main__":
    raise SystemExit(cli())
