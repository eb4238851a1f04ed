"""Erasing an inquiry on the person's request: typed confirmation (ERASE or the address), CSRF,
then the inquiry, its notes and every stored copy of its emails are gone, the audit row names
only the id, and the ledger keeps a keyed hash for restores."""

from __future__ import annotations

import html
import json

import httpx
from sqlalchemy import select

from service.admin.models import AuditEvent
from service.inquiries.models import InquiryEvent
from tests.conftest import Database
from tests.factories import count, stored_inquiries, token_in
from tests.privacy.helpers import copies_of, deliver_locally, ledger, mailbox_mentions, submit


async def test_erase_needs_the_typed_word_then_removes_everything(
        admin_client: httpx.AsyncClient, client: httpx.AsyncClient, db: Database) -> None:
    gone, kept = await submit(client, db, 1), await submit(client, db, 2)
    assert await deliver_locally(db) == 4
    page = await admin_client.get(f"/admin/inquiries/{gone}")
    assert f'href="/admin/inquiries/{gone}/erase"' in page.text and "Erase this inquiry" in page.text
    r = await admin_client.post(f"/admin/inquiries/{gone}/notes",
                                data={"csrf_token": token_in(page.text), "note": "Takes lithium."})
    assert r.status_code == 303
    page = await admin_client.get(f"/admin/inquiries/{gone}/erase")
    assert page.status_code == 200 and "Type ERASE or the inquiry's email address to confirm" in page.text
    token = token_in(page.text)

    for typed in ("", "erase", "ERASE it", "patient2@example.org"):
        r = await admin_client.post(f"/admin/inquiries/{gone}/erase", data={"csrf_token": token, "confirm": typed})
        assert r.status_code == 422 and "type ERASE or the inquiry's email address exactly" in html.unescape(r.text)
        assert "Nothing was erased" in r.text
    r = await admin_client.post(f"/admin/inquiries/{gone}/erase", data={"confirm": "ERASE"})
    assert r.status_code == 403  # no CSRF token
    assert len(await stored_inquiries(db)) == 2 and await copies_of(db, gone) == (2, 2)
    assert await ledger(db) == []

    r = await admin_client.post(f"/admin/inquiries/{gone}/erase", data={"csrf_token": token, "confirm": "ERASE"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/inquiries?notice=erased"
    listing = await admin_client.get(r.headers["location"])
    assert "The inquiry was erased" in listing.text and "Patient Number1" not in listing.text
    assert [i.id for i in await stored_inquiries(db)] == [kept]
    assert await count(db, InquiryEvent) == 0
    assert await copies_of(db, gone) == (0, 0) and await copies_of(db, kept) == (2, 2)
    outbox_page = await admin_client.get("/admin/outbox")
    assert "Patient Number1" not in outbox_page.text and "patient1@example.org" not in outbox_page.text
    assert "patient2@example.org" in outbox_page.text
    assert await mailbox_mentions(db, "patient1@example.org") == 0
    assert (await admin_client.get(f"/admin/inquiries/{gone}")).status_code == 404

    async with db.sessions() as session:
        (event,) = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "inquiry_erase"))).all()
    assert event.target_type == "inquiry" and event.target_id == str(gone) and event.actor_email
    assert "patient" not in json.dumps(event.detail).lower()
    (entry,) = await ledger(db)
    assert entry.kind == "inquiry" and entry.reason == "erased" and "patient" not in entry.subject_hash


async def test_erase_by_typing_the_address_in_any_case(
        admin_client: httpx.AsyncClient, client: httpx.AsyncClient, db: Database) -> None:
    inquiry_id = await submit(client, db, 3)
    token = token_in((await admin_client.get(f"/admin/inquiries/{inquiry_id}/erase")).text)
    r = await admin_client.post(f"/admin/inquiries/{inquiry_id}/erase",
                                data={"csrf_token": token, "confirm": " Patient3@Example.org "})
    assert r.status_code == 303 and await stored_inquiries(db) == []
    r = await admin_client.post(f"/admin/inquiries/{inquiry_id}/erase", data={"csrf_token": token, "confirm": "ERASE"})
    assert r.status_code == 404 and "There is no such inquiry" in r.text
