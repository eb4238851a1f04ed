"""A body over MAX_BODY_BYTES gets our own 413 in the form the client was promised: JSON on the
API and the webhooks (with the generic webhook on, whose batches are the largest bodies we take),
the error page on the public forms; never Starlette's plain "Content Too Large"; nothing stored."""

from __future__ import annotations

import httpx
import pytest

from service.inquiries.models import Inquiry
from tests.conftest import Database
from tests.factories import client_with, count

BIG = b"x" * (70 * 1024)  # over the default MAX_BODY_BYTES of 64 KiB
SECRET = "w" * 40


@pytest.mark.parametrize("path", ["/api/inquiries", "/webhooks/generic", "/webhooks/postmark"])
async def test_json_routes_answer_an_oversized_body_in_json(db: Database, path: str) -> None:
    async with client_with(db, webhook_secret=SECRET) as client:
        r = await client.post(path, content=BIG, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/json")
    assert "larger than this server accepts" in r.json()["error"]
    assert await count(db, Inquiry) == 0


async def test_a_form_answers_an_oversized_body_with_the_error_page(db: Database) -> None:
    async with client_with(db) as client:
        r = await client.post("/contact", content=BIG, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("text/html")
    assert "Too much data" in r.text and "larger than this server accepts" in r.text
    assert await count(db, Inquiry) == 0


async def test_an_ordinary_request_is_untouched(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/openapi.json")
    assert r.status_code == 200 and r.json()["openapi"].startswith("3")
