"""The submission path: mail is queued unrendered but checked in the request, and a lost
PostgreSQL connection costs at most a clean 503, never a broken pool."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text

from service.app import create_app
from service.db import create_engine, session_factory
from service.mail.outbox import outbox_email
from tests.conftest import PG_URL, Database, make_settings
from tests.factories import ROOMY, count_rows, outbox_messages, post_json, posted_id


async def test_a_header_value_with_a_line_break_fails_the_request_and_stores_nothing(db: Database) -> None:
    settings = make_settings(db, form_rate_limit=ROOMY, staff_inbox="staff@clinic.test\r\nBcc: victim@evil.test")
    app = create_app(settings, sessions=db.sessions)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await post_json(client)
    assert r.status_code == 500
    assert await count_rows(db) == (0, 0)


async def test_both_inquiry_emails_are_queued_unrendered_and_render_with_their_ids(
        client: httpx.AsyncClient, db: Database) -> None:
    inquiry_id = await posted_id(client, db, name="Ana Souza", email="ana@example.org")
    staff, reply = await outbox_messages(db)
    assert staff.raw is None and reply.raw is None and staff.message_id != reply.message_id
    staff_msg, reply_msg = outbox_email(staff), outbox_email(reply)
    assert staff_msg["Message-ID"] == staff.message_id and staff_msg["To"] == "staff@clinic.test"
    assert staff_msg["Subject"] == f"New inquiry #{inquiry_id} from Ana Souza"
    assert f"/admin/inquiries/{inquiry_id}" in staff_msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert reply_msg["To"] == "ana@example.org" and reply_msg["Auto-Submitted"] == "auto-replied"


# PostgreSQL's pool only (SQLite has no server to lose); CI always runs it.
@pytest.mark.parametrize("database", ["postgresql"] if PG_URL else [], indirect=True)
async def test_a_killed_database_connection_costs_at_most_one_clean_503(db: Database) -> None:
    engine = create_engine(db.url, connect_args={"server_settings": {"application_name": "tidings-pool-test"}})
    app = create_app(make_settings(db, form_rate_limit=ROOMY), sessions=session_factory(engine))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000), raise_app_exceptions=False)

    async def kill_pool_connections() -> None:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE application_name = 'tidings-pool-test'"))

    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await post_json(client)).status_code == 201
            # killed while idle: the checkout ping replaces the dead connection unseen
            await kill_pool_connections()
            await asyncio.sleep(1.2)
            assert (await post_json(client, message="A second question.")).status_code == 201
            # killed moments after use (not pinged): at most that request fails, cleanly (503), and the
            # first disconnect invalidates the whole pool, so the next request gets a fresh connection
            await kill_pool_connections()
            first = await post_json(client, message="A third question.")
            assert first.status_code in (201, 503)
            assert (await post_json(client, message="A fourth question.")).status_code == 201
    finally:
        await engine.dispose()
    stored, _outbox = await count_rows(db)
    assert stored == (4 if first.status_code == 201 else 3)
