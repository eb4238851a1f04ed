"""The SSRF guard: private and loopback endpoints are refused when registered and at delivery
(after DNS resolution), redirects are not followed (so a redirect to a private address gets
nowhere), and over TLS the connection goes to the checked address while SNI and the
certificate check are for the endpoint's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.db import utcnow
from service.settings import Settings
from service.webhooks.actions import EndpointError, register_endpoint
from service.webhooks.client import WebhookClient
from service.webhooks.events import queue_event
from service.webhooks.guard import RefusedEndpoint, Target, check_url, resolve
from tests.conftest import Database
from tests.webhooks.helpers import ADMIN, add_endpoint, deliveries, drain
from tests.webhooks.receiver import Receiver, make_certificates


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "https://localhost/x", "https://10.1.2.3/",
                                 "https://[::1]/", "https://169.254.169.254/latest/meta-data",
                                 "https://[::ffff:192.168.0.1]/", "https://224.0.0.1/"])
async def test_private_addresses_are_refused_when_registering(db: Database, settings: Settings, url: str) -> None:
    strict = settings.with_(webhook_allow_private=False, webhook_allow_http=True)
    async with db.sessions.begin() as session:
        with pytest.raises(EndpointError) as refused:
            await register_endpoint(session, settings=strict, actor=ADMIN, url=url, events=["campaign.sent"],
                                    now=utcnow())
    assert refused.value.field == "url" and "WEBHOOK_ALLOW_PRIVATE" in str(refused.value)
    assert await deliveries(db) == []


async def test_plain_http_needs_its_setting(db: Database, settings: Settings) -> None:
    with pytest.raises(RefusedEndpoint, match="WEBHOOK_ALLOW_HTTP"):
        check_url("http://hooks.example.org/", allow_http=False)
    assert check_url("https://hooks.example.org:8443/in?x=1", allow_http=False) == Target(
        "https", "hooks.example.org", 8443, "/in?x=1")


async def test_a_name_resolving_to_loopback_is_refused_at_delivery(
        db: Database, settings: Settings, receiver: Receiver) -> None:
    # Registered while private addresses were allowed; at delivery they are not any more: the
    # name is resolved and its address checked before anything is sent.
    await add_endpoint(db, settings, receiver, events=["campaign.sent"],
                       url=f"http://localhost:{receiver.port}/hooks")
    async with db.sessions.begin() as session:
        await queue_event(session, event="campaign.sent", data={"id": 1})
    await drain(db, settings.with_(webhook_allow_private=False))
    [row] = await deliveries(db)
    assert row.status == "failed" and row.last_error.startswith("refused: the host resolves to")
    assert receiver.received == []


async def test_a_redirect_is_not_followed_so_a_private_target_gets_nothing(
        db: Database, settings: Settings, receiver: Receiver) -> None:
    inside = await Receiver().start()
    try:
        await add_endpoint(db, settings, receiver, events=["campaign.sent"])
        receiver.plan = [("redirect", f"http://127.0.0.1:{inside.port}/admin")]
        async with db.sessions.begin() as session:
            await queue_event(session, event="campaign.sent", data={"id": 1})
        await drain(db, settings)
    finally:
        await inside.stop()
    [row] = await deliveries(db)
    assert row.status == "failed" and "redirect" in row.last_error and "not followed" in row.last_error
    assert row.response_status == 307 and len(receiver.received) == 1 and inside.received == []


async def test_tls_goes_to_the_checked_address_with_sni_and_certificate_for_the_name(tmp_path: Path) -> None:
    # The name does not resolve at all: the client must not resolve it again, it connects to
    # the address it was given, and checks the certificate against the name (which has no IP
    # address in it), sending the name as SNI and Host.
    certs = make_certificates(["hooks.rebind.invalid"])
    server = await Receiver(ssl_context=certs.server_context(tmp_path)).start()
    client = WebhookClient(timeout=5, ssl_context=certs.client_context())
    try:
        target = check_url(f"https://hooks.rebind.invalid:{server.port}/in", allow_http=False)
        answer = await client.post(target, ["127.0.0.1"], {"webhook-id": "msg_1"}, b"{}")
        assert answer.status == 401 and answer.error == "HTTP 401 X"  # unsigned: the receiver says so
        [got] = server.received
        assert got.sni == "hooks.rebind.invalid" and got.local_address == "127.0.0.1"
        assert got.headers["host"] == f"hooks.rebind.invalid:{server.port}"
        other = check_url(f"https://other.invalid:{server.port}/in", allow_http=False)
        refused = await client.post(other, ["127.0.0.1"], {}, b"{}")
        assert refused.status is None and refused.error is not None and "certificate" in refused.error.lower()
        assert len(server.received) == 1
        with pytest.raises(OSError, match="cannot resolve"):
            await resolve(target, allow_private=True)
    finally:
        client.close()
        await server.stop()


async def test_https_delivery_through_the_worker(db: Database, settings: Settings, tmp_path: Path) -> None:
    certs = make_certificates(["localhost"])
    server = await Receiver(ssl_context=certs.server_context(tmp_path)).start()
    try:
        await add_endpoint(db, settings, server, events=["campaign.sent"],
                           url=f"https://localhost:{server.port}/hooks")
        async with db.sessions.begin() as session:
            await queue_event(session, event="campaign.sent", data={"id": 1})
        await drain(db, settings.with_(webhook_allow_http=False), ssl_context=certs.client_context())
    finally:
        await server.stop()
    [got] = server.received
    assert got.verified and got.sni == "localhost" and got.local_address == "127.0.0.1"
    [row] = await deliveries(db)
    assert row.status == "delivered"
