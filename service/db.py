"""Database engine, session factory, declarative Base and the request-scoped session.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy timeout, and
every transaction starts with `BEGIN IMMEDIATE`: the web app and the in-process worker write
concurrently, and a deferred transaction that reads and then writes can fail at once with
SQLITE_BUSY instead of waiting. PostgreSQL runs through asyncpg; a pooled connection that sat idle
for IDLE_PING_SECONDS is pinged when checked out (a dead one is replaced before the request sees
it), a busy one is not: SQLAlchemy's `pool_pre_ping` would cost three round trips on every
checkout. A restart under load costs the requests whose connections were in use a 503 each; the
first disconnect error invalidates the whole pool, so the next requests get fresh connections.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import logging
import os
import stat
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import asyncpg
from sqlalchemy import (
    Date,
    DateTime,
    Index,
    MetaData,
    Select,
    String,
    Table,
    TypeDecorator,
    and_,
    any_,
    bindparam,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, Dialect, Result
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.paths import ALEMBIC_DIR

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Sessions = async_sessionmaker[AsyncSession]

log = logging.getLogger("tidings.db")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    if TYPE_CHECKING:  # typed FromClause by SQLAlchemy; every model here is mapped to a Table
        __table__: ClassVar[Table]


# asyncpg's errors for a server that is gone, going or not there yet (SQLSTATE class 08, 57P01-03,
# 53300), which SQLAlchemy wraps as a plain DBAPIError when they happen while connecting.
_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError, asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError, asyncpg.exceptions.TooManyConnectionsError,
)


def is_database_outage(exc: BaseException) -> bool:
    """A lost or refused database connection (as opposed to a bug in a query), or none free in
    the pool within its timeout (an overload: the request did nothing, and may be sent again)."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    cause: BaseException | None = exc
    for _ in range(4):  # DBAPIError -> the adapted driver error -> asyncpg's own error
        if cause is None:
            break
        if isinstance(cause, _OUTAGE_ERRORS):
            return True
        cause = getattr(cause, "orig", None) or cause.__cause__
    return isinstance(exc, ConnectionError | TimeoutError | OSError) and not isinstance(exc, FileNotFoundError)


def describe_outage(exc: BaseException) -> str:
    """The driver's own error in one short line (type and first line of its message), for logs:
    it names the host and port at most, never the password or a statement's parameters."""
    inner: BaseException = getattr(exc, "orig", None) or exc
    inner = inner.__cause__ or inner  # SQLAlchemy's adapter error -> asyncpg's own
    first_line = (str(inner).strip().splitlines() or [""])[0][:160]
    return f"{type(inner).__name__}: {first_line}" if first_line else type(inner).__name__


def outage_delay(failures: int, *, first: float = 1.0, cap: float = 30.0) -> float:
    """Seconds to wait after `failures` failed attempts in a row: first, 2×first, 4×first … cap.
    Never less than one second, so that nothing retrying an outage spins."""
    return min(cap, max(1.0, first) * 2 ** min(max(0, failures - 1), 10))


class Stopped(Exception):
    """Raised by `when_reachable` when asked to stop before the database answered."""


T = TypeVar("T")


async def sleep_unless_stopped(stop: asyncio.Event | None, seconds: float) -> bool:
    """Sleep `seconds`, or less if `stop` is set meanwhile; True when it was set."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def when_reachable(attempt: Callable[[], Awaitable[T]], *, stop: asyncio.Event | None = None,
                         logger: logging.Logger, what: str = "database") -> T:
    """`attempt()`'s result once the database answers: through an outage it waits and tries again
    (1, 2, 4 … 30 s), logging one line per failed attempt and one when it is back. Any other
    error is raised at once; `Stopped` when `stop` is set first."""
    failures = 0
    while True:
        if stop is not None and stop.is_set():
            raise Stopped
        try:
            result = await attempt()
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            failures += 1
            delay = outage_delay(failures)
            logger.warning("%s not reachable (%s), retrying in %g s", what, describe_outage(exc), delay)
            if await sleep_unless_stopped(stop, delay):
                raise Stopped from None
            continue
        if failures:
            # Logged at the level of the failures it ends: a log that shows the outage shows its end.
            logger.warning("%s reachable again: recovered after %s failed attempts", what, failures)
        return result


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on both databases (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine tuned for the database behind `database_url`. Statement parameters are
    kept out of error messages and logs: they carry inquiries (health information)."""
    kwargs.setdefault("hide_parameters", True)
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": 30}, **kwargs)
        if engine.url.database and engine.url.database != ":memory:" and not engine.url.query.get("uri"):
            make_private(Path(engine.url.database))
        _tune_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    engine = create_async_engine(database_url, pool_recycle=1800, **kwargs)
    _ping_when_idle(engine)
    return engine


PRIVATE_FILE_MODE = 0o600


def make_private(database: Path) -> None:
    """Make the SQLite file and its -wal/-shm files readable by their owner only (inquiries are
    health information), whatever the umask. The database file is created here, 0600, before
    SQLite opens it: SQLite creates -wal and -shm with the mode of the database file. Files of
    an older install are tightened."""
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        pass
    except OSError as exc:  # SQLite will say what is wrong when it tries to open the file
        log.warning("cannot create %s: %s", database, exc.strerror or exc)
        return
    else:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # the umask may have taken bits away
        os.close(fd)
    for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        try:
            if path.exists() and stat.S_IMODE(path.stat().st_mode) != PRIVATE_FILE_MODE:
                path.chmod(PRIVATE_FILE_MODE)
        except OSError as exc:
            log.warning("cannot make %s private (mode 0600): %s", path, exc.strerror or exc)


IDLE_PING_SECONDS = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # the pool discards this connection and checks out (or opens) another one
            raise DisconnectionError(f"idle connection failed its ping: {type(exc).__name__}") from exc


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (the pysqlite/aiosqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> Sessions:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(database_url: str | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    if database_url:
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision` with Alembic."""
    from alembic import command

    def _upgrade(connection: Any) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def _rev(connection: Any) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_rev)


def head_revision() -> str | None:
    """The newest revision among the migrations that ship with this code."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def schema_problem(engine: AsyncEngine) -> str | None:
    """Why this code cannot run on the database behind `engine` (its schema is not at our head
    revision), or None. Raises what connecting raises, e.g. an outage."""
    current, head = await current_revision(engine), head_revision()
    if current == head:
        return None
    return f"the database schema is at {current or 'nothing'}, not {head}: run `tidings migrate`"


# -- one session per request ----------------------------------------------------------------

_SCOPE_KEY = "tidings.session"


def get_session(conn: HTTPConnection) -> AsyncSession:
    """The request's session, opened on first use; DbSessionMiddleware commits or rolls it back."""
    holder: dict[str, Any] = conn.scope[_SCOPE_KEY]
    if holder["session"] is None:
        holder["session"] = holder["factory"]()
    session: AsyncSession = holder["session"]
    return session


class DbSessionMiddleware:
    """Owns the request's session: commits it just before the response starts, so that a 303 or
    201 is only ever sent for data that is stored; rolls back on any exception; always closes.
    """

    def __init__(self, app: ASGIApp, sessions: Sessions) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        holder: dict[str, Any] = {"factory": self.sessions, "session": None}
        scope[_SCOPE_KEY] = holder

        async def send_after_commit(message: Message) -> None:
            if message["type"] == "http.response.start" and holder["session"] is not None:
                session: AsyncSession = holder["session"]
                if message["status"] < 500:
                    await session.commit()
                else:
                    await session.rollback()
            await send(message)

        try:
            await self.app(scope, receive, send_after_commit)
        except BaseException:
            if holder["session"] is not None:
                with suppress(Exception):  # the original error matters, not a failed rollback
                    await holder["session"].rollback()
            raise
        finally:
            if holder["session"] is not None:
                with suppress(Exception):
                    await holder["session"].close()


@asynccontextmanager
async def transaction(sessions: Sessions) -> AsyncIterator[AsyncSession]:
    """A session in a transaction, committed on success: for workers and the CLI."""
    async with sessions() as session, session.begin():
        yield session


@asynccontextmanager
async def short_transaction(sessions: Sessions) -> AsyncIterator[AsyncSession]:
    """A session whose work is committed as soon as the block ends, apart from any request's
    transaction (a rate-limit counter: counted even when the request then fails, and locked only
    while its statement runs). PostgreSQL runs it in autocommit, without BEGIN/COMMIT round
    trips; SQLite in one short transaction."""
    async with sessions() as session:
        if is_postgresql(session):
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            yield session
        else:
            async with session.begin():
                yield session


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE, DELETE or INSERT matched. Session.execute is typed as returning a
    Result, but for these statements it returns a CursorResult, which has the count."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


def lock_id(name: str) -> int:
    """A signed 64-bit number for `name` (PostgreSQL advisory locks are keyed by bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def lock_names(session: AsyncSession, *names: str) -> None:
    """Serialise transactions that work on the same named things until this transaction ends.

    PostgreSQL: transaction-scoped advisory locks, all taken in one statement, in ascending
    order, so two transactions locking overlapping sets cannot deadlock. SQLite needs nothing:
    its transactions begin IMMEDIATE (see `_tune_sqlite`), so writers already run one at a time."""
    if not is_postgresql(session) or not names:
        return
    ids = sorted({lock_id(name) for name in names})
    connection = await session.connection()
    await connection.execute(_lock_statement(len(ids)), {f"k{n}": k for n, k in enumerate(ids)})


@functools.lru_cache(maxsize=8)
def _lock_statement(count: int) -> Any:
    """`SELECT pg_advisory_xact_lock(…), …` for `count` keys, built once per count."""
    calls = ", ".join(f"pg_advisory_xact_lock(CAST(:k{n} AS BIGINT))" for n in range(count))
    return text(f"SELECT {calls}")  # noqa: S608 - only placeholders are interpolated


async def take_oldest(session: AsyncSession, model: Any, *columns: Any, lock: str, limit: int) -> list[Any]:
    """Delete the `limit` oldest rows of an append-only counter table (`model`, by its `id`) and
    return their `columns`, under the advisory lock `lock`: the start of every fold of counters
    that triggers append (the caller sums them and inserts the sums back). Deleting exactly the
    rows read (DELETE … RETURNING) neither loses nor counts twice a row appended meanwhile."""
    await lock_names(session, lock)
    oldest = select(model.id).order_by(model.id).limit(limit).subquery()
    cutoff = await session.scalar(select(func.max(oldest.c.id)))
    if cutoff is None:
        return []
    return list((await session.execute(delete(model).where(model.id <= cutoff).returning(*columns))).all())


async def status_counts(session: AsyncSession, model: Any, statuses: Sequence[str]) -> dict[str, int]:
    """The sums of a (status, n) counter table: how many rows of each of `statuses` there are
    (0 when none), whatever the appended rows not folded yet."""
    rows = await session.execute(select(model.status, func.sum(model.n)).group_by(model.status))
    found = {status: int(n or 0) for status, n in rows.all()}
    return {status: found.get(status, 0) for status in statuses}


async def fold_status_counts(session: AsyncSession, model: Any, *, lock: str, limit: int) -> int:
    """Fold the oldest appended rows of a (status, n) counter table into one per status (zero
    sums go); how many rows fewer there are now (0: nothing to fold)."""
    gone = await take_oldest(session, model, model.status, model.n, lock=lock, limit=limit)
    sums: Counter[str] = Counter()
    for status, n in gone:
        sums[status] += int(n)
    kept = [{"status": s, "n": n} for s, n in sums.items() if n]
    if kept:
        await session.execute(insert(model), kept)
    return len(gone) - len(kept)


# -- the few statements that differ between SQLite and PostgreSQL ------------------------------
# Every dialect check of a query lives here, so the domains' SQL reads the same on both.


def is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def keeps_lead_source_months(session: AsyncSession) -> bool:
    """Whether lead_source_months is kept up to date: by triggers on PostgreSQL (migration
    0012a_leadmonths); SQLite has none, and its reports group the inquiries themselves."""
    return is_postgresql(session)


def list_param(postgresql: bool, column: Any, name: str) -> ColumnElement[bool]:
    """`column IN :name`, the list given when the statement runs: `= ANY(:name)` on PostgreSQL,
    one SQL text whatever the count (asyncpg prepares each distinct text once per connection,
    its cache holds 100, and a batch's lists have every length), an expanding IN on SQLite. For
    statements built once per dialect (`once_per_dialect`)."""
    if postgresql:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def once_per_dialect(build: Callable[[bool], T]) -> Callable[[AsyncSession], T]:
    """Decorator: `build(postgresql)` makes a statement once per dialect, and the statement is
    reused with new parameters. For the hot paths (a batch of bounces runs ten statements):
    building a statement costs SQLAlchemy more than compiling from its cache and executing it,
    about 0.7 of 1.1 ms CPU for a SELECT of twenty ids."""
    built: dict[bool, T] = {}

    def statement(session: AsyncSession) -> T:
        postgresql = is_postgresql(session)
        if postgresql not in built:
            built[postgresql] = build(postgresql)
        return built[postgresql]

    return statement


def insert_for(session: AsyncSession) -> Callable[..., Any]:
    """The dialect's `insert` construct (it has `on_conflict_do_nothing`/`_do_update`)."""
    return dialect_insert(is_postgresql(session))


def dialect_insert(postgresql: bool) -> Callable[..., Any]:
    """`insert_for` for statements built once per dialect (`once_per_dialect`)."""
    return pg_insert if postgresql else sqlite_insert


def as_date(value: Any) -> dt.date:
    """A day as the buckets below come back: a date (PostgreSQL), or its ISO text (SQLite)."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def day_bucket(session: AsyncSession, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, for GROUP BY (a date, or its ISO text on SQLite)."""
    return sql_cast(column, Date) if is_postgresql(session) else func.date(column)


def week_bucket(session: AsyncSession, column: Any) -> Any:
    """The Monday (UTC) of a timestamp column's week, for GROUP BY (a date, or its ISO text on SQLite)."""
    if is_postgresql(session):
        return sql_cast(func.date_trunc("week", func.timezone("UTC", column)), Date)
    return func.date(column, "weekday 0", "-6 days")


def month_bucket(session: AsyncSession, column: Any) -> Any:
    """The UTC month of a timestamp column as 'YYYY-MM' text, for GROUP BY."""
    if is_postgresql(session):
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


def postgresql_only(index: Index) -> Index:
    """Declare `index` for PostgreSQL only (an expression SQLite has no use for)."""
    return index.ddl_if(dialect="postgresql")


class email_domain(FunctionElement[str]):  # noqa: N801 - used like func.*
    """The part of an address after its '@', one SQL expression per dialect: PostgreSQL's is the
    very expression of the index ix_subscribers_email_domain (migration 0014k_admincounts), so a
    search by domain is an index look-up there; SQLite, which has no split_part, scans."""

    type = String()
    inherit_cache = True


@compiles(email_domain, "postgresql")
def _email_domain_postgresql(element: email_domain, compiler: Any, **kw: Any) -> str:
    return f"split_part({compiler.process(*element.clauses, **kw)}, '@', 2)"


@compiles(email_domain, "sqlite")
def _email_domain_sqlite(element: email_domain, compiler: Any, **kw: Any) -> str:
    column = compiler.process(*element.clauses, **kw)
    return f"substr({column}, instr({column}, '@') + 1)"


def like_pattern(value: str) -> str:
    """`%value%` with LIKE's wildcards escaped (use with escape="\\\\")."""
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def word_search(session: AsyncSession, *, document: Any, config: Any, columns: Sequence[Any],
                words: Sequence[str]) -> ColumnElement[bool]:
    """Every word as a prefix: on PostgreSQL `document @@ to_tsquery(config, 'w1:* & w2:*')` (use the
    expression of a GIN index as `document`); on SQLite each word a substring of one of `columns`."""
    if is_postgresql(session):
        return document.op("@@")(func.to_tsquery(config, " & ".join(f"{w}:*" for w in words)))
    return and_(*(or_(*(c.like(like_pattern(w), escape="\\") for c in columns)) for w in words))


async def without_jit(session: AsyncSession) -> None:
    """PostgreSQL: no JIT compilation for the rest of this transaction (it costs more than it saves
    on a one-off statement). SQLite has none."""
    if is_postgresql(session):
        await session.execute(text("SET LOCAL jit = off"))


async def hash_aggregates(session: AsyncSession) -> None:
    """PostgreSQL: room in memory for hashed GROUP BYs for the rest of this transaction. The
    planner multiplies the distinct values of grouped columns, expects tens of thousands of
    groups where a report has hundreds, and would sort every row on disk instead. SQLite: no-op."""
    if is_postgresql(session):
        await session.execute(text("SET LOCAL work_mem = '32MB'"))


async def analyze(session: AsyncSession, *tables: str) -> None:
    """PostgreSQL: refresh the planner's statistics of `tables` (after a bulk load into them)."""
    if is_postgresql(session):
        for table in tables:
            await session.execute(text(f"ANALYZE {table}"))


async def bulk_insert(session: AsyncSession, table: Table, columns: Sequence[str],
                      records: Sequence[tuple[Any, ...]]) -> None:
    """Insert many rows fast: COPY on PostgreSQL (asyncpg), one executemany on SQLite."""
    if not records:
        return
    raw = (await (await session.connection()).get_raw_connection()).driver_connection
    if is_postgresql(session):
        await raw.copy_records_to_table(table.name, columns=list(columns), records=list(records))  # type: ignore[union-attr]
        return
    # SQLite: the driver's executemany with the values converted here. SQLAlchemy's per-row
    # parameter processing (a dict per row, a processor per value) cost more than the insert;
    # UTC datetimes are written in the very text form SQLAlchemy stores (and compares) them in.
    dated = [isinstance(table.c[name].type, UTCDateTime) for name in columns]
    if any(dated):
        records = [tuple(_sqlite_time(v) if d else v for v, d in zip(r, dated, strict=True)) for r in records]
    names = ", ".join(f'"{name}"' for name in columns)
    marks = ", ".join("?" * len(columns))
    await raw.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', records)  # type: ignore[union-attr]


def _sqlite_time(value: dt.datetime | None) -> str | None:
    """A UTC datetime as SQLAlchemy's SQLite DATETIME stores it ('2024-05-01 09:30:00.000000')."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


# -- keyset pages -------------------------------------------------------------------------------

Cursor = tuple[dt.datetime, int]  # (created_at, id) of the last row of the page before


def newest_first(stmt: Select[Any], created: Any, ident: Any, after: Cursor | None, limit: int) -> Select[Any]:
    """Order newest first and start after the cursor: a row comparison the (created_at, id)
    index answers directly, however deep the page. The cursor's time is bound with the column's
    own type, so SQLite compares it in the stored text form."""
    if after is not None:
        stmt = stmt.where(tuple_(created, ident) < tuple_(bindparam(None, after[0], type_=created.type), after[1]))
    return stmt.order_by(created.desc(), ident.desc()).limit(limit)


def day_start(day: dt.date) -> dt.datetime:
    """Midnight UTC at the start of `day`."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
