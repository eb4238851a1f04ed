"""Benchmark: outbound webhooks, 20,000 events to a local receiver over real HTTP.

    ./dev bench webhooks [--events 20000] [--rate 2000] [--workers 1] [--concurrency 16] [--sqlite]

A fresh PostgreSQL database (`tidings_bench_webhooks`, or BENCH_PG_DB; dropped afterwards), or
a SQLite file with --sqlite, migrated, with one endpoint subscribed to `campaign.sent`.

- Receiver: a separate process, a plain asyncio HTTP/1.1 server on 127.0.0.1 (the tests'
  receiver) that checks every request with the `standardwebhooks` library (answering 401
  when one does not verify) and notes its webhook-id and arrival time.
- Baseline, same run: the receiver's ceiling: the same number of pre-signed requests posted by
  the webhook HTTP client alone (WEBHOOK_CONCURRENCY keep-alive connections), no database.
- Run: a producer queues EVENTS events through `queue_event` (the hook the domain functions
  call) from 4 concurrent producers in transactions of 50, paced at --rate events/s (0, the
  default: as fast as they go), while
  --workers WebhookWorker loops (in this process, as `tidings worker` runs them) deliver.
  Deliveries/s is events over the time from the first event to the last delivery; latency is
  from each event's timestamp to its arrival at the receiver (p50, p99, max).
- Checks: every event arrived, verified, none twice (by webhook-id), every row `delivered`.

Producer, workers and receiver share the machine's cores with PostgreSQL: the figures are a
lower bound. The first line gives the load average (`uptime`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
PG_DB = os.environ.get("BENCH_PG_DB", "tidings_bench_webhooks")
SECRET = secrets.token_urlsafe(48)


# -- the receiver (its own process) -----------------------------------------------------------


def serve(port_file: str, out_file: str, whsecret: str, port: int) -> None:
    from tests.webhooks.receiver import Receiver

    async def main() -> None:
        receiver = await Receiver(secrets=[whsecret], port=port).start()
        arrivals: list[tuple[str, float, str]] = []
        original = receiver.received

        class Log(list):  # type: ignore[type-arg]
            def append(self, item) -> None:  # type: ignore[no-untyped-def]
                stamp = json.loads(item.body).get("timestamp", "") if item.verified else ""
                arrivals.append((item.msg_id if item.verified else "", time.time(), stamp))

        receiver.received = Log(original)
        Path(port_file).write_text(str(receiver.port))  # noqa: ASYNC240 (once, before any request)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        Path(out_file).write_text(json.dumps(arrivals))  # noqa: ASYNC240 (once, after the run)
        await receiver.stop()

    asyncio.run(main())


def start_receiver(tmp: Path, whsecret: str, port: int = 0) -> tuple[subprocess.Popen[bytes], int, Path]:
    port_file, out_file = tmp / "port", tmp / "arrivals.json"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file), str(out_file), whsecret, str(port)])
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return proc, int(port_file.read_text()), out_file
        time.sleep(0.05)
    raise SystemExit("the receiver did not start")


def stop_receiver(proc: subprocess.Popen[bytes], out_file: Path) -> list[tuple[str, float, str]]:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    return [tuple(a) for a in json.loads(out_file.read_text())]  # type: ignore[misc]


# -- database ---------------------------------------------------------------------------------


async def fresh_database(sqlite: Path | None) -> str:
    from sqlalchemy import text

    from service.db import create_engine, migrate

    if sqlite is not None:
        url = f"sqlite+aiosqlite:///{sqlite}"
    else:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{PG_DB}"'))
        await admin.dispose()
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_DB
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    return url


async def drop_database() -> None:
    from sqlalchemy import text

    from service.db import create_engine

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
    await admin.dispose()


# -- the two measurements ----------------------------------------------------------------------


async def baseline(port: int, secret: str, events: int, concurrency: int) -> float:
    """Requests/s of the webhook client alone against the receiver (no database)."""
    from service.webhooks.client import WebhookClient
    from service.webhooks.events import payload_body
    from service.webhooks.guard import check_url
    from service.webhooks.signing import new_msg_id, webhook_headers

    client = WebhookClient(timeout=10)
    target = check_url(f"http://127.0.0.1:{port}/hooks", allow_http=True)
    body = payload_body("campaign.sent", dt.datetime.now(dt.UTC), {"id": 0}).encode()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(events):
        queue.put_nowait(i)
    failures = 0

    async def one_connection() -> None:
        nonlocal failures
        while not queue.empty():
            queue.get_nowait()
            headers = webhook_headers([secret], msg_id=new_msg_id(), timestamp=int(time.time()), body=body)
            answer = await client.post(target, ["127.0.0.1"], headers, body)
            failures += answer.status != 200

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    client.close()
    if failures:
        raise SystemExit(f"baseline: {failures} requests were not answered 200")
    return events / elapsed


def bench_settings(url: str, concurrency: int):  # type: ignore[no-untyped-def]
    from service.settings import Settings

    return Settings(database_url=url, secret_key=SECRET, webhook_allow_http=True, webhook_allow_private=True,
                    webhook_concurrency=concurrency)


async def register(url: str, port: int) -> str:
    """Register the receiver's endpoint through the admin's action; its secret."""
    from service.admin.audit import Actor
    from service.db import create_engine, session_factory, utcnow
    from service.webhooks.actions import register_endpoint

    engine = create_engine(url)
    async with session_factory(engine).begin() as session:
        _ep, whsecret = await register_endpoint(session, settings=bench_settings(url, 1), actor=Actor(name="bench"),
                                                url=f"http://127.0.0.1:{port}/hooks", events=["campaign.sent"],
                                                now=utcnow())
    await engine.dispose()
    return whsecret


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def work(url: str, concurrency: int, owner: str, done_file: str) -> None:
    """A worker process: WebhookWorker batches (as the `webhooks` loop runs them) until the
    producer is done and nothing is left."""
    from service.db import create_engine, session_factory
    from service.webhooks.delivery import WebhookWorker

    async def main() -> None:
        engine = create_engine(url)
        worker = WebhookWorker(session_factory(engine), bench_settings(url, concurrency), owner=owner)
        idle = 0
        while idle < 3:
            if await worker.run_once():
                idle = 0
            elif Path(done_file).exists():  # noqa: ASYNC240 (a stat between idle sleeps)
                idle += 1
                await asyncio.sleep(0.2)
            else:
                await asyncio.sleep(0.02)  # the loop's interval is 1 s when idle; shorter here
        await worker.settle()
        worker.close()
        await engine.dispose()

    asyncio.run(main())


async def run(url: str, tmp: Path, events: int, rate: float, workers: int, concurrency: int,
              backlog: bool = False) -> tuple[float, dict[str, int]]:
    """Queue the events (4 producers in this process) while `workers` worker processes deliver;
    (the time the first event was queued, the rows by status)."""
    from sqlalchemy import func, select

    from service.db import create_engine, session_factory
    from service.webhooks.events import queue_event
    from service.webhooks.models import WebhookDelivery

    engine = create_engine(url)
    sessions = session_factory(engine)
    done = tmp / "produced"
    started = time.time()
    batch, producers = 50, 4
    starts = iter(range(0, events, batch))

    async def produce() -> None:
        for first in starts:
            if rate:
                ahead = first / rate - (time.time() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            async with sessions.begin() as session:
                for i in range(first, min(events, first + batch)):
                    await queue_event(session, event="campaign.sent", data={"id": i})

    def start_workers() -> list[subprocess.Popen[bytes]]:
        return [subprocess.Popen([sys.executable, __file__, "--work", url, str(concurrency), f"bench-{n}", str(done)])
                for n in range(workers)]

    if backlog:  # every event queued first: the workers' own rate
        await asyncio.gather(*(produce() for _ in range(producers)))
        procs = start_workers()
    else:
        procs = start_workers()
        await asyncio.gather(*(produce() for _ in range(producers)))
    done.write_text("done")  # noqa: ASYNC240
    await asyncio.gather(*(asyncio.to_thread(proc.wait) for proc in procs))
    async with sessions() as session:
        counts = dict((await session.execute(select(WebhookDelivery.status, func.count())
                                             .group_by(WebhookDelivery.status))).all())
    await engine.dispose()
    return started, {k: int(v) for k, v in counts.items()}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="events queued per second (0: as fast as 4 producers go)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16, help="WEBHOOK_CONCURRENCY")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--backlog", action="store_true", help="queue every event before the workers start")
    args = parser.parse_args()
    print(f"uptime: {uptime()}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        url = await fresh_database(tmp / "bench.db" if args.sqlite else None)
        from service.webhooks.signing import new_secret

        base_secret = new_secret()
        proc, port, out = start_receiver(tmp, base_secret)
        try:
            ceiling = await baseline(port, base_secret, args.events, args.concurrency)
        finally:
            stop_receiver(proc, out)
        print(f"baseline: receiver ceiling with the webhook client alone: {ceiling:,.0f} requests/s "
              f"({args.concurrency} connections, no database)")
        port = free_port()
        whsecret = await register(url, port)
        proc, port, out = start_receiver(tmp, whsecret, port)
        try:
            started, counts = await run(url, tmp, args.events, args.rate, args.workers, args.concurrency,
                                        args.backlog)
        finally:
            arrivals = stop_receiver(proc, out)
        if not args.sqlite:
            await drop_database()
    verified = [a for a in arrivals if a[0]]
    ids = [a[0] for a in verified]
    last = max(a[1] for a in arrivals) if arrivals else started
    latencies = [a[1] - dt.datetime.fromisoformat(a[2].replace("Z", "+00:00")).timestamp() for a in verified]
    backend = "SQLite" if args.sqlite else "PostgreSQL"
    pace = f"paced at {args.rate:g}/s" if args.rate else "unpaced"
    print(f"run ({backend}, {args.workers} worker process(es), WEBHOOK_CONCURRENCY={args.concurrency}, events "
          f"{'all queued first' if args.backlog else pace}): {args.events:,} events, {len(arrivals):,} requests, "
          f"{len(verified):,} verified")
    first = min(a[1] for a in arrivals) if arrivals else started
    print(f"deliveries/s: {args.events / (last - started):,.0f} (first event to last delivery, "
          f"{last - started:.1f} s); "
          f"{len(arrivals) / max(last - first, 1e-9):,.0f} from first to last delivery")
    if latencies:
        print(f"event to delivery: p50 {quantile(latencies, 0.5) * 1000:.0f} ms, "
              f"p99 {quantile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    print(f"rows: {counts}")
    print(f"uptime: {uptime()}")
    problems = []
    if len(set(ids)) != args.events:
        problems.append(f"{args.events - len(set(ids))} events never arrived verified")
    if len(ids) != len(set(ids)):
        problems.append(f"{len(ids) - len(set(ids))} arrived twice")
    if counts != {"delivered": args.events}:
        problems.append(f"rows not all delivered: {counts}")
    print("check: every event delivered once, verified" if not problems else "FAILED: " + "; ".join(problems))
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif len(sys.argv) == 6 and sys.argv[1] == "--work":
        work(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        asyncio.run(main())
