"""Addresses beyond plain ASCII. An internationalised domain (jose@exämple.org) is mailed under
its ASCII (IDNA) name; a local part beyond ASCII (josé@…) needs SMTPUTF8, which Tidings does not
speak, so every place that takes an address to write to refuses it with a clear message and
stores nothing, instead of accepting it and failing at send time (an import with confirmations
used to stop with "To: not an email address")."""

from __future__ import annotations

import io

import httpx

from service.newsletter.importer import import_subscribers
from service.newsletter.models import Subscriber
from service.settings import Settings
from service.tokens import Tokens
from service.validation import NOT_MAILABLE
from tests.conftest import Database
from tests.factories import count, deliver, outbox_count, signup, subscriber
from tests.smtp import SmtpServer


async def test_signup_with_an_international_domain_is_mailed_under_its_ascii_name(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    r = await signup(client, "jose@exämple.org")
    assert r.status_code == 303, r.text  # to the "check your inbox" page
    assert await deliver(db, smtp) == 1
    [received] = smtp.received
    assert received.recipients == ["jose@xn--exmple-cua.org"]
    assert "jose@xn--exmple-cua.org" in received.message["To"]
    assert "/confirm/" in received.message.get_body(preferencelist=("plain",)).get_content()


async def test_signup_with_a_non_ascii_local_part_is_refused_clearly_and_stores_nothing(
        client: httpx.AsyncClient, db: Database) -> None:
    r = await signup(client, "josé@example.org")
    assert r.status_code in (400, 422), r.status_code
    assert "plain A-Z before the @" in r.text
    assert await count(db, Subscriber) == 0
    assert await outbox_count(db) == 0


async def test_import_with_confirmations_names_the_unmailable_row_and_mails_the_rest(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    data = "email\njosé@exämple.org\nana@exämple.org\nbo@example.org\n".encode()
    async with db.sessions.begin() as session:
        report = await import_subscribers(session, io.BytesIO(data), settings=settings, tokens=Tokens(settings),
                                          send_confirmation=True)
    errors = dict(report.errors)
    assert set(errors) == {2} and NOT_MAILABLE in errors[2]
    assert report.added == 2
    assert await subscriber(db, "josé@exämple.org") is None
    assert await deliver(db, smtp) == 2
    assert sorted(r for m in smtp.received for r in m.recipients) == ["ana@xn--exmple-cua.org", "bo@example.org"]
