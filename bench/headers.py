"""Benchmark: what the request-header limit (MAX_HEADER_BYTES) costs in throughput.

    .venv/bin/python bench/headers.py [--seconds 10] [--rounds 2]

GET /healthz (the cheapest route: the parser's share of the work is largest there) against one
uvicorn process (uvloop, access log off, SQLite in a temporary directory) with three HTTP
protocols, measured in turns (A B C A B C …) so that a change in the machine's load hits all:

- httptools without a limit (uvicorn's default, what `tidings serve` ran before),
- httptools with the limit (service.server.HeaderLimitedHttpTools, what `tidings serve` runs),
- h11 with the same limit (`h11_max_incomplete_event_size`; the pure-Python parser).

Prints requests/s and the server's CPU per request (the figure that does not depend on what
else the machine does). The load generator is bench/inquiries.py's lean keep-alive client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from inquiries import cpu_seconds, free_port, launch_uvicorn, line, run_load, stop_server  # noqa: E402

VARIANTS = {
    "httptools, no limit": ["--http", "httptools"],
    "httptools + limit (ours)": ["--http", "service.server:HeaderLimitedHttpTools"],
    "h11 + limit": ["--http", "h11", "--h11-max-incomplete-event-size", "16384"],
}


def start(database_url: str, args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": secrets.token_urlsafe(48),
           "BASE_URL": f"http://127.0.0.1:{port}", "LOG_LEVEL": "warning"}
    return launch_uvicorn(port, env, args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=12)
    args = parser.parse_args()
    from service.db import create_engine, migrate

    print(f"Tidings header-limit benchmark; {os.cpu_count()} CPUs (shared with other work on this machine); "
          f"GET /healthz, 1 server process, 1 load process x {args.concurrency} connections, "
          f"{args.seconds:.0f} s per phase, {args.rounds} rounds")
    totals: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"

        async def _migrate() -> None:
            engine = create_engine(url)
            await migrate(engine)
            await engine.dispose()

        asyncio.run(_migrate())
        for round_ in range(1, args.rounds + 1):
            for name, extra in VARIANTS.items():
                proc, base = start(url, extra)
                try:
                    run_load(base, "/healthz", 2, 1, args.concurrency)  # warm-up
                    cpu0 = cpu_seconds([proc.pid])
                    result = run_load(base, "/healthz", args.seconds, 1, args.concurrency)
                    cpu_ms = (cpu_seconds([proc.pid]) - cpu0) * 1000 / max(1, result.ok)
                finally:
                    stop_server(proc)
                print(line(f"{round_}: {name}", result) + f"   server CPU {cpu_ms:.3f} ms/request")
                totals[name].append((result.ok / result.seconds, cpu_ms))
    print("summary (mean over rounds):")
    base_rate, base_cpu = (sum(v) / len(v) for v in zip(*totals["httptools, no limit"], strict=True))
    for name, values in totals.items():
        rate, cpu = (sum(v) / len(v) for v in zip(*values, strict=True))
        print(f"  {name:<26} {rate:8.0f} req/s ({(rate / base_rate - 1) * 100:+5.1f} %)   "
              f"server CPU {cpu:.3f} ms/request ({(cpu / base_cpu - 1) * 100:+5.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
