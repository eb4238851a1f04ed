"""`tidings backup FILE` and `tidings restore FILE --yes`, which keep the privacy promises.

SQLite: SQLite's online backup API copies the live database page by page into FILE (the app may
keep running); restore copies FILE back over the database the same way. PostgreSQL: `pg_dump
--format=custom` writes FILE; restore turns it into SQL with `pg_restore` and runs it with `psql`
in ONE transaction after dropping and recreating the `public` schema, so a restore that fails
half-way changes nothing. (A dump made by hand with `pg_dump -Fc` restores the same way.)

A backup holds whatever was in the database when it was made, erased people included. So restore
first reads the erasure ledger of the database it is about to replace, restores, migrates the
schema if the backup is older, merges that ledger back, and erases again every subscriber,
inquiry and stored mail copy the ledger names (`erase.apply_ledger`): nobody erased since the
backup comes back. Retention needs nothing special: the worker deletes expired inquiries of the
restored data on its next hourly run. The ledger is keyed by SECRET_KEY: restore with the same key
(or with the old one in SECRET_KEY_FALLBACKS).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from service.settings import Settings


class BackupError(Exception):
    """A backup or restore that cannot go ahead; one line."""


# -- backup ------------------------------------------------------------------------------------


def backup(settings: Settings, target: Path) -> list[str]:
    """Write a backup of the database to `target` (a new file); one line per step."""
    if target.exists():
        raise BackupError(f"{target} already exists: choose a new file name (a backup never overwrites a file)")
    if not target.parent.is_dir():
        raise BackupError(f"cannot write {target}: the folder {target.parent} does not exist")
    partial = target.with_name(target.name + ".partial")
    try:
        line = _sqlite_backup(settings, partial) if settings.is_sqlite else _pg_backup(settings, partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return [f"{line} to {target} ({_size(target)})"]


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1024:.0f} KB" if size < 1 << 20 else f"{size / (1 << 20):.1f} MB"


def _sqlite_backup(settings: Settings, target: Path) -> str:
    source = settings.sqlite_path
    if source is None or not source.is_file():
        raise BackupError(f"there is no SQLite database at {source}: nothing to back up")
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return f"backed up the SQLite database {source}"


def _pg_env(settings: Settings) -> dict[str, str]:
    """libpq's environment for the database in DATABASE_URL (the password stays out of argv)."""
    url = make_url(settings.database_url)
    env = {**os.environ, "PGDATABASE": url.database or "", "PGHOST": url.host or "localhost",
           "PGPORT": str(url.port or 5432)}
    if url.username:
        env["PGUSER"] = url.username
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    ssl = url.query.get("sslmode") or url.query.get("ssl")
    if isinstance(ssl, str):
        env["PGSSLMODE"] = ssl
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: install the PostgreSQL client tools of the server's version")
    return found


def _run(args: list[str], settings: Settings, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    # a fixed tool path and a file name as separate arguments: no shell is involved
    result = subprocess.run(args, env=_pg_env(settings), capture_output=True, check=False, **kwargs)  # noqa: S603
    if result.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed: {_first_error(result.stderr)}")
    return result


def _first_error(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()] or lines or ["no message"]
    return errors[0]


def _pg_backup(settings: Settings, target: Path) -> str:
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={target}"], settings)
    return f"backed up the PostgreSQL database {make_url(settings.database_url).database} with pg_dump"


# -- restore -----------------------------------------------------------------------------------


def restore(settings: Settings, source: Path) -> list[str]:
    """Replace the database with the backup in `source`, then apply the erasure ledger again."""
    from service.privacy.erase import LedgerEntry

    if not source.is_file():
        raise BackupError(f"cannot read {source}: no such file")
    _check_revision(source, _sqlite_revision(source) if settings.is_sqlite else _pg_revision(settings, source))
    ledger: list[LedgerEntry] = asyncio.run(_current_ledger(settings))
    lines = [f"kept the erasure ledger of the current database: {len(ledger)} erasures"]
    if settings.is_sqlite:
        lines.append(_sqlite_restore(settings, source))
    else:
        lines.append(_pg_restore(settings, source))
    revision, added, again = asyncio.run(_after_restore(settings, ledger))
    lines.append(f"schema migrated to revision {revision}; {added} erasures made since the backup added to its ledger")
    lines.append(f"erased again: {again.subscribers} subscribers, {again.inquiries} inquiries, "
                 f"stored mail to {again.addresses} other erased addresses")
    return lines


def _sqlite_revision(source: Path) -> str | None:
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source} is not a Tidings backup (SQLite says: {exc})") from None
    return str(row[0]) if row else None


_COPY_REVISION = re.compile(rb"^COPY public\.alembic_version \(version_num\) FROM stdin;\n([^\n]*)\n", re.MULTILINE)


def _pg_revision(settings: Settings, source: Path) -> str | None:
    """The schema revision stored in a pg_dump archive (pg_restore refuses anything else)."""
    data = _run([_tool("pg_restore"), "--data-only", "--table=alembic_version", "--file=-", str(source)],
                settings).stdout
    found = _COPY_REVISION.search(data)
    return found.group(1).decode() if found and found.group(1) != b"\\." else None


def _check_revision(source: Path, revision: str | None) -> None:
    """Refuse, before anything changes, a backup this version of Tidings cannot migrate."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError as AlembicError

    from service.db import alembic_config

    if revision is None:
        raise BackupError(f"{source} is not a Tidings backup: it has no schema revision")
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except AlembicError:
        known = None
    if known is None:
        raise BackupError(f"{source} has schema revision {revision}, unknown to this version of Tidings "
                          "(made by a newer one?): nothing was changed")


async def _current_ledger(settings: Settings) -> list[Any]:
    """The ledger of the database about to be replaced; empty when it has none (yet)."""
    from service.db import create_engine, session_factory
    from service.privacy.erase import read_ledger

    if settings.sqlite_path is not None and not settings.sqlite_path.is_file():
        return []
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            if not await conn.run_sync(lambda c: inspect(c).has_table("erasures")):
                return []
        async with session_factory(engine)() as session:
            return await read_ledger(session)
    finally:
        await engine.dispose()


def _sqlite_restore(settings: Settings, source: Path) -> str:
    target = settings.sqlite_path
    assert target is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return f"restored {source} into the SQLite database {target}"


# pg_dump writes CREATE SCHEMA public only when the schema was made by hand (as a restore does)
_CREATES_PUBLIC = re.compile(rb"^CREATE SCHEMA public;$", re.MULTILINE)


def _pg_restore(settings: Settings, source: Path) -> str:
    script = _run([_tool("pg_restore"), "--no-owner", "--no-privileges", "--file=-", str(source)], settings).stdout
    prefix = b"DROP SCHEMA IF EXISTS public CASCADE;\n"
    if not _CREATES_PUBLIC.search(script):
        prefix += b"CREATE SCHEMA public;\n"
    _run([_tool("psql"), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction",
          "--file=-"], settings, input=prefix + script)
    name = make_url(settings.database_url).database
    return f"restored {source} into the PostgreSQL database {name} (in one transaction)"


async def _after_restore(settings: Settings, ledger: list[Any]) -> tuple[str | None, int, Any]:
    from service.db import create_engine, current_revision, migrate, session_factory, transaction
    from service.privacy.erase import apply_ledger, merge_ledger
    from service.tokens import Tokens

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        async with transaction(session_factory(engine)) as session:
            added = await merge_ledger(session, ledger)
            again = await apply_ledger(session, tokens=Tokens(settings))
        return await current_revision(engine), added, again
    finally:
        await engine.dispose()
