"""The app shell: health checks, security headers, body limit, error pages, request log."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.requests import Request
from starlette.routing import Route

from service.app import create_app
from service.settings import Settings
from tests.conftest import Database


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "ok"}


async def test_readyz_reports_unreachable_database(settings: Settings) -> None:
    broken = settings.with_(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    app = create_app(broken)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "database": "unreachable"}


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/does-not-exist"):
        r = await client.get(path)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'self' https://blog.clinic.test" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
        assert "strict-transport-security" not in r.headers
        assert len(r.headers["x-request-id"]) == 16


async def test_hsts_when_base_url_is_https(settings: Settings, db: Database) -> None:
    app = create_app(settings.with_(base_url="https://news.clinic.test"), sessions=db.sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/healthz")
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")


async def test_404_page_is_html_without_details(client: httpx.AsyncClient) -> None:
    r = await client.get("/wp-admin/<script>")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "Page not found" in r.text and "<script>" not in r.text


async def test_500_page_shows_no_traceback(settings: Settings, db: Database) -> None:
    async def boom(request: Request) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app = create_app(settings, sessions=db.sessions)
    app.router.routes.append(Route("/boom", boom))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/boom")
    assert r.status_code == 500
    assert "Something went wrong" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "Traceback" not in r.text and "hunter2" not in r.text and "RuntimeError" not in r.text


async def test_oversized_body_is_refused_with_413(settings: Settings, db: Database) -> None:
    async def echo(request: Request) -> None:
        await request.body()

    app = create_app(settings.with_(max_body_bytes=2048), sessions=db.sessions)
    app.router.routes.append(Route("/echo", echo, methods=["POST"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/echo", content=b"x" * 4096)
    assert r.status_code == 413


async def test_one_access_log_line_per_request_without_tokens(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = "eyJzIjoxfQ.ZxYwVu.abcdefghijklmnopqrstuvwxyz0123"
    with caplog.at_level(logging.INFO, logger="tidings.access"):
        r = await client.get(f"/unsubscribe/{token}?email=ana@example.org")
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "tidings.access"]
    assert len(lines) == 1
    assert lines[0].startswith("GET /unsubscribe/… ")
    assert token not in lines[0] and "ana@example.org" not in lines[0]
    assert r.headers["x-request-id"] in lines[0]


async def test_a_connection_pool_with_no_free_connection_answers_503_with_retry_after(
        db: Database, settings: Settings) -> None:
    """Overload (every pooled connection busy past the pool's timeout) is "try again shortly",
    as a lost database is: 503 with Retry-After and nothing stored, not a 500."""
    from sqlalchemy import func, select, text

    from service.db import create_engine, session_factory
    from service.inquiries.models import Inquiry
    from tests.factories import form_token, new_client, valid_fields

    engine = create_engine(db.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    app = create_app(settings, sessions=session_factory(engine))
    try:
        async with new_client(app) as client:
            token = await form_token(client)
            async with engine.connect() as busy:  # the pool's only connection, held
                await busy.execute(text("SELECT 1"))
                r = await client.post("/api/inquiries", json={**valid_fields(), "form_token": token},
                                      headers={"Origin": "https://blog.clinic.test"})
            assert r.status_code == 503 and r.headers["retry-after"] == "30", r.text
            assert r.headers["content-type"].startswith("application/json")
    finally:
        await engine.dispose()
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Inquiry)) == 0
