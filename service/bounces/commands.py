"""`tidings bounces process` (one message on standard input, for a pipe alias) and
`tidings inbound` (the LMTP/SMTP receiver of the bounce domain).

`bounces process` prints one line and exits with what a pipe alias needs (sysexits.h):
0 the report was recorded (or had been), or was an automatic reply or a delay notice, ignored;
65 (EX_DATAERR) neither a bounce nor a complaint, or one whose return path names no message we
sent (nothing changed); 75 (EX_TEMPFAIL) the database cannot be reached: the MTA keeps the
message and tries again.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
from typing import Any

from service.bounces.inbound import start_inbound
from service.bounces.intake import MAX_REPORT_BYTES, Processed, process_report
from service.command import CommandError, load_settings, run, setup_logging, with_database
from service.db import is_database_outage, schema_problem
from service.settings import Settings

EX_OK, EX_DATAERR, EX_TEMPFAIL = 0, 65, 75


def exit_code(processed: Processed) -> int:
    """The exit status of `bounces process` for what the message turned out to be."""
    if processed.report.kind == "unrecognised" or processed.rejected:
        return EX_DATAERR
    return EX_OK


async def _process(settings: Settings, raw: bytes) -> Processed:
    async with with_database(settings) as db, db.sessions.begin() as session:
        return await process_report(session, raw, settings=settings, source="pipe")


def cmd_bounces_process(args: argparse.Namespace) -> None:
    settings = load_settings()
    raw = sys.stdin.buffer.read(MAX_REPORT_BYTES + 1)
    if not raw.strip():
        print("error: no message on standard input", file=sys.stderr)
        raise SystemExit(EX_DATAERR)
    if len(raw) > MAX_REPORT_BYTES:
        print(f"error: the message is larger than {MAX_REPORT_BYTES // (1024 * 1024)} MB", file=sys.stderr)
        raise SystemExit(EX_DATAERR)
    try:
        processed = run(_process(settings, raw))
    except Exception as exc:
        if not is_database_outage(exc) and not isinstance(exc, OSError):
            raise
        print("error: cannot reach the database; the message should be delivered again later", file=sys.stderr)
        raise SystemExit(EX_TEMPFAIL) from None
    print(processed.summary())
    code = exit_code(processed)
    if code:
        raise SystemExit(code)


async def _inbound(settings: Settings, args: argparse.Namespace) -> None:
    async with with_database(settings) as db:
        problem = await schema_problem(db.engine)
        if problem:
            raise CommandError(problem)
        server = await start_inbound(db.sessions, settings, host=args.host, port=args.port, lmtp=not args.smtp,
                                     reuse_port=args.reuse_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        where = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.sockets)
        print(f"tidings inbound: {'SMTP' if args.smtp else 'LMTP'} on {where}", flush=True)
        if settings.return_path is None:
            print("note: RETURN_PATH / BOUNCE_DOMAIN is not set: every recipient will be refused", file=sys.stderr)
        try:
            await stop.wait()
        finally:
            server.close()
            await server.wait_closed()


def cmd_inbound(args: argparse.Namespace) -> None:
    settings = load_settings()
    if args.processes < 1 or (args.processes > 1 and args.port == 0):
        raise CommandError("--processes: expected 1 or more, and a fixed --port for more than 1")
    if args.processes > 1:
        raise SystemExit(_serve_processes(args))
    setup_logging(settings.log_level)
    run(_inbound(settings, args))


def _serve_processes(args: argparse.Namespace) -> int:
    """`--processes N`: N receivers on the same port (SO_REUSEPORT: the kernel spreads the
    connections), each its own process with its own event loop and database pool, so they use
    N cores. SIGTERM / SIGINT are passed on; the worst exit status is ours."""
    command = [sys.executable, "-m", "service.cli", "inbound", "--host", args.host, "--port", str(args.port),
               "--reuse-port", *(["--smtp"] if args.smtp else [])]
    children = [subprocess.Popen(command) for _ in range(args.processes)]  # noqa: S603 (our own command)

    def forward(sig: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    return max(abs(child.wait()) for child in children)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """`tidings bounces process` and `tidings inbound`."""
    p = sub.add_parser("bounces", help="bounce and complaint reports")
    bounces = p.add_subparsers(dest="subcommand", metavar="ACTION", required=True)
    q = bounces.add_parser("process", help="record the bounce or complaint report on standard input "
                                           "(for a pipe alias); exit 0 done, 65 not ours, 75 try again")
    q.set_defaults(handler=cmd_bounces_process)
    p = sub.add_parser("inbound", help="receive bounces and complaints over LMTP (or SMTP) for the bounce domain")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=2525, help="port to listen on (default 2525)")
    p.add_argument("--smtp", action="store_true", help="speak SMTP instead of LMTP")
    p.add_argument("--processes", type=int, default=1,
                   help="receivers on the port, one process each (default 1; more use more cores)")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # set for each of --processes
    p.set_defaults(handler=cmd_inbound)
