"""Provider webhooks (Postmark, Mailgun, SendGrid, generic) against the real app and database,
fed the providers' documented sample payloads, signed in the test with test keys: a valid
payload bounces or unsubscribes as the policy says; the same payload twice counts once; a
forged or missing signature, wrong credentials, a stale timestamp or a replayed token is
refused with a JSON error and nothing changes; a webhook without its setting does not exist.
(Amazon SES through SNS: test_webhook_sns.py.)"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from service.bounces.webhooks.generic import signature
from service.settings import Settings, SettingsError
from tests.bounces.helpers import stored_events
from tests.bounces.webhook_helpers import sample, state, statuses
from tests.conftest import Database
from tests.factories import add_subscriber

WEBHOOK_SECRET = "generic-webhook-secret-0123456789abcdefghij"
POSTMARK = ("postmark", "correct-horse-battery-staple")
MAILGUN_KEY = "mailgun-signing-key-0123456789abcdef"
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(SENDGRID_KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(webhook_secret=WEBHOOK_SECRET, postmark_webhook_credentials=":".join(POSTMARK),
                          mailgun_webhook_signing_key=MAILGUN_KEY, sendgrid_webhook_public_key=SENDGRID_PUBLIC,
                          soft_bounce_limit=2)


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _mailgun(event_data: dict[str, Any], *, key: str = MAILGUN_KEY, timestamp: int | None = None,
             token: str = "a" * 50) -> bytes:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    mac = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps({"signature": {"timestamp": stamp, "token": token, "signature": mac},
                       "event-data": event_data}).encode()


def _sendgrid(body: bytes, *, key: ec.EllipticCurvePrivateKey = SENDGRID_KEY,
              timestamp: int | None = None) -> dict[str, str]:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    sig = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp, "Content-Type": "application/json"}


async def _refused(client: httpx.AsyncClient, db: Database, path: str, body: bytes, headers: dict[str, str],
                   status: int, words: str) -> None:
    before = await state(db)
    answer = await client.post(path, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert words in answer.json()["error"]
    assert await state(db) == before


# -- generic ---------------------------------------------------------------------------------


async def test_generic_webhook_records_signed_events_once(client: httpx.AsyncClient, db: Database) -> None:
    gina = await add_subscriber(db, "gina@example.org")
    await add_subscriber(db, "hank@example.org")
    body = json.dumps(sample("generic_events.json")).encode()
    headers = {"X-Tidings-Signature": signature(WEBHOOK_SECRET, body), "Content-Type": "application/json"}
    answer = await client.post("/webhooks/generic", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"events": 2, "outcomes": {"suppressed": 1, "unsubscribed": 1}}
    assert await statuses(db) == {"gina@example.org": "bounced", "hank@example.org": "complained"}
    again = await client.post("/webhooks/generic", content=body, headers=headers)
    assert again.json() == {"events": 2, "outcomes": {"duplicate": 2}}
    stored = await stored_events(db)
    assert [(e.event_key, e.source, e.status, e.subscriber_id) for e in stored][0] == (
        "webhook:relay-0001", "webhook", "5.1.1", gina)
    assert len(stored) == 2


async def test_generic_webhook_refuses_unsigned_forged_and_bad_events(client: httpx.AsyncClient,
                                                                      db: Database) -> None:
    await add_subscriber(db, "gina@example.org")
    body = json.dumps(sample("generic_events.json")).encode()
    await _refused(client, db, "/webhooks/generic", body, {}, 401, "X-Tidings-Signature is missing")
    forged = {"X-Tidings-Signature": signature("another-secret-0123456789abcdefghijklmn", body)}
    await _refused(client, db, "/webhooks/generic", body, forged, 403, "does not match")
    tampered = body.replace(b"gina@", b"ginb@")
    await _refused(client, db, "/webhooks/generic", tampered, {"X-Tidings-Signature": signature(WEBHOOK_SECRET, body)},
                   403, "does not match")
    events = sample("generic_events.json")
    events["events"][1]["type"] = "bounced"  # one bad event refuses the whole batch
    bad = json.dumps(events).encode()
    await _refused(client, db, "/webhooks/generic", bad, {"X-Tidings-Signature": signature(WEBHOOK_SECRET, bad)},
                   422, "events[1].type: expected one of hard, soft, complaint")
    not_json = b"{nope"
    await _refused(client, db, "/webhooks/generic", not_json,
                   {"X-Tidings-Signature": signature(WEBHOOK_SECRET, not_json)}, 400, "not JSON")


async def test_a_body_over_max_body_bytes_is_refused_unread(client: httpx.AsyncClient, db: Database,
                                                            settings: Settings) -> None:
    await add_subscriber(db, "gina@example.org")
    event = {"id": "big", "type": "hard", "recipient": "gina@example.org", "diagnostic": "x" * settings.max_body_bytes}
    body = json.dumps(event).encode()
    before = await state(db)
    answer = await client.post("/webhooks/generic", content=body,
                               headers={"X-Tidings-Signature": signature(WEBHOOK_SECRET, body)})
    assert answer.status_code == 413  # Starlette's body limit answers in plain text before the app reads it
    assert await state(db) == before


async def test_a_webhook_without_its_setting_does_not_exist(db: Database, settings: Settings) -> None:
    from service.app import create_app

    app = create_app(settings.with_(webhook_secret=None, postmark_webhook_credentials=None), sessions=db.sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        for path in ("/webhooks/generic", "/webhooks/postmark", "/webhooks/nosuch"):
            answer = await client.post(path, content=b"{}")
            assert answer.status_code == 404 and "not configured" in answer.json()["error"], path
        assert (await client.get("/webhooks/mailgun")).status_code == 405


# -- Postmark --------------------------------------------------------------------------------


async def test_postmark_bounce_and_complaint_with_basic_credentials(client: httpx.AsyncClient, db: Database) -> None:
    await add_subscriber(db, "john@example.org")
    bounce = json.dumps(sample("postmark_bounce.json")).encode()
    answer = await client.post("/webhooks/postmark", content=bounce, headers=_basic(*POSTMARK))
    assert answer.json() == {"events": 1, "outcomes": {"suppressed": 1}}
    assert (await client.post("/webhooks/postmark", content=bounce, headers=_basic(*POSTMARK))).json() == {
        "events": 1, "outcomes": {"duplicate": 1}}
    assert await statuses(db) == {"john@example.org": "bounced"}
    complaint = json.dumps(sample("postmark_spam_complaint.json")).encode()
    answer = await client.post("/webhooks/postmark", content=complaint, headers=_basic(*POSTMARK))
    assert answer.json() == {"events": 1, "outcomes": {"unsubscribed": 1}}
    assert await statuses(db) == {"john@example.org": "complained"}
    (first, _) = await stored_events(db)
    assert (first.kind, first.status, first.event_key) == ("hard", "5.1.1", "postmark:Bounce:4323372036854775807")


async def test_postmark_ignores_bounce_types_that_say_nothing_about_the_address(client: httpx.AsyncClient,
                                                                                db: Database) -> None:
    await add_subscriber(db, "john@example.org")
    auto_reply = {**sample("postmark_bounce.json"), "Type": "AutoResponder", "TypeCode": 64}
    answer = await client.post("/webhooks/postmark", json=auto_reply, headers=_basic(*POSTMARK))
    assert answer.json() == {"events": 0, "outcomes": {}}
    assert await state(db) == (0, 0, {"john@example.org": "confirmed"})


async def test_postmark_refuses_missing_or_wrong_credentials(client: httpx.AsyncClient, db: Database) -> None:
    await add_subscriber(db, "john@example.org")
    body = json.dumps(sample("postmark_bounce.json")).encode()
    await _refused(client, db, "/webhooks/postmark", body, {}, 401, "credentials are missing")
    await _refused(client, db, "/webhooks/postmark", body, _basic("postmark", "wrong-password-123456"), 401,
                   "do not match")
    await _refused(client, db, "/webhooks/postmark", body, {"Authorization": "Basic !!!"}, 401, "not base64")
    answer = await client.post("/webhooks/postmark", content=body)
    assert answer.headers["www-authenticate"].startswith("Basic")


# -- Mailgun ---------------------------------------------------------------------------------


async def test_mailgun_permanent_failure_temporary_failures_and_complaint(client: httpx.AsyncClient,
                                                                          db: Database) -> None:
    await add_subscriber(db, "alice@example.org")
    await add_subscriber(db, "bob@example.org")
    # soft bounces count from the subscriber's confirmation on: the failures happen now
    temporary = {**sample("mailgun_failed_temporary.json")["event-data"], "timestamp": time.time()}
    answer = await client.post("/webhooks/mailgun", content=_mailgun(temporary, token="t1" * 25))
    assert answer.json() == {"events": 1, "outcomes": {"counted": 1}}
    second = {**temporary, "id": "second-temporary-failure"}
    answer = await client.post("/webhooks/mailgun", content=_mailgun(second, token="t2" * 25))
    assert answer.json() == {"events": 1, "outcomes": {"suppressed": 1}}  # SOFT_BOUNCE_LIMIT=2
    permanent = sample("mailgun_failed_permanent.json")["event-data"]
    answer = await client.post("/webhooks/mailgun", content=_mailgun(permanent, token="t3" * 25))
    assert answer.json() == {"events": 1, "outcomes": {"recorded": 1}}  # already bounced
    again = await client.post("/webhooks/mailgun", content=_mailgun(permanent, token="t4" * 25))
    assert again.json() == {"events": 1, "outcomes": {"duplicate": 1}}
    complaint = sample("mailgun_complained.json")["event-data"]
    answer = await client.post("/webhooks/mailgun", content=_mailgun(complaint, token="t5" * 25))
    assert answer.json() == {"events": 1, "outcomes": {"unsubscribed": 1}}
    assert await statuses(db) == {"alice@example.org": "bounced", "bob@example.org": "complained"}
    stored = await stored_events(db)
    assert [(e.kind, e.status) for e in stored] == [("soft", "4.2.2"), ("soft", "4.2.2"), ("hard", "5.1.1"),
                                                   ("complaint", None)]
    assert stored[2].message_id == "<20261127140000.1.mg@clinic.test>"


async def test_mailgun_refuses_forged_stale_and_replayed_signatures(client: httpx.AsyncClient, db: Database) -> None:
    await add_subscriber(db, "alice@example.org")
    permanent = sample("mailgun_failed_permanent.json")["event-data"]
    await _refused(client, db, "/webhooks/mailgun", json.dumps({"event-data": permanent}).encode(), {}, 401,
                   "expected timestamp, token and signature")
    forged = _mailgun(permanent, key="not-the-signing-key-0123456789")
    await _refused(client, db, "/webhooks/mailgun", forged, {}, 403, "does not verify")
    stale = _mailgun(permanent, timestamp=int(time.time()) - 3600)
    await _refused(client, db, "/webhooks/mailgun", stale, {}, 403, "stale")
    signed = _mailgun(permanent, token="once" * 10)
    assert (await client.post("/webhooks/mailgun", content=signed)).status_code == 200
    # the captured signature with another body (the signature covers only timestamp + token)
    replay = json.loads(signed)
    replay["event-data"] = {**permanent, "id": "another-event", "recipient": "bob@example.org"}
    await _refused(client, db, "/webhooks/mailgun", json.dumps(replay).encode(), {}, 403, "used before")
    assert len(await stored_events(db)) == 1


# -- SendGrid --------------------------------------------------------------------------------


async def test_sendgrid_signed_batch(client: httpx.AsyncClient, db: Database) -> None:
    for name in ("carol", "dave", "erin", "frank"):
        await add_subscriber(db, f"{name}@example.org")
    body = json.dumps(sample("sendgrid_events.json")).encode()
    answer = await client.post("/webhooks/sendgrid", content=body, headers=_sendgrid(body))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"events": 4, "outcomes": {"suppressed": 2, "counted": 1, "unsubscribed": 1}}
    assert await statuses(db) == {"carol@example.org": "bounced", "dave@example.org": "confirmed",
                                  "erin@example.org": "bounced", "frank@example.org": "complained"}
    again = await client.post("/webhooks/sendgrid", content=body, headers=_sendgrid(body))
    assert again.json() == {"events": 4, "outcomes": {"duplicate": 4}}
    stored = await stored_events(db)
    assert [(e.recipient, e.kind, e.status) for e in stored] == [
        ("carol@example.org", "hard", "5.0.0"), ("dave@example.org", "soft", "4.7.0"),
        ("erin@example.org", "hard", "5.0.0"), ("frank@example.org", "complaint", None)]


async def test_sendgrid_refuses_missing_forged_and_stale_signatures(client: httpx.AsyncClient,
                                                                    db: Database) -> None:
    await add_subscriber(db, "carol@example.org")
    body = json.dumps(sample("sendgrid_events.json")).encode()
    await _refused(client, db, "/webhooks/sendgrid", body, {}, 401, "are required")
    other = ec.generate_private_key(ec.SECP256R1())
    await _refused(client, db, "/webhooks/sendgrid", body, _sendgrid(body, key=other), 403, "does not verify")
    tampered = body.replace(b'"spamreport"', b'"bounce"')
    await _refused(client, db, "/webhooks/sendgrid", tampered, _sendgrid(body), 403, "does not verify")
    stale = _sendgrid(body, timestamp=int(time.time()) - 3600)
    await _refused(client, db, "/webhooks/sendgrid", body, stale, 403, "stale")


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "words"), [
    ({"SNS_TOPIC_ARNS": "ses-bounces"}, "SNS_TOPIC_ARNS: expected comma-separated topic ARNs"),
    ({"SNS_CERT_HOST_PATTERN": "(unclosed"}, "SNS_CERT_HOST_PATTERN: expected a regular expression"),
    ({"SNS_CA_FILE": "/nonexistent/ca.pem"}, "SNS_CA_FILE: expected the path of a PEM file"),
    ({"POSTMARK_WEBHOOK_CREDENTIALS": "postmark:short"}, "POSTMARK_WEBHOOK_CREDENTIALS: expected user:password"),
    ({"MAILGUN_WEBHOOK_SIGNING_KEY": "short"}, "MAILGUN_WEBHOOK_SIGNING_KEY: expected"),
    ({"SENDGRID_WEBHOOK_PUBLIC_KEY": "bm90IGEga2V5"}, "SENDGRID_WEBHOOK_PUBLIC_KEY: expected the verification key"),
    ({"WEBHOOK_SECRET": "changeme"}, "WEBHOOK_SECRET: expected a random secret"),
])
def test_webhook_settings_are_checked(env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words.replace("(", r"\(")):
        Settings.from_env({"DATABASE_URL": "postgresql://x@h/db", "SECRET_KEY": "k" * 40, **env}, env_file=None)


def test_webhook_settings_read() -> None:
    settings = Settings.from_env({
        "DATABASE_URL": "postgresql://x@h/db", "SECRET_KEY": "k" * 40,
        "SNS_TOPIC_ARNS": "arn:aws:sns:us-east-1:123456789012:ses-bounces, arn:aws-cn:sns:cn-north-1:123456789012:b",
        "SENDGRID_WEBHOOK_PUBLIC_KEY": SENDGRID_PUBLIC, "POSTMARK_WEBHOOK_CREDENTIALS": ":".join(POSTMARK),
    }, env_file=None)
    assert settings.sns_topic_arns == ("arn:aws:sns:us-east-1:123456789012:ses-bounces",
                                       "arn:aws-cn:sns:cn-north-1:123456789012:b")
    assert settings.sns_cert_host_pattern == r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
    assert settings.sendgrid_webhook_public_key == SENDGRID_PUBLIC and settings.webhook_secret is None
