"""Every admin list says how many rows its filter matches; Export looks the same everywhere and
is there only when something matches; the audit log reads as words; the outbox is searchable
by recipient and subject, and a search is audit-logged like the inquiry search."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select

from service.admin.models import AuditEvent
from service.campaigns.models import Campaign
from service.mail.models import MailboxMessage
from tests.conftest import Database
from tests.factories import ADMIN_EMAIL, add_inquiries, add_subscriber, inquiry_row

EXPORT = re.compile(r'<a class="button secondary export" href="([^"]+)" download>Export ([\d,]+) as CSV</a>')


def count_of(html: str) -> str:
    found = re.search(r'<p class="result-count" role="status">([^<]+)</p>', html)
    assert found, "no result count on the page"
    return found.group(1)


async def test_inquiry_and_subscriber_lists_show_their_count_and_one_export(admin_client: httpx.AsyncClient,
                                                                           db: Database) -> None:
    await add_inquiries(db, [inquiry_row(i, topic="anxiety" if i < 2 else "depression") for i in range(3)])
    for i in range(2):
        await add_subscriber(db, f"s{i}@example.org")
    r = await admin_client.get("/admin/inquiries")
    assert count_of(r.text) == "3 inquiries" and EXPORT.findall(r.text) == [("/admin/inquiries/export.csv", "3")]
    r = await admin_client.get("/admin/inquiries?topic=anxiety")
    assert count_of(r.text) == "2 inquiries"
    assert EXPORT.findall(r.text) == [("/admin/inquiries/export.csv?topic=anxiety", "2")]
    r = await admin_client.get("/admin/inquiries?q=nobody-like-this")
    assert count_of(r.text) == "0 inquiries" and "Export" not in r.text
    r = await admin_client.get("/admin/subscribers")
    assert count_of(r.text) == "2 subscribers" and EXPORT.findall(r.text) == [("/admin/subscribers/export.csv", "2")]
    r = await admin_client.get("/admin/subscribers?q=s1@")
    assert count_of(r.text) == "1 subscriber"
    r = await admin_client.get("/admin/subscribers?status=bounced")
    assert count_of(r.text) == "0 subscribers" and "Export" not in r.text


async def test_every_admin_list_shows_a_count(admin_client: httpx.AsyncClient) -> None:
    for path, expected in [("/admin/campaigns", "0 campaigns"), ("/admin/articles", "0 articles"),
                           ("/admin/users", "1 staff account"), ("/admin/digest-rules", "0 recurring digests"),
                           ("/admin/outbox", "0 messages"), ("/admin/audit", "0 events")]:
        r = await admin_client.get(path)
        assert r.status_code == 200, path
        assert count_of(r.text) == expected, path


async def _audit(db: Database, **row: Any) -> None:
    async with db.sessions.begin() as session:
        session.add(AuditEvent(actor_email=ADMIN_EMAIL, **row))


async def test_audit_log_speaks_words_and_names_what_it_is_about(admin_client: httpx.AsyncClient,
                                                                 db: Database, admin: Any) -> None:
    [inquiry_id] = await add_inquiries(db, [inquiry_row(1, name="Ana Souza")])
    async with db.sessions.begin() as session:
        campaign = Campaign(slug="spring", subject="Spring <digest>", status="sending")
        session.add(campaign)
        await session.flush()
    await _audit(db, action="campaign_send", target_type="campaign", target_id=str(campaign.id),
                 detail={"from": "draft", "queued": 276})
    await _audit(db, action="inquiry_note", target_type="inquiry", target_id=str(inquiry_id), detail={"event_id": 10})
    await _audit(db, action="user_role", target_type="staff_user", target_id=str(admin.id), detail={"role": "staff"})
    await _audit(db, action="inquiry_erase", target_type="inquiry", target_id="999")
    html = (await admin_client.get("/admin/audit")).text
    row = "<td>{}</td>\n      <td>{}</td>"
    assert row.format("Sent a campaign", f'<a href="/admin/campaigns/{campaign.id}">Spring &lt;digest&gt;</a>') in html
    assert '<span class="kv">was: draft</span> <span class="kv">queued: 276</span>' in html
    assert row.format("Added a note to an inquiry", f'<a href="/admin/inquiries/{inquiry_id}">Ana Souza</a>') in html
    assert row.format("Changed a staff member&#39;s role", f'<a href="/admin/users">{ADMIN_EMAIL}</a>') in html
    assert "<td>inquiry #999 (no longer here)</td>" in html
    for raw in ("campaign_send", "staff_user 1", "event_id", "=10", "inquiry_erase</td>"):
        assert raw + "</td>" not in html and raw not in re.sub(r'<option value="[a-z_]+"', "", html), raw


async def _mailbox(db: Database, *rows: tuple[str, str]) -> None:
    async with db.sessions.begin() as session:
        session.add_all(MailboxMessage(sender="hello@clinic.test", recipients=to, subject=subject,
                                       message_id=f"<m{i}@clinic.test>", raw=b"Subject: x\r\n\r\nx")
                        for i, (to, subject) in enumerate(rows))


async def test_outbox_search_by_recipient_or_subject_is_counted_and_audited(admin_client: httpx.AsyncClient,
                                                                            db: Database) -> None:
    await _mailbox(db, ("staff@clinic.test", "New inquiry #1 from Ana Souza"),
                   ("ana@example.org", "We have received your message \u2013 Clinic"),
                   ("bob@example.org", "Please confirm your subscription to Clinic"))
    r = await admin_client.get("/admin/outbox")
    assert count_of(r.text) == "3 messages"
    r = await admin_client.get("/admin/outbox?q=ANA")
    assert count_of(r.text) == "2 messages"
    assert "New inquiry #1 from Ana Souza" in r.text and "ana@example.org" in r.text and "bob@" not in r.text
    assert 'value="ANA"' in r.text
    r = await admin_client.get("/admin/outbox?q=confirm")
    assert count_of(r.text) == "1 message" and "bob@example.org" in r.text
    r = await admin_client.get("/admin/outbox?q=100%25_")
    assert count_of(r.text) == "0 messages" and "No messages match." in r.text
    async with db.sessions() as session:
        events = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "outbox_search")
                                        .order_by(AuditEvent.id))).all()
    assert [e.detail["matched"] for e in events] == [2, 1, 0]
    assert all(e.actor_email == ADMIN_EMAIL and e.detail["filter"] == {"search": True} for e in events)
    assert not any("ana" in str(e.detail).lower() or "confirm" in str(e.detail) for e in events)
    html = (await admin_client.get("/admin/audit?action=outbox_search")).text
    assert "<td>Searched the outbox</td>" in html and "matched: 2" in html
