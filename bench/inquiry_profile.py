"""Where a visitor's CPU goes: the app called through ASGI in this process (no uvicorn, no HTTP
client), each simulated visitor fetching its form token and posting an inquiry from its own
address (X-Forwarded-For through TRUSTED_PROXIES), as bench/inquiries.py's load does.

    .venv/bin/python bench/inquiry_profile.py [--visitors 2000] [--concurrency 12] [--sqlite]
                                              [--form inquiry|signup|confirm|unsubscribe]
                                              [--profile FILE] [--top 40]

`--form` picks the public form measured (the other ones of bench/load.py): `signup` fetches the
signup's form token (GET /api/subscriptions) and posts a signup (POST /api/subscriptions);
`confirm` posts the confirmation link of a pending signup (POST /confirm/{token}, what the
page's button does); `unsubscribe` posts a one-click unsubscribe (RFC 8058) of a confirmed
subscriber. For the last two, the signups (and confirmations) they act on are made first,
through the same app, and are not measured.

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


async def call(app: Any, method: str, path: str, ip: str, body: bytes = b"",
               content_type: str = "application/json") -> tuple[int, bytes]:
    """One request through the ASGI app, as uvicorn would pass it."""
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"tidings-bench"), (b"x-forwarded-for", ip.encode())]
    if body:
        headers += [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
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


def _inquiry_body(tag: str, n: int, token: str) -> bytes:
    return json.dumps({
        "name": f"Bench {n}", "email": f"bench{tag}.{n}@example.org", "topic": "anxiety",
        "contact_method": "email", "message": f"Benchmark inquiry {tag} {n}: I would like to learn more.",
        "consent": True, "form_token": token, "website": "",
        "source_page": "https://blog.clinic.test/articles/bench", "utm_source": "bench"}).encode()


def _ip(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


async def visitors(app: Any, count: int, concurrency: int, tag: str, form: str = "inquiry",
                   paths: list[str] | None = None) -> dict[int, int]:
    """`count` visitors of `form`; `paths`: the confirm or unsubscribe links they post."""
    statuses: dict[int, int] = {}
    queue = iter(range(count))

    async def one() -> None:
        for n in queue:
            ip = _ip(n)
            if form == "inquiry":
                _s, body = await call(app, "GET", "/api/form-token", ip)
                token = json.loads(body)["form_token"]
                status, _b = await call(app, "POST", "/api/inquiries", ip, _inquiry_body(tag, n, token))
            elif form == "signup":
                _s, body = await call(app, "GET", "/api/subscriptions", ip)
                token = json.loads(body)["form_token"]
                status, _b = await call(app, "POST", "/api/subscriptions", ip, json.dumps({
                    "email": f"reader{tag}.{n}@example.org", "name": f"Reader {n}", "topics": [],
                    "form_token": token, "website": ""}).encode())
            else:
                assert paths is not None
                status, _b = await call(app, "POST", paths[n], ip, b"List-Unsubscribe=One-Click",
                                        "application/x-www-form-urlencoded")
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(one() for _ in range(concurrency)))
    return statuses


async def links(app: Any, settings: Any, tag: str, *, confirmed: bool) -> list[str]:
    """The confirm links of the pending signups tagged `tag` or, once they are confirmed, their
    unsubscribe links, in the order they were made."""
    from sqlalchemy import select

    from service.newsletter.models import Subscriber
    from service.newsletter.tokens import confirm_token, unsubscribe_token
    from service.tokens import Tokens

    tokens = Tokens(settings)
    async with app.state.sessions() as session:
        rows = (await session.execute(select(Subscriber.id, Subscriber.signup_at).where(
            Subscriber.email.like(f"reader{tag}.%")).order_by(Subscriber.id))).all()
    if confirmed:
        return [f"/unsubscribe/{unsubscribe_token(tokens, sid)}" for sid, _at in rows]
    return [f"/confirm/{confirm_token(tokens, sid, at)}" for sid, at in rows]


async def measured(app: Any, settings: Any, count: int, args: argparse.Namespace, tag: str) -> dict[int, int]:
    """The visitors of `args.form`, after whatever they need was made."""
    if args.form in ("inquiry", "signup"):
        return await visitors(app, count, args.concurrency, tag, args.form)
    print(f"  {count} signups first:", await visitors(app, count, args.concurrency, tag, "signup"))
    paths = await links(app, settings, tag, confirmed=False)
    if args.form == "unsubscribe":
        print("  and their confirmations:", await visitors(app, count, args.concurrency, tag, "confirm", paths))
        paths = await links(app, settings, tag, confirmed=True)
    return await visitors(app, count, args.concurrency, tag, args.form, paths)


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
        print("warm-up:", await measured(app, settings, 200, args, "w"))
        if args.echo:
            import logging

            logging.basicConfig()
            logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
        profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU time, not wall
        cpu = wall = 0.0

        def start() -> None:
            nonlocal cpu, wall
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()

        if args.form in ("confirm", "unsubscribe"):  # what they act on first, unmeasured
            print(f"  {args.visitors} signups first:",
                  await visitors(app, args.visitors, args.concurrency, "m", "signup"))
            paths = await links(app, settings, "m", confirmed=False)
            if args.form == "unsubscribe":
                print("  and their confirmations:",
                      await visitors(app, args.visitors, args.concurrency, "m", "confirm", paths))
                paths = await links(app, settings, "m", confirmed=True)
            start()
            statuses = await visitors(app, args.visitors, args.concurrency, "m", args.form, paths)
        else:
            start()
            statuses = await visitors(app, args.visitors, args.concurrency, "m", args.form)
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{args.form}: {args.visitors} visitors: {statuses}; {cpu * 1000 / args.visitors:.2f} ms CPU per visitor "
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
    parser.add_argument("--form", choices=("inquiry", "signup", "confirm", "unsubscribe"), default="inquiry")
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
