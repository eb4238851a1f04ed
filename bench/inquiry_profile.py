"""Where a visitor's CPU goes: the app called through ASGI in this process (no uvicorn, no HTTP
client), each simulated visitor fetching its form token and posting an inquiry from its own
address (X-Forwarded-For through TRUSTED_PROXIES), as bench/inquiries.py's load does.

    .venv/bin/python bench/inquiry_profile.py [--visitors 2000] [--concurrency 12] [--sqlite]
                                              [--profile FILE] [--top 40]

Prints the process CPU per visitor (the app's and the database driver's Python, not the
database server's) and, with --profile, writes cProfile stats to FILE and prints the top
functions by cumulative and by own time. PostgreSQL: a fresh database `tidings_bench_profile`
(or BENCH_PG_DB), dropped afterwards; SQLite: a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import ipaddress
import json
import os
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
PG_DB = os.environ.get("BENCH_PG_DB", "tidings_bench_profile")


async def call(app: Any, method: str, path: str, ip: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request through the ASGI app, as uvicorn would pass it."""
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"tidings-bench"), (b"x-forwarded-for", ip.encode())]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
             "state": {}}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status, chunks = 0, []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def visitors(app: Any, count: int, concurrency: int, tag: str) -> dict[int, int]:
    statuses: dict[int, int] = {}
    queue = iter(range(count))

    async def one() -> None:
        for n in queue:
            ip = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
            _s, body = await call(app, "GET", "/api/form-token", ip)
            token = json.loads(body)["form_token"]
            status, _b = await call(app, "POST", "/api/inquiries", ip, json.dumps({
                "name": f"Bench {n}", "email": f"bench{tag}.{n}@example.org", "topic": "anxiety",
                "contact_method": "email", "message": f"Benchmark inquiry {tag} {n}: I would like to learn more.",
                "consent": True, "form_token": token, "website": "",
                "source_page": "https://blog.clinic.test/articles/bench", "utm_source": "bench"}).encode())
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(one() for _ in range(concurrency)))
    return statuses


async def run(url: str, args: argparse.Namespace) -> None:
    from service.app import create_app
    from service.db import create_engine, migrate
    from service.settings import Settings

    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    settings = Settings(database_url=url, secret_key=secrets.token_urlsafe(48), base_url="http://127.0.0.1:8000",
                        allowed_origins=("https://blog.clinic.test",), form_min_seconds=0.0,
                        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
                        mail_from="Clinic <hello@clinic.test>", staff_inbox="staff@clinic.test")
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        print("warm-up:", await visitors(app, 200, args.concurrency, "w"))
        if args.echo:
            import logging

            logging.basicConfig()
            logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
        profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU time, not wall
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        statuses = await visitors(app, args.visitors, args.concurrency, "m")
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{args.visitors} visitors: {statuses}; {cpu * 1000 / args.visitors:.2f} ms CPU per visitor "
              f"(this process: app and driver), {args.visitors / wall:.0f} visitors/s")
        if profiler:
            profiler.dump_stats(args.profile)
            stats = pstats.Stats(args.profile)
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)
    finally:
        await lifespan.__aexit__(None, None, None)


async def _pg(sql: str) -> None:
    from sqlalchemy import text

    from service.db import create_engine

    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
        ), {"n": PG_DB})
        await conn.execute(text(sql))
    await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--profile", metavar="FILE")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--echo", action="store_true", help="log the SQL of the measured visitors")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(f"load: {os.getloadavg()}")
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(f"sqlite+aiosqlite:///{tmp}/bench.db", args))
        return 0
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{PG_DB}"'))
    asyncio.run(_pg(f'CREATE DATABASE "{PG_DB}"'))
    try:
        asyncio.run(run(PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_DB}", args))
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{PG_DB}"'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
