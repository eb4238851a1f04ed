"""The brand decorates answers; it is never why one fails. While the database is away, the
form token the blog's script fetches is still given out (the form's own POST then answers 503
by itself), with the brand read last or, before any was read, the environment's."""

from __future__ import annotations

import httpx

from service.app import create_app
from service.db import create_engine, session_factory
from tests.conftest import Database, make_settings
from tests.smtp import free_port


async def test_form_token_is_given_out_while_the_database_is_unreachable(db: Database) -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere")  # nothing listens
    app = create_app(make_settings(db, org_name="Clinic Away"), sessions=session_factory(engine))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            r = await client.get("/api/form-token")
            signup = await client.get("/api/subscriptions")
            again = await client.post("/api/inquiries", json={"name": "Ana"})
    finally:
        await engine.dispose()
    assert r.status_code == 200, r.text
    assert r.json()["form_token"]
    assert signup.status_code == 200 and "Clinic Away" in signup.json()["consent_text"]
    assert again.status_code in (422, 503)  # its own answer, not a brand error
