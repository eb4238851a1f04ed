"""Languages: a German install shows its public pages and sends its emails in German; a subscriber
who signed up in German gets German mail (confirmation, welcome, digests) and German pages from
its links while the install speaks English; an unknown LANGUAGE is refused at start."""

from __future__ import annotations

import re

import httpx
import pytest

from service.settings import Settings, SettingsError
from tests.conftest import Database, make_settings
from tests.factories import (
    add_subscriber,
    client_with,
    confirmed_subscriber,
    deliver,
    form_token,
    link_in,
    make_campaign,
    post_form,
    sender_for,
    signup,
    stored_inquiries,
    subscriber,
    text_of,
    valid_fields,
)
from tests.smtp import SmtpServer


def _html_of(message) -> str:  # type: ignore[no-untyped-def]
    return str(message.get_body(preferencelist=("html",)).get_content())


def test_unknown_language_is_refused_at_start_naming_the_value() -> None:
    with pytest.raises(SettingsError, match=r"^LANGUAGE: expected one of the shipped languages en, de, got 'fr'"):
        Settings.from_env({"LANGUAGE": "fr"}, env_file=None)
    assert Settings.from_env({"LANGUAGE": "de"}, env_file=None).language == "de"
    assert Settings.from_env({}, env_file=None).language == "en"


async def test_german_install_shows_the_form_and_its_errors_in_german(db: Database) -> None:
    async with client_with(db, language="de") as client:
        page = await client.get("/contact")
        assert page.status_code == 200
        assert '<html lang="de">' in page.text
        assert "Ihr Name" in page.text and "Anfrage senden" in page.text
        assert "Lassen Sie uns gemeinsam beginnen!" in page.text  # CONTACT_HEADING's default
        assert "Send my inquiry" not in page.text

        bad = await post_form(client, name="", email="not-an-address")
        assert bad.status_code == 422
        assert "Es gibt 2 Probleme bei Ihren Angaben" in bad.text
        assert "Bitte füllen Sie das Feld „Ihr Name“ aus" in bad.text
        assert "Diese E-Mail-Adresse ist ungültig" in bad.text

        api = await client.post("/api/inquiries", json={**valid_fields(name=""),
                                                        "form_token": await form_token(client)})
        assert api.status_code == 422
        assert api.json()["errors"]["name"] == "Bitte füllen Sie das Feld „Ihr Name“ aus"

        missing = await client.get("/nowhere")
        assert missing.status_code == 404 and "Seite nicht gefunden" in missing.text

        # the admin is not translated: its sign-in page stays English
        login = await client.get("/admin/login")
        assert '<html lang="en">' in login.text or 'lang="en"' in login.text


async def test_german_install_mails_the_auto_reply_in_german_and_dates_in_german(
    db: Database, smtp: SmtpServer
) -> None:
    async with client_with(db, language="de") as client:
        r = await post_form(client, name="Zoë Brandt")
        assert r.status_code == 303
        assert await deliver(db, smtp) == 2
    (inquiry,) = await stored_inquiries(db)
    assert inquiry.language == "de"
    reply = next(m.message for m in smtp.received if m.recipients != ["staff@clinic.test"])
    assert reply["Subject"].startswith("Ihre Nachricht ist bei uns angekommen – ")
    assert "Guten Tag Zoë Brandt," in text_of(reply)
    assert "Ihr Team von" in text_of(reply)
    assert '<html lang="de">' in _html_of(reply)
    staff = next(m.message for m in smtp.received if m.recipients == ["staff@clinic.test"])
    assert staff["Subject"].startswith("Neue Anfrage #")  # staff notices follow the install's LANGUAGE


async def test_subscriber_who_signed_up_in_german_gets_german_mail_on_an_english_install(
    client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings
) -> None:
    assert settings.language == "en"
    form = await client.get("/subscribe?lang=de")
    assert '<html lang="de">' in form.text and "Melden Sie sich für unseren Newsletter an" in form.text
    assert 'name="lang" value="de"' in form.text  # the form sends its language back

    sub = await confirmed_subscriber(client, db, smtp, "ana@example.org", name="Ana", lang="de")
    assert sub.language == "de"
    confirm, welcome = (m.message for m in smtp.received)
    assert confirm["Subject"] == f"Bitte bestätigen Sie Ihre Anmeldung bei {settings.org_name}"
    assert "Jemand, hoffentlich Sie, möchte den Newsletter" in text_of(confirm)
    assert welcome["Subject"] == f"Willkommen beim Newsletter von {settings.org_name}"
    assert "Willkommen, Ana!" in text_of(welcome)

    # the pages their links lead to speak German too, though the install speaks English
    preferences = await client.get(link_in(welcome, "/unsubscribe/"))
    assert '<html lang="de">' in preferences.text and "Ihre Newsletter-Einstellungen" in preferences.text
    saved = await client.post(link_in(welcome, "/unsubscribe/") + "/preferences", data={"topics": ["OCD"]},
                              follow_redirects=True)
    assert "Ihre Themen sind gespeichert." in saved.text

    # and so does every digest, while an English subscriber gets the English one
    await add_subscriber(db, "ben@example.org", name="Ben")
    smtp.handler.reset()
    await make_campaign(db, settings)
    sender = sender_for(db, settings, smtp.url)
    while await sender.run_once():
        pass
    await sender.transport.close()
    digests = {m.recipients[0]: m.message for m in smtp.received}
    german, english = digests["ana@example.org"], digests["ben@example.org"]
    assert "Guten Tag Ana," in text_of(german) and "Weiterlesen: http://testserver/r/" in text_of(german)
    assert "Sie erhalten diese E-Mail, weil Sie den Newsletter" in text_of(german)
    assert re.search(r"\d{1,2}\. (Januar|Februar|März|April|Mai|Juni|Juli|August|September|Oktober|November|"
                     r"Dezember) \d{4}", text_of(german))
    assert '<html lang="de">' in _html_of(german)
    assert "Hello Ben," in text_of(english) and "Read more: http://testserver/r/" in text_of(english)
    assert "Guten Tag" not in text_of(english)


async def test_an_inquiry_sent_in_german_on_an_english_install_is_answered_in_german(
    client: httpx.AsyncClient, db: Database, smtp: SmtpServer
) -> None:
    form = await client.get("/contact?lang=de")
    assert 'name="lang" value="de"' in form.text
    r = await post_form(client, lang="de")
    assert r.status_code == 303 and r.headers["location"] == "/contact/thanks?lang=de"
    thanks = await client.get(r.headers["location"])
    assert "Vielen Dank, Ihre Nachricht ist bei uns angekommen" in thanks.text
    await deliver(db, smtp)
    reply = next(m.message for m in smtp.received if m.recipients != ["staff@clinic.test"])
    staff = next(m.message for m in smtp.received if m.recipients == ["staff@clinic.test"])
    assert "Ihre Nachricht ist sicher bei uns angekommen" in text_of(reply)
    assert staff["Subject"].startswith("New inquiry #")  # staff read the install's language


async def test_a_signup_in_an_unknown_language_falls_back_to_the_install_language(
    client: httpx.AsyncClient, db: Database, smtp: SmtpServer
) -> None:
    r = await signup(client, "cy@example.org", lang="xx")
    assert r.status_code == 303
    sub = await subscriber(db, "cy@example.org")
    assert sub is not None and sub.language == "en"
    await deliver(db, smtp)
    assert smtp.received[0].message["Subject"].startswith("Please confirm your subscription")


async def test_german_unsubscribe_page_and_one_click_follow_the_subscriber(db: Database, smtp: SmtpServer) -> None:
    settings = make_settings(db)
    sid = await add_subscriber(db, "dora@example.org", language="de")
    from service.newsletter.tokens import unsubscribe_url
    from service.tokens import Tokens

    path = unsubscribe_url(settings, Tokens(settings), sid).removeprefix("http://testserver")
    async with client_with(db) as client:
        done = await client.post(path, data={"List-Unsubscribe": "One-Click", "from_page": "1"})
        assert done.status_code == 200
        assert "Sie sind abgemeldet" in done.text and '<html lang="de">' in done.text


async def test_german_resend_form_with_an_error_shows_only_the_error(client: httpx.AsyncClient) -> None:
    r = await client.post("/subscribe/resend", data={"form_token": await form_token(client, "/subscribe"),
                                                     "website": "", "email": "", "lang": "de"})
    assert r.status_code == 422 and '<html lang="de">' in r.text
    assert "Bitte geben Sie Ihre E-Mail-Adresse ein" in r.text
    assert "Project-Id-Version" not in r.text  # the catalogue's header is gettext("")
