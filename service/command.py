"""What every `tidings` command shares, whichever module defines it: the one-line CommandError,
settings, logging, `run`, and `with_database` (an engine for the command's lifetime, always
disposed). Domains register their commands through `service.registry`; they import this module,
never `service.cli`, so that nothing imports the entry point back."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from service.db import Sessions, create_engine, session_factory
from service.settings import Settings

Handler = Callable[[argparse.Namespace], None]
Body = Callable[[Settings, Sessions, argparse.Namespace], Awaitable[None]]


class CommandError(Exception):
    """A failure to report as one line (no traceback)."""


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("aiosqlite", "asyncio", "mail.log", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from service.mail.redact import redact_handlers

    redact_handlers(logging.getLogger())  # no email address in any log line


def cli_name() -> str:
    """How the user runs this command where they are, for the hints we print: `./dev tidings` in a
    checkout (the ./dev launcher exports TIDINGS_LAUNCHER), else `tidings`. Not a setting: it
    describes how this process was started, so it is read here rather than in Settings."""
    launcher = os.environ.get("TIDINGS_LAUNCHER", "").strip()
    return launcher if launcher in ("./dev tidings", "tidings") else "tidings"


def link_caveat(settings: Settings) -> str:
    """For a command that prints or mails a link on the embedded default without BASE_URL: the
    server uses the address it listens on, which this process cannot know."""
    if settings.base_url_set or not settings.is_sqlite:
        return ""
    return (f"\n(BASE_URL is not set, so this link assumes {settings.base_url}; if the server listens elsewhere, "
            "use its address, or set BASE_URL)")


def load_settings() -> Settings:
    return Settings.from_env()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def run_fast(coro: Coroutine[Any, Any, Any]) -> Any:
    """`run` on uvloop when it is installed (uvicorn[standard] brings it on Linux and macOS): the
    worker's SMTP lanes spend much of their CPU in the event loop, and uvloop's is about twice as
    lean as asyncio's own; without it, asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    sessions: Sessions


@asynccontextmanager
async def with_database(settings: Settings) -> AsyncIterator[Database]:
    """The database of `settings` for one command: the engine is disposed however it ends."""
    engine = create_engine(settings.database_url)
    try:
        yield Database(engine, session_factory(engine))
    finally:
        await engine.dispose()


def database_command(body: Body, errors: tuple[type[Exception], ...] = (), log_level: str = "warning") -> Handler:
    """A handler that runs `body` with the settings and a database, turning `errors` (the
    domain's refusals) into one line."""

    def handler(args: argparse.Namespace) -> None:
        settings = load_settings()
        setup_logging(log_level)

        async def main() -> None:
            async with with_database(settings) as db:
                await body(settings, db.sessions, args)

        try:
            run(main())
        except errors as exc:
            raise CommandError(str(exc)) from None

    return handler
