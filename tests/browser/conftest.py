"""Browser fixtures: pages of the headless Debian Chromium driven by Playwright (`browser`, in
tests/conftest.py, which the embed tests share), a real `tidings serve` against the test
database and SMTP server, and axe-core for accessibility checks.

Chromium and axe-core are installed by `.ci/run` (apt `chromium`, `npm ci`). Locally, when
either is missing, the browser tests are skipped with a reason saying what to install; in CI
a skip fails the run (see tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import and_, or_, select

from service.campaigns.models import Campaign, Delivery
from service.db import utcnow
from service.mail.models import OutboxMessage
from tests.conftest import TEST_SECRET, Database, require_installed
from tests.live import LiveServer, tidings_env
from tests.smtp import SmtpServer

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    pg = await context.new_page()
    yield pg
    await context.close()


@pytest.fixture
async def nojs_page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    pg = await context.new_page()
    yield pg
    await context.close()


@contextlib.contextmanager
def live_server(db: Database, smtp: SmtpServer, tmp_path: Path, *, send_rate: str = "0") -> Iterator[LiveServer]:
    """A real `tidings serve` (with its in-process worker) on the test database and SMTP server,
    of the test's own: the module's shared server on the same database is stopped first, since
    two workers would share the work out between them."""
    _stop_shared(db.url)
    server = _start(db, smtp, tmp_path, send_rate=send_rate)
    try:
        yield server
    finally:
        server.stop()


def _start(db: Database, smtp: SmtpServer, tmp_path: Path, *, send_rate: str = "0") -> LiveServer:
    env = tidings_env(db.url, TEST_SECRET, SMTP_URL=smtp.url, FORM_MIN_SECONDS="0",
                      MAIL_FROM="Clinic <hello@clinic.test>", STAFF_INBOX="staff@clinic.test",
                      ORG_NAME="Clinic", SEND_RATE=send_rate)
    server = LiveServer(env, tmp_path / "serve.log")
    server.start()
    return server


# The `live` server, shared by the tests that follow one another taking `live` on one database
# (one per xdist worker), whichever module of this folder they are in: starting `tidings serve`
# costs a Python process's imports and the schema check, ~2 s of CPU, and most browser tests take
# one. It stops after the last of them, before any test that does not take it runs, so no test
# elsewhere (nor a server of a test's own) meets its worker; all a running server keeps is in the
# database (emptied after each test, rate limits included) except the brand, cached for 10 s, so
# the test that changes the brand takes `fresh_live`.
_SHARED: dict[str, LiveServer] = {}  # by database URL


def _stop_shared(url: str | None = None) -> None:
    for key in [k for k in _SHARED if url is None or k == url]:
        _SHARED.pop(key).stop()


@pytest.hookimpl(trylast=True)  # after the fixtures' teardown, where `live` waits for its worker
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if nextitem is None or "live" not in getattr(nextitem, "fixturenames", ()):
        _stop_shared()


@pytest.fixture(scope="session", autouse=True)
def _shared_server_ends_with_the_session() -> Iterator[None]:
    yield
    _stop_shared()  # (a run cut short)


@pytest.fixture
async def live(db: Database, smtp: SmtpServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """The module's server on this database; after the test, once its worker has sent what the
    test queued (so no mail of this test reaches the next one), `db` empties the tables."""
    server = _SHARED.get(db.url)
    if server is None or server.proc is None or server.proc.poll() is not None:
        _stop_shared()  # the other database's: one server at a time
        server = _SHARED[db.url] = _start(db, smtp, tmp_path_factory.mktemp("live"))
    yield server
    await settled(db, server)


@pytest.fixture
def fresh_live(db: Database, smtp: SmtpServer, tmp_path: Path) -> Iterator[LiveServer]:
    """A server of the test's own, stopped at its end."""
    with live_server(db, smtp, tmp_path) as server:
        yield server


async def settled(db: Database, server: LiveServer, *, within: float = 60.0) -> None:
    """Wait until no outbox message and no delivery of a sending campaign is being sent or due to
    be sent: the server's worker has nothing left in hand that could reach the SMTP server later."""
    deadline = time.monotonic() + within
    while True:
        now = utcnow()
        async with db.sessions() as session:
            busy = await session.scalar(select(
                select(OutboxMessage.id).where(or_(
                    OutboxMessage.status == "sending",
                    and_(OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now))).exists()
                | select(Delivery.id).join(Campaign, Campaign.id == Delivery.campaign_id).where(
                    Campaign.status == "sending", or_(
                        Delivery.status == "sending",
                        and_(Delivery.status == "queued", Delivery.next_attempt_at <= now))).exists()))
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the live server's worker did not finish within {within} s:\n{server.log()[-4000:]}")
        await asyncio.sleep(0.1)


# axe.run's whole result (every rule's passes and inapplicable entries, ~100 KB) would cross
# CDP, the driver and Python once a page; the page sends back only what a failure message shows.
# `iframes: false`: our frames are sandboxed (no script), so axe never reaches into them and
# only waited 500 ms for each one's answer; the results are the same.
AXE_RUN = """async () => {
  if (typeof axe === "undefined") return null;
  const result = await axe.run(document, {resultTypes: ["violations"], iframes: false});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                      nodes: v.nodes.slice(0, 5).map(n => n.target)}));
}"""


async def axe_violations(page: Any, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """Run axe-core on the current page; the violations of the given impacts. axe comes with
    the page in a context given `with_axe`, else it is sent now (evaluate() is not subject to
    the page's CSP; add_script_tag would be, and our CSP forbids it)."""
    violations = await page.evaluate(AXE_RUN)
    if violations is None:
        await page.evaluate(_axe_source())
        violations = await page.evaluate(AXE_RUN)
    return [v for v in violations if v["impact"] in impacts]


async def with_axe(context: Any) -> None:
    """Have axe-core defined in every page the context opens from now on: for a sweep that
    audits page after page. Playwright's init scripts are not subject to the page's CSP. Its
    550 KB are compiled at each navigation, audited or not (~30 ms), where evaluate() costs
    ~80 ms an audit, so a journey that audits now and then does better without."""
    await context.add_init_script(_axe_source())


@functools.cache
def _axe_source() -> str:
    require_installed(AXE, "axe-core (npm ci --prefix tests/browser)")
    return AXE.read_text()


async def screenshot(page: Any, name: str, *, full_page: bool = False) -> None:
    """Keep a screenshot for the README (docs/screenshots/NAME.png) when SCREENSHOTS=1: what the
    viewport shows (a whole long page makes a large file the README shrinks to nothing anyway)."""
    if os.environ.get("SCREENSHOTS") == "1":
        (DOCS / "screenshots").mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(DOCS / "screenshots" / f"{name}.png"), full_page=full_page)
