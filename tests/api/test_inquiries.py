"""/api/v1/inquiries: the same filters, cursor pages and actions as the admin's inquiry pages,
with audit rows equal to the admin's (search, read, status change, note); bad input is a
400/422 naming the field and changes nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from service.inquiries.models import Inquiry, InquiryEvent
from tests.api.conftest import api_client, audit_rows, make_token, same_but_target
from tests.conftest import Database
from tests.factories import add_inquiries, csrf, inquiry_row, make_staff, signed_in_client


async def _setup(app: Any, db: Database, n: int = 5) -> tuple[Any, str, list[int]]:
    admin = await make_staff(db)
    raw = await make_token(db, admin)
    ids = await add_inquiries(db, [inquiry_row(i, status="new" if i % 2 else "contacted") for i in range(n)])
    return admin, raw, ids


async def test_the_list_pages_by_cursor_with_the_admins_filters(app: Any, db: Database) -> None:
    _, raw, ids = await _setup(app, db)
    seen: list[int] = []
    async with api_client(app, raw) as api:
        cursor = None
        for _ in range(5):
            r = await api.get("/api/v1/inquiries", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["data"]) <= 2 and all("message" not in i for i in page["data"])
            seen += [i["id"] for i in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(ids, reverse=True)  # newest first, each once
        r = await api.get("/api/v1/inquiries", params={"status": "new"})
        assert {i["id"] for i in r.json()["data"]} == {ids[1], ids[3]}


async def test_bad_filters_name_the_parameter(app: Any, db: Database) -> None:
    _, raw, _ = await _setup(app, db)
    async with api_client(app, raw) as api:
        for params, status, field in [({"status": "maybe"}, 422, "status"), ({"from": "yesterday"}, 422, "from"),
                                      ({"from": "2026-11-05", "to": "2026-11-01"}, 422, "to"),
                                      ({"cursor": "nonsense"}, 400, "cursor"), ({"limit": "0"}, 422, "limit"),
                                      ({"limit": "201"}, 422, "limit"), ({"q": "a\x00b"}, 422, "q"),
                                      ({"topic": "\x00"}, 422, "topic"), ({"limit": "²"}, 422, "limit")]:
            r = await api.get("/api/v1/inquiries", params=params)
            assert r.status_code == status, (params, r.text)
            assert r.json()["error"]["field"] == field and r.json()["error"]["message"]


async def test_search_read_status_and_note_audit_exactly_as_the_admin_does(app: Any, db: Database) -> None:
    admin, raw, ids = await _setup(app, db)
    before = len(await audit_rows(db))
    async with signed_in_client(app, admin) as browser:
        token = await csrf(browser)
        assert (await browser.get("/admin/inquiries", params={"q": "Client", "status": "new"})).status_code == 200
        assert (await browser.get(f"/admin/inquiries/{ids[0]}")).status_code == 200
        r = await browser.post(f"/admin/inquiries/{ids[0]}/status", data={"csrf_token": token, "status": "closed"})
        assert r.status_code == 303
        r = await browser.post(f"/admin/inquiries/{ids[0]}/notes", data={"csrf_token": token, "note": "Called back"})
        assert r.status_code == 303
    admin_rows = (await audit_rows(db))[before:]
    async with api_client(app, raw) as api:
        assert (await api.get("/api/v1/inquiries", params={"q": "Client", "status": "new"})).status_code == 200
        r = await api.get(f"/api/v1/inquiries/{ids[2]}")
        assert r.status_code == 200 and r.json()["message"] == "Message number 2"
        r = await api.post(f"/api/v1/inquiries/{ids[2]}/status", json={"status": "closed"})
        assert r.status_code == 200 and r.json()["changed"] is True
        r = await api.post(f"/api/v1/inquiries/{ids[2]}/notes", json={"note": "Called back"})
        assert r.status_code == 201 and r.json()["note"] == "Called back"
        r = await api.get(f"/api/v1/inquiries/{ids[2]}")
        assert [e["kind"] for e in r.json()["events"]] == ["status", "note"]
    api_rows = (await audit_rows(db))[before + len(admin_rows):]
    assert [r["action"] for r in admin_rows] == ["inquiry_search", "inquiry_view", "inquiry_status",
                                                 "inquiry_note"]
    assert [r["action"] for r in api_rows] == [*(r["action"] for r in admin_rows), "inquiry_view"]
    assert admin_rows[0] == api_rows[0]  # the search: same filter, same count, never the words
    for a, b in zip(admin_rows[1:3], api_rows[1:3], strict=True):
        assert same_but_target(a, b)
    assert admin_rows[3]["detail"].keys() == api_rows[3]["detail"].keys() == {"event_id"}


async def test_bad_input_is_refused_by_field_and_changes_nothing(app: Any, db: Database) -> None:
    _, raw, ids = await _setup(app, db)
    before = await audit_rows(db)
    async with api_client(app, raw) as api:
        for body, field in [({"status": "archived"}, "status"), ({}, "status"), ({"status": 3}, "status")]:
            r = await api.post(f"/api/v1/inquiries/{ids[0]}/status", json=body)
            assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
        for body in [{"note": "   "}, {"note": "x" * 20_001}, {}, {"note": "nul \x00 byte"}]:
            r = await api.post(f"/api/v1/inquiries/{ids[0]}/notes", json=body)
            assert r.status_code == 422 and r.json()["error"]["field"] == "note", r.text
        r = await api.post(f"/api/v1/inquiries/{ids[0]}/notes", content=b"note=hi",
                           headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
        r = await api.post(f"/api/v1/inquiries/{ids[0]}/status", content=b"{not json",
                           headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
        r = await api.post("/api/v1/inquiries/999999/status", json={"status": "closed"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    async with db.sessions() as session:
        assert (await session.get(Inquiry, ids[0])).status == "contacted"  # type: ignore[union-attr]
        assert (await session.scalars(select(InquiryEvent))).all() == []
    assert await audit_rows(db) == before
