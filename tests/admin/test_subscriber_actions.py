"""Subscriber actions as staff use them: deliveries on the detail page, unsubscribe, suppress,
erase (confirmed by typing the address; the suppression stays), CSV import (dry run, then
apply the same file) and CSV export of the current filter; CSRF and audit on each."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
from sqlalchemy import select

from service.admin.models import AuditEvent
from service.campaigns import queries as cq
from service.db import utcnow
from service.newsletter.models import Subscriber, Suppression
from service.settings import Settings
from tests.conftest import Database, make_settings
from tests.factories import add_subscriber, audit_actions, count, csrf, sample_articles, sender_for, token_in
from tests.smtp import SmtpServer


async def _sub(db: Database, subscriber_id: int) -> Subscriber | None:
    async with db.sessions() as session:
        return await session.get(Subscriber, subscriber_id)


async def test_detail_lists_every_delivery_they_received(admin_client: httpx.AsyncClient, db: Database,
                                                         smtp: SmtpServer) -> None:
    settings = make_settings(db, smtp_url=smtp.url)
    sid = await add_subscriber(db, "reader@example.org")
    articles = await sample_articles(db, settings)
    async with db.sessions.begin() as session:
        campaign = await cq.create_campaign(session, subject="October digest", article_ids=[a.id for a in articles],
                                            now=utcnow())
        await cq.start_campaign(session, campaign_id=campaign.id, now=utcnow())
    assert await sender_for(db, settings, smtp.url).run_campaign(campaign.id) == "sent"
    r = await admin_client.get(f"/admin/subscribers/{sid}")
    assert r.status_code == 200
    assert f'<a href="/admin/campaigns/{campaign.id}">October digest</a>' in r.text
    assert "badge-sent" in r.text and f"&lt;digest.{campaign.id}." in r.text  # the Message-ID


async def test_unsubscribe_and_suppress_by_staff(admin_client: httpx.AsyncClient, db: Database) -> None:
    a = await add_subscriber(db, "a@example.org")
    b = await add_subscriber(db, "b@example.org")
    for path in (f"/admin/subscribers/{a}/unsubscribe", f"/admin/subscribers/{a}/suppress"):
        r = await admin_client.post(path, data={"reason": "no token"})
        assert r.status_code == 403
    assert (await _sub(db, a)).status == "confirmed"  # type: ignore[union-attr]
    token = await csrf(admin_client)
    r = await admin_client.post(f"/admin/subscribers/{a}/unsubscribe", data={"csrf_token": token})
    assert r.status_code == 303
    row = await _sub(db, a)
    assert row is not None and row.status == "unsubscribed" and row.unsubscribed_at is not None
    r = await admin_client.post(f"/admin/subscribers/{b}/suppress", data={"csrf_token": token, "reason": ""})
    assert r.status_code == 422 and "Please enter reason" in r.text
    assert (await _sub(db, b)).status == "confirmed"  # type: ignore[union-attr]
    r = await admin_client.post(f"/admin/subscribers/{b}/suppress",
                                data={"csrf_token": token, "reason": "asked by phone"})
    assert r.status_code == 303
    row = await _sub(db, b)
    assert row is not None and row.status == "complained" and row.last_bounce == "suppressed by staff: asked by phone"
    page = await admin_client.get(r.headers["location"])
    assert "Suppressed: they get no more campaigns." in page.text
    assert [x[0] for x in await audit_actions(db) if x[0].startswith("subscriber")] == [
        "subscriber_unsubscribe", "subscriber_suppress"]


async def test_erase_needs_the_typed_address_and_leaves_the_suppression(admin_client: httpx.AsyncClient,
                                                                        db: Database) -> None:
    sid = await add_subscriber(db, "Forget.Me@Example.org", name="Forget Me")
    page = await admin_client.get(f"/admin/subscribers/{sid}/erase")
    assert page.status_code == 200 and "Type the address to confirm" in page.text
    token = token_in(page.text)
    r = await admin_client.post(f"/admin/subscribers/{sid}/erase", data={"csrf_token": token,
                                                                         "confirm_email": "someone@else.org"})
    assert r.status_code == 422 and "Nothing was erased" in r.text and await _sub(db, sid) is not None
    r = await admin_client.post(f"/admin/subscribers/{sid}/erase", data={"confirm_email": "forget.me@example.org"})
    assert r.status_code == 403 and await _sub(db, sid) is not None  # no CSRF token
    r = await admin_client.post(f"/admin/subscribers/{sid}/erase", data={"csrf_token": token,
                                                                         "confirm_email": "forget.me@example.org"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/subscribers?notice=erased"
    assert await _sub(db, sid) is None and await count(db, Suppression) == 1
    async with db.sessions() as session:
        event = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "subscriber_erase"))).one()
    assert event.target_id == str(sid)
    assert "forget" not in json.dumps(event.detail).lower()
    # The erased address cannot come back through the import.
    r = await _upload(admin_client, "email,name\nforget.me@example.org,Again\n", step="check")
    assert "suppressed: the address was erased" in r.text


def _csv(rows: int, start: int = 0) -> str:
    lines = ["email,name,status,topics,signup_at"]
    lines += [f"person{i}@example.org,Person {i} with a fairly long name to make the file big,confirmed,PTSD,"
              f"2026-01-0{1 + i % 9}T10:00:00Z" for i in range(start, start + rows)]
    return "\n".join(lines) + "\n"


async def _upload(client: httpx.AsyncClient, content: str, *, step: str, token: str = "",
                  csrf_token: str | None = None, **fields: str) -> httpx.Response:
    if csrf_token is None:
        csrf_token = await csrf(client)
    data: dict[str, Any] = {"csrf_token": csrf_token, "step": step, "token": token, **fields}
    return await client.post("/admin/subscribers/import", data=data,
                             files={"file": ("people.csv", content.encode(), "text/csv")})


async def test_import_dry_run_changes_nothing_then_apply_imports_the_same_file(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    await add_subscriber(db, "person1@example.org", status="unsubscribed")
    content = _csv(1500) + "not-an-address,Bad\nperson2@example.org,Twice\n"
    assert len(content) > 64 * 1024  # larger than the app's default body limit
    assert (await admin_client.get("/admin/subscribers/import")).status_code == 200
    r = await _upload(admin_client, content, step="check")
    assert r.status_code == 200, r.text[:500]
    assert "Dry run: nothing was changed yet." in r.text
    assert "1502 rows read: 1499 would be added, 0 would be updated, 2 skipped, 1 with errors" in r.text
    assert "line 1502: This email address is not valid" in r.text  # the bad address, by line number
    assert "already unsubscribed, bounced or complained" in r.text and "(lines 3)" in r.text
    assert "duplicate of an earlier line in the file (lines 1503)" in r.text
    assert await count(db, Subscriber) == 1
    apply_token = r.text.split('name="token" value="')[1].split('"')[0]

    other = await _upload(admin_client, _csv(3, start=5000), step="apply", token=apply_token)
    assert other.status_code == 422 and "not the file that was checked" in other.text
    forged = await _upload(admin_client, content, step="apply", token="forged")
    assert forged.status_code == 422 and "check the file again first" in forged.text
    no_csrf = await _upload(admin_client, content, step="apply", token=apply_token, csrf_token="")
    assert no_csrf.status_code == 403
    assert await count(db, Subscriber) == 1

    r = await _upload(admin_client, content, step="apply", token=apply_token)
    assert r.status_code == 200 and "1499 were added" in r.text
    assert await count(db, Subscriber) == 1500
    async with db.sessions() as session:
        row = (await session.scalars(select(Subscriber).where(Subscriber.email_key == "person7@example.org"))).one()
        assert (row.status, row.topics) == ("confirmed", ["PTSD"])
        event = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "subscriber_import"))).one()
    assert event.detail["added"] == 1499 and event.detail["file"] == "people.csv"


async def test_import_of_a_file_without_an_address_column_is_refused(admin_client: httpx.AsyncClient,
                                                                     db: Database) -> None:
    r = await _upload(admin_client, "mail address,shoe_size\na@example.org,42\n", step="check")
    assert r.status_code == 422 and "Nothing was imported" in r.text
    assert await count(db, Subscriber) == 0


async def test_export_follows_the_filter_and_is_audited(admin_client: httpx.AsyncClient, db: Database,
                                                        settings: Settings) -> None:
    await add_subscriber(db, "ptsd@example.org", topics=("PTSD",), name="=HYPERLINK(1)")
    await add_subscriber(db, "anx@example.org", topics=("anxiety",))
    await add_subscriber(db, "gone@example.org", topics=("PTSD",), status="unsubscribed")
    page = await admin_client.get("/admin/subscribers?topic=PTSD&status=confirmed")
    assert 'href="/admin/subscribers/export.csv?status=confirmed&amp;topic=PTSD"' in page.text
    r = await admin_client.get("/admin/subscribers/export.csv?status=confirmed&topic=PTSD")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["email"] for row in rows] == ["ptsd@example.org"]
    assert rows[0]["name"] == "'=HYPERLINK(1)" and rows[0]["topics"] == "PTSD"  # never a formula
    r = await admin_client.get("/admin/subscribers/export.csv?q=ANX")
    assert [row["email"] for row in csv.DictReader(io.StringIO(r.text))] == ["anx@example.org"]
    r = await admin_client.get("/admin/subscribers/export.csv")
    assert len(list(csv.DictReader(io.StringIO(r.text)))) == 3
    r = await admin_client.get("/admin/subscribers/export.csv?status=nope")
    assert r.status_code == 400
    assert [a for a, _w, _t in await audit_actions(db) if a == "subscriber_export"] == ["subscriber_export"] * 3
