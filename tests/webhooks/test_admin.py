"""The admin's webhook pages: admins only, CSRF on every form, audit rows, the secret shown once,
trust, test events, recent deliveries with "send again", and the banner of a disabled endpoint."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from service.settings import Settings
from service.webhooks.models import WebhookEndpoint
from tests.conftest import Database
from tests.factories import STAFF_EMAIL, audit_actions, csrf, make_staff, signed_in_client
from tests.webhooks.helpers import deliveries, drain
from tests.webhooks.receiver import Receiver


def _secret_of(html: str) -> str:
    return html.split('aria-label="Signing secret"')[0].rsplit('value="', 1)[1].split('"')[0]


def _app(settings: Settings, db: Database) -> Any:
    from service.app import create_app

    return create_app(settings, sessions=db.sessions)


async def test_only_admins_see_or_change_webhooks(db: Database, settings: Settings) -> None:
    staff = await make_staff(db, email=STAFF_EMAIL, role="staff")
    async with signed_in_client(_app(settings, db), staff) as client:
        assert (await client.get("/admin/webhooks")).status_code == 403
        r = await client.post("/admin/webhooks", data={"csrf_token": await csrf(client), "url": "https://x.example",
                                                       "events": "campaign.sent"})
        assert r.status_code == 403
    async with db.sessions() as session:
        assert (await session.get(WebhookEndpoint, 1)) is None


async def test_register_trust_test_and_send_again_through_the_pages(
        db: Database, settings: Settings, receiver: Receiver) -> None:
    admin = await make_staff(db)
    async with signed_in_client(_app(settings, db), admin) as client:
        token = await csrf(client)
        refused = await client.post("/admin/webhooks", data={"url": receiver.url, "events": "campaign.sent"})
        assert refused.status_code == 403  # no CSRF token
        bad = await client.post("/admin/webhooks", data={"csrf_token": token, "url": "ftp://x.example/",
                                                         "events": "campaign.sent"})
        assert bad.status_code == 422 and "must start with https://" in bad.text
        made = await client.post("/admin/webhooks", data={"csrf_token": token, "url": receiver.url,
                                                          "events": ["inquiry.created", "campaign.sent"]})
        assert made.status_code == 303 and made.headers["location"].startswith("/admin/webhooks/1?notice=registered")
        shown = await client.get(made.headers["location"])
        secret = _secret_of(shown.text)
        assert secret.startswith("whsec_") and shown.headers["cache-control"] == "no-store"
        assert "Registered." in shown.text and secret not in made.headers["location"]
        receiver.secrets.append(secret)
        assert _secret_of((await client.get(made.headers["location"])).text) == secret  # a reload registers nothing
        page = await client.get("/admin/webhooks/1")
        assert page.status_code == 200 and secret not in page.text  # shown once
        r = await client.post("/admin/webhooks/1/trust", data={"csrf_token": token, "trusted": "1"})
        assert r.status_code == 303
        r = await client.post("/admin/webhooks/1/test", data={"csrf_token": token})
        assert r.status_code == 303
        await drain(db, settings)
        [got] = receiver.received
        assert got.verified and got.payload["type"] == "webhook.test"
        page = await client.get("/admin/webhooks/1")
        assert got.msg_id in page.text and "HTTP 200" in page.text and "Send again" in page.text
        [row] = await deliveries(db)
        r = await client.post(f"/admin/webhooks/deliveries/{row.id}/again", data={"csrf_token": token})
        assert r.status_code == 303
        again = await client.post(f"/admin/webhooks/deliveries/{row.id}/again", data={"csrf_token": token})
        assert again.status_code == 409 and "queued already" in again.text
        await drain(db, settings)
        assert [r.msg_id for r in receiver.received] == [got.msg_id] * 2
    actions = [a for a, _who, _t in await audit_actions(db)]
    assert {"webhook_create", "webhook_trust", "webhook_test", "webhook_redeliver"} <= set(actions)


async def test_the_dashboard_tells_of_an_endpoint_disabled_for_failing(db: Database, settings: Settings) -> None:
    admin = await make_staff(db)
    async with signed_in_client(_app(settings, db), admin) as client:
        token = await csrf(client)
        await client.post("/admin/webhooks", data={"csrf_token": token, "url": "http://127.0.0.1:9/x",
                                                   "events": "campaign.sent"})
        assert 'id="webhooks-disabled"' not in (await client.get("/admin/")).text
        async with db.sessions.begin() as session:
            await session.execute(update(WebhookEndpoint).values(
                enabled=False, failing_since=WebhookEndpoint.created_at,
                disabled_reason="every delivery failed for 24 hours"))
        assert 'id="webhooks-disabled"' in (await client.get("/admin/")).text
        r = await client.post("/admin/webhooks/1/enabled", data={"csrf_token": token, "enabled": "1"})
        assert r.status_code == 303
        assert 'id="webhooks-disabled"' not in (await client.get("/admin/")).text


async def test_a_reload_after_registering_or_rotating_changes_nothing_and_shows_the_secret_only_to_its_admin(
        db: Database, settings: Settings, receiver: Receiver) -> None:
    admin = await make_staff(db)
    other = await make_staff(db, email=STAFF_EMAIL)
    app = _app(settings, db)
    async with signed_in_client(app, admin) as client:
        token = await csrf(client)
        made = await client.post("/admin/webhooks", data={"csrf_token": token, "url": receiver.url,
                                                          "events": "campaign.sent"})
        first = _secret_of((await client.get(made.headers["location"])).text)
        for _reload in range(2):
            assert _secret_of((await client.get(made.headers["location"])).text) == first
        rotated = await client.post("/admin/webhooks/1/rotate", data={"csrf_token": token})
        assert rotated.status_code == 303 and "notice=rotated" in rotated.headers["location"]
        second = _secret_of((await client.get(rotated.headers["location"])).text)
        assert second != first
        again = await client.get(rotated.headers["location"])  # the reload: the same secret, no second rotation
        assert _secret_of(again.text) == second and "The secret was rotated." in again.text
        stale = await client.get(made.headers["location"])  # the first secret is no longer this endpoint's
        assert stale.status_code == 200 and first not in stale.text and second not in stale.text
        forged = await client.get(rotated.headers["location"].replace("shown=", "shown=x"))
        assert second not in forged.text
    async with signed_in_client(app, other) as client:
        assert second not in (await client.get(rotated.headers["location"])).text  # another admin: no secret
    async with db.sessions() as session:
        endpoint = await session.get(WebhookEndpoint, 1)
        assert endpoint is not None and endpoint.secret == second and endpoint.previous_secret == first
        assert (await session.get(WebhookEndpoint, 2)) is None
    actions = [a for a, _who, _t in await audit_actions(db)]
    assert actions.count("webhook_create") == 1 and actions.count("webhook_rotate_secret") == 1
