"""POST /api/inquiries and GET /api/form-token: the JSON twin of the form for the blog's script,
with CORS for ALLOWED_ORIGINS only."""

from __future__ import annotations

import httpx

from tests.conftest import Database
from tests.factories import (
    RECEIPT,
    count_rows,
    deliver,
    form_token,
    post_json,
    stored_inquiries,
    valid_fields,
)
from tests.smtp import SmtpServer

BLOG = "https://blog.clinic.test"


async def test_json_submission_is_stored_and_answered_201_with_a_receipt(
    client: httpx.AsyncClient, db: Database, smtp: SmtpServer
) -> None:
    r = await post_json(client, newsletter=True, consent=True)
    assert r.status_code == 201
    (inq,) = await stored_inquiries(db)
    assert r.json() == {"id": inq.receipt} and RECEIPT.match(inq.receipt or "")
    assert inq.email == "ana@example.org" and inq.newsletter_optin is True
    assert inq.utm_campaign == "spring" and inq.source_page.endswith("/ketamine-and-depression")
    assert inq.ip == "203.0.113.7"
    assert await deliver(db, smtp) == 3  # staff notification, auto-reply, newsletter confirmation
    assert sorted(m.recipients[0] for m in smtp.received) == [
        "ana@example.org", "ana@example.org", "staff@clinic.test"]
    staff = next(m.message for m in smtp.received if m.recipients == ["staff@clinic.test"])
    assert staff["Reply-To"] == "Ana Souza <ana@example.org>"
    assert [p.get_content_type() for p in staff.iter_parts()] == ["text/plain", "text/html"]


async def test_json_errors_are_422_by_field_and_nothing_is_stored(client: httpx.AsyncClient, db: Database) -> None:
    r = await post_json(client, name="", email="nope", topic="astrology", message="", consent=False,
                        contact_method="fax")
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert set(errors) == {"name", "email", "topic", "message", "consent", "contact_method"}
    assert errors["name"] == "Please enter your name"
    assert errors["email"].startswith("This email address is not valid")
    r = await post_json(client, name=["a", "list"], phone=12345)
    assert r.status_code == 422 and r.json()["errors"] == {"name": "must be text", "phone": (
        "Phone number should have between 6 and 15 digits")}
    assert await count_rows(db) == (0, 0)


async def test_json_with_wrong_content_type_is_415(client: httpx.AsyncClient, db: Database) -> None:
    token = await form_token(client)
    r = await client.post("/api/inquiries", data=valid_fields(form_token=token))
    assert r.status_code == 415
    assert r.json() == {"error": "Send the inquiry as JSON with Content-Type: application/json."}
    r = await client.post("/api/inquiries", content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert await count_rows(db) == (0, 0)


async def test_malformed_json_and_invalid_utf8_are_400(client: httpx.AsyncClient, db: Database) -> None:
    cases = [
        (b'{"name": "Ana",', "The request body is not valid JSON."),
        (b'{"name": "Ana\xff\xfe"}', "The request body is not valid UTF-8."),
        (b'["not", "an", "object"]', "The request body must be a JSON object of fields."),
        (b'{"name": "Ana \\ud800"}', "The field 'name' is not valid Unicode."),
    ]
    for body, message in cases:
        r = await client.post("/api/inquiries", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, body
        assert r.json() == {"error": message}
    assert await count_rows(db) == (0, 0)


async def test_cors_allowed_origin_gets_acao_header(client: httpx.AsyncClient) -> None:
    pre = await client.options("/api/inquiries", headers={
        "Origin": BLOG, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == BLOG
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in pre.headers
    r = await client.get("/api/form-token", headers={"Origin": BLOG})
    assert r.headers["access-control-allow-origin"] == BLOG
    r = await post_json(client, form_token=r.json()["form_token"])
    assert r.status_code == 201
    r = await client.post("/api/inquiries", json=valid_fields(form_token=await form_token(client)),
                          headers={"Origin": BLOG})
    assert r.headers["access-control-allow-origin"] == BLOG


async def test_cors_refused_origin_gets_no_acao_header(client: httpx.AsyncClient, db: Database) -> None:
    evil = "https://evil.test"
    pre = await client.options("/api/inquiries", headers={
        "Origin": evil, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 400 and "access-control-allow-origin" not in pre.headers
    r = await client.get("/api/form-token", headers={"Origin": evil})
    assert "access-control-allow-origin" not in r.headers
    r = await client.post("/api/inquiries", json=valid_fields(form_token=r.json()["form_token"]),
                          headers={"Origin": evil})
    assert "access-control-allow-origin" not in r.headers


async def test_pages_get_no_cors_headers(client: httpx.AsyncClient) -> None:
    r = await client.get("/contact", headers={"Origin": BLOG})
    assert "access-control-allow-origin" not in r.headers


async def test_form_token_is_not_cached(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/form-token")
    assert r.headers["cache-control"] == "no-store"
    assert r.json()["form_token"]


async def test_newsletter_box_starts_double_opt_in_with_the_inquiry_as_consent_evidence(
    client: httpx.AsyncClient, db: Database, smtp: SmtpServer
) -> None:
    from sqlalchemy import select

    from service.newsletter.models import Subscriber

    r = await post_json(client, newsletter=True, email="Ben@Example.org", name="Ben Ito")
    assert r.status_code == 201
    r = await post_json(client, newsletter=False, email="cy@example.org", message="A different question")
    assert r.status_code == 201
    async with db.sessions() as s:
        subs = (await s.scalars(select(Subscriber))).all()
    assert [(x.email, x.name, x.status, x.signup_source) for x in subs] == [
        ("Ben@example.org", "Ben Ito", "pending", "form:contact")]
    assert subs[0].signup_ip == "203.0.113.7" and "newsletter" in (subs[0].consent_text or "")
    assert subs[0].confirmed_at is None  # nothing is sent to a campaign before the link is confirmed
    await deliver(db, smtp)
    confirmations = [m for m in smtp.received if m.recipients == ["Ben@example.org"]
                     and "/confirm/" in m.raw.decode(errors="replace")]
    assert len(confirmations) == 1
    assert not any(m.recipients == ["cy@example.org"] and "/confirm/" in m.raw.decode(errors="replace")
                   for m in smtp.received)
