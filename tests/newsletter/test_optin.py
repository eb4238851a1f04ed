"""Double opt-in through the real app and a real SMTP server: signup, the confirmation email,
a GET that changes nothing, the POST that confirms, and the welcome email with one-click headers."""

from __future__ import annotations

import httpx

from service.settings import Settings
from tests.conftest import Database
from tests.factories import deliver, link_in, signup, subscriber, text_of
from tests.smtp import SmtpServer


async def test_signup_confirm_and_welcome_round_trip(client: httpx.AsyncClient, db: Database, smtp: SmtpServer,
                                                     settings: Settings) -> None:
    r = await signup(client, "Ana.Lima@Example.org", name="Ana Lima", topics=("anxiety", "PTSD"),
                     headers={"user-agent": "Firefox/140"})
    assert r.status_code == 303 and r.headers["location"] == "/subscribe/thanks"
    sub = await subscriber(db, "ana.lima@example.org")
    assert sub is not None and sub.status == "pending"
    assert sub.signup_ip == "203.0.113.7" and sub.signup_user_agent == "Firefox/140"
    assert sub.signup_source == "form:subscribe" and sub.signup_at is not None
    assert sub.consent_text and "newsletter" in sub.consent_text
    assert sub.topics == ["PTSD", "anxiety"]

    assert await deliver(db, smtp) == 1
    (mail,) = smtp.received
    assert mail.recipients == ["Ana.Lima@example.org"]
    assert "confirm" in mail.message["Subject"].lower()
    confirm_path = link_in(mail.message, "/confirm/")

    page = await client.get(confirm_path)
    assert page.status_code == 200 and "Confirm my subscription" in page.text
    assert '<form method="post"' in page.text and "A•••a@example.org" in page.text
    assert (await subscriber(db, "ana.lima@example.org")).status == "pending"  # type: ignore[union-attr]

    done = await client.post(confirm_path)
    assert done.status_code == 200 and "You are subscribed" in done.text
    sub = await subscriber(db, "ana.lima@example.org")
    assert sub is not None and sub.status == "confirmed"
    assert sub.confirmed_at is not None and sub.confirm_ip == "203.0.113.7"

    assert await deliver(db, smtp) == 1
    welcome = smtp.received[1].message
    assert "Welcome" in welcome["Subject"]
    unsubscribe_path = link_in(welcome, "/unsubscribe/")
    # (aiosmtplib re-folds headers at 78 columns; unfolding leaves a leading space, as RFC 5322 allows)
    assert welcome["List-Unsubscribe"].strip() == f"<http://testserver{unsubscribe_path}>"
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert settings.list_id in welcome["List-Id"]
    assert unsubscribe_path in text_of(welcome)

    again = await client.post(confirm_path)
    assert again.status_code == 200 and "You are already subscribed" in again.text


async def test_get_on_confirm_link_never_confirms(client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    await signup(client, "scanner@example.org")
    await deliver(db, smtp)
    path = link_in(smtp.received[0].message, "/confirm/")
    for _ in range(3):
        assert (await client.get(path)).status_code == 200
        assert (await client.head(path)).status_code in (200, 405)
    sub = await subscriber(db, "scanner@example.org")
    assert sub is not None and sub.status == "pending" and sub.confirmed_at is None
    assert await deliver(db, smtp) == 0  # no welcome email
