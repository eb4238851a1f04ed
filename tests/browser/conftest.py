"""Browser fixtures: headless Debian Chromium driven by Playwright, a real `tidings serve`
against the test database and SMTP server, and axe-core for accessibility checks.

Chromium and axe-core are installed by `.ci/run` (apt `chromium`, `npm ci`). Locally, when
either is missing, the browser tests are skipped with a reason saying what to install; in CI
a skip fails the run (see tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_SECRET, Database
from tests.live import LiveServer, tidings_env
from tests.smtp import SmtpServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _require(path: str | Path, what: str) -> None:
    if not Path(path).exists():
        pytest.skip(f"{what} is not installed ({path}); run .ci/run or install it to run browser tests")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    _require(CHROMIUM, "Debian's chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        await b.close()


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
    """A real `tidings serve` (with its in-process worker) on the test database and SMTP server."""
    env = tidings_env(db.url, TEST_SECRET, SMTP_URL=smtp.url, FORM_MIN_SECONDS="0",
                      MAIL_FROM="Clinic <hello@clinic.test>", STAFF_INBOX="staff@clinic.test",
                      ORG_NAME="Clinic", SEND_RATE=send_rate)
    server = LiveServer(env, tmp_path / "serve.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def live(db: Database, smtp: SmtpServer, tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(db, smtp, tmp_path) as server:
        yield server


async def axe_violations(page: Any, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """Run axe-core on the current page; the violations of the given impacts."""
    _require(AXE, "axe-core (npm ci --prefix tests/browser)")
    # evaluate() is not subject to the page's CSP (add_script_tag would be, and our CSP forbids it)
    await page.evaluate(AXE.read_text())
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in impacts
    ]


async def screenshot(page: Any, name: str, *, full_page: bool = False) -> None:
    """Keep a screenshot for the README (docs/screenshots/NAME.png) when SCREENSHOTS=1: what the
    viewport shows (a whole long page makes a large file the README shrinks to nothing anyway)."""
    if os.environ.get("SCREENSHOTS") == "1":
        (DOCS / "screenshots").mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(DOCS / "screenshots" / f"{name}.png"), full_page=full_page)
