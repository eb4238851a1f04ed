"""Click counting under load: GET /r/{token} on PostgreSQL over a real uvicorn (`tidings serve
--no-worker`), clicks per second and p50/p99 latency, against GET /healthz measured the same way
in the same run; then a graceful stop (SIGTERM) and a check that every click that got its
redirect is in the database exactly once.

    .venv/bin/python bench/clicks.py [--seconds 10] [--connections 32] [--links 6] [--profile FILE]

The load comes from a small keep-alive HTTP/1.1 client on raw asyncio streams over uvloop, in
this process (httpx would cost more CPU than the server on this 2-core machine). Beside the
figures: the CPU the server and the client used (share of one core, from /proc and
process_time) and the server's CPU time per request, which says what a click costs even when
other work on the machine keeps the server from getting a core. `--profile` runs the server
under cProfile and writes its stats to FILE (`python -m pstats FILE`). Each connection is one reader (its own user
agent) following one link, so the burst rule does not move them to the scanners; the check counts
clicks of every kind anyway. Creates and drops the database tidings_bench_clicks on
127.0.0.1:5432. Target: at least 3,000 clicks/s with p99 under 20 ms. Exit status 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import uvloop
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import service.models  # noqa: E402, F401 - every table in Base.metadata
from service.db import create_engine, migrate, session_factory  # noqa: E402
from service.insight.links import Link, click_token  # noqa: E402
from service.insight.models import ClickCount, ClickReader  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.tokens import Tokens  # noqa: E402

PG = os.environ.get("BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
DB_NAME = "tidings_bench_clicks"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105 - a throwaway database
TARGET_RATE = 3000.0
TARGET_P99_MS = 20.0
PROFILED = ("import cProfile, signal, sys; from service.cli import main; "
            "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); sys.argv[0] = 'tidings'; "
            "cProfile.run('main(sys.argv[1:])', {out!r})")


async def recreate_database() -> None:
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    await admin.dispose()
    engine = create_engine(f"{PG}/{DB_NAME}")
    await migrate(engine)
    await engine.dispose()


async def drop_database() -> None:
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    await admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, profile: str | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": f"{PG}/{DB_NAME}", "SECRET_KEY": SECRET,
           "BASE_URL": f"http://127.0.0.1:{port}", "LOG_LEVEL": "warning"}
    env.pop("SMTP_URL", None)
    # uvicorn re-raises the SIGTERM it handled once it has stopped: a handler turning it into
    # SystemExit lets cProfile write its stats.
    profiler = ["-c", PROFILED.format(out=profile)] if profile else ["-m", "service.cli"]
    return subprocess.Popen([sys.executable, *profiler, "serve", "--no-worker", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


async def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        try:
            status, _ = await one_request(port, "/readyz")
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the server did not start")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def one_request(port: int, path: str) -> tuple[int, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        started = time.perf_counter()
        status = await _read_response(reader)
        return status, time.perf_counter() - started
    finally:
        writer.close()


async def load(port: int, paths: list[str], seconds: float, connections: int, expect: int
               ) -> tuple[int, list[float], int]:
    """Keep-alive connections sending one request after another for `seconds`: (answered with
    `expect`, latencies in ms, other answers)."""
    latencies: list[float] = []
    good = bad = 0
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal good, bad
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = (f"GET {paths[n % len(paths)]} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench-reader-{n} Firefox/128.0\r\n\r\n").encode()
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append((time.perf_counter() - started) * 1000)
                if status == expect:
                    good += 1
                else:
                    bad += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(n) for n in range(connections)))
    return good, latencies, bad


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def stored_clicks() -> tuple[int, dict[str, int], int]:
    engine = create_engine(f"{PG}/{DB_NAME}")
    async with session_factory(engine)() as session:
        kinds = dict((await session.execute(select(ClickCount.kind, func.sum(ClickCount.clicks))
                                            .group_by(ClickCount.kind))).all())
        readers = await session.scalar(select(func.count()).select_from(ClickReader)) or 0
    await engine.dispose()
    return sum(int(n) for n in kinds.values()), {k: int(n) for k, n in kinds.items()}, int(readers)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--links", type=int, default=6)
    parser.add_argument("--profile", metavar="FILE", help="run the server under cProfile, its stats written to FILE")
    args = parser.parse_args()
    await recreate_database()
    tokens = Tokens(Settings(secret_key=SECRET))
    article = "https://blog.example.com/posts/{}/?utm_source=newsletter&utm_medium=email&utm_campaign=bench"
    paths = [f"/r/{click_token(tokens, Link(1, n + 1, article.format(n + 1)))}"
             for n in range(args.links)]
    port = free_port()
    server = start_server(port, args.profile)
    try:
        await wait_ready(port)
        await load(port, ["/healthz"], 1.0, args.connections, 200)  # warm-up
        warm_clicks, _, warm_bad = await load(port, paths, 1.0, args.connections, 302)
        results = {}
        cpu = {}
        for name, targets, expect in (("GET /healthz (baseline)", ["/healthz"], 200), ("GET /r/{token}", paths, 302)):
            before = cpu_seconds(server.pid), time.process_time()
            results[name] = await load(port, targets, args.seconds, args.connections, expect)
            cpu[name] = cpu_seconds(server.pid) - before[0], time.process_time() - before[1]
        server.send_signal(signal.SIGTERM)  # a graceful stop: the last counts are written
        server.wait(timeout=60)
        print(f"{args.connections} keep-alive connections, {args.seconds:g} s each, one uvicorn process, "
              f"PostgreSQL, 2 cores shared with the load generator\n")
        print(f"{'request':26} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'server CPU':>11} "
              f"{'µs/request':>11} {'client CPU':>11}")
        for name, (good, latencies, bad) in results.items():
            server_cpu, client_cpu = cpu[name]
            print(f"{name:26} {good / args.seconds:8.0f} {statistics.median(latencies):8.2f} {p99(latencies):8.2f} "
                  f"{bad:7d} {server_cpu / args.seconds:11.0%} {server_cpu / max(good + bad, 1) * 1e6:11.0f} "
                  f"{client_cpu / args.seconds:11.0%}")
        good, latencies, bad = results["GET /r/{token}"]
        redirected = good + warm_clicks
        total, kinds, readers = await stored_clicks()
        print(f"\nclicks redirected (warm-up included): {redirected}; stored after the graceful stop: {total} "
              f"{kinds}; distinct-reader rows: {readers}: {'OK' if total == redirected else 'MISMATCH'}")
        rate, tail = good / args.seconds, p99(latencies)
        print(f"clicks/s {rate:.0f} (target >= {TARGET_RATE:.0f}): {'OK' if rate >= TARGET_RATE else 'UNDER TARGET'}; "
              f"p99 {tail:.1f} ms (target < {TARGET_P99_MS:.0f}): {'OK' if tail < TARGET_P99_MS else 'OVER TARGET'}")
        failed = bad + warm_bad > 0 or total != redirected or rate < TARGET_RATE or tail >= TARGET_P99_MS
        return 1 if failed else 0
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=10)
        await drop_database()


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # the leaner client loop
        sys.exit(runner.run(main()))
