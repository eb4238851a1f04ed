"""The admin's shared list pager and its 404 for a missing record: "Older »" and "« Newest" walk
a real list across two pages keeping the filters, and every kind of detail page (and every
action posted to one) answers a missing id with the admin's "Not found" page naming what is
missing, changing nothing."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from service.admin.models import AuditEvent
from service.mail.models import MailboxMessage
from tests.conftest import Database
from tests.factories import add_subscriber, count, csrf

PAGE_SIZE = 50


def _pager(text: str) -> dict[str, str]:
    """The links of the page's pager nav by their visible text ("« Newest", "Older »")."""
    nav = re.search(r'<nav class="pager" aria-label="([^"]+)">(.*?)</nav>', text, re.S)
    if nav is None:
        return {}
    links = {html.unescape(label): html.unescape(href)
             for href, label in re.findall(r'<a href="([^"]+)" rel="(?:next|first)">([^<]+)</a>', nav.group(2))}
    return {"aria-label": nav.group(1), **links}


async def test_subscriber_pager_walks_two_pages_and_keeps_the_filter(admin_client: httpx.AsyncClient,
                                                                      db: Database) -> None:
    base = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    for i in range(PAGE_SIZE + 5):
        await add_subscriber(db, f"reader{i}@example.org", topics=("anxiety",), created_at=base + dt.timedelta(hours=i))
    for i in range(3):  # not in the filter: never shown
        await add_subscriber(db, f"gone{i}@example.org", topics=("anxiety",), status="unsubscribed",
                             created_at=base + dt.timedelta(hours=i))
    first = await admin_client.get("/admin/subscribers?status=confirmed&topic=anxiety&notice=erased")
    assert first.status_code == 200
    shown = re.findall(r'<a href="/admin/subscribers/\d+">([^<]+)</a>', first.text)
    assert shown == [f"reader{i}@example.org" for i in range(PAGE_SIZE + 4, 4, -1)]  # newest first, one page
    links = _pager(first.text)
    assert links["aria-label"] == "Subscriber list pages" and "« Newest" not in links
    older = links["Older »"]
    assert older.startswith("/admin/subscribers?status=confirmed&topic=anxiety&after=") and "notice" not in older

    second = await admin_client.get(older)
    assert re.findall(r'<a href="/admin/subscribers/\d+">([^<]+)</a>', second.text) == [
        f"reader{i}@example.org" for i in range(4, -1, -1)]
    assert "The subscriber was erased" not in second.text
    links = _pager(second.text)
    assert "Older »" not in links  # the last page
    assert links["« Newest"] == "/admin/subscribers?status=confirmed&topic=anxiety"
    again = await admin_client.get(links["« Newest"])
    assert re.findall(r'<a href="/admin/subscribers/\d+">([^<]+)</a>', again.text) == shown


async def test_outbox_pager_goes_older_and_back_to_the_newest(admin_client: httpx.AsyncClient, db: Database) -> None:
    rows = [dict(sender="hello@clinic.test", recipients=f"r{i}@example.org", subject=f"Message {i}",
                 message_id=f"<m{i}@clinic.test>", raw=b"Subject: x\r\n\r\nx\r\n",
                 created_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC)) for i in range(PAGE_SIZE + 2)]
    async with db.sessions.begin() as session:
        await session.execute(insert(MailboxMessage).values(rows))
    first = await admin_client.get("/admin/outbox")
    subjects = re.findall(r'<a href="/admin/outbox/\d+">(Message \d+)</a>', first.text)
    assert subjects == [f"Message {i}" for i in range(PAGE_SIZE + 1, 1, -1)]
    links = _pager(first.text)
    assert links["aria-label"] == "Outbox pages" and "« Newest" not in links
    assert re.fullmatch(r"/admin/outbox\?before=\d+", links["Older »"])
    second = await admin_client.get(links["Older »"])
    assert re.findall(r'<a href="/admin/outbox/\d+">(Message \d+)</a>', second.text) == ["Message 1", "Message 0"]
    assert _pager(second.text) == {"aria-label": "Outbox pages", "« Newest": "/admin/outbox"}


async def test_a_list_of_one_page_has_no_pager(admin_client: httpx.AsyncClient, db: Database) -> None:
    await add_subscriber(db, "only@example.org")
    r = await admin_client.get("/admin/subscribers")
    assert "only@example.org" in r.text and '<nav class="pager"' not in r.text


# -- get_or_404 -------------------------------------------------------------------------------

MISSING = 987654
DETAIL_PAGES = [  # (method, path, what the page says is missing)
    ("GET", "/admin/subscribers/{id}", "subscriber"),
    ("POST", "/admin/subscribers/{id}/unsubscribe", "subscriber"),
    ("POST", "/admin/subscribers/{id}/suppress", "subscriber"),
    ("GET", "/admin/subscribers/{id}/erase", "subscriber"),
    ("GET", "/admin/inquiries/{id}", "inquiry"),
    ("POST", "/admin/inquiries/{id}/status", "inquiry"),
    ("POST", "/admin/inquiries/{id}/notes", "inquiry"),
    ("GET", "/admin/inquiries/{id}/erase", "inquiry"),
    ("POST", "/admin/inquiries/{id}/release", "inquiry"),
    ("POST", "/admin/inquiries/{id}/delete-held", "inquiry"),
    ("GET", "/admin/campaigns/{id}", "campaign"),
    ("GET", "/admin/campaigns/{id}/edit", "campaign"),
    ("GET", "/admin/campaigns/{id}/preview", "campaign"),
    ("GET", "/admin/campaigns/{id}/preview.html", "campaign"),
    ("POST", "/admin/campaigns/{id}/send", "campaign"),
    ("POST", "/admin/campaigns/{id}/cancel", "campaign"),
    ("GET", "/admin/outbox/{id}", "message"),
    ("GET", "/admin/outbox/{id}/html", "message"),
    ("GET", "/admin/digest-rules/{id}", "digest rule"),
    ("POST", "/admin/digest-rules/{id}/active", "digest rule"),
    ("POST", "/admin/users/{id}", "staff account"),
]


async def _request(client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    if method == "GET":
        return await client.get(path)
    return await client.post(path, data={"csrf_token": await csrf(client), "status": "contacted", "note": "x",
                                         "reason": "asked", "active": "1", "role": "staff"})


@pytest.mark.parametrize(("method", "path", "what"), DETAIL_PAGES, ids=[f"{m} {p}" for m, p, _ in DETAIL_PAGES])
async def test_a_missing_record_is_a_404_naming_it(admin_client: httpx.AsyncClient, db: Database, method: str,
                                                   path: str, what: str) -> None:
    audit_before = await count(db, AuditEvent)
    r = await _request(admin_client, method, path.format(id=MISSING))
    assert r.status_code == 404
    assert "<h1>Not found</h1>" in r.text and f"There is no such {what}." in r.text
    assert '<nav aria-label="Admin">' in r.text  # inside the admin layout, navigation kept
    assert r.headers["cache-control"] == "no-store"
    assert await count(db, AuditEvent) == audit_before  # nothing recorded, nothing changed


async def test_a_missing_campaign_is_a_json_404_for_the_progress_poll(admin_client: httpx.AsyncClient) -> None:
    r = await admin_client.get(f"/admin/campaigns/{MISSING}/progress", headers={"accept": "application/json"})
    assert r.status_code == 404 and r.json() == {"error": "There is no such campaign."}


@pytest.mark.parametrize("path", ["/admin/subscribers/abc", "/admin/inquiries/12x", "/admin/campaigns/-1",
                                  "/admin/outbox/%31%32;drop", "/admin/digest-rules/one"])
async def test_a_non_numeric_id_is_a_404_in_the_admin_layout(admin_client: httpx.AsyncClient, path: str) -> None:
    """The routes take integer ids only, so anything else matches no route: the same "Not found"."""
    r = await admin_client.get(path)
    assert r.status_code == 404
    assert "<h1>Not found</h1>" in r.text and "We could not find that page." in r.text
    assert '<nav aria-label="Admin">' in r.text


@pytest.mark.parametrize("path", ["/admin/no-such-page", "/admin/settings/x/y", "/admin/inquiries/1/nothing"])
async def test_an_unknown_admin_address_is_the_admins_own_404(admin_client: httpx.AsyncClient, path: str) -> None:
    r = await admin_client.get(path)
    assert r.status_code == 404
    assert "<h1>Not found</h1>" in r.text and "We could not find that page." in r.text
    assert '<nav aria-label="Admin">' in r.text and 'href="/admin/inquiries"' in r.text  # with its menu


async def test_signed_out_a_missing_record_still_asks_to_sign_in(app: Any) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        r = await c.get(f"/admin/subscribers/{MISSING}")
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")
