"""Amazon SES through SNS, against a loopback HTTPS server standing in for SNS (its own test CA,
trusted through SNS_CA_FILE; the host pattern allows only 127.0.0.1): signed notifications of
the documented SES samples bounce, count or unsubscribe as the policy says, once; a
subscription is confirmed by fetching its SubscribeURL; forged, tampered, unsigned messages,
unknown topics and certificate or subscribe URLs on other hosts are refused with nothing
changed and nothing fetched."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import Settings
from tests.bounces.helpers import stored_events
from tests.bounces.sns_server import TOPIC, FakeSns, new_key
from tests.bounces.webhook_helpers import sample, state, statuses
from tests.conftest import Database
from tests.factories import add_subscriber

OTHER_KEY = new_key()


@pytest.fixture(scope="module")
def sns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeSns]:
    server = FakeSns(Path(tmp_path_factory.mktemp("sns")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, sns: FakeSns) -> Settings:
    sns.hits.clear()
    return settings.with_(sns_topic_arns=(TOPIC,), sns_cert_host_pattern=r"^127\.0\.0\.1$", sns_ca_file=sns.ca_file,
                          soft_bounce_limit=2)


def _notification(ses: dict[str, Any], *, message_id: str = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
                  topic: str = TOPIC) -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": message_id, "TopicArn": topic, "Message": json.dumps(ses),
            "Timestamp": "2026-11-27T14:59:39.000Z",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}


async def _post(client: httpx.AsyncClient, message: dict[str, Any]) -> httpx.Response:
    return await client.post("/webhooks/ses", content=json.dumps(message).encode(),
                             headers={"Content-Type": "text/plain; charset=UTF-8",
                                      "x-amz-sns-message-type": message.get("Type", "")})


async def _refused(client: httpx.AsyncClient, db: Database, sns: FakeSns, message: dict[str, Any], status: int,
                   words: str) -> None:
    before = await state(db)
    answer = await _post(client, message)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    assert await state(db) == before


async def test_signed_bounces_and_complaints_count_once(client: httpx.AsyncClient, db: Database,
                                                        sns: FakeSns) -> None:
    await add_subscriber(db, "jane@example.org")
    await add_subscriber(db, "richard@example.org")
    bounce = sns.sign(_notification(sample("ses_bounce_permanent.json")), version="1")
    answer = await _post(client, bounce)
    assert answer.json() == {"events": 1, "outcomes": {"suppressed": 1}}
    assert (await _post(client, bounce)).json() == {"events": 1, "outcomes": {"duplicate": 1}}
    complaint = sns.sign(_notification(sample("ses_complaint.json"), message_id="m-2"), version="2")
    assert (await _post(client, complaint)).json() == {"events": 1, "outcomes": {"unsubscribed": 1}}
    delivery = sns.sign(_notification(sample("ses_delivery.json"), message_id="m-3"), version="2")
    assert (await _post(client, delivery)).json() == {"events": 0, "outcomes": {}}
    assert await statuses(db) == {"jane@example.org": "bounced", "richard@example.org": "complained"}
    first = (await stored_events(db))[0]
    assert (first.kind, first.source, first.status, first.message_id) == (
        "hard", "ses", "5.1.1", "<20261127145937.1@clinic.test>")
    assert "User unknown" in first.diagnostic
    # one fetch per certificate URL: the certificate is cached
    assert sorted(sns.hits) == ["/cert-1.pem", "/cert-2.pem"]


async def test_transient_and_undetermined_bounces_are_soft(client: httpx.AsyncClient, db: Database,
                                                           sns: FakeSns) -> None:
    await add_subscriber(db, "jane@example.org")
    now = dt.datetime.now(dt.UTC).isoformat()
    for n, bounce_type in enumerate(("Transient", "Undetermined")):
        ses = sample("ses_bounce_transient.json")
        ses["bounce"].update(bounceType=bounce_type, timestamp=now, feedbackId=f"feedback-{n}")
        answer = await _post(client, sns.sign(_notification(ses, message_id=f"m-{n}")))
        assert answer.json()["outcomes"] == ({"counted": 1} if n == 0 else {"suppressed": 1})  # limit 2
    assert [e.kind for e in await stored_events(db)] == ["soft", "soft"]
    assert await statuses(db) == {"jane@example.org": "bounced"}


async def test_subscription_is_confirmed_by_fetching_subscribe_url(client: httpx.AsyncClient, db: Database,
                                                                   sns: FakeSns) -> None:
    token = "2336412f37fb687f5d51e6e2425c464de12884"
    confirmation = {"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
                    "Token": token, "TopicArn": TOPIC,
                    "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
                    "SubscribeURL": f"{sns.url}/?Action=ConfirmSubscription&Token={token}",
                    "Timestamp": "2026-11-27T14:59:00.000Z"}
    answer = await _post(client, sns.sign(confirmation))
    assert answer.status_code == 200, answer.text
    assert sns.hits == ["/cert-1.pem", f"/?Action=ConfirmSubscription&Token={token}"]
    elsewhere = sns.sign({**confirmation, "SubscribeURL": "https://attacker.example/?Action=ConfirmSubscription"})
    sns.hits.clear()
    await _refused(client, db, sns, elsewhere, 403, "SubscribeURL: the host 'attacker.example' does not match")
    assert sns.hits == []


async def test_forged_tampered_unsigned_and_foreign_messages_are_refused(client: httpx.AsyncClient, db: Database,
                                                                         sns: FakeSns) -> None:
    await add_subscriber(db, "jane@example.org")
    message = _notification(sample("ses_bounce_permanent.json"))
    await _refused(client, db, sns, sns.sign(message, key=OTHER_KEY), 403, "does not verify")
    tampered = sns.sign(message)
    tampered["Message"] = tampered["Message"].replace("jane@", "john@")
    await _refused(client, db, sns, tampered, 403, "does not verify")
    unsigned = {**message, "SigningCertURL": f"{sns.url}/cert-1.pem"}
    await _refused(client, db, sns, unsigned, 401, "SignatureVersion")
    await _refused(client, db, sns, {**sns.sign(message), "Signature": ""}, 401, "Signature: missing")
    assert sns.hits == ["/cert-1.pem"]  # fetched once, then cached
    sns.hits.clear()
    foreign = sns.sign(_notification(sample("ses_bounce_permanent.json"),
                                     topic="arn:aws:sns:us-east-1:999999999999:someone-elses"))
    await _refused(client, db, sns, foreign, 403, "TopicArn: not one of SNS_TOPIC_ARNS")
    port = sns.url.rsplit(":", 1)[1]
    for url, words in ((f"https://localhost:{port}/cert-1.pem", "does not match SNS_CERT_HOST_PATTERN"),
                       (f"http://127.0.0.1:{port}/cert-1.pem", "expected an https URL"),
                       (f"https://127.0.0.1.attacker.example:{port}/c.pem", "does not match")):
        await _refused(client, db, sns, {**sns.sign(message), "SigningCertURL": url}, 403, words)
    assert sns.hits == []
    assert await statuses(db) == {"jane@example.org": "confirmed"}


async def test_the_default_host_pattern_is_amazons(client: httpx.AsyncClient, db: Database, settings: Settings,
                                                   sns: FakeSns) -> None:
    from service.app import create_app

    app = create_app(settings.with_(sns_cert_host_pattern=Settings().sns_cert_host_pattern), sessions=db.sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as amazon:
        message = sns.sign(_notification(sample("ses_bounce_permanent.json")))
        answer = await _post(amazon, message)
    assert answer.status_code == 403 and "'127.0.0.1' does not match" in answer.json()["error"]
    assert sns.hits == []
