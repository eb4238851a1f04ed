"""The figures staff see (dashboard, subscriber list, a campaign's live figures) come from
counters the triggers keep (migration 0013m_counters); after every real action (sign up,
confirm, unsubscribe, bounce, import, erase, queue, send, a late bounce report, the worker's
fold) they must equal what the rows themselves say, so a counter that drifts fails here."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import func, select

from service.campaigns import queries as cq
from service.campaigns.counts import fold_delivery_counts
from service.campaigns.models import Delivery
from service.db import utcnow
from service.newsletter.counts import fold_subscriber_counts
from service.newsletter.flows import mark_bounced
from service.newsletter.models import SUBSCRIBER_STATUSES, Subscriber
from service.newsletter.queries import SubscriberFilter, count_subscribers
from service.settings import Settings
from tests.conftest import Database
from tests.factories import (
    add_subscriber,
    confirmed_subscriber,
    csrf,
    deliver,
    link_in,
    make_campaign,
    sender_for,
    signup,
    subscriber,
    token_in,
)
from tests.smtp import SmtpServer


async def _counted(db: Database) -> dict[str, int]:
    async with db.sessions() as session:
        found = dict((await session.execute(select(Subscriber.status, func.count())
                                            .group_by(Subscriber.status))).all())
    return {s: int(found.get(s, 0)) for s in SUBSCRIBER_STATUSES}


async def _shown(admin_client: httpx.AsyncClient) -> dict[str, int]:
    """Per status, what the dashboard shows, checked against the subscriber list's own count."""
    page = (await admin_client.get("/admin/")).text
    shown = {s: int(n) for s, n in re.findall(r'href="/admin/subscribers\?status=(\w+)">\w+</a>: (\d+)', page)}
    for status, n in shown.items():
        listed = (await admin_client.get(f"/admin/subscribers?status={status}")).text
        word = "subscriber" if n == 1 else "subscribers"
        assert f'role="status">{n:,} {word}</p>' in listed, (status, n)
    everyone = sum(shown.values())
    listed = (await admin_client.get("/admin/subscribers")).text
    assert f'role="status">{everyone:,} {"subscriber" if everyone == 1 else "subscribers"}</p>' in listed
    return shown


async def _check(admin_client: httpx.AsyncClient, db: Database, **expected: int) -> None:
    shown = await _shown(admin_client)
    assert shown == await _counted(db)
    assert {s: shown[s] for s in expected} == expected


async def test_subscriber_figures_follow_every_real_action(admin_client: httpx.AsyncClient, client: httpx.AsyncClient,
                                                           db: Database, smtp: SmtpServer) -> None:
    await _check(admin_client, db, pending=0, confirmed=0)
    await signup(client, "pending@example.org")
    await _check(admin_client, db, pending=1, confirmed=0)
    ana = await confirmed_subscriber(client, db, smtp, "ana@example.org")
    bo = await confirmed_subscriber(client, db, smtp, "bo@example.org")
    await _check(admin_client, db, pending=1, confirmed=2)

    # the reader's own one-click unsubscribe, from the link in their welcome email
    welcome = [m for m in smtp.received if m.recipients == ["ana@example.org"]][-1]
    r = await client.post(link_in(welcome.message, "/unsubscribe/"), data={"List-Unsubscribe": "One-Click"})
    assert r.status_code in (200, 303), r.text
    await _check(admin_client, db, confirmed=1, unsubscribed=1)

    async with db.sessions.begin() as session:  # what a hard bounce does
        await mark_bounced(session, subscriber_id=bo.id, reason="550 5.1.1 no such user")
    await _check(admin_client, db, confirmed=0, bounced=1, unsubscribed=1)

    token = await csrf(admin_client)
    data = b"email,name,status,signup_at\nnew1@example.org,New,confirmed,2024-05-01\nnew2@example.org,,pending,\n"
    form = {"csrf_token": token, "step": "check"}
    check = await admin_client.post("/admin/subscribers/import", data=form,
                                    files={"file": ("list.csv", data, "text/csv")})
    assert check.status_code == 200 and "Dry run" in check.text
    await _check(admin_client, db, confirmed=0, pending=1)  # a dry run changes no figure
    apply = check.text.split('name="token" value="')[1].split('"')[0]
    r = await admin_client.post("/admin/subscribers/import",
                                data={"csrf_token": token, "step": "apply", "token": apply},
                                files={"file": ("list.csv", data, "text/csv")})
    assert r.status_code == 200 and "2 were added" in r.text
    await _check(admin_client, db, confirmed=1, pending=2, bounced=1, unsubscribed=1)

    async with db.sessions.begin() as session:  # the worker's fold keeps every sum
        assert await fold_subscriber_counts(session) > 0
    await _check(admin_client, db, confirmed=1, pending=2, bounced=1, unsubscribed=1)
    async with db.sessions.begin() as session:
        assert await fold_subscriber_counts(session) == 0  # nothing left to fold

    page = await admin_client.get(f"/admin/subscribers/{ana.id}/erase")
    r = await admin_client.post(f"/admin/subscribers/{ana.id}/erase",
                                data={"csrf_token": token_in(page.text), "confirm_email": "ana@example.org"})
    assert r.status_code == 303
    await _check(admin_client, db, confirmed=1, pending=2, bounced=1, unsubscribed=0)
    assert await subscriber(db, "ana@example.org") is None


async def test_search_counts_stop_at_the_cap(admin_client: httpx.AsyncClient, db: Database) -> None:
    for i in range(3):
        await add_subscriber(db, f"many{i}@example.org", topics=("PTSD",))
    async with db.sessions() as session:
        assert await count_subscribers(session, flt=SubscriberFilter(q="many"), cap=2) == (2, True)
        assert await count_subscribers(session, flt=SubscriberFilter(topic="PTSD"), cap=3) == (3, False)
        assert await count_subscribers(session, flt=SubscriberFilter(status="confirmed"), cap=1) == (3, False)
    r = await admin_client.get("/admin/subscribers?q=many")
    assert 'role="status">3 subscribers</p>' in r.text and "Export 3 as CSV" in r.text


async def _live(admin_client: httpx.AsyncClient, campaign_id: int) -> dict[str, Any]:
    r = await admin_client.get(f"/admin/campaigns/{campaign_id}/progress")
    assert r.status_code == 200
    return dict(r.json())


async def _delivered(db: Database, campaign_id: int) -> dict[str, int]:
    """The figures counted from the deliveries themselves."""
    async with db.sessions() as session:
        rows = dict((await session.execute(select(Delivery.status, func.count())
                                           .where(Delivery.campaign_id == campaign_id)
                                           .group_by(Delivery.status))).all())
        bounced = await session.scalar(select(func.count()).where(Delivery.campaign_id == campaign_id,
                                                                  Delivery.bounced.is_(True)))
    return {"total": sum(rows.values()), "queued": rows.get("queued", 0) + rows.get("sending", 0),
            "sent": rows.get("sent", 0), "failed": rows.get("failed", 0), "skipped": rows.get("skipped", 0),
            "bounced": int(bounced or 0)}


async def _check_live(admin_client: httpx.AsyncClient, db: Database, campaign_id: int, **expected: int) -> None:
    live = await _live(admin_client, campaign_id)
    figures = {k: live[k] for k in ("total", "queued", "sent", "failed", "skipped", "bounced")}
    assert figures == await _delivered(db, campaign_id)
    assert {k: figures[k] for k in expected} == expected


async def test_campaign_live_figures_follow_queueing_sending_bounces_and_erasure(
        admin_client: httpx.AsyncClient, db: Database, settings: Settings, smtp: SmtpServer) -> None:
    ids = [await add_subscriber(db, f"reader{i}@example.org") for i in range(4)]
    campaign_id = await make_campaign(db, settings)
    await _check_live(admin_client, db, campaign_id, total=4, queued=4, sent=0)

    sender = sender_for(db, settings, smtp.url)
    while await sender.run_once():
        pass
    await sender.transport.close()
    await _check_live(admin_client, db, campaign_id, total=4, queued=0, sent=4, skipped=0)
    live = await _live(admin_client, campaign_id)
    assert live["percent"] == 100.0

    async with db.sessions.begin() as session:  # a DSN names one delivery after the send
        first = (await session.scalars(select(Delivery.id).where(Delivery.campaign_id == campaign_id,
                                                                 Delivery.status == "sent"))).first()
        assert first is not None
        await cq.mark_delivery_bounced(session, delivery_id=first)
    await _check_live(admin_client, db, campaign_id, sent=4, bounced=1)

    async with db.sessions.begin() as session:  # the worker's fold keeps every figure
        assert await fold_delivery_counts(session, now=utcnow()) > 0
    await _check_live(admin_client, db, campaign_id, total=4, sent=4, bounced=1)

    page = await admin_client.get(f"/admin/subscribers/{ids[1]}/erase")
    r = await admin_client.post(f"/admin/subscribers/{ids[1]}/erase",
                                data={"csrf_token": token_in(page.text), "confirm_email": "reader1@example.org"})
    assert r.status_code == 303
    await _check_live(admin_client, db, campaign_id, total=3, sent=3)
    await deliver(db, smtp)
