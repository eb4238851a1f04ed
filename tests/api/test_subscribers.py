"""/api/v1/subscribers: cursor pages with the admin's filters; a signup on someone's behalf is
double opt-in (pending, a confirmation email); a CSV import keeps its consent evidence;
unsubscribe, suppress and erase audit exactly as the admin's buttons do; bad input is a 422
naming the field and changes nothing."""

from __future__ import annotations

from typing import Any

from service.newsletter.models import Subscriber
from tests.api.conftest import api_client, audit_rows, make_token, same_but_target
from tests.conftest import Database
from tests.factories import add_subscriber, count, csrf, make_staff, outbox_messages, signed_in_client, subscriber


async def test_the_list_pages_by_cursor_and_filters(app: Any, db: Database) -> None:
    admin = await make_staff(db)
    raw = await make_token(db, admin, ["subscribers:read"])
    ids = [await add_subscriber(db, f"p{i}@example.org", status="confirmed" if i % 2 else "pending")
           for i in range(5)]
    async with api_client(app, raw) as api:
        seen, cursor = [], None
        while True:
            r = await api.get("/api/v1/subscribers", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200, r.text
            seen += [s["id"] for s in r.json()["data"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids) and len(seen) == 5
        r = await api.get("/api/v1/subscribers", params={"status": "pending", "q": "P0@"})
        assert [s["email"] for s in r.json()["data"]] == ["p0@example.org"]
        for params, field in [({"status": "gone"}, "status"), ({"q": "\x00"}, "q"), ({"topic": "a\x00"}, "topic")]:
            r = await api.get("/api/v1/subscribers", params=params)
            assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
        r = await api.get(f"/api/v1/subscribers/{ids[1]}")
        assert r.status_code == 200 and r.json()["consent"]["signup_at"] is not None


async def test_unsubscribe_suppress_and_erase_audit_exactly_as_the_admin(app: Any, db: Database) -> None:
    admin = await make_staff(db)
    raw = await make_token(db, admin)
    by_page = [await add_subscriber(db, f"page{i}@example.org") for i in range(3)]
    by_api = [await add_subscriber(db, f"api{i}@example.org") for i in range(3)]
    before = len(await audit_rows(db))
    async with signed_in_client(app, admin) as browser:
        token = await csrf(browser)
        assert (await browser.post(f"/admin/subscribers/{by_page[0]}/unsubscribe",
                                   data={"csrf_token": token})).status_code == 303
        assert (await browser.post(f"/admin/subscribers/{by_page[1]}/suppress",
                                   data={"csrf_token": token, "reason": "asked by phone"})).status_code == 303
        assert (await browser.post(f"/admin/subscribers/{by_page[2]}/erase",
                                   data={"csrf_token": token, "confirm_email": "page2@example.org"})).status_code == 303
    page_rows = (await audit_rows(db))[before:]
    async with api_client(app, raw) as api:
        r = await api.post(f"/api/v1/subscribers/{by_api[0]}/unsubscribe")
        assert r.status_code == 200 and r.json()["status"] == "unsubscribed"
        r = await api.post(f"/api/v1/subscribers/{by_api[1]}/suppress", json={"reason": "asked by phone"})
        assert r.status_code == 200 and r.json()["status"] == "complained"
        r = await api.post(f"/api/v1/subscribers/{by_api[2]}/erase", json={"confirm_email": "API2@example.org"})
        assert r.status_code == 200
        again = await api.post(f"/api/v1/subscribers/{by_api[0]}/unsubscribe")
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    api_rows = (await audit_rows(db))[before + len(page_rows):]
    assert [r["action"] for r in page_rows] == ["subscriber_unsubscribe", "subscriber_suppress", "subscriber_erase"]
    assert len(api_rows) == 3
    for a, b in zip(page_rows, api_rows, strict=True):
        assert same_but_target(a, b), (a, b)
    assert await subscriber(db, "api2@example.org") is None


async def test_a_signup_by_api_is_pending_with_a_confirmation_email(app: Any, db: Database) -> None:
    staff = await make_staff(db, "staff@clinic.test", role="staff")
    raw = await make_token(db, staff, ["subscribers:write"])
    async with api_client(app, raw) as api:
        r = await api.post("/api/v1/subscribers", json={"email": "Ana@Example.org", "name": "Ana",
                                                          "topics": ["anxiety"]})
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "pending" and r.json()["topics"] == ["anxiety"]
    ana = await subscriber(db, "ana@example.org")
    assert ana is not None and ana.status == "pending" and ana.signup_source == "api: staff@clinic.test"
    assert ana.consent_text and ana.signup_ip == "203.0.113.7"
    assert [m.kind for m in await outbox_messages(db)] == ["newsletter_confirm"]
    assert (await audit_rows(db))[-1]["action"] == "subscriber_create"


async def test_bad_signups_name_the_field_and_store_nothing(app: Any, db: Database) -> None:
    admin = await make_staff(db)
    raw = await make_token(db, admin)
    before = await audit_rows(db)
    async with api_client(app, raw) as api:
        for body, field in [({"email": "not an address"}, "email"), ({}, "email"), ({"email": 5}, "email"),
                            ({"email": "a@example.org", "topics": ["astrology"]}, "topics"),
                            ({"email": "a@example.org", "topics": "anxiety"}, "topics"),
                            ({"email": "a@example.org", "name": "x" * 201}, "name")]:
            r = await api.post("/api/v1/subscribers", json=body)
            assert r.status_code == 422 and r.json()["error"]["field"] == field, (body, r.text)
        sub = await add_subscriber(db, "keep@example.org")
        r = await api.post(f"/api/v1/subscribers/{sub}/erase", json={"confirm_email": "other@example.org"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "confirm_email"
        r = await api.post(f"/api/v1/subscribers/{sub}/suppress", json={"reason": " "})
        assert r.status_code == 422 and r.json()["error"]["field"] == "reason"
    assert await count(db, Subscriber) == 1 and (await subscriber(db, sub)).status == "confirmed"  # type: ignore[union-attr]
    assert await outbox_messages(db) == [] and await audit_rows(db) == before


async def test_an_import_keeps_its_consent_evidence_and_audits_like_the_admins(app: Any, db: Database) -> None:
    admin = await make_staff(db)
    raw = await make_token(db, admin)
    csv = ("email,name,status,signup_at,signup_ip,consent_text\n"
           "ben@example.org,Ben,confirmed,2026-05-01T10:00:00+00:00,198.51.100.4,Yes please\n"
           "cy@example.org,Cy,confirmed,,,\n")
    async with api_client(app, raw) as api:
        check = await api.post("/api/v1/subscribers/import?dry_run=true", content=csv,
                               headers={"content-type": "text/csv"})
        assert check.status_code == 200 and check.json()["added"] == 2 and check.json()["dry_run"]
        assert await count(db, Subscriber) == 0
        r = await api.post("/api/v1/subscribers/import", content=csv, headers={"content-type": "text/csv"})
        assert r.status_code == 200, r.text
        assert r.json()["added"] == 2 and r.json()["pending_without_consent_date"] == 1
        r = await api.post("/api/v1/subscribers/import?from=nowhere", content=csv,
                           headers={"content-type": "text/csv"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "from"
    ben, cy = await subscriber(db, "ben@example.org"), await subscriber(db, "cy@example.org")
    assert ben is not None and ben.status == "confirmed" and ben.signup_ip == "198.51.100.4"
    assert ben.consent_text == "Yes please" and ben.signup_at is not None
    assert cy is not None and cy.status == "pending"  # no consent date: not confirmed
    event = (await audit_rows(db))[-1]
    assert event["action"] == "subscriber_import" and event["detail"]["added"] == 2
    assert event["actor"] == admin.email and event["detail"]["consented"] is False
