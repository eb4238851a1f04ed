"""A feed server that drips its answer cannot hold an import: the whole fetch has a deadline
(FEED_FETCH_DEADLINE), not only each read. Tested against a real HTTP server on 127.0.0.1 that
sends a valid feed a few bytes at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from service.articles.flows import import_articles
from service.articles.ingest import IngestError
from service.articles.models import Article
from service.settings import Settings
from tests.conftest import Database, make_settings
from tests.factories import csrf, signed_in_client

SAMPLE = Path("/work/shared/sample-blog")
if not SAMPLE.exists():
    SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "sample-blog"

FEED = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>t</title><link>https://blog.clinic.test/</link><description>d</description>
<item><title>Slow post</title><link>https://blog.clinic.test/slow/</link><guid>slow-1</guid>
<pubDate>Mon, 20 Jan 2025 16:45:00 +0000</pubDate><description>Dripped</description></item>
</channel></rss>"""


DEADLINE = 2.0  # FEED_FETCH_DEADLINE in these tests


class DripServer:
    """HTTP/1.1 on 127.0.0.1: `/fast` answers at once, `/slow` sends the same feed in 10-byte
    pieces 0.3 s apart (about 12 s in all: far past the test deadline of 2 s, however busy the
    machine, so that the fast feed always arrives within it; short enough that code without a
    deadline finishes the import instead of hanging)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            request_line = await reader.readline()
            while (await reader.readline()).strip():
                pass
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: {len(FEED)}\r\n"
                    "Connection: close\r\n\r\n").encode()
            writer.write(head)
            if b" /slow" in request_line:
                for start in range(0, len(FEED), 10):
                    writer.write(FEED[start:start + 10])
                    await writer.drain()
                    await asyncio.sleep(0.3)
            else:
                writer.write(FEED)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()


@pytest.fixture
async def drip() -> AsyncIterator[str]:
    server = DripServer()
    url = await server.start()
    yield url
    await server.stop()


async def _titles(db: Database) -> list[str]:
    async with db.sessions() as session:
        return sorted((await session.scalars(select(Article.title))).all())


async def test_a_dripping_feed_is_cut_off_at_the_deadline_and_changes_nothing(
    db: Database, settings: Settings, drip: str
) -> None:
    quick = settings.with_(feed_fetch_deadline=DEADLINE)
    await import_articles(db.sessions, quick, [str(SAMPLE / "feed.xml")])
    before = await _titles(db)
    with pytest.raises(IngestError, match=r"/slow: the feed did not arrive within 2 seconds"):
        await import_articles(db.sessions, quick, [f"{drip}/fast", f"{drip}/slow"])
    assert await _titles(db) == before  # not even the fast feed's article
    result = await import_articles(db.sessions, quick, [f"{drip}/fast"])  # the same feed, sent at once
    assert result.created == 1 and "Slow post" in await _titles(db)


async def test_import_now_in_the_admin_stops_at_the_deadline(db: Database, drip: str) -> None:
    from service.app import create_app
    from tests.factories import make_staff

    admin = await make_staff(db)
    app = create_app(make_settings(db, feed_url=f"{drip}/slow", feed_fetch_deadline=DEADLINE), sessions=db.sessions)
    async with signed_in_client(app, admin) as client:
        r = await client.post("/admin/articles/import", data={"csrf_token": await csrf(client)})
    assert r.status_code == 422
    assert "The feed could not be imported, nothing changed" in r.text
    assert "the feed did not arrive within 2 seconds" in r.text
    assert await _titles(db) == []

