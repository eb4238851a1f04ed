"""Mixed load on PostgreSQL while a digest sends at full speed: does the web stay fast?

    .venv/bin/python bench/load.py [--seconds 60] [--subscribers 20000] [--send-rate 0]

Two app processes (`tidings serve --no-worker` on two ports) and one `tidings worker` with
SEND_RATE 0 (unlimited). The load comes from two generator processes of their own, each an
asyncio loop with a minimal keep-alive HTTP/1.1 client (~0.05 ms of CPU a request where httpx
spends ~1 ms; their CPU is printed), on an OPEN-LOOP schedule: requests are sent at fixed rates
(evenly spaced, each process a phase of its own) whether or not earlier ones were answered, and
every latency is measured from the time the request was due, so a slow server cannot slow the
load down and hide its own slowness (no coordinated omission). Default rates per second:

    inquiry 50       a visitor fetches a form token (GET /api/form-token, the "form token" row,
                     timed from when the visit was due), then posts an inquiry (timed from when
                     the token came back); each visitor from an address of its own
                     (X-Forwarded-For through TRUSTED_PROXIES; FORM_RATE_LIMIT at its default)
    signup 30        the same with GET/POST /api/subscriptions
    confirm 20       POST of the confirmation link from an email the SMTP sink received
    unsubscribe 30   RFC 8058 one-click POSTs by members of the digest's audience
    admin 10         GETs of varied admin pages by 4 signed-in staff

Phases: a warm-up (not counted); a baseline of the load without the digest; the digest alone
(`--alone-seconds`, no web load: its rate alone); the load while the digest keeps sending
(`--seconds`, ended early if the digest finishes); then the rest of the digest alone. Printed per
phase and kind: offered and achieved rate, p50/p99, errors; the digest's rate alone and during
the load; CPU of every process (app, worker, sink, generators) and the load average. Then the
checks: every write answered as accepted is stored; every subscriber in the digest's audience
got it exactly once (counted per recipient at the SMTP server). Exit status 1 when a check fails.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and the test extras (aiosmtpd).
Creates and drops the database `--database` (default tidings_bench_load); everything runs on
loopback. The SMTP server is an aiosmtpd sink in a child process: it counts messages per
recipient and hands the confirmation links to the load generators.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import queue
import random
import re
import signal
import socket
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
from sqlalchemy import select, text

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

ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105 - a throwaway database
PASSWORD = "bench password 123"  # noqa: S105
BASE_URL = "http://news.clinic.test"
SAMPLE = Path(os.environ.get("SAMPLE_BLOG", "/work/shared/sample-blog"))
if not SAMPLE.exists():
    SAMPLE = ROOT / "service" / "demo_data" / "sample-blog"
CONFIRM_LINK = re.compile(r"/confirm/([A-Za-z0-9_\-.]+)")
STAFF = 4
GENERATORS = 2
KINDS = ("form token", "inquiry", "signup", "confirm", "unsubscribe", "admin")
PUBLIC = ("inquiry", "signup", "confirm", "unsubscribe")
DEFAULT_RATES = {"inquiry": 50.0, "signup": 30.0, "confirm": 20.0, "unsubscribe": 30.0, "admin": 10.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# -- the SMTP sink (a child process) -------------------------------------------------------------


def run_sink(port: int, links: Any, results: Any, stop: Any, digest_count: Any) -> None:
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
                with digest_count.get_lock():
                    digest_count.value += len(envelope.rcpt_tos)
                return "250 OK"
            for rcpt in envelope.rcpt_tos:
                other[rcpt.lower()] += 1
            if b"/confirm/" in raw:
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


# -- the load generator (child processes) ----------------------------------------------------------


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: writes a request, collects one response (our server
    always answers with Content-Length)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buf[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


class Pool:
    """Keep-alive connections to one app process: an idle one, or a new one (an open loop needs
    as many as there are requests in flight). A connection idle for KEEP_IDLE s is not reused:
    uvicorn closes it after 5 s, and a request racing that close would fail."""

    KEEP_IDLE = 4.0

    def __init__(self, port: int) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.idle: list[tuple[_Conn, float]] = []

    async def request(self, method: str, path: str, *, body: bytes = b"", ctype: str = "application/json",
                      ip: str = "", cookie: str = "") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: tidings-bench\r\n"
        if ip:
            head += f"X-Forwarded-For: {ip}\r\n"
        if cookie:
            head += f"Cookie: {cookie}\r\n"
        if method == "POST":
            head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        conn = None
        while self.idle and conn is None:
            conn, since = self.idle.pop()
            if conn.closed or time.monotonic() - since > self.KEEP_IDLE:
                if conn.transport is not None:
                    conn.transport.close()
                conn = None
        if conn is None:
            _t, conn = await asyncio.get_running_loop().create_connection(_Conn, "127.0.0.1", self.port)
        answer = await conn.request(head.encode() + b"\r\n" + body)
        if not conn.closed:
            self.idle.append((conn, time.monotonic()))
        return answer


@dataclass
class Result:
    """One generator process's share of one phase."""

    offered: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # ms
    errors: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    no_link: int = 0  # confirmations due while no confirmation email was waiting
    late: list[float] = field(default_factory=list)  # ms the generator sent after the due time
    inquiries: dict[str, str] = field(default_factory=dict)  # receipt -> email, answered 201
    signups: set[str] = field(default_factory=set)  # answered 202
    confirmed: set[str] = field(default_factory=set)  # confirm answered 200
    unsubscribed: set[int] = field(default_factory=set)  # one-click answered 200
    unsubscribe_sent: set[int] = field(default_factory=set)  # one-click sent (answered or not)
    unanswered: int = 0  # requests still unanswered 60 s after the phase ended
    seconds: float = 0.0
    cpu: float = 0.0  # the generator's own CPU seconds

    def merge(self, other: Result) -> None:
        self.offered.update(other.offered)
        for kind, values in other.latencies.items():
            self.latencies[kind] += values
        for kind, errors in other.errors.items():
            self.errors[kind].update(errors)
        self.no_link += other.no_link
        self.late += other.late
        self.inquiries.update(other.inquiries)
        self.signups |= other.signups
        self.confirmed |= other.confirmed
        self.unsubscribed |= other.unsubscribed
        self.unsubscribe_sent |= other.unsubscribe_sent
        self.unanswered += other.unanswered
        self.seconds = max(self.seconds, other.seconds)
        self.cpu += other.cpu


@dataclass
class Plan:
    """What one generator process needs: where the servers are, its share of the work."""

    index: int
    ports: list[int]
    cookies: list[str]  # its staff sessions
    unsubscribes: list[tuple[int, str]]  # (subscriber id, one-click path)
    admin_pages: list[str]


class Generator:
    def __init__(self, plan: Plan, links: Any) -> None:
        self.plan = plan
        self.links = links
        self.pools = [Pool(p) for p in plan.ports]
        self.rng = random.Random(plan.index)
        self.visitor = 0
        self.r = Result()

    def pool(self) -> Pool:
        return self.rng.choice(self.pools)

    def next_visitor(self) -> tuple[int, str]:
        self.visitor += 1
        n = self.plan.index * 10_000_000 + self.visitor
        return n, f"10.{self.plan.index}.{(self.visitor >> 8) % 256}.{self.visitor % 256}"

    async def timed(self, kind: str, due: float, call: Any, expect: int) -> bytes | None:
        try:
            status, body = await call()
        except (OSError, ConnectionError) as exc:
            self.r.errors[kind][type(exc).__name__] += 1
            return None
        if status != expect:
            self.r.errors[kind][f"HTTP {status}"] += 1
            return None
        self.r.latencies[kind].append((time.monotonic() - due) * 1000)
        return body

    async def form(self, kind: str, due: float, token_path: str, post_path: str, expect: int,
                   body: dict[str, Any], ip: str) -> bytes | None:
        """A visitor: their own form token (timed from `due`), then the form (timed from the token)."""
        pool = self.pool()
        self.r.offered["form token"] += 1
        page = await self.timed("form token", due, lambda: pool.request("GET", token_path, ip=ip), 200)
        if page is None:
            return None
        body["form_token"] = json.loads(page)["form_token"]
        data = json.dumps(body).encode()
        return await self.timed(kind, time.monotonic(), lambda: pool.request("POST", post_path, body=data, ip=ip),
                                expect)

    async def inquiry(self, due: float) -> None:
        n, ip = self.next_visitor()
        email = f"visitor{n}@load.example.org"
        body = {"name": f"Visitor {n}", "email": email, "topic": "anxiety", "contact_method": "email",
                "message": f"Load-test inquiry {n}: could ketamine-assisted therapy help with my anxiety?",
                "consent": True, "website": ""}
        answer = await self.form("inquiry", due, "/api/form-token", "/api/inquiries", 201, body, ip)
        if answer is not None:
            self.r.inquiries[str(json.loads(answer)["id"])] = email

    async def signup(self, due: float) -> None:
        n, ip = self.next_visitor()
        email = f"newreader{n}@load.example.org"
        body = {"email": email, "name": "New Reader", "topics": ["PTSD"]}
        if await self.form("signup", due, "/api/subscriptions", "/api/subscriptions", 202, body, ip) is not None:
            self.r.signups.add(email)

    async def confirm(self, due: float) -> None:
        try:
            email, token = self.links.get_nowait()
        except queue.Empty:
            self.r.no_link += 1
            return
        pool = self.pool()
        if await self.timed("confirm", due, lambda: pool.request("POST", f"/confirm/{token}"), 200) is not None:
            self.r.confirmed.add(email)

    async def unsubscribe(self, due: float) -> None:
        if not self.plan.unsubscribes:
            self.r.errors["unsubscribe"]["no audience member left"] += 1
            return
        subscriber_id, path = self.plan.unsubscribes.pop()
        self.r.unsubscribe_sent.add(subscriber_id)
        pool = self.pool()
        call = lambda: pool.request("POST", path, body=b"List-Unsubscribe=One-Click",  # noqa: E731
                                    ctype="application/x-www-form-urlencoded")
        if await self.timed("unsubscribe", due, call, 200) is not None:
            self.r.unsubscribed.add(subscriber_id)

    async def admin(self, due: float) -> None:
        cookie = self.rng.choice(self.plan.cookies)
        page = self.rng.choice(self.plan.admin_pages)
        pool = self.pool()
        await self.timed("admin", due, lambda: pool.request("GET", page, cookie=cookie), 200)

    async def run(self, seconds: float, rates: dict[str, float], stop: Any) -> Result:
        """Every kind at its rate (this process's share) for `seconds` or until `stop` is set;
        then wait for the answers still due."""
        self.r = Result()
        loop = asyncio.get_running_loop()
        cpu = time.process_time()
        start = loop.time() + 0.05
        end = start + seconds
        tasks: set[asyncio.Task[None]] = set()

        async def schedule(kind: str, rate: float) -> None:
            action = getattr(self, kind)
            gap = 1 / rate
            due = start + gap * (self.plan.index + 0.5) / GENERATORS  # the processes interleave
            while due < end and not stop.is_set():
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.r.late.append(max(0.0, loop.time() - due) * 1000)
                self.r.offered[kind] += 1
                task = asyncio.create_task(action(time.monotonic() - max(0.0, loop.time() - due)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                due += gap

        await asyncio.gather(*(schedule(k, r / GENERATORS) for k, r in rates.items() if r > 0))
        self.r.seconds = min(loop.time(), end) - start
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=60)
            self.r.unanswered = len(pending)
            for task in pending:
                task.cancel()
        self.r.cpu = time.process_time() - cpu
        return self.r


def run_generator(plan: Plan, links: Any, commands: Any, stop: Any) -> None:
    """A generator process: runs the phases the parent sends (`(seconds, rates)`; None ends it)."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    async def main() -> None:
        gen = Generator(plan, links)
        while True:
            command = await asyncio.to_thread(commands.recv)
            if command is None:
                return
            seconds, rates = command
            commands.send(await gen.run(seconds, rates, stop))

    asyncio.run(main())


# -- setup ---------------------------------------------------------------------------------------


async def recreate_database(name: str) -> None:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


async def drop_database(name: str) -> None:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


def bench_settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, secret_key=SECRET, base_url=BASE_URL, mail_from="Clinic <hello@clinic.test>")


async def prepare(engine: Any, db_url: str, subscribers: int) -> int:
    """Schema, the sample articles, the audience, the staff, and a digest (a draft): its id."""
    await migrate(engine)
    sessions = session_factory(engine)
    await import_articles(sessions, bench_settings(db_url), [str(SAMPLE / "feed.xml")])
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
        for i in range(STAFF):
            await create_staff_user(session, email=f"staff{i}@clinic.test", role="admin", password=PASSWORD)
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


def tidings_env(db_url: str, smtp_port: int, send_rate: int, extra: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMTP_", "DATABASE_", "SECRET_", "BASE_", "FORM_", "SEND_", "DKIM_", "WORKER_",
                                "TRUSTED_"))}
    env.update(DATABASE_URL=db_url, SECRET_KEY=SECRET, BASE_URL=BASE_URL, SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
               MAIL_FROM="Clinic <hello@clinic.test>", STAFF_INBOX="staff@clinic.test", FORM_MIN_SECONDS="0",
               TRUSTED_PROXIES="127.0.0.1/32", SEND_RATE=str(send_rate), LOG_LEVEL="warning",
               PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    for item in extra:
        name, _, value = item.partition("=")
        env[name] = value
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


async def sign_in(url: str, email: str) -> str:
    """A staff member's session cookie header, signed in through the login form."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        page = await c.get("/admin/login")
        token = re.search(r'name="form_token" value="([^"]+)"', page.text)
        assert token, "the sign-in page has a form token"
        r = await c.post("/admin/login", data={"email": email, "password": PASSWORD, "form_token": token.group(1)})
        if r.status_code != 303:
            raise SystemExit(f"admin sign-in failed: {r.status_code}")
        return "; ".join(f"{k}={v}" for k, v in c.cookies.items())


# -- checks ----------------------------------------------------------------------------------------


async def check(sessions: Any, stats: Result, campaign_id: int, digests: dict[str, int]) -> list[str]:
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
        if st != "sent" and (got != 0 or sid not in stats.unsubscribe_sent):
            problems.append(f"{email}: delivery '{st}' ({got} digests at the server), not an unsubscribe")
            break
    return problems


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# -- the run -------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, links: Any, digest_count: Any) -> None:
        self.args = args
        self.links = links
        self.digest_count = digest_count
        self.rates = {k: float(getattr(args, f"rate_{k}")) for k in DEFAULT_RATES}
        self.procs: dict[str, Proc] = {}
        self.pids: dict[str, int] = {}
        self.generators: list[tuple[Any, Any]] = []  # (process, pipe)
        self.stop = mp.get_context("fork").Event()
        self.results: list[Result] = []
        self.digest_done = False

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def start_generators(self, plans: list[Plan]) -> None:
        ctx = mp.get_context("fork")
        for plan in plans:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=run_generator, args=(plan, self.links, child, self.stop), daemon=True)
            p.start()
            self.generators.append((p, parent))
            self.pids[f"generator {plan.index + 1}"] = p.pid or 0

    async def load(self, seconds: float, until_digest_done: bool = False) -> Result:
        """The open-loop mix from every generator for `seconds` (or until the digest is done)."""
        self.stop.clear()
        for _p, pipe in self.generators:
            pipe.send((seconds, self.rates))
        waiting = [asyncio.to_thread(pipe.recv) for _p, pipe in self.generators]
        gathered = asyncio.gather(*waiting)
        if until_digest_done:
            while not gathered.done():
                if await self.digest_finished():
                    self.stop.set()
                    self.digest_done = True
                    break
                await asyncio.wait([gathered], timeout=0.25)
        merged = Result()
        for r in await gathered:
            merged.merge(r)
        self.results.append(merged)
        return merged

    async def digest_finished(self) -> bool:
        async with self.sessions() as session:
            status = await session.scalar(select(Campaign.status).where(Campaign.id == self.campaign_id))
        return status != "sending"

    def report(self, title: str, r: Result, cpu_before: dict[str, float], cpu_after: dict[str, float]) -> None:
        print(f"\n{title}  [load average {load_average()}]")
        print(f"{'kind':<13}{'offered/s':>10}{'done/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  errors")
        for kind in KINDS:
            lat = r.latencies.get(kind, [])
            errors = ", ".join(f"{what} ×{n}" for what, n in r.errors.get(kind, Counter()).items()) or "-"
            if kind == "confirm" and r.no_link:
                errors += f" (+{r.no_link} due with no confirmation email waiting)"
            secs = max(r.seconds, 0.001)
            print(f"{kind:<13}{r.offered[kind] / secs:>10.1f}{len(lat) / secs:>9.1f}{percentile(lat, 50):>9.0f}"
                  f"{percentile(lat, 99):>9.0f}{max(lat, default=float('nan')):>9.0f}  {errors}")
        gen = sum(cpu_after.get(k, 0) - cpu_before.get(k, 0) for k in cpu_after if k.startswith("generator"))
        if r.unanswered:
            print(f"{r.unanswered} requests still unanswered 60 s after the phase: given up (not counted)")
        print(f"generators: {gen:.1f} s of CPU in {r.seconds:.1f} s ({gen / max(r.seconds, 0.001):.0%} of a core), "
              f"sending late p99 {percentile(r.late, 99):.1f} ms")
        print(self.cpu_line(cpu_before, cpu_after, r.seconds))

    def cpu_line(self, before: dict[str, float], after: dict[str, float], seconds: float) -> str:
        parts = [f"{name} {(after[name] - before.get(name, 0)) / max(seconds, 0.001):.0%}" for name in after
                 if not name.startswith("generator")]
        return "CPU (share of a core): " + ", ".join(parts)

    async def run(self) -> int:
        args = self.args
        db = args.database
        db_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}"
        await recreate_database(db)
        engine = create_engine(db_url)
        self.sessions = sessions = session_factory(engine)
        logs = Path(args.logs)
        try:
            t0 = time.perf_counter()
            self.campaign_id = campaign_id = await prepare(engine, db_url, args.subscribers)
            print(f"setup: {args.subscribers:,} confirmed subscribers, the sample articles, {STAFF} staff "
                  f"({time.perf_counter() - t0:.1f} s); load average {load_average()}")
            env = tidings_env(db_url, args.sink_port, args.send_rate, args.env)
            ports = [free_port() for _ in range(2)]
            for i, port in enumerate(ports):
                self.procs[f"app {i + 1}"] = Proc(["serve", "--no-worker", "--port", str(port)], env,
                                                  logs / f"serve{i}.log")
            self.procs["worker"] = Proc(["worker"], env, logs / "worker.log")
            for i, port in enumerate(ports):
                await wait_healthy(f"http://127.0.0.1:{port}", self.procs[f"app {i + 1}"])
            self.pids = {name: p.proc.pid for name, p in self.procs.items()}
            self.pids["sink"] = args.sink_pid
            cookies = [await sign_in(f"http://127.0.0.1:{ports[i % 2]}", f"staff{i}@clinic.test") for i in range(STAFF)]
            pages = ["/admin/", "/admin/inquiries", "/admin/inquiries?status=new", "/admin/inquiries?q=anxiety",
                     "/admin/subscribers", "/admin/subscribers?status=confirmed", "/admin/subscribers?q=reader12",
                     "/admin/campaigns", f"/admin/campaigns/{campaign_id}", f"/admin/campaigns/{campaign_id}/progress"]
            tokens = Tokens(bench_settings(db_url))
            rng = random.Random(2026)
            ids = rng.sample(range(1, args.subscribers + 1), min(args.subscribers, 20_000))
            paths = [(i, unsubscribe_url(bench_settings(db_url), tokens, i).removeprefix(BASE_URL)) for i in ids]
            self.start_generators([Plan(g, ports, cookies[g::GENERATORS], paths[g::GENERATORS], pages)
                                   for g in range(GENERATORS)])
            extra = "; " + " ".join(args.env) if args.env else ""
            print("load (per second, open loop): " + ", ".join(f"{k} {r:g}" for k, r in self.rates.items())
                  + f"; {GENERATORS} generator processes; 2 app processes, 1 worker (SEND_RATE "
                  + f"{args.send_rate or '0 = unlimited'}{extra}); logs in {logs}")

            await self.load(args.warmup_seconds)  # connections, caches, confirmation emails in flight
            if args.baseline_seconds:
                before = self.cpu()
                r = await self.load(args.baseline_seconds)
                self.report(f"baseline: {r.seconds:.0f} s of the load, no digest", r, before, self.cpu())

            async with sessions.begin() as session:
                queued = await q.start_campaign(session, campaign_id=campaign_id, now=utcnow())
            print(f"\ndigest {campaign_id} queued for {queued:,} subscribers; load average {load_average()}")
            while self.digest_count.value == 0:  # noqa: ASYNC110 - the worker's first batch: rendering, connections
                await asyncio.sleep(0.05)
            await asyncio.sleep(1)
            before, n0, t1 = self.cpu(), self.digest_count.value, time.monotonic()
            await asyncio.sleep(args.alone_seconds)
            n1, t2 = self.digest_count.value, time.monotonic()
            alone = (n1 - n0) / (t2 - t1)
            print(f"digest alone: {n1 - n0:,} in {t2 - t1:.1f} s = {alone:,.0f}/s  [load average {load_average()}]")
            print(self.cpu_line(before, self.cpu(), t2 - t1))

            before, n1, t1 = self.cpu(), self.digest_count.value, time.monotonic()
            r = await self.load(args.seconds, until_digest_done=True)
            n2, t2 = self.digest_count.value, time.monotonic()
            during = (n2 - n1) / max(r.seconds, 0.001)
            ended = " (the digest finished: the window ended early)" if self.digest_done else ""
            self.report(f"{r.seconds:.0f} s of the load while the digest sends{ended}", r, before, self.cpu())
            print(f"digest during the load: {n2 - n1:,} in {r.seconds:.1f} s = {during:,.0f}/s = "
                  f"{during / max(alone, 0.001):.2f} of its rate alone ({alone:,.0f}/s)")
            verdict = self.verdict(r, during / max(alone, 0.001))

            t3 = time.monotonic()
            deadline = t3 + args.drain_seconds
            while not await self.digest_finished() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.25)
            n3, t4 = self.digest_count.value, time.monotonic()
            if n3 - n2 and t4 - t3 >= 2:
                print(f"digest alone after the load: {n3 - n2:,} in {t4 - t3:.1f} s = {(n3 - n2) / (t4 - t3):,.0f}/s")
            for pipe in (p for _g, p in self.generators):
                pipe.send(None)
            for proc in self.procs.values():
                proc.stop()
            self.procs = {}
            args.stop_sink.set()
            counts = await asyncio.to_thread(args.sink_results.get, True, 60)
            digests: dict[str, int] = counts["digests"]
            if not await self.digest_finished():
                print(f"FAILED: the digest did not finish within --drain-seconds ({args.drain_seconds} s)")
                return 1
            s = Result()
            for one in self.results:
                s.merge(one)
            problems = await check(sessions, s, campaign_id, digests)
            print(f"checks: {len(s.inquiries):,} inquiries, {len(s.signups):,} signups, {len(s.confirmed):,} "
                  f"confirmations, {len(s.unsubscribed):,} unsubscribes: each stored as answered; "
                  f"{len(digests):,} recipients got the digest, {sum(digests.values()) - len(digests)} duplicates")
            for p in problems:
                print(f"FAILED: {p}")
            if not problems:
                print("all checks passed")
            print(verdict)
            return 1 if problems else 0
        finally:
            for _g, pipe in self.generators:
                with contextlib.suppress(OSError):
                    pipe.send(None)
            for proc in self.procs.values():
                proc.stop()
            await engine.dispose()
            await drop_database(db)

    def verdict(self, r: Result, ratio: float) -> str:
        public = [x for k in PUBLIC for x in r.latencies.get(k, [])]
        admin = r.latencies.get("admin", [])
        ok = percentile(public, 99) < 100 and percentile(admin, 99) < 300 and ratio >= 0.5
        return (f"targets during the digest: public forms p99 {percentile(public, 99):.0f} ms (< 100), admin p99 "
                f"{percentile(admin, 99):.0f} ms (< 300), digest {ratio:.2f} of its rate alone (>= 0.5): "
                f"{'met' if ok else 'NOT met'}")


def cli() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="the load while the digest sends")
    parser.add_argument("--baseline-seconds", type=int, default=15,
                        help="the load first, without the digest (0 = skip)")
    parser.add_argument("--alone-seconds", type=int, default=10, help="the digest alone, before the load")
    parser.add_argument("--warmup-seconds", type=int, default=5)
    parser.add_argument("--subscribers", type=int, default=20_000, help="the digest's audience")
    parser.add_argument("--send-rate", type=int, default=0, help="SEND_RATE of the worker (0 = unlimited)")
    for kind, rate in DEFAULT_RATES.items():
        parser.add_argument(f"--rate-{kind}", type=float, default=rate, help=f"{kind}s per second (default {rate:g})")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the app processes and the worker (repeatable)")
    parser.add_argument("--drain-seconds", type=int, default=300, help="how long to wait for the digest afterwards")
    parser.add_argument("--database", default="tidings_bench_load")
    parser.add_argument("--logs", default=str(Path(tempfile.gettempdir()) / "tidings-bench-load"),
                        help="where the processes' logs go")
    args = parser.parse_args()
    Path(args.logs).mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("fork")
    links, results, stop, count = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("q", 0)
    args.sink_port = free_port()
    sink = ctx.Process(target=run_sink, args=(args.sink_port, links, results, stop, count), daemon=True)
    sink.start()
    args.sink_pid, args.stop_sink, args.sink_results = sink.pid, stop, results
    try:
        return asyncio.run(Bench(args, links, count).run())
    finally:
        stop.set()
        sink.join(10)
        if sink.is_alive():
            sink.kill()


if __name__ == "__main__":
    raise SystemExit(cli())
