"""`tidings articles import` from the command line, and the worker's FEED_URL poll."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.articles.models import Article
from service.mail.transport import LocalMailboxTransport
from service.settings import Settings
from service.worker import WorkerContext, default_loops
from tests.articles.test_import import SAMPLE
from tests.conftest import ROOT, TEST_SECRET, Database


def _tidings(db: Database, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FEED_URL")}
    env.update(DATABASE_URL=db.url, SECRET_KEY=TEST_SECRET, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


async def _count(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Article)) or 0)


@pytest.mark.slow  # runs `tidings` as a process
async def test_import_command_reads_posts_and_feed_and_reports(db: Database, tmp_path: Path) -> None:
    done = _tidings(db, "articles", "import", str(SAMPLE / "posts"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "articles: 5 new, 0 updated, 0 unchanged"
    again = _tidings(db, "articles", "import", str(SAMPLE / "posts"), cwd=tmp_path)
    assert again.stdout.strip() == "articles: 0 new, 0 updated, 5 unchanged"
    assert await _count(db) == 5


@pytest.mark.slow  # runs `tidings` as a process
async def test_import_command_with_a_broken_feed_is_one_line_and_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    broken = tmp_path / "feed.xml"
    broken.write_text("<html>this is a web page</html>")
    done = _tidings(db, "articles", "import", str(SAMPLE / "posts"), str(broken), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {broken}: not an RSS or Atom feed"]
    assert await _count(db) == 0


async def test_worker_polls_feed_url(db: Database, settings: Settings) -> None:
    polling = settings.with_(feed_url=str(SAMPLE / "feed.xml"), feed_poll_seconds=600)
    (feed_loop,) = [loop for loop in default_loops(polling) if loop.name == "feed"]
    assert feed_loop.interval == 600
    ctx = WorkerContext(settings=polling, sessions=db.sessions, mailer=LocalMailboxTransport(db.sessions))
    await feed_loop.job(ctx)
    assert await _count(db) == 5
