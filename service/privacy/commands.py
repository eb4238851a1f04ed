"""`tidings backup FILE` and `tidings restore FILE --yes` (see service/privacy/backup.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.command import CommandError, load_settings
from service.privacy.backup import BackupError, backup, restore
from service.settings import Settings


def _print_steps(step: Callable[[Settings, Path], list[str]], settings: Settings, file: str) -> None:
    """Run `backup` or `restore`, one printed line per step; a BackupError is the one error line."""
    try:
        lines = step(settings, Path(file))
    except BackupError as exc:
        raise CommandError(str(exc)) from None
    for line in lines:
        print(line)


def cmd_backup(args: argparse.Namespace) -> None:
    _print_steps(backup, load_settings(), args.file)


def cmd_restore(args: argparse.Namespace) -> None:
    settings = load_settings()
    if not args.yes:
        where = settings.sqlite_path or "the PostgreSQL database in DATABASE_URL"
        raise CommandError(f"restore replaces everything in {where} with {args.file}; stop `tidings serve` and "
                           "the workers, then run again with --yes")
    _print_steps(restore, settings, args.file)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("backup", help="write a backup of the database to FILE (SQLite online backup; pg_dump)")
    p.add_argument("file", metavar="FILE", help="a new file (never overwritten)")
    p.set_defaults(handler=cmd_backup)
    p = sub.add_parser("restore", help="replace the database with a backup, then apply every erasure made since")
    p.add_argument("file", metavar="FILE", help="a file written by `tidings backup` (or `pg_dump -Fc`)")
    p.add_argument("--yes", action="store_true", help="confirm: everything in the database is replaced")
    p.set_defaults(handler=cmd_restore)
