"""Test fixtures: a migrated database per backend (SQLite always; PostgreSQL when
TEST_DATABASE_URL is set, which CI does), the real app behind httpx, and a real SMTP server.

Every test that uses `db` runs once per backend. Tables are emptied after each test, not rolled
back, because many tests need committed data that other connections and processes can see
(workers claiming rows, real uvicorn servers).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import service.models  # noqa: F401 - every table in Base.metadata
from service.admin.auth import configure_password_hashing
from service.app import create_app
from service.db import Base, Sessions, create_engine, migrate, session_factory
from service.settings import Settings
from tests.smtp import SmtpServer

# No per-example time limit for property tests: Hypothesis' default 200 ms deadline fails
# tests when a busy machine is slow, not when the code is wrong.
hypothesis.settings.register_profile("tidings", deadline=None)
hypothesis.settings.load_profile("tidings")

TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
PG_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]


def pytest_report_header(config: pytest.Config) -> str:
    pg = "PostgreSQL (TEST_DATABASE_URL)" if PG_URL else "PostgreSQL NOT included (set TEST_DATABASE_URL)"
    return f"tidings backends: SQLite, {pg}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every browser test is `slow` (a real uvicorn and Chromium): `-m "not slow"` leaves them out."""
    browser = Path(__file__).resolve().parent / "browser"
    for item in items:
        if item.path.is_relative_to(browser):
            item.add_marker(pytest.mark.slow)


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("CI") and not PG_URL:
        raise pytest.UsageError("CI is set but TEST_DATABASE_URL is not: the suite must run on PostgreSQL too")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped and os.environ.get("CI"):
        terminalreporter.write_line(f"FAILED: {len(skipped)} test(s) skipped in CI; nothing may be skipped")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") and reporter is not None and reporter.stats.get("skipped"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """The real argon2 hasher with its cheapest parameters: staff accounts and sign-ins cost
    microseconds instead of ~0.5 s of CPU each. Production keeps the default profile
    (tests/admin/test_password_hashing.py checks it)."""
    configure_password_hashing("insecure-fast-for-tests")
    yield
    configure_password_hashing("default")


@dataclass
class Database:
    backend: str
    url: str
    engine: AsyncEngine
    sessions: Sessions

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgresql"


async def _fresh_postgres(url: str) -> str:
    """Recreate the test database given by TEST_DATABASE_URL (its name must contain 'test').
    Under pytest-xdist each worker gets its own copy, named after it (`tidings_test_gw0` …)."""
    sa_url = make_url(url).set(drivername="postgresql+asyncpg")
    name = sa_url.database or ""
    if "test" not in name:
        raise pytest.UsageError(f"TEST_DATABASE_URL must name a database with 'test' in it, not {name!r}")
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):
        name = f"{name}_{worker}"
        sa_url = sa_url.set(database=name)
    admin = create_engine(sa_url.set(database="postgres").render_as_string(hide_password=False),
                          isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
        ), {"n": name})
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return sa_url.render_as_string(hide_password=False)


@pytest.fixture(scope="session", params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "tidings.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = await _fresh_postgres(PG_URL)
    engine = create_engine(url)
    await migrate(engine)
    yield Database(request.param, url, engine, session_factory(engine))
    await engine.dispose()


# Counters the triggers append to: emptied last, after the rows whose deletion appends to them.
TRIGGER_WRITTEN = ["lead_source_months", "subscriber_counts", "subscriber_days", "delivery_counts", "inquiry_counts"]


async def empty_tables(database: Database) -> None:
    """Delete every row, children before parents, and (PostgreSQL) restart every id sequence, so
    the next test starts from the same empty database. DELETE, not TRUNCATE: TRUNCATE of 17 small
    tables took ~0.8 s on a busy machine, DELETE plus setval ~30 ms. The statements go to the
    driver as one script in one transaction (one round trip instead of ~45): ~18 ms of CPU per
    test on SQLite before, after every test of the suite."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in TRIGGER_WRITTEN]
    tables += TRIGGER_WRITTEN  # last: deleting the inquiries and subscribers appends to them
    script = "".join(f"DELETE FROM {name};\n" for name in tables)
    async with database.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        if database.is_postgres:
            script += ("SELECT setval(c.oid, 1, false) FROM pg_class c "
                       "WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace;\n")
            async with driver.transaction():
                await driver.execute(script)  # asyncpg: several statements in one simple query
        else:
            await driver.executescript(f"BEGIN;\n{script}COMMIT;")


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    yield database
    await empty_tables(database)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    smtp_server.handler.reset()
    if smtp_server.controller is None:
        smtp_server.start()
    yield smtp_server
    smtp_server.handler.reset()
    if smtp_server.controller is None:
        smtp_server.start()


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_installed(path: str | Path, what: str) -> None:
    """Skip a browser test whose tool is missing, saying what to install (in CI a skip fails the run)."""
    if not Path(path).exists():
        pytest.skip(f"{what} is not installed ({path}); run .ci/run or install it to run browser tests")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium driven by Playwright, one for the test process (a launch costs
    ~1.4 s of CPU): tests/browser/ and the embed tests each take a context of their own."""
    require_installed(CHROMIUM, "Debian's chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        await b.close()


def make_settings(database: Database, **changes: object) -> Settings:
    base = Settings(
        database_url=database.url,
        secret_key=TEST_SECRET,
        base_url="http://testserver",
        mail_from="Clinic <hello@clinic.test>",
        staff_inbox="staff@clinic.test",
        allowed_origins=("https://blog.clinic.test",),
        form_min_seconds=0.0,
        allow_http_base_url=True,  # the test server is http://testserver
        org_postal_address="Clinic Street 1\n12345 Testtown",
    )
    return base.with_(**changes)


@pytest.fixture
def settings(db: Database) -> Settings:
    return make_settings(db)


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    return create_app(settings, sessions=db.sessions)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A DKIM key made with openssl: the private key's file and the public key as a DNS TXT
    record's `p=` value (for dkimpy's `dnsfunc`)."""
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"], check=True,
                            capture_output=True).stdout
    return private, base64.b64encode(public)
