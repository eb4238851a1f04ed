"""Dashboard, subscribers, outbox, audit log and user management as staff see them."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
from markupsafe import escape
from sqlalchemy import select

from service.admin.models import AuditEvent, StaffUser
from service.app import create_app
from service.db import utcnow
from service.mail.models import OutboxMessage
from service.mail.outbox import OutboxWorker, queue_email
from service.mail.transport import LocalMailboxTransport, SmtpTransport
from tests.conftest import Database
from tests.factories import (
    ADMIN_EMAIL,
    STAFF_EMAIL,
    add_inquiries,
    add_subscriber,
    audit_actions,
    count,
    csrf,
    inquiry_row,
    make_staff,
    new_client,
    sign_in,
    token_in,
)
from tests.smtp import SmtpServer

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


# -- dashboard --------------------------------------------------------------------------------


async def test_dashboard_counts_and_accessible_chart(admin_client: httpx.AsyncClient, db: Database) -> None:
    now = utcnow()
    await add_inquiries(db, [inquiry_row(1, created_at=now - dt.timedelta(days=1)),
                             inquiry_row(2, created_at=now - dt.timedelta(days=2), status="contacted"),
                             inquiry_row(3, created_at=now - dt.timedelta(days=30))])
    await add_subscriber(db, "a@example.org", confirmed_at=now - dt.timedelta(days=3))
    await add_subscriber(db, "b@example.org", confirmed_at=now - dt.timedelta(days=3))
    await add_subscriber(db, "c@example.org", status="unsubscribed", confirmed_at=now - dt.timedelta(days=200),
                         unsubscribed_at=now - dt.timedelta(days=1))
    r = await admin_client.get("/admin/")
    assert r.status_code == 200
    week = re.search(r'id="t-week">.*?<p class="big"><a href="/admin/inquiries">(\d+)</a>', r.text, re.S)
    assert week and week.group(1) == "2"
    assert '<a href="/admin/subscribers?status=confirmed">2</a>' in r.text
    assert 'href="/admin/subscribers?status=unsubscribed">unsubscribed</a>: 1' in r.text
    assert re.search(r'<svg class="chart"[^>]*role="img"', r.text) and "<title id=\"g-title\">" in r.text
    day3 = (now - dt.timedelta(days=3)).date().isoformat()
    day1 = (now - dt.timedelta(days=1)).date().isoformat()
    assert f"<tr><td>{day3}</td><td>2</td><td>0</td></tr>" in r.text  # the text fallback table
    assert f"<tr><td>{day1}</td><td>0</td><td>1</td></tr>" in r.text
    assert "style=" not in r.text and "<script>" not in r.text.split("</head>")[1]


# -- subscribers ------------------------------------------------------------------------------


async def test_subscriber_list_filters_and_renders_inert(admin_client: httpx.AsyncClient, db: Database) -> None:
    evil = await add_subscriber(db, "evil@example.org", topics=("anxiety",), name=XSS)
    await add_subscriber(db, "calm@example.org", topics=("PTSD",), status="pending")
    r = await admin_client.get("/admin/subscribers")
    assert r.status_code == 200 and "<script>" not in r.text and str(escape(XSS)) in r.text
    r = await admin_client.get("/admin/subscribers?topic=PTSD")
    assert "calm@example.org" in r.text and "evil@example.org" not in r.text
    r = await admin_client.get("/admin/subscribers?status=confirmed")
    assert "evil@example.org" in r.text and "calm@example.org" not in r.text
    r = await admin_client.get("/admin/subscribers?q=CALM")
    assert "calm@example.org" in r.text and "evil@example.org" not in r.text
    r = await admin_client.get("/admin/subscribers?status=gone")
    assert r.status_code == 400 and "Status: expected one of" in r.text
    assert evil


async def test_subscriber_detail_shows_consent_evidence_inert(admin_client: httpx.AsyncClient, db: Database) -> None:
    ident = await add_subscriber(db, '"><script>alert(1)</script>@example.org', name=XSS, signup_ip="198.51.100.4",
                                 signup_user_agent=XSS, signup_source="<script>x</script>",
                                 consent_text=f"I agree\n{XSS}",
                                 last_bounce=XSS, confirm_ip="198.51.100.5")
    r = await admin_client.get(f"/admin/subscribers/{ident}")
    assert r.status_code == 200
    assert "<script>" not in r.text and "<img src=x" not in r.text
    assert "198.51.100.4" in r.text and "198.51.100.5" in r.text and f"I agree\n{escape(XSS)}" in r.text
    assert (await admin_client.get("/admin/subscribers/999999")).status_code == 404


async def test_subscriber_pages_walk_every_row_once(admin_client: httpx.AsyncClient, db: Database) -> None:
    base = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    for i in range(120):
        await add_subscriber(db, f"s{i}@example.org", created_at=base + dt.timedelta(minutes=i // 4))
    seen: list[str] = []
    url = "/admin/subscribers"
    while url:
        r = await admin_client.get(url)
        seen += re.findall(r'<a href="/admin/subscribers/\d+">([^<]+)</a>', r.text)
        nxt = re.search(r'<a href="([^"]+)" rel="next">', r.text)
        url = nxt.group(1).replace("&amp;", "&") if nxt else ""
    assert len(seen) == 120 and len(set(seen)) == 120


# -- outbox -----------------------------------------------------------------------------------


async def _queue(db: Database, subject: str = "Welcome", html_extra: str = "") -> int:
    async with db.sessions.begin() as session:
        row = await queue_email(session, kind="test", sender="Clinic <hello@clinic.test>", to="ana@example.org",
                                subject=subject, template="smtp_check",
                                ctx={"org_name": "Clinic" + html_extra, "sent_at": "now"})
        return row.id


async def test_local_outbox_lists_and_shows_delivered_mail_in_a_sandbox(admin_client: httpx.AsyncClient,
                                                                        db: Database) -> None:
    await _queue(db, subject="Please confirm <b>now</b>", html_extra="<script>alert(1)</script>")
    assert await OutboxWorker(db.sessions, LocalMailboxTransport(db.sessions), owner="t").drain() == 1
    r = await admin_client.get("/admin/outbox")
    assert "No SMTP server is configured" in r.text and "Please confirm &lt;b&gt;now&lt;/b&gt;" in r.text
    ident = re.search(r'href="/admin/outbox/(\d+)"', r.text).group(1)  # type: ignore[union-attr]
    page = await admin_client.get(f"/admin/outbox/{ident}")
    assert page.status_code == 200 and "ana@example.org" in page.text
    assert f'<iframe class="mail-frame" sandbox src="/admin/outbox/{ident}/html"' in page.text
    assert '<pre class="mail-text">' in page.text and "<script>alert" not in page.text
    frame = await admin_client.get(f"/admin/outbox/{ident}/html")
    csp = frame.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "script-src" not in csp and "default-src 'none'" in csp
    assert frame.headers["content-type"].startswith("text/html")


async def test_smtp_outbox_shows_failures_and_retries_them(settings: Any, db: Database, smtp: SmtpServer) -> None:
    app = create_app(settings.with_(smtp_url=smtp.url), sessions=db.sessions)
    await make_staff(db)
    ident = await _queue(db, subject="Inquiry received")
    smtp.handler.behaviour.data_failures.append("554 5.6.0 message refused")
    worker = OutboxWorker(db.sessions, SmtpTransport(smtp.url, timeout=5), owner="t")
    await worker.drain()
    async with new_client(app) as c:
        await sign_in(c)
        r = await c.get("/admin/outbox?status=failed")
        assert "Inquiry received" in r.text and f'action="/admin/outbox/{ident}/retry"' in r.text
        assert "554 5.6.0 message refused" in r.text
        r = await c.post(f"/admin/outbox/{ident}/retry", data={"csrf_token": await csrf(c)})
        assert r.status_code == 303
        async with db.sessions() as session:
            row = await session.get(OutboxMessage, ident)
            assert row is not None and row.status == "queued" and row.attempts == 0
        assert await worker.drain() == 1
        again = await c.post(f"/admin/outbox/{ident}/retry", data={"csrf_token": await csrf(c)})
        assert again.status_code == 409
    await worker.mailer.close()
    assert ("outbox_retry", ADMIN_EMAIL, str(ident)) in await audit_actions(db)


# -- audit log --------------------------------------------------------------------------------


async def test_audit_page_filters_by_action_actor_and_date(login_form_client: httpx.AsyncClient, db: Database) -> None:
    admin_client = login_form_client  # signed in through the form, so the log holds a sign_in row
    [ident] = await add_inquiries(db, [inquiry_row(1)])
    await admin_client.get(f"/admin/inquiries/{ident}")
    r = await admin_client.get("/admin/audit?action=inquiry_view")
    assert f'<a href="/admin/inquiries/{ident}">Client 1</a>' in r.text and "Signed in</td>" not in r.text
    assert "<td>Opened an inquiry</td>" in r.text and "inquiry_view</td>" not in r.text
    assert '<option value="inquiry_view" selected>Opened an inquiry</option>' in r.text
    assert '<p class="result-count" role="status">1 event</p>' in r.text
    assert "203.0.113.7" in r.text
    r = await admin_client.get(f"/admin/audit?actor={ADMIN_EMAIL}")
    assert "<td>Signed in</td>" in r.text and "<td>Opened an inquiry</td>" in r.text
    r = await admin_client.get("/admin/audit?actor=someone@else.test")
    assert "Nothing recorded" in r.text
    r = await admin_client.get("/admin/audit?from=2000-01-01&to=2000-01-02")
    assert "Nothing recorded" in r.text
    r = await admin_client.get("/admin/audit?from=nope")
    assert r.status_code == 400 and "From: expected a date" in r.text


async def test_audit_page_paginates(admin_client: httpx.AsyncClient, db: Database) -> None:
    async with db.sessions.begin() as session:
        session.add_all(AuditEvent(action="inquiry_view", target_type="inquiry", target_id=str(i), actor_email="x",
                                   created_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC)) for i in range(120))
    seen: list[str] = []
    url = "/admin/audit?action=inquiry_view"
    while url:
        r = await admin_client.get(url)
        seen += re.findall(r'<td>inquiry #(\d+) \(no longer here\)</td>', r.text)
        assert '<p class="result-count" role="status">120 events</p>' in r.text
        nxt = re.search(r'<a href="([^"]+)" rel="next">', r.text)
        url = nxt.group(1).replace("&amp;", "&") if nxt else ""
    assert sorted(seen, key=int) == [str(i) for i in range(120)]


# -- users ------------------------------------------------------------------------------------


async def test_admin_invites_a_user_who_sets_a_password_with_the_link(app: Any, admin_client: httpx.AsyncClient,
                                                                      db: Database) -> None:
    r = await admin_client.post("/admin/users/invite", data={"csrf_token": await csrf(admin_client),
                                                             "email": "New.Person@Clinic.test", "name": "New",
                                                             "role": "staff"})
    assert r.status_code == 200
    link = re.search(r'value="(http://testserver/admin/set-password/[^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    async with new_client(app, ip="203.0.113.60") as c:
        page = await c.get(link)
        done = await c.post(link, data={"form_token": token_in(page.text), "password": "twelve chars ok",
                                        "confirm": "twelve chars ok"})
        assert done.status_code == 303
        assert (await c.get("/admin/users")).status_code == 403  # a staff member
        assert (await c.get("/admin/inquiries")).status_code == 200
    actions = [a for a, _, _ in await audit_actions(db)]
    assert "user_invite" in actions and "password_set" in actions


async def test_invite_refuses_bad_input_and_duplicates(admin_client: httpx.AsyncClient, db: Database) -> None:
    token = await csrf(admin_client)
    for data, message in (({"email": "not an email", "role": "staff"}, "Email: expected"),
                          ({"email": ADMIN_EMAIL, "role": "staff"}, "already exists"),
                          ({"email": "x@clinic.test", "role": "owner"}, "Role: expected")):
        r = await admin_client.post("/admin/users/invite", data={"csrf_token": token, **data})
        assert r.status_code == 422 and message in r.text
    assert await count(db, StaffUser) == 1


async def test_role_change_and_deactivation_with_last_admin_guard(app: Any, admin_client: httpx.AsyncClient,
                                                                  db: Database) -> None:
    me = (await _user(db, ADMIN_EMAIL)).id
    token = await csrf(admin_client)
    r = await admin_client.post(f"/admin/users/{me}", data={"csrf_token": token, "role": "staff"})
    assert r.status_code == 409 and "last active admin" in r.text
    r = await admin_client.post(f"/admin/users/{me}", data={"csrf_token": token, "active": "0"})
    assert r.status_code == 409
    assert (await _user(db, ADMIN_EMAIL)).role == "admin"
    other = await make_staff(db, STAFF_EMAIL, role="staff")
    async with new_client(app, ip="203.0.113.61") as c:
        await sign_in(c, STAFF_EMAIL)
        r = await admin_client.post(f"/admin/users/{other.id}", data={"csrf_token": token, "role": "admin"})
        assert r.status_code == 303 and (await _user(db, STAFF_EMAIL)).role == "admin"
        assert (await c.get("/admin/users")).status_code == 200  # promoted at once
        r = await admin_client.post(f"/admin/users/{other.id}", data={"csrf_token": token, "active": "0"})
        assert r.status_code == 303
        assert (await c.get("/admin/")).status_code == 303  # deactivated: out at once
    r = await admin_client.post(f"/admin/users/{other.id}", data={"csrf_token": token, "active": "1"})
    assert r.status_code == 303 and (await _user(db, STAFF_EMAIL)).active
    # With a second active admin, the first may step down.
    r = await admin_client.post(f"/admin/users/{me}", data={"csrf_token": token, "role": "staff"})
    assert r.status_code == 303 and (await _user(db, ADMIN_EMAIL)).role == "staff"
    assert (await admin_client.get("/admin/users")).status_code == 403
    actions = [a for a, _, _ in await audit_actions(db)]
    assert actions.count("user_role") == 2 and "user_deactivate" in actions and "user_reactivate" in actions


async def test_new_set_password_link_for_a_user(admin_client: httpx.AsyncClient, db: Database) -> None:
    other = await make_staff(db, STAFF_EMAIL, role="staff")
    r = await admin_client.post(f"/admin/users/{other.id}", data={"csrf_token": await csrf(admin_client),
                                                                  "password_link": "1"})
    assert r.status_code == 200 and "/admin/set-password/" in r.text
    assert ("user_password_link", ADMIN_EMAIL, str(other.id)) in await audit_actions(db)


async def _user(db: Database, email: str) -> StaffUser:
    async with db.sessions() as session:
        user = await session.scalar(select(StaffUser).where(StaffUser.email == email))
        assert user is not None
        return user


async def test_last_login_is_recorded(login_form_client: httpx.AsyncClient, db: Database) -> None:
    assert (await _user(db, ADMIN_EMAIL)).last_login_at is not None
