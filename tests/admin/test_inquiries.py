"""Inquiry pages: the list walks 10,000 rows without skipping or repeating one, search and
filters agree with the data, the detail page is audit-logged and renders every field inert,
staff can change the status and add notes, and the CSV export is complete and formula-safe."""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

import httpx
import pytest
from markupsafe import escape
from sqlalchemy import select, text

from service.admin.models import StaffUser
from service.inquiries.models import Inquiry, InquiryEvent
from service.settings import DEFAULT_TOPICS
from tests.conftest import Database
from tests.factories import ADMIN_EMAIL, add_inquiries, audit_actions, count, csrf, inquiry_row

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
N = 10_000
STATUSES = ("new", "contacted", "qualified", "closed", "spam")


async def bulk_insert(db: Database, n: int = N) -> None:
    """n inquiries in one INSERT … SELECT; three share each timestamp, so the id tie-break matters."""
    topics = ", ".join(f"'{t}'" for t in DEFAULT_TOPICS)
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    if db.is_postgres:
        series = f"generate_series(1, {n}) AS g(i)"
        created = "timestamptz '2026-01-01 00:00:00+00' + (i / 3) * interval '1 minute'"
        topic = f"(ARRAY[{topics}])[i % {len(DEFAULT_TOPICS)} + 1]"
        status = f"(ARRAY[{statuses}])[i % 5 + 1]"
        prefix, cat = "", "||"
    else:
        series = "g"
        prefix = f"WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n}) "
        created = "datetime('2026-01-01 00:00:00', '+' || (i / 3) || ' minutes') || '.000000'"
        topic = "CASE i % 6 " + " ".join(f"WHEN {k} THEN '{t}'" for k, t in enumerate(DEFAULT_TOPICS)) + " END"
        status = "CASE i % 5 " + " ".join(f"WHEN {k} THEN '{s}'" for k, s in enumerate(STATUSES)) + " END"
        cat = "||"
    sql = (
        f"{prefix}INSERT INTO inquiries (created_at, name, email, phone, topic, contact_method, message, consent, "
        "newsletter_optin, status, status_changed_at, source_page, referrer, utm_source, utm_medium, utm_campaign, "
        "utm_term, utm_content, ip, user_agent, dedupe_key) "
        f"SELECT {created}, 'Client ' {cat} i, 'client' {cat} i {cat} '@example.org', '', {topic}, 'email', "
        f"CASE WHEN i % 7 = 0 THEN 'I read about ketamine therapy' ELSE 'General question number ' {cat} i END, "
        f"true, false, {status}, {created}, '', '', '', '', '', '', '', '', '', 'k' {cat} i FROM {series}"
    )
    async with db.engine.begin() as conn:
        await conn.execute(text(sql))


def expected_order(ids_and_i: list[tuple[int, int]], keep: Any = lambda i: True) -> list[int]:
    rows = [(i // 3, ident) for ident, i in ids_and_i if keep(i)]
    return [ident for _, ident in sorted(rows, reverse=True)]


async def walk(client: httpx.AsyncClient, url: str) -> list[int]:
    """Follow "Older »" from `url` to the end; the inquiry ids in the order shown."""
    seen: list[int] = []
    pages = 0
    while url:
        r = await client.get(url)
        assert r.status_code == 200, r.text
        for ident in re.findall(r'<td><a href="/admin/inquiries/(\d+)">\d{4}-', r.text):
            seen.append(int(ident))
        nxt = re.search(r'<a href="([^"]+)" rel="next">', r.text)
        url = html.unescape(nxt.group(1)) if nxt else ""
        pages += 1
        assert pages <= N // 50 + 2
    return seen


async def _ids(db: Database) -> list[tuple[int, int]]:
    async with db.sessions() as session:
        rows = await session.execute(select(Inquiry.id, Inquiry.dedupe_key))
        return [(ident, int(key[1:])) for ident, key in rows.all()]


@pytest.mark.slow  # ten thousand rows
async def test_pagination_and_search_are_exact_on_ten_thousand_inquiries(admin_client: httpx.AsyncClient,
                                                                         db: Database) -> None:
    await bulk_insert(db)
    ids = await _ids(db)
    assert len(ids) == N
    everything = await walk(admin_client, "/admin/inquiries")
    assert everything == expected_order(ids)  # every row once, newest first, ties by id
    qualified = await walk(admin_client, "/admin/inquiries?status=qualified")
    assert qualified == expected_order(ids, lambda i: STATUSES[i % 5] == "qualified")
    found = await walk(admin_client, "/admin/inquiries?q=ketamine&topic=anxiety")
    assert found == expected_order(ids, lambda i: i % 7 == 0 and DEFAULT_TOPICS[i % 6] == "anxiety")
    assert len(found) > 50  # spans several pages
    by_name = await walk(admin_client, "/admin/inquiries?q=Client+1234")
    assert by_name == expected_order(ids, lambda i: i == 1234)
    by_email = await walk(admin_client, "/admin/inquiries?q=client77%40example.org")
    assert by_email == expected_order(ids, lambda i: i == 77)
    nothing = await walk(admin_client, "/admin/inquiries?q=zebra")
    assert nothing == []


async def test_date_range_filter_is_inclusive_of_both_days(admin_client: httpx.AsyncClient, db: Database) -> None:
    import datetime as dt

    days = [dt.datetime(2026, 11, d, 23, 59, tzinfo=dt.UTC) for d in (1, 2, 3, 4)]
    ids = await add_inquiries(db, [inquiry_row(i, created_at=day) for i, day in enumerate(days)])
    shown = await walk(admin_client, "/admin/inquiries?from=2026-11-02&to=2026-11-03")
    assert shown == [ids[2], ids[1]]


async def test_bad_filters_are_named_and_change_nothing(admin_client: httpx.AsyncClient, db: Database) -> None:
    for query, message in (("from=yesterday", "From: expected a date"), ("status=deleted", "Status: expected"),
                           ("after=garbage", "Page: this page link is not valid"),
                           ("from=2026-11-05&to=2026-11-01", "To: the end date is before")):
        r = await admin_client.get(f"/admin/inquiries?{query}")
        assert r.status_code == 400 and message in r.text, query


async def test_detail_page_shows_everything_inert_and_is_audit_logged(admin_client: httpx.AsyncClient,
                                                                      db: Database) -> None:
    fields = {f: XSS for f in ("name", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "ip",
                               "user_agent")}
    fields.update(phone="<script>alert(1)</script>", topic="<script>alert(1)</script>", contact_method="<b onclick=x>")
    [ident] = await add_inquiries(db, [inquiry_row(
        1, **fields, email='ana+x@example.org"><script>alert(1)</script>', message=f"Line one\n{XSS}\nLine three",
        referrer="javascript:alert(1)", source_page="https://blog.clinic.test/posts/ketamine?a=1&b=2")])
    r = await admin_client.get(f"/admin/inquiries/{ident}")
    assert r.status_code == 200
    assert "<script>" not in r.text and "<img src=x" not in r.text and "onerror=alert(1)>" not in r.text
    assert "<b onclick" not in r.text and "&lt;b onclick=x&gt;" in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert f"Line one\n{escape(XSS)}\nLine three" in r.text  # as text, line breaks kept (pre-wrap)
    assert 'href="javascript:' not in r.text and ">javascript:alert(1)<" in r.text
    assert 'href="https://blog.clinic.test/posts/ketamine?a=1&amp;b=2" rel="noopener noreferrer nofollow"' in r.text
    mailto = re.search(r'href="(mailto:[^"]*)"', r.text)
    assert mailto and mailto.group(1).startswith("mailto:ana%2Bx@example.org%22%3E%3Cscript%3Ealert%281%29")
    assert "?subject=Re%3A%20your%20inquiry" in mailto.group(1)
    listing = await admin_client.get("/admin/inquiries")
    assert "<script>" not in listing.text and "&lt;script&gt;" in listing.text
    assert ("inquiry_view", ADMIN_EMAIL, str(ident)) in await audit_actions(db)


async def test_missing_inquiry_is_404(admin_client: httpx.AsyncClient) -> None:
    assert (await admin_client.get("/admin/inquiries/999999")).status_code == 404


async def test_status_change_and_spam_are_recorded_with_history(admin_client: httpx.AsyncClient,
                                                                db: Database) -> None:
    [ident] = await add_inquiries(db, [inquiry_row(1)])
    token = await csrf(admin_client)
    r = await admin_client.post(f"/admin/inquiries/{ident}/status", data={"csrf_token": token, "status": "contacted"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/inquiries/{ident}?saved=status"
    r = await admin_client.post(f"/admin/inquiries/{ident}/status", data={"csrf_token": token, "status": "spam"})
    assert r.status_code == 303
    async with db.sessions() as session:
        inquiry = await session.get(Inquiry, ident)
        events = (await session.scalars(select(InquiryEvent).order_by(InquiryEvent.id))).all()
        admin_id = await session.scalar(select(StaffUser.id))
    assert inquiry is not None and inquiry.status == "spam"
    assert [(e.from_status, e.to_status, e.staff_id) for e in events] == [("new", "contacted", admin_id),
                                                                          ("contacted", "spam", admin_id)]
    page = await admin_client.get(f"/admin/inquiries/{ident}")
    assert "new → <strong>contacted</strong>" in page.text and "contacted → <strong>spam</strong>" in page.text
    assert [a for a, _, _ in await audit_actions(db) if a == "inquiry_status"] == ["inquiry_status"] * 2
    spam_list = await walk(admin_client, "/admin/inquiries?status=spam")
    assert spam_list == [ident]


async def test_unknown_status_is_refused_and_nothing_changes(admin_client: httpx.AsyncClient, db: Database) -> None:
    [ident] = await add_inquiries(db, [inquiry_row(1)])
    r = await admin_client.post(f"/admin/inquiries/{ident}/status",
                                data={"csrf_token": await csrf(admin_client), "status": "deleted"})
    assert r.status_code == 422 and "Status: expected one of" in r.text
    assert await count(db, InquiryEvent) == 0


async def test_notes_are_plain_text_and_audit_logged(admin_client: httpx.AsyncClient, db: Database) -> None:
    [ident] = await add_inquiries(db, [inquiry_row(1)])
    token = await csrf(admin_client)
    r = await admin_client.post(f"/admin/inquiries/{ident}/notes", data={"csrf_token": token,
                                                                         "note": f"Called back.\r\n{XSS}"})
    assert r.status_code == 303
    page = await admin_client.get(f"/admin/inquiries/{ident}")
    assert f"Called back.\n{escape(XSS)}" in page.text and "<script>" not in page.text
    empty = await admin_client.post(f"/admin/inquiries/{ident}/notes", data={"csrf_token": token, "note": "  "})
    assert empty.status_code == 422 and "Note:" in empty.text
    assert await count(db, InquiryEvent) == 1
    assert ("inquiry_note", ADMIN_EMAIL, str(ident)) in await audit_actions(db)


async def test_a_note_over_the_limit_is_refused_naming_it(admin_client: httpx.AsyncClient, db: Database) -> None:
    [ident] = await add_inquiries(db, [inquiry_row(1)])
    token = await csrf(admin_client)
    long = await admin_client.post(f"/admin/inquiries/{ident}/notes", data={"csrf_token": token, "note": "x" * 5001})
    assert long.status_code == 422
    assert "Note: it is too long (5,001 characters; at most 5,000)." in html.unescape(long.text)
    assert await count(db, InquiryEvent) == 0
    assert "inquiry_note" not in [a for a, _, _ in await audit_actions(db)]
    ok = await admin_client.post(f"/admin/inquiries/{ident}/notes", data={"csrf_token": token, "note": "y" * 5000})
    assert ok.status_code == 303 and await count(db, InquiryEvent) == 1


async def test_status_and_note_of_a_missing_inquiry_are_404(admin_client: httpx.AsyncClient, db: Database) -> None:
    [ident] = await add_inquiries(db, [inquiry_row(1)])
    token = await csrf(admin_client)
    status = await admin_client.post(f"/admin/inquiries/{ident + 1}/status",
                                     data={"csrf_token": token, "status": "closed"})
    note = await admin_client.post(f"/admin/inquiries/{ident + 1}/notes", data={"csrf_token": token, "note": "Hi"})
    assert (status.status_code, note.status_code) == (404, 404)
    assert "There is no such inquiry." in status.text and "There is no such inquiry." in note.text
    assert await count(db, InquiryEvent) == 0


async def test_csv_export_follows_the_filter_and_is_formula_safe(admin_client: httpx.AsyncClient,
                                                                 db: Database) -> None:
    rows = [inquiry_row(1, name="=HYPERLINK(\"http://evil\")", message="+1 555 0100\nsecond line", status="spam"),
            inquiry_row(2, name="-2+3", email="@ana@example.org", utm_source="\t=cmd", status="spam"),
            inquiry_row(3, name="Plain Name", status="new")]
    ids = await add_inquiries(db, rows)
    r = await admin_client.get("/admin/inquiries/export.csv?status=spam")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    parsed = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(p["id"]) for p in parsed] == [ids[1], ids[0]]
    assert parsed[1]["name"] == "'=HYPERLINK(\"http://evil\")" and parsed[1]["message"] == "'+1 555 0100\nsecond line"
    assert parsed[0]["name"] == "'-2+3" and parsed[0]["email"] == "'@ana@example.org"
    assert parsed[0]["utm_source"] == "'\t=cmd" and parsed[0]["status"] == "spam"
    everything = list(csv.DictReader(io.StringIO((await admin_client.get("/admin/inquiries/export.csv")).text)))
    assert len(everything) == 3 and everything[0]["name"] == "Plain Name"
    assert [a for a, _, _ in await audit_actions(db) if a == "inquiry_export"] == ["inquiry_export"] * 2


@pytest.mark.slow  # ten thousand rows
async def test_csv_export_of_ten_thousand_rows_is_complete(admin_client: httpx.AsyncClient, db: Database) -> None:
    await bulk_insert(db)
    r = await admin_client.get("/admin/inquiries/export.csv")
    parsed = list(csv.DictReader(io.StringIO(r.text)))
    assert len(parsed) == N and len({p["id"] for p in parsed}) == N
