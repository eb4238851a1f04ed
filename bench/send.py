"""Benchmark: a digest of the sample articles to 20,000 confirmed subscribers on PostgreSQL, sent
by one or two real `tidings worker` processes to Postfix's smtp-sink on loopback with SEND_RATE
unlimited, DKIM off and then DKIM on (a 2048-bit RSA key), against a fair ceiling measured in
the same run. Then 100,000 subscribers: queueing time and worker memory.

    .venv/bin/python bench/send.py [--subscribers 20000] [--workers 1|2] [--concurrency 8]
                                   [--large 100000] [--skip-large-send] [--dkim on|off|both]

- The workers run as in production: started and ready (`--heartbeat`) before the campaign is
  queued. End to end runs from the start of queueing the deliveries (one INSERT … SELECT, as
  `campaign send` and the admin's Send button do) until the sink has received every message and
  the campaign is marked sent: queueing, the workers' polling and the writes of the results
  are all inside it.
- What counts is what the sink received: smtp-sink's own message counter (`-c`), not our
  database (both are printed and must agree). The sink also dumps every message (`-d`, into a
  directory in /dev/shm), so the mean size of the messages actually sent is measured, not
  estimated, and a DKIM-signed one is verified with dkimpy when it is installed.
- The ceiling is Postfix's smtp-source to an identical sink, with as many sessions as our
  connections (workers x SEND_CONCURRENCY), reusing them (`-d`), sending as many messages of the
  same mean size (its own headers counted in; the size it achieved is printed beside ours).
- `uptime`'s load average is printed at the start and at the end: the machine is shared.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and the Debian package `postfix` (for
/usr/sbin/smtp-sink and /usr/sbin/smtp-source). Creates and drops tidings_bench_digests.
BENCH_PROFILE=PATH profiles the first worker of each send with cProfile in CPU time (PATH.<port>).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
PROFILE = os.environ.get("BENCH_PROFILE")  # a path prefix: cProfile (CPU time) of the first worker of each send
# cProfile measuring CPU time, not wall time: on a shared machine a wall-time profile charges
# whatever call was running when the process was preempted.
PROFILER = """import cProfile, runpy, sys, time
out = sys.argv.pop(1)
profile = cProfile.Profile(time.process_time)
sys.argv[0] = "tidings"
try:
    profile.runcall(runpy.run_module, "service.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
profile.dump_stats(out)
sys.exit(code)
"""
TOPICS = ("depression", "anxiety", "PTSD", "chronic pain", "OCD", "other")
SHM = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 - mkdtemp in it: the dumps stay in memory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Sink:
    """Postfix's smtp-sink on a port of its own, counting (`-c`) and dumping (`-d`) every message."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="tidings-sink-", dir=SHM))
        self.folder.chmod(0o777)  # smtp-sink writes as `nobody`
        self.output = self.folder.with_suffix(".out")
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen([SINK, "-u", "nobody", "-c", "-d", str(self.folder / "%H%M%S"),
                                          f"127.0.0.1:{self.port}", "1024"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise SystemExit("smtp-sink did not start")

    def count(self) -> int:
        """Messages received so far (the last `mesg=N` of its counter)."""
        with self.output.open("rb") as out:
            out.seek(max(0, out.seek(0, os.SEEK_END) - 200))
            counts = re.findall(rb"mesg=(\d+)", out.read())
        return int(counts[-1]) if counts else 0

    def stop(self) -> int:
        """Stop the sink: the number of messages it received (its own counter)."""
        self.proc.terminate()
        self.proc.wait(10)
        counts = re.findall(rb"mesg=(\d+)", self.output.read_bytes())
        return int(counts[-1]) if counts else 0

    def sizes(self) -> tuple[float, bytes | None]:
        """The mean size of the received messages and the first of them (one at a time: this
        process stays small, and so do the workers it forks)."""
        total = count = 0
        first = None
        for message in self.messages():
            total, count = total + len(message), count + 1
            first = first or message
        return (total / count if count else 0.0), first

    def messages(self) -> Iterator[bytes]:
        """The received messages as they were sent (the sink's own lines removed, CRLF line ends)."""
        for path in self.folder.iterdir():
            lines = path.read_bytes().split(b"\n")
            start = 0
            while start < len(lines) and lines[start].startswith(b"X-"):  # X-Client-Addr, X-Rcpt-Args …
                start += 1
            if start < len(lines) and lines[start].startswith(b"Received:"):
                start += 1
                while start < len(lines) and lines[start][:1] in (b" ", b"\t"):
                    start += 1
            yield b"\r\n".join(lines[start:])

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.output.unlink(missing_ok=True)


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


async def new_campaign(sessions, subject: str) -> int:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        ids = (await session.scalars(text("SELECT id FROM articles ORDER BY published_at DESC"))).all()
        campaign = await q.create_campaign(session, subject=subject, article_ids=list(ids), now=utcnow(),
                                           intro="Five articles from the clinic's blog.")
        return campaign.id


async def queue(sessions, campaign_id: int) -> int:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        return await q.start_campaign(session, campaign_id=campaign_id, now=utcnow())


def dkim_key(folder: Path) -> tuple[Path, bytes]:
    """A 2048-bit RSA key's PEM file, and its public key as a DNS TXT record's p= value."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, base64.b64encode(public)


def peak_rss(pid: int) -> float:
    """The process's peak resident set since its exec (VmHWM), in MB; 0 when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) / 1024 if found else 0.0


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc; gone ones count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def postgres_pids(sessions) -> list[int]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        rows = await session.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :n"), {"n": DB_NAME})
        return [int(r[0]) for r in rows]


class Workers:
    """`--workers` long-running `tidings worker` processes, as in production: started and ready
    (their heartbeat file written) before the campaign is queued, stopped after it is sent."""

    def __init__(self, port: int, args: argparse.Namespace, dkim: Path | None, logs: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEND_", "SMTP_", "DKIM_"))}
        env.update(DATABASE_URL=DB_URL, SECRET_KEY=SECRET, SMTP_URL=f"smtp://127.0.0.1:{port}", SEND_RATE="0",
                   SEND_CONCURRENCY=str(args.concurrency), BASE_URL="https://news.clinic.example",
                   MAIL_FROM="Clinic <hello@clinic.example>", PYTHONPATH=str(ROOT), LOG_LEVEL="warning")
        if dkim is not None:
            env.update(DKIM_PRIVATE_KEY_FILE=str(dkim), DKIM_SELECTOR="bench")
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        beats = []
        for n in range(args.workers):
            beat = logs / f"ready-{port}-{n}"
            command = [sys.executable, "-m", "service.cli", "worker", "--heartbeat", str(beat)]
            if PROFILE and n == 0:
                command[1:3] = ["-c", PROFILER, f"{PROFILE}.{port}"]
            with (logs / f"worker-{port}-{n}.log").open("wb") as out:
                self.procs.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT))
            beats.append(beat)
        deadline = time.time() + 120
        while not all(b.exists() for b in beats):
            if time.time() > deadline or any(p.poll() is not None for p in self.procs):
                self.stop()
                raise SystemExit("a worker did not start:\n" + self.output())
            time.sleep(0.05)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def output(self) -> str:
        return "\n".join(f.read_text() for f in sorted(self.logs.glob("worker-*.log")))

    def stop(self) -> float:
        """SIGTERM every worker and wait: peak RSS of the largest, in MB. Read from VmHWM while it
        runs, not from wait4's ru_maxrss: Linux counts in that the pages of this (large) bench
        process that the child shared between fork and exec, which made a worker look ~100-270 MB
        bigger than it ever was."""
        peak = max(map(peak_rss, self.pids), default=0.0)
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(60)
        return peak


@dataclass
class Run:
    seconds: float  # end to end: queueing started .. the sink had every message and the campaign was 'sent'
    queued: int
    queue_seconds: float
    received: int  # smtp-sink's counter
    sent: int  # our database's count
    steady: float  # msgs/s from the first to the last sent_at
    mean_size: float
    rss: float
    cpu_ms: tuple[float, float, float]  # per message: workers, PostgreSQL backends, smtp-sink
    verified: str


async def send_digest(sessions, args: argparse.Namespace, subject: str, dkim: tuple[Path, bytes] | None,
                      logs: Path) -> Run:  # type: ignore[no-untyped-def]
    campaign_id = await new_campaign(sessions, subject)
    sink = Sink()
    workers = Workers(sink.port, args, dkim[0] if dkim else None, logs)
    try:
        await asyncio.sleep(1.5)  # the workers' first idle polls are over
        pg = await postgres_pids(sessions)
        cpu0 = (cpu_of(workers.pids), cpu_of(pg), cpu_of([sink.proc.pid]))
        started = time.perf_counter()
        queued = await queue(sessions, campaign_id)
        queue_seconds = time.perf_counter() - started
        while True:
            async with sessions() as session:
                status = await q.campaign_status(session, campaign_id=campaign_id)
            if status == "sent" and sink.count() >= queued:
                break
            if any(p.poll() is not None for p in workers.procs):
                raise SystemExit("a worker stopped:\n" + workers.output())
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - started
        pg = sorted(set(pg) | set(await postgres_pids(sessions)))
        cpu1 = (cpu_of(workers.pids), cpu_of(pg), cpu_of([sink.proc.pid]))
    finally:
        rss = workers.stop()
        received = sink.stop()
    try:
        mean, first = sink.sizes()
    finally:
        sink.remove()
    async with sessions() as session:
        stats = await campaign_stats(session, campaign_id=campaign_id, now=utcnow())
        span = (await session.execute(text(
            "SELECT extract(epoch FROM max(sent_at) - min(sent_at)) FROM deliveries WHERE campaign_id = :c"),
            {"c": campaign_id})).scalar()
    verified = "-"
    if dkim is not None and first is not None:
        verified = verify(first, dkim[1])
    steady = stats.sent / float(span) if span else 0.0
    per = tuple((b - a) * 1000 / max(1, received) for a, b in zip(cpu0, cpu1, strict=True))
    return Run(seconds, queued, queue_seconds, received, stats.sent, steady, mean, rss, per,  # type: ignore[arg-type]
               verified)


def verify(raw: bytes, public: bytes) -> str:
    try:
        import dkim
    except ImportError:
        return "not checked (dkimpy is a test dependency: ./dev test --version installs it)"

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return b"v=DKIM1; k=rsa; p=" + public

    return "a received message verifies with dkimpy" if dkim.verify(raw, dnsfunc=dns) else "DOES NOT VERIFY"


def ceiling(messages: int, size: float, sessions: int) -> tuple[float, int, float, float, float]:
    """smtp-source to a sink like ours: (seconds, messages the sink received, their mean size,
    smtp-source's and the sink's CPU ms per message)."""
    probe = Sink()
    try:
        subprocess.run([SOURCE, "-d", "-s", "1", "-m", "1", "-l", "1000", "-f", "hello@clinic.example",
                        "-t", "reader@bench.example.org", f"127.0.0.1:{probe.port}"], check=True, timeout=60)
        probe.stop()
        overhead = len(next(probe.messages())) - 1000  # smtp-source's own header lines
    finally:
        probe.remove()
    sink = Sink()
    try:
        sink0 = cpu_of([sink.proc.pid])
        started = time.perf_counter()
        length = str(max(1, round(size) - overhead))
        source = subprocess.Popen([SOURCE, "-d", "-s", str(sessions), "-m", str(messages), "-l", length, "-f",
                                   "hello@clinic.example", "-t", "reader@bench.example.org", f"127.0.0.1:{sink.port}"])
        _pid, status, usage = os.wait4(source.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit("smtp-source failed")
        sink_cpu = cpu_of([sink.proc.pid]) - sink0
        received = sink.stop()
        ceiling_size = sink.sizes()[0]
    finally:
        sink.stop()
        sink.remove()
    per = 1000 / max(1, received)
    return (seconds, received, ceiling_size, (usage.ru_utime + usage.ru_stime) * per,
            sink_cpu * per)


def report(label: str, run: Run, ceiling_rate: float | None) -> None:
    rate = run.received / run.seconds
    ratio = f" = {rate / ceiling_rate:.2f} of the ceiling" if ceiling_rate else ""
    print(f"{label}")
    print(f"  end to end:            {run.received:,} messages received by the sink in {run.seconds:.2f} s = "
          f"{rate:,.0f} msgs/s{ratio}")
    print(f"  queueing:              {run.queued:,} deliveries in {run.queue_seconds:.2f} s (inside end to end)")
    print(f"  steady state:          {run.steady:,.0f} msgs/s (first to last sent_at)")
    cores = os.cpu_count() or 1
    print(f"  CPU per message:       workers {run.cpu_ms[0]:.2f} ms, PostgreSQL {run.cpu_ms[1]:.2f} ms, "
          f"smtp-sink {run.cpu_ms[2]:.2f} ms: at most {cores * 1000 / sum(run.cpu_ms):,.0f} msgs/s if the "
          f"{cores} cores did nothing else")
    print(f"  check:                 sink counted {run.received:,}, database says {run.sent:,} sent; "
          f"mean size {run.mean_size:,.0f} bytes; worker peak RSS {run.rss:.0f} MB")
    if run.verified != "-":
        print(f"  DKIM:                  {run.verified}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1, help="`campaign send` processes")
    parser.add_argument("--concurrency", type=int, default=8, help="SEND_CONCURRENCY (SMTP connections per worker)")
    parser.add_argument("--dkim", choices=("on", "off", "both"), default="both")
    parser.add_argument("--large", type=int, default=100_000, help="0: skip the large campaign")
    parser.add_argument("--skip-large-send", action="store_true", help="only queue the large campaign")
    args = parser.parse_args()
    for tool in (SINK, SOURCE):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install -y postfix")

    print(f"load at the start: {load()}")
    await recreate_database()
    engine = create_engine(DB_URL)
    sessions = session_factory(engine)
    logs = Path(tempfile.mkdtemp(prefix="tidings-bench-send-"))
    try:
        await migrate(engine)
        settings = Settings(database_url=DB_URL, secret_key=SECRET, base_url="https://news.clinic.example",
                            mail_from="Clinic <hello@clinic.example>", send_rate=0)
        await import_articles(sessions, settings, [str(SAMPLE / "feed.xml")])
        await add_subscribers(engine, 1, args.subscribers)
        connections = args.workers * args.concurrency
        print(f"== {args.subscribers:,} subscribers; {args.workers} worker process(es) x SEND_CONCURRENCY "
              f"{args.concurrency}; SEND_RATE unlimited; PostgreSQL; smtp-sink on loopback ==")
        runs = {}
        if args.dkim in ("off", "both"):
            runs["off"] = await send_digest(sessions, args, "Bench digest", None, logs)
        if args.dkim in ("on", "both"):
            runs["on"] = await send_digest(sessions, args, "Bench digest, signed", dkim_key(logs), logs)
        size = (runs.get("off") or runs["on"]).mean_size
        messages = (runs.get("off") or runs["on"]).received
        seconds, received, ceiling_size, source_cpu, sink_cpu = ceiling(messages, size, connections)
        rate = received / seconds
        print(f"ceiling (smtp-source -d, {connections} sessions reused): {received:,} messages of {ceiling_size:,.0f} "
              f"bytes (ours: {size:,.0f}) received in {seconds:.2f} s = {rate:,.0f} msgs/s")
        cores = os.cpu_count() or 1
        print(f"  CPU per message:       smtp-source {source_cpu:.2f} ms, smtp-sink {sink_cpu:.2f} ms: at most "
              f"{cores * 1000 / (source_cpu + sink_cpu):,.0f} msgs/s if the {cores} cores did nothing else")
        if "off" in runs:
            report("DKIM off (target: end to end >= 0.4 of the ceiling)", runs["off"], rate)
        if "on" in runs:
            report("DKIM on, RSA-2048 (target: >= 1,000 msgs/s end to end)", runs["on"], rate)

        if args.large:
            print(f"== {args.large:,} subscribers ==")
            await add_subscribers(engine, args.subscribers + 1, args.large)
            large_id = await new_campaign(sessions, "Bench digest, large")
            if args.skip_large_send:
                started = time.perf_counter()
                queued = await queue(sessions, large_id)
                print(f"  queue deliveries:      {queued:,} rows in {time.perf_counter() - started:.2f} s")
            else:
                large = await send_digest(sessions, args, "Bench digest, large", None, logs)
                report(f"DKIM off, {args.large:,} subscribers", large, None)
                small = runs.get("off") or runs["on"]
                print(f"  worker peak RSS {large.rss:.0f} MB vs {small.rss:.0f} MB for {args.subscribers:,}")
    finally:
        await engine.dispose()
        await drop_database()
        shutil.rmtree(logs, ignore_errors=True)
        print(f"load at the end: {load()}")


if __name__ == "__main__":
    asyncio.run(main())
