"""The words people read: the automatic reply greets the sender by name (when it is a name),
subjects use a real dash, topics come in the configured order, the preference centre's actions
are in the right order and weight."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from service.inquiries.flows import greeting_name
from tests.conftest import Database
from tests.factories import confirmed_subscriber, deliver, make_staff, post_form, signed_in_client, text_of
from tests.smtp import SmtpServer


async def _autoreply(client: httpx.AsyncClient, db: Database, smtp: SmtpServer, name: str) -> Any:
    assert (await post_form(client, name=name)).status_code == 303
    await deliver(db, smtp)
    return next(m.message for m in smtp.received if m.recipients == ["ana@example.org"])


async def test_autoreply_greets_by_name_with_a_real_dash(client: httpx.AsyncClient, db: Database,
                                                         smtp: SmtpServer) -> None:
    reply = await _autoreply(client, db, smtp, "Zoë O'Brien-Smith")
    assert reply["Subject"] == "We have received your message \u2013 Tidings"
    assert "Hello Zoë O'Brien-Smith," in text_of(reply)
    assert re.search(r"Hello Zoë O(&#39;|')Brien-Smith,", reply.get_body(("html",)).get_content())
    staff = next(m.message for m in smtp.received if m.recipients == ["staff@clinic.test"])
    assert "Tidings \u2013 inquiry notification" in text_of(staff) and " - " not in text_of(staff)


async def test_autoreply_does_not_echo_a_name_that_is_not_one(client: httpx.AsyncClient, db: Database,
                                                             smtp: SmtpServer) -> None:
    reply = await _autoreply(client, db, smtp, "Win money at spam.example 0800")
    assert "\nHello,\r\n" in text_of(reply) and "spam.example" not in text_of(reply)


@pytest.mark.parametrize(("name", "greeted"), [
    ("Ana", "Ana"), ("  Ana   Souza ", "Ana Souza"), ("J. R. R. Tolkien", "J. R. R. Tolkien"), ("李小龙", "李小龙"),
    ("http://x.example", ""), ("Ana 2", ""), ("a@b.example", ""), ("A" * 41, ""), ("Ana <b>", ""), ("", ""),
    ("Visit spam.example", ""),
])
def test_greeting_name_is_a_name_or_nothing(name: str, greeted: str) -> None:
    assert greeting_name(name) == greeted


async def test_topics_follow_the_configured_order(client: httpx.AsyncClient, app: Any, db: Database,
                                                  smtp: SmtpServer) -> None:
    await confirmed_subscriber(client, db, smtp, "order@example.org", topics=("PTSD", "anxiety"))
    welcome = smtp.received[-1].message
    assert "Welcome" in welcome["Subject"] and "about: anxiety, PTSD." in text_of(welcome)
    async with signed_in_client(app, await make_staff(db)) as admin:
        listing = await admin.get("/admin/subscribers")
    assert "anxiety, PTSD" in listing.text and "PTSD, anxiety" not in listing.text


async def test_preference_centre_puts_topics_first_and_leaving_second(client: httpx.AsyncClient, db: Database,
                                                                     smtp: SmtpServer) -> None:
    await confirmed_subscriber(client, db, smtp, "prefs@example.org")
    path = re.search(r"http://testserver(/unsubscribe/\S+)", text_of(smtp.received[-1].message))
    assert path
    html = (await client.get(path.group(1))).text
    assert html.count(">Topics<") == 1 and '<legend class="visually-hidden">Topics</legend>' in html
    buttons = re.findall(r"<button type=\"submit\"( class=\"secondary\")?>([^<]+)</button>", html)
    assert buttons == [("", "Save my topics"), (' class="secondary"', "Unsubscribe"),
                       (' class="secondary"', "Email me my data")]
    left = await client.post(path.group(1), data={"from_page": "1"})
    assert left.status_code == 200
    html = (await client.get(path.group(1))).text
    buttons = re.findall(r"<button type=\"submit\"( class=\"secondary\")?>([^<]+)</button>", html)
    assert buttons == [("", "Subscribe again"), (' class="secondary"', "Save my topics"),
                       (' class="secondary"', "Email me my data")]
