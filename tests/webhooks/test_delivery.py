"""Webhooks end to end: events made by the real paths (the contact API, the admin, the
newsletter links) are queued in their transaction, delivered by the worker over real HTTP to a
receiver that verifies every one with the `standardwebhooks` library; retries, redelivery, and
two workers that never post one delivery twice."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx

from service.admin.audit import Actor
from service.db import utcnow
from service.settings import Settings
from service.webhooks.actions import rotate_secret, send_again, send_test
from service.webhooks.delivery import WebhookWorker
from service.webhooks.events import queue_event
from service.webhooks.models import WebhookEndpoint
from tests.conftest import Database
from tests.factories import make_staff, outbox_messages, posted_id, signed_in_client
from tests.webhooks.helpers import ADMIN, add_endpoint, deliveries, drain, endpoint
from tests.webhooks.receiver import Receiver


async def test_a_new_inquiry_reaches_an_endpoint_signed_without_its_health_data(
        db: Database, settings: Settings, receiver: Receiver, client: httpx.AsyncClient) -> None:
    await add_endpoint(db, settings, receiver, events=["inquiry.created"])
    inquiry_id = await posted_id(client, db, topic="ptsd", message="I have had PTSD for years")
    assert await drain(db, settings) == 1
    [got] = receiver.received
    assert got.verified
    assert got.payload["type"] == "inquiry.created"
    data = got.payload["data"]
    assert data["id"] == inquiry_id and data["admin_url"].endswith(f"/admin/inquiries/{inquiry_id}")
    assert set(data) == {"id", "created_at", "contact_method", "attribution", "admin_url"}
    assert b"PTSD" not in got.body and b"ptsd" not in got.body and b"@" not in got.body
    [row] = await deliveries(db)
    assert row.status == "delivered" and row.msg_id == got.msg_id and row.response_status == 200


async def test_a_trusted_endpoint_gets_the_inquiry_itself(
        db: Database, settings: Settings, receiver: Receiver, client: httpx.AsyncClient) -> None:
    await add_endpoint(db, settings, receiver, events=["inquiry.created"], trusted=True)
    await posted_id(client, db, topic="ptsd", message="I have had PTSD for years")
    await drain(db, settings)
    [got] = receiver.received
    assert got.verified and got.payload["data"]["topic"].lower() == "ptsd"
    assert got.payload["data"]["message"] == "I have had PTSD for years"


async def test_a_status_change_in_the_admin_is_an_event(
        db: Database, settings: Settings, receiver: Receiver, client: httpx.AsyncClient) -> None:
    await add_endpoint(db, settings, receiver, events=["inquiry.status_changed"])
    inquiry_id = await posted_id(client, db)
    staff = await make_staff(db)
    async with signed_in_client(client._transport.app, staff) as admin:  # type: ignore[attr-defined]
        page = await admin.get(f"/admin/inquiries/{inquiry_id}")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        r = await admin.post(f"/admin/inquiries/{inquiry_id}/status", data={"csrf_token": token,
                                                                            "status": "contacted"})
        assert r.status_code in (200, 303), r.text
    await drain(db, settings)
    [got] = receiver.received
    assert got.verified and got.payload["type"] == "inquiry.status_changed"
    assert got.payload["data"] == {"id": inquiry_id, "from_status": "new", "to_status": "contacted",
                                   "changed_at": got.payload["data"]["changed_at"]}


async def test_retries_after_5xx_and_timeouts_keep_the_webhook_id(
        db: Database, settings: Settings, receiver: Receiver) -> None:
    await add_endpoint(db, settings, receiver, events=["campaign.sent"])
    async with db.sessions.begin() as session:
        await queue_event(session, event="campaign.sent", data={"id": 1})
    receiver.plan = [503, "hang"]
    later = [utcnow()]
    worker = WebhookWorker(db.sessions, settings, owner="w1", clock=lambda: later[0])
    try:
        for _ in range(2):
            assert await worker.run_once() == 1
            await worker.settle()  # the timeout takes as long as the batch waits for it: it may end after
            [row] = await deliveries(db)
            assert row.status == "queued" and row.next_attempt_at > later[0]
            assert await worker.run_once() == 0  # the retry waits for its time
            later[0] = row.next_attempt_at
        assert await worker.run_once() == 1
    finally:
        worker.close()
    [row] = await deliveries(db)
    assert row.status == "delivered" and row.attempts == 3
    assert [r.msg_id for r in receiver.received] == [row.msg_id] * 3
    assert all(r.verified for r in receiver.received)
    assert (await endpoint(db, row.endpoint_id)).failing_since is None


async def test_a_day_of_failures_fails_the_delivery_and_disables_the_endpoint_with_a_notice(
        db: Database, settings: Settings, receiver: Receiver) -> None:
    await make_staff(db)
    endpoint_id = await add_endpoint(db, settings, receiver, events=["campaign.sent"])
    async with db.sessions.begin() as session:
        await queue_event(session, event="campaign.sent", data={"id": 1})
    receiver.plan = [500, 500]
    await drain(db, settings)
    [row] = await deliveries(db)
    assert row.status == "queued" and row.last_error == "HTTP 500 X"
    await drain(db, settings, clock=lambda: utcnow() + dt.timedelta(days=1, minutes=1))
    [row] = await deliveries(db)
    assert row.status == "failed" and row.last_error.startswith("gave up after 2 attempts")
    ep = await endpoint(db, endpoint_id)
    assert not ep.enabled and ep.disabled_reason == "every delivery failed for 24 hours"
    [notice] = [m for m in await outbox_messages(db) if m.kind == "webhook_disabled"]
    assert notice.recipient == "admin@clinic.test"


async def test_send_again_keeps_the_webhook_id_and_a_test_event_is_signed(
        db: Database, settings: Settings, receiver: Receiver) -> None:
    endpoint_id = await add_endpoint(db, settings, receiver, events=["campaign.sent"])
    async with db.sessions.begin() as session:
        await queue_event(session, event="campaign.sent", data={"id": 1})
    await drain(db, settings)
    [row] = await deliveries(db)
    async with db.sessions.begin() as session:
        await send_again(session, actor=ADMIN, delivery_id=row.id, now=utcnow())
        ep = await session.get(WebhookEndpoint, endpoint_id)
        assert ep is not None
        await send_test(session, actor=ADMIN, endpoint=ep, now=utcnow())
    await drain(db, settings)
    first, again, test = receiver.received
    assert first.msg_id == again.msg_id == row.msg_id and first.body == again.body
    assert test.payload["type"] == "webhook.test" and test.msg_id != row.msg_id
    assert all(r.verified for r in receiver.received)


async def test_after_a_rotation_both_secrets_verify_for_a_day(
        db: Database, settings: Settings, receiver: Receiver) -> None:
    endpoint_id = await add_endpoint(db, settings, receiver, events=["campaign.sent"])
    old = receiver.secrets[0]
    async with db.sessions.begin() as session:
        ep = await session.get(WebhookEndpoint, endpoint_id)
        assert ep is not None
        new = await rotate_secret(session, actor=Actor(name="a"), endpoint=ep, now=utcnow())
        await queue_event(session, event="campaign.sent", data={"id": 1})
    await drain(db, settings)
    [got] = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        receiver.secrets = [secret]
        assert receiver.verify(got.body, got.headers)


async def test_two_workers_deliver_every_event_once(db: Database, settings: Settings, receiver: Receiver) -> None:
    await add_endpoint(db, settings, receiver, events=["campaign.sent"])
    async with db.sessions.begin() as session:
        for i in range(300):
            await queue_event(session, event="campaign.sent", data={"id": i})
    one = WebhookWorker(db.sessions, settings, owner="w1", batch_size=25)
    two = WebhookWorker(db.sessions, settings, owner="w2", batch_size=25)
    try:
        counts = await asyncio.gather(one.drain(), two.drain())
        await one.drain()
    finally:
        one.close()
        two.close()
    ids = [r.msg_id for r in receiver.received]
    assert len(ids) == 300 and len(set(ids)) == 300
    assert sum(counts) == 300  # which worker took how many depends on timing: not asserted
    assert all(r.verified for r in receiver.received)
    assert {row.status for row in await deliveries(db)} == {"delivered"}


async def test_only_enabled_endpoints_that_chose_the_event_get_it(
        db: Database, settings: Settings, receiver: Receiver) -> None:
    await add_endpoint(db, settings, receiver, events=["inquiry.status_changed"])
    off = await add_endpoint(db, settings, receiver, events=["campaign.sent"])
    chosen = await add_endpoint(db, settings, receiver, events=["campaign.sent", "subscriber.bounced"])
    async with db.sessions.begin() as session:
        ep = await session.get(WebhookEndpoint, off)
        assert ep is not None
        ep.enabled = False
        await queue_event(session, event="campaign.sent", data={"id": 7})
    assert [(d.endpoint_id, d.event) for d in await deliveries(db)] == [(chosen, "campaign.sent")]


async def test_a_dead_workers_batch_is_delivered_by_another_after_its_lease(
        db: Database, settings: Settings, receiver: Receiver) -> None:
    from service.webhooks import queries as q

    await add_endpoint(db, settings, receiver, events=["campaign.sent"])
    async with db.sessions.begin() as session:
        await queue_event(session, event="campaign.sent", data={"id": 1})
    lease = dt.timedelta(minutes=2)
    async with db.sessions.begin() as session:  # a worker claims, then dies before posting
        [claim] = await q.claim_deliveries(session, owner="dead", limit=10, lease=lease, now=utcnow())
    assert await drain(db, settings, owner="w2") == 0  # leased: not claimed again meanwhile
    assert await drain(db, settings, owner="w2", clock=lambda: utcnow() + lease + dt.timedelta(seconds=1)) == 1
    async with db.sessions.begin() as session:  # the dead worker's late result changes nothing
        await q.record_outcomes(session, owner="dead", outcomes=[{
            "id": claim.id, "status": "failed", "next": utcnow(), "delivered": None, "code": None, "body": None,
            "ms": None, "error": "late"}])
    [row] = await deliveries(db)
    assert row.status == "delivered" and row.attempts == 2 and row.last_error is None
    assert [r.msg_id for r in receiver.received] == [claim.msg_id]


async def test_a_slow_endpoint_holds_back_only_itself(db: Database, settings: Settings, receiver: Receiver) -> None:
    """One receiver that has not answered yet (it answers when the test lets it) does not keep a
    second endpoint from getting its events, batch after batch, meanwhile."""
    fast = await Receiver().start()
    try:
        slow_id = await add_endpoint(db, settings, receiver, events=["campaign.sent"])
        fast_id = await add_endpoint(db, settings, fast, events=["campaign.sent"])
        receiver.plan = ["hold"]
        async with db.sessions.begin() as session:
            await queue_event(session, event="campaign.sent", data={"id": 1})
        worker = WebhookWorker(db.sessions, settings.with_(webhook_timeout=60.0), owner="w1")
        try:
            for i in range(1, 5):
                if i > 1:  # more events while the slow endpoint still holds its first
                    async with db.sessions.begin() as session:
                        await queue_event(session, event="campaign.sent", data={"id": i})
                for _ in range(400):  # the worker's loop, until the fast endpoint has event i
                    if len(fast.received) == i:
                        break
                    if not await worker.run_once():
                        await asyncio.sleep(0.05)
                assert [r.payload["data"]["id"] for r in fast.received] == list(range(1, i + 1))
            assert [r.payload["data"]["id"] for r in receiver.received] == [1]
            states = {(d.endpoint_id, d.status) for d in await deliveries(db)}
            assert (slow_id, "sending") in states and (fast_id, "queued") not in states
            receiver.release.set()
            await worker.drain()  # also when the held group ends during drain's first claim
        finally:
            worker.close()
        assert [r.payload["data"]["id"] for r in receiver.received] == [1, 2, 3, 4]
        assert {d.status for d in await deliveries(db)} == {"delivered"}
    finally:
        await fast.stop()
