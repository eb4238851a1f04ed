"""One-click unsubscribe exactly as a mailbox provider sends it (RFC 8058), the preference
centre's button, topic changes and the fresh opt-in to come back."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from service.newsletter.models import SubscriberTopic
from service.newsletter.tokens import unsubscribe_token
from service.settings import Settings
from service.tokens import Tokens
from tests.conftest import Database
from tests.factories import confirmed_subscriber, deliver, link_in, subscriber
from tests.smtp import SmtpServer


async def _welcome_unsubscribe_path(client: httpx.AsyncClient, db: Database, smtp: SmtpServer, email: str,
                                    **kw: object) -> str:
    await confirmed_subscriber(client, db, smtp, email, **kw)
    welcome = [m for m in smtp.received if m.recipients == [email]][-1].message
    assert "Welcome" in welcome["Subject"]
    return welcome["List-Unsubscribe"].strip().removeprefix("<http://testserver").removesuffix(">")


async def test_rfc8058_one_click_post_unsubscribes_at_once(client: httpx.AsyncClient, db: Database,
                                                          smtp: SmtpServer) -> None:
    path = await _welcome_unsubscribe_path(client, db, smtp, "oneclick@example.org")
    client.cookies.clear()
    # byte for byte what Gmail/Yahoo send: a form-encoded body, no cookie, no CSRF token, no referer
    r = await client.post(path, content=b"List-Unsubscribe=One-Click",
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.text == "You have been unsubscribed.\n"
    assert "set-cookie" not in r.headers
    sub = await subscriber(db, "oneclick@example.org")
    assert sub is not None and sub.status == "unsubscribed"
    assert sub.unsubscribed_at is not None and sub.status_changed_at == sub.unsubscribed_at


async def test_unsubscribe_is_idempotent(client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    path = await _welcome_unsubscribe_path(client, db, smtp, "twice@example.org")
    await client.post(path, data={"List-Unsubscribe": "One-Click"})
    first = await subscriber(db, "twice@example.org")
    again = await client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200
    second = await subscriber(db, "twice@example.org")
    assert first is not None and second is not None
    assert second.status == "unsubscribed" and second.unsubscribed_at == first.unsubscribed_at


async def test_preference_centre_shows_masked_address_and_changes_nothing_on_get(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    path = await _welcome_unsubscribe_path(client, db, smtp, "prefs@example.org", topics=("anxiety",))
    page = await client.get(path)
    assert page.status_code == 200
    assert "p•••s@example.org" in page.text and "prefs@example.org" not in page.text
    assert 'value="anxiety" aria-describedby="topics-hint" checked' in page.text
    assert (await subscriber(db, "prefs@example.org")).status == "confirmed"  # type: ignore[union-attr]


async def test_topic_changes_are_saved(client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    path = await _welcome_unsubscribe_path(client, db, smtp, "topics@example.org", topics=("anxiety",))
    # a topic not on the list (a changed form) is refused by name, as on the signup form: nothing saved
    r = await client.post(f"{path}/preferences", data={"topics": ["PTSD", "OCD", "nonsense"]})
    assert r.status_code == 422 and "Please choose topics from the list" in r.text
    assert (await subscriber(db, "topics@example.org")).topics == ["anxiety"]  # type: ignore[union-attr]
    r = await client.post(f"{path}/preferences", data={"topics": ["PTSD", "OCD"]})
    assert r.status_code == 303 and r.headers["location"] == f"{path}?saved=1"
    sub = await subscriber(db, "topics@example.org")
    assert sub is not None and sub.topics == ["OCD", "PTSD"] and sub.status == "confirmed"
    page = await client.get(r.headers["location"])
    assert "Your topics are saved" in page.text
    await client.post(f"{path}/preferences", data={})  # none = every topic
    assert (await subscriber(db, "topics@example.org")).topics == []  # type: ignore[union-attr]


async def test_page_button_unsubscribes_and_offers_a_fresh_opt_in(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    path = await _welcome_unsubscribe_path(client, db, smtp, "button@example.org")
    page = await client.get(path)
    assert 'name="from_page" value="1"' in page.text
    r = await client.post(path, data={"List-Unsubscribe": "One-Click", "from_page": "1"})
    assert r.status_code == 200 and "You are unsubscribed" in r.text
    assert f'action="{path}/resubscribe"' in r.text
    assert (await subscriber(db, "button@example.org")).status == "unsubscribed"  # type: ignore[union-attr]

    smtp.handler.reset()
    back = await client.post(f"{path}/resubscribe")
    assert back.status_code == 303 and back.headers["location"] == "/subscribe/thanks"
    sub = await subscriber(db, "button@example.org")
    assert sub is not None and sub.status == "pending" and sub.unsubscribed_at is not None
    assert sub.signup_source == "resubscribe"
    await deliver(db, smtp)
    confirm = link_in(smtp.received[0].message, "/confirm/")
    assert (await client.post(confirm)).status_code == 200
    assert (await subscriber(db, "button@example.org")).status == "confirmed"  # type: ignore[union-attr]


async def test_bad_or_erased_unsubscribe_links(client: httpx.AsyncClient, db: Database, settings: Settings) -> None:
    r = await client.post("/unsubscribe/forged.token.value-that-is-long",
                          content=b"List-Unsubscribe=One-Click",
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    page = await client.get("/unsubscribe/forged.token.value-that-is-long")
    assert page.status_code == 400 and "not valid" in page.text
    gone = unsubscribe_token(Tokens(settings), 987654)
    r = await client.post(f"/unsubscribe/{gone}", content=b"List-Unsubscribe=One-Click",
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200  # nobody to unsubscribe: the wish is fulfilled
    page = await client.get(f"/unsubscribe/{gone}")
    assert page.status_code == 404 and "No subscription" in page.text
    r = await client.post(f"/unsubscribe/{gone}/preferences", data={"topics": "OCD"})
    assert r.status_code == 404
    async with db.sessions() as session:
        assert (await session.scalars(select(SubscriberTopic))).all() == []
