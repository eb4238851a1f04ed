"""The `tidings` command. Every subcommand exits non-zero with one clear line on failure."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import errno
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from service.command import (
    CommandError,
    Handler,
    cli_name,
    link_caveat,
    load_settings,
    run,
    run_fast,
    setup_logging,
    with_database,
)
from service.registry import add_domain_commands
from service.settings import Settings, SettingsError

__all__ = ["CommandError", "build_parser", "load_settings", "main", "run", "setup_logging"]

log = logging.getLogger("tidings")


# -- serve / worker / migrate ----------------------------------------------------------------


async def _migrate(settings: Settings) -> str | None:
    from service.db import current_revision, migrate

    try:
        async with with_database(settings) as db:
            await migrate(db.engine)
            return await current_revision(db.engine)
    except OSError as exc:
        raise CommandError(f"cannot reach the database: {exc}") from None


def _refused(exc: Exception) -> CommandError:
    """The one line for a database that answers but will not let us in (unknown role or
    database, wrong password): waiting would not help."""
    from service.db import describe_outage

    return CommandError(f"the database refused the connection: {describe_outage(exc)}")


async def _check_schema(settings: Settings) -> None:
    from sqlalchemy.exc import DBAPIError

    from service.db import is_database_outage, schema_problem

    try:
        async with with_database(settings) as db:
            problem = await schema_problem(db.engine)
    except OSError as exc:
        raise CommandError(f"cannot reach the database: {exc}") from None
    except DBAPIError as exc:
        if is_database_outage(exc):
            raise  # main() says "cannot reach the database"
        raise _refused(exc) from None
    if problem:
        raise CommandError(problem)


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = load_settings()
    revision = run(_migrate(settings))
    print(f"database is at revision {revision}")


SERVE_HOST, SERVE_PORT = "127.0.0.1", 8000  # `serve`'s defaults (and `demo`'s, which prints its URLs)


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything else starts (worker, migrations' output), so that
    a port in use is one clear line and a non-zero exit, and port 0 gets its real number."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandError(f"cannot listen on {host}: {exc.strerror}") from None
    # IPv4 first, as uvicorn binds a name such as "localhost"
    family, kind, proto, _, address = sorted(infos, key=lambda info: info[0] != socket.AF_INET)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CommandError(f"port {port} on {host} is in use: stop the other program or pass --port") from None
        raise CommandError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _port(value: str) -> int:
    """--port: a number from 0 to 65535 (argparse prints the message and exits 2)."""
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {value!r}")
    return int(value)


def served_base_url(sock: socket.socket) -> str:
    """http://ADDRESS:PORT of a bound socket; a wildcard address (0.0.0.0, ::) becomes localhost."""
    host, port = sock.getsockname()[:2]
    return _address_url(host, port)


def serve_base_url(host: str, port: int) -> str:
    """The URL `tidings serve --host HOST --port PORT` would derive when BASE_URL is not set, found
    without binding (for commands run before the server, such as `tidings demo`): the address
    `listening_socket` would bind (IPv4 first), written as `served_base_url` writes it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandError(f"cannot listen on {host}: {exc.strerror}") from None
    address = sorted(infos, key=lambda info: info[0] != socket.AF_INET)[0][4]
    return _address_url(str(address[0]), port)


def _address_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def with_served_base_url(settings: Settings, sock: socket.socket) -> tuple[Settings, str | None]:
    """On the embedded default (SQLite) without BASE_URL, the links in emails and hints point at
    the address this server binds (never at a request's Host header, which the client controls
    and which would poison password-reset links). Returns the settings and the line saying so."""
    if settings.base_url_set or not settings.is_sqlite:
        return settings, None
    url = served_base_url(sock)
    note = f"BASE_URL is not set: links in emails use {url}, the address served (set BASE_URL to change it)"
    return settings.with_(base_url=url), note


def cmd_serve(args: argparse.Namespace) -> None:
    from service.app import create_app
    from service.server import Server, server_config

    settings = load_settings()
    setup_logging(settings.log_level)
    sock = listening_socket(args.host, args.port)
    try:
        settings, note = with_served_base_url(settings, sock)
        warn_mail_setup(settings)
        if settings.is_sqlite:
            run(_migrate(settings))
            schema_checked = True
        else:
            schema_checked = run(_check_schema_unless_unreachable(settings))
        for hint in startup_hints(settings):
            print(hint, file=sys.stderr)
        app = create_app(settings, worker=not args.no_worker)
        port = sock.getsockname()[1]
        server = Server(server_config(app, settings, host=args.host, port=port), settings,
                        check_schema=not schema_checked)
        mode = "SQLite (single node)" if settings.is_sqlite else "PostgreSQL"
        mail = "local outbox (/admin/outbox)" if settings.uses_local_outbox else "SMTP"
        print(f"Tidings on {served_base_url(sock)}  database: {mode}  mail: {mail}  "
              f"worker: {'off' if args.no_worker else 'in-process'}", file=sys.stderr)
        if note:
            print(note, file=sys.stderr)
        print(f"Start page: {settings.base_url}/  (the form, the signup, the archive and the admin)", file=sys.stderr)
        server.run(sockets=[sock])
    finally:
        sock.close()
    if server.failure:
        raise CommandError(server.failure)


async def _check_schema_unless_unreachable(settings: Settings) -> bool:
    """Check the schema now (True), or, when the database does not answer yet, say so and leave
    the check to the server, which serves 503s until the database is back (False)."""
    from sqlalchemy.exc import DBAPIError

    from service.db import describe_outage, is_database_outage, schema_problem

    try:
        async with with_database(settings) as db:
            problem = await schema_problem(db.engine)
    except Exception as exc:
        if not is_database_outage(exc):
            if isinstance(exc, DBAPIError):
                raise _refused(exc) from None
            raise
        log.warning("database not reachable at start (%s): serving 503s until it is", describe_outage(exc))
        return False
    if problem:
        raise CommandError(problem)
    return True


def warn_mail_setup(settings: Settings) -> None:
    """At the start of serve and worker: refuse an unreadable DKIM key (one clear line), and warn
    when DKIM_DOMAIN is not aligned with MAIL_FROM's domain (DMARC would not count the signature)."""
    from service.mail.dkim import alignment_problem, signer_from_settings
    from service.settings import SettingsError

    try:
        signer_from_settings(settings)
    except SettingsError as exc:
        raise CommandError(str(exc)) from None
    problem = alignment_problem(settings)
    if problem:
        log.warning("%s", problem)


def startup_hints(settings: Settings) -> list[str]:
    """Lines printed by `tidings serve` before it starts (e.g. how to create the first admin)."""
    if not settings.is_sqlite:
        return []
    return run(_startup_hints(settings))


async def _startup_hints(settings: Settings) -> list[str]:
    from service.admin.auth import count_staff_users

    async with with_database(settings) as db, db.sessions() as session:
        if await count_staff_users(session):
            return []
    return ["No staff account yet. Create the first admin with:",
            f"  {cli_name()} create-admin you@example.org --role admin",
            f"then sign in at {settings.base_url}/admin/login"]


# -- staff accounts --------------------------------------------------------------------------


def _read_new_password(args: argparse.Namespace) -> str | None:
    """The password from stdin (--password-stdin), asked twice on a terminal, or None (link)."""
    import getpass

    from service.admin.auth import PasswordError, check_new_password

    try:
        if args.password_stdin:
            return check_new_password(sys.stdin.readline().rstrip("\r\n"))
        if not sys.stdin.isatty():
            return None
        first = getpass.getpass("Password (at least 12 characters): ")
        return check_new_password(first, getpass.getpass("Repeat the password: "))
    except PasswordError as exc:
        raise CommandError(str(exc)) from None


async def _create_admin(settings: Settings, args: argparse.Namespace, password: str | None) -> str:
    from service.admin.audit import Actor, record_audit
    from service.admin.auth import create_staff_user, set_password_url
    from service.db import transaction
    from service.tokens import Tokens

    async with with_database(settings) as db, transaction(db.sessions) as session:
        try:
            user = await create_staff_user(session, email=args.email, role=args.role, name=args.name,
                                           password=password)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        await record_audit(session, by=Actor.cli(), action="user_invite", target_type="staff_user",
                           target_id=user.id, detail={"email": user.email, "role": user.role, "via": "create-admin"})
        if password is not None:
            return f"created {user.role} {user.email}; sign in at {settings.base_url}/admin/login"
        link = set_password_url(settings, Tokens(settings), user)
        return (f"created {user.role} {user.email}. Open this one-time link within 24 hours to set the "
                f"password:\n{link}" + link_caveat(settings))


def cmd_create_admin(args: argparse.Namespace) -> None:
    settings = load_settings()
    if settings.is_sqlite:
        run(_migrate(settings))
    password = _read_new_password(args)
    print(run(_create_admin(settings, args, password)))


async def _heartbeat(path: Path, stop: asyncio.Event) -> None:
    """Touch `path` at once and every 10 s while the worker runs (for container health checks and
    for anything that waits for the worker to be ready). A failed write is logged, never fatal."""
    from service.db import sleep_unless_stopped

    while not stop.is_set():
        try:
            await asyncio.to_thread(path.touch)
        except OSError as exc:
            log.warning("cannot write the heartbeat file %s: %s", path, exc.strerror or exc)
        await sleep_unless_stopped(stop, 10)


def _remove_heartbeat(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot remove the heartbeat file %s: %s", path, exc.strerror or exc)


async def _worker(settings: Settings, heartbeat: str | None = None) -> None:
    """Wait for the database (with backoff, for as long as it takes) and a current schema, then run
    the loops until SIGINT/SIGTERM. The heartbeat file is first written once the worker is ready."""
    from sqlalchemy.exc import DBAPIError

    from service.db import Stopped, schema_problem, when_reachable
    from service.mail.transport import mailer_for
    from service.worker import WorkerContext, run_worker
    from service.worker import log as worker_log

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    beat = Path(heartbeat) if heartbeat else None
    if beat is not None:
        _remove_heartbeat(beat)  # a file left by an earlier run must not say "ready"
    async with with_database(settings) as db:
        mailer = mailer_for(settings, db.sessions)
        try:
            try:
                problem = await when_reachable(lambda: schema_problem(db.engine), stop=stop, logger=worker_log)
            except Stopped:
                return
            except DBAPIError as exc:  # not an outage: when_reachable waits through those
                raise _refused(exc) from None
            if problem:
                raise CommandError(problem)
            ctx = WorkerContext(settings=settings, sessions=db.sessions, mailer=mailer)
            await asyncio.gather(run_worker(ctx, stop), *([_heartbeat(beat, stop)] if beat else []))
        finally:
            if beat is not None:
                _remove_heartbeat(beat)
            await mailer.close()


def cmd_worker(args: argparse.Namespace) -> None:
    settings = load_settings()
    setup_logging(settings.log_level)
    warn_mail_setup(settings)
    if settings.is_sqlite:
        print("note: on SQLite run one worker only (tidings serve already runs one in-process)",
              file=sys.stderr)
    if settings.worker_nice:
        os.nice(settings.worker_nice)  # requests before digests: the web runs first when both want the CPU
    run_fast(_worker(settings, args.heartbeat))


async def _mail_test(settings: Settings, address: str) -> str:
    from service.mail.message import build_message
    from service.mail.render import render_email
    from service.mail.transport import PermanentFailure, TemporaryFailure, mailer_for
    from service.validation import FieldError, clean_mailable_email

    try:
        to = clean_mailable_email({"email": address})
    except FieldError as exc:
        raise CommandError(exc.message) from None
    from service.admin.brand import brand_context, read_brand

    sent_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    async with with_database(settings) as db:
        async with db.sessions() as session:
            brand = await read_brand(session, settings)
        rendered = render_email("smtp_check", {**brand_context(brand), "sent_at": sent_at})
        message = build_message(sender=settings.mail_from, to=to, subject=f"{brand.name}: mail works",
                                text=rendered.text, html=rendered.html)
        mailer = mailer_for(settings, db.sessions, concurrency=1)
        try:
            result = await mailer.send(message)
        except (TemporaryFailure, PermanentFailure) as exc:
            raise CommandError(f"sending failed: {exc}") from None
        finally:
            await mailer.close()
    return result.response


def cmd_mail_test(args: argparse.Namespace) -> None:
    settings = load_settings()
    if settings.is_sqlite:
        run(_migrate(settings))
    response = run(_mail_test(settings, args.address))
    where = "the local outbox (/admin/outbox)" if settings.uses_local_outbox else "the SMTP server"
    print(f"sent to {where}: {response}")


# -- demo ------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> None:
    from service.admin.auth import PasswordError, check_new_password
    from service.demo import DemoRefused, load_demo, summary_lines

    settings = load_settings()
    served = not settings.base_url_set and settings.is_sqlite
    if served:  # the links in the demo's data and output: where `serve` with these options listens
        settings = settings.with_(base_url=serve_base_url(args.host, args.port))
    run(_migrate(settings) if settings.is_sqlite else _check_schema(settings))
    password = None
    if args.password_stdin:
        try:
            password = check_new_password(sys.stdin.readline().rstrip("\r\n"))
        except PasswordError as exc:
            raise CommandError(str(exc)) from None

    async def load() -> Any:
        async with with_database(settings) as db:
            try:
                return await load_demo(db.sessions, settings, admin_email=args.admin_email, password=password)
            except (DemoRefused, ValueError) as exc:
                raise CommandError(str(exc)) from None

    options = "".join(f" --{name} {value}" for name, value, default in
                      (("host", args.host, SERVE_HOST), ("port", args.port, SERVE_PORT)) if value != default)
    for line in summary_lines(settings, run(load()), serve_options=options):
        print(line)


# -- the parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidings", description="Tidings: inquiry form, newsletter and digest campaigns for a blog."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("serve", help="run the web app (and, unless --no-worker, the send worker)")
    p.add_argument("--host", default=SERVE_HOST, help=f"address to listen on (default {SERVE_HOST})")
    p.add_argument("--port", type=_port, default=SERVE_PORT, help=f"port to listen on (default {SERVE_PORT}; "
                                                                  "0: any free port)")
    p.add_argument("--no-worker", action="store_true", help="do not run the send worker in this process")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("worker", help="run a send worker (outbox, campaigns, feed polling)")
    p.add_argument("--heartbeat", metavar="FILE", help="touch FILE once ready (database reachable, schema "
                                                       "current), then every 10 s; removed on exit (for health checks)")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("mail-test", help="send one message now through the configured transport")
    p.add_argument("address", help="where to send it")
    p.set_defaults(handler=cmd_mail_test)

    add_domain_commands(sub)  # subscribers, articles, digest, campaign, backup, restore (service.registry)

    p = sub.add_parser("create-admin", help="create a staff account (asks for a password, or prints a "
                                            "one-time set-password link when not run on a terminal)")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--role", choices=("admin", "staff"), default="admin",
                   help="admin: everything incl. users; staff: everything but users (default admin)")
    p.add_argument("--name", default="", help="display name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(handler=cmd_create_admin)

    p = sub.add_parser("demo", help="load the sample blog, example subscribers and inquiries, a draft digest and "
                                    "an admin account into an empty database")
    p.add_argument("--admin-email", default="admin@example.org", help="the demo admin's sign-in (default "
                                                                        "admin@example.org)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the admin password from the first line of stdin (default: a random one, printed once)")
    p.add_argument("--host", default=SERVE_HOST, help="the address you will serve on (`serve --host`), for the "
                                                      f"URLs printed while BASE_URL is not set (default {SERVE_HOST})")
    p.add_argument("--port", type=_port, default=SERVE_PORT, help="the port you will serve on (`serve --port`), "
                                                                  f"likewise (default {SERVE_PORT})")
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        handler(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from service.web import is_database_outage

        if is_database_outage(exc):
            print(f"error: cannot reach the database: {str(getattr(exc, 'orig', exc)).splitlines()[0]}",
                  file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
