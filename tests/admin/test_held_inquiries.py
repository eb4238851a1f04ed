"""Held inquiries in the admin: their own filter with the reason, Release (a new inquiry whose
emails go out then) and Delete, both CSRF-protected, audit-logged and only for held ones; the
dashboard warns when many are held."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from service.admin.models import StaffUser
from service.app import create_app
from service.inquiries.models import Inquiry
from service.newsletter.models import Subscriber
from tests.conftest import Database, make_settings
from tests.factories import (
    add_inquiries,
    audit_actions,
    client_with,
    csrf,
    deliver,
    inquiry_row,
    new_client,
    post_form,
    post_json,
    signed_in_client,
    stored_inquiries,
)
from tests.smtp import SmtpServer


async def _held_by_a_quick_finger(db: Database, **changes: Any) -> int:
    """A person's inquiry sent a moment after the form appeared (FORM_MIN_SECONDS=3): held."""
    async with client_with(db, form_min_seconds=3.0) as c:
        r = await post_json(c, **changes)
    assert r.status_code == 201
    (inquiry,) = [i for i in await stored_inquiries(db) if i.status == "held"]
    return inquiry.id


async def test_held_inquiries_have_their_own_filter_with_the_reason(admin_client: httpx.AsyncClient,
                                                                    db: Database) -> None:
    held_id = await _held_by_a_quick_finger(db, name="Quick Finger")
    await add_inquiries(db, [inquiry_row(1, name="Ordinary Client", held_reason=None)])
    everything = await admin_client.get("/admin/inquiries")
    assert "Ordinary Client" in everything.text and "Quick Finger" not in everything.text
    held = await admin_client.get("/admin/inquiries?status=held")
    assert held.status_code == 200
    assert "Quick Finger" in held.text and "too fast" in held.text and "Ordinary Client" not in held.text
    assert f'action="/admin/inquiries/{held_id}/release"' in held.text
    detail = await admin_client.get(f"/admin/inquiries/{held_id}")
    assert "Held: too fast" in detail.text and f'action="/admin/inquiries/{held_id}/delete-held"' in detail.text


async def test_releasing_a_held_inquiry_delivers_both_emails_and_the_newsletter_opt_in(
        admin_client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    held_id = await _held_by_a_quick_finger(db, newsletter=True)
    assert await deliver(db, smtp) == 0
    r = await admin_client.post(f"/admin/inquiries/{held_id}/release", data={"csrf_token": await csrf(admin_client)})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/inquiries/{held_id}?saved=released"
    assert "Released" in (await admin_client.get(r.headers["location"])).text
    assert await deliver(db, smtp) == 3
    subjects = sorted(m.message["Subject"] for m in smtp.received)
    assert f"New inquiry #{held_id} from Ana Souza" in subjects
    assert sorted(m.recipients[0] for m in smtp.received) == ["ana@example.org", "ana@example.org",
                                                              "staff@clinic.test"]
    (inquiry,) = await stored_inquiries(db)
    assert inquiry.status == "new" and inquiry.held_reason == "too fast"
    async with db.sessions() as session:
        assert (await session.scalar(select(Subscriber.status))) == "pending"
    assert ("inquiry_release", "admin@clinic.test", str(held_id)) in await audit_actions(db)
    # released once: a second release is refused and mails nothing more
    again = await admin_client.post(f"/admin/inquiries/{held_id}/release",
                                    data={"csrf_token": await csrf(admin_client)})
    assert again.status_code == 409 and "not held" in again.text
    assert await deliver(db, smtp) == 0


async def test_delete_removes_only_a_held_inquiry(admin_client: httpx.AsyncClient, db: Database,
                                                  smtp: SmtpServer) -> None:
    held_id = await _held_by_a_quick_finger(db)
    (new_id,) = await add_inquiries(db, [inquiry_row(1, held_reason=None)])
    token = await csrf(admin_client)
    refused = await admin_client.post(f"/admin/inquiries/{new_id}/delete-held", data={"csrf_token": token})
    assert refused.status_code == 409
    r = await admin_client.post(f"/admin/inquiries/{held_id}/delete-held", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/admin/inquiries?status=held&deleted=1"
    assert [i.id for i in await stored_inquiries(db)] == [new_id]
    assert ("inquiry_delete_held", "admin@clinic.test", str(held_id)) in await audit_actions(db)
    assert await deliver(db, smtp) == 0
    missing = await admin_client.post(f"/admin/inquiries/{held_id}/release", data={"csrf_token": token})
    assert missing.status_code == 404


async def test_release_and_delete_need_the_csrf_token_and_a_signed_in_user(
        app: Any, admin_client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    held_id = await _held_by_a_quick_finger(db)
    for action in ("release", "delete-held"):
        r = await admin_client.post(f"/admin/inquiries/{held_id}/{action}", data={"csrf_token": "forged"})
        assert r.status_code == 403
    async with new_client(app, ip="198.51.100.50") as stranger:
        r = await stranger.post(f"/admin/inquiries/{held_id}/release", data={})
        assert r.status_code in (303, 403)  # to the sign-in page, or refused
    (inquiry,) = await stored_inquiries(db)
    assert inquiry.status == "held"
    assert await deliver(db, smtp) == 0


async def test_a_held_inquiry_cannot_be_moved_by_the_status_form(admin_client: httpx.AsyncClient,
                                                                 db: Database, smtp: SmtpServer) -> None:
    held_id = await _held_by_a_quick_finger(db)
    r = await admin_client.post(f"/admin/inquiries/{held_id}/status",
                                data={"csrf_token": await csrf(admin_client), "status": "contacted"})
    assert r.status_code == 409 and "release it" in r.text
    (inquiry,) = await stored_inquiries(db)
    assert inquiry.status == "held"


async def test_the_dashboard_warns_when_held_inquiries_reach_the_cap(db: Database, admin: StaffUser) -> None:
    app = create_app(make_settings(db, held_warn_count=2), sessions=db.sessions)
    async with signed_in_client(app, admin) as c:
        await add_inquiries(db, [inquiry_row(1, status="held", held_reason="honeypot filled")])
        calm = await c.get("/admin/")
        assert calm.status_code == 200 and 'id="held-warning"' not in calm.text
        await add_inquiries(db, [inquiry_row(2, status="held", held_reason="too fast")])
        warned = await c.get("/admin/")
        assert 'id="held-warning"' in warned.text and "2 held inquiries are waiting" in warned.text
        assert 'href="/admin/inquiries?status=held"' in warned.text


async def test_the_public_form_still_stores_an_inquiry_admin_sees(admin_client: httpx.AsyncClient, db: Database,
                                                                  client: httpx.AsyncClient) -> None:
    assert (await post_form(client)).status_code == 303
    async with db.sessions() as session:
        (inquiry,) = (await session.scalars(select(Inquiry))).all()
    assert inquiry.status == "new" and inquiry.held_reason is None
    assert "Ana Souza" in (await admin_client.get("/admin/inquiries")).text
