"""The contact form page: what a visitor sees, what is stored when they send it, and the two
emails that reach the staff and the visitor through a real SMTP server."""

from __future__ import annotations

import re

import httpx

from service.mail.outbox import outbox_email
from tests.conftest import Database
from tests.factories import (
    CLIENT_IP,
    count_rows,
    deliver,
    form_token,
    outbox_messages,
    post_form,
    stored_inquiries,
    token_in,
    valid_fields,
)
from tests.smtp import SmtpServer


async def test_contact_page_is_an_accessible_form_with_every_field(client: httpx.AsyncClient) -> None:
    r = await client.get("/contact")
    assert r.status_code == 200
    html = r.text
    assert "<h1>Let&#39;s get your project started!</h1>" in html
    assert "Tell us a little about what you are looking for" in html
    for field, kind in [("name", "text"), ("email", "email"), ("phone", "tel")]:
        assert f'<label for="inquiry-{field}">' in html
        assert re.search(rf'<input type="{kind}" id="inquiry-{field}" name="{field}"', html)
    assert '<select id="inquiry-topic" name="topic"' in html
    for topic in ("Depression", "Anxiety", "PTSD", "Chronic pain", "OCD", "Other"):
        assert f">{topic}</option>" in html
    for method in ("email", "phone", "either"):
        assert f'id="inquiry-contact_method-{method}" name="contact_method" value="{method}"' in html
    assert '<textarea id="inquiry-message" name="message"' in html
    assert 'name="consent"' in html and "You may contact me about my inquiry." in html
    assert 'name="newsletter"' in html
    assert "Please do not include detailed medical history" in html
    honeypot = re.search(r'<div class="hp" aria-hidden="true">.*?</div>', html, re.S)
    assert honeypot and 'name="website"' in honeypot.group(0)
    assert 'tabindex="-1"' in honeypot.group(0) and 'autocomplete="off"' in honeypot.group(0)
    assert token_in(html)
    assert not re.search(r"<script(?! src=)", html) and "style=" not in html  # strict CSP: nothing inline
    assert '<meta name="viewport"' in html


async def test_contact_page_keeps_attribution_from_query_and_referer(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/contact?utm_source=news&utm_medium=email&utm_campaign=spring&utm_term=k&utm_content=cta&referrer=https://duck.test/",
        headers={"Referer": "https://blog.clinic.test/articles/ptsd"},
    )
    html = r.text
    for field, value in [("utm_source", "news"), ("utm_medium", "email"), ("utm_campaign", "spring"),
                         ("utm_term", "k"), ("utm_content", "cta"), ("referrer", "https://duck.test/"),
                         ("source_page", "https://blog.clinic.test/articles/ptsd")]:
        assert f'<input type="hidden" name="{field}" value="{value}">' in html


async def test_form_submission_stores_inquiry_with_attribution_and_redirects(
    client: httpx.AsyncClient, db: Database
) -> None:
    page = await client.get("/contact")
    fields = valid_fields(form_token=token_in(page.text), newsletter="yes")
    r = await client.post("/contact", data=fields, headers={"User-Agent": "Firefox/130"})
    assert r.status_code == 303 and r.headers["location"] == "/contact/thanks"
    (inq,) = await stored_inquiries(db)
    assert (inq.name, inq.email, inq.phone, inq.topic, inq.contact_method) == (
        "Ana Souza", "ana@example.org", "+1 (555) 010-2030", "depression", "either")
    assert inq.message == fields["message"]
    assert inq.consent is True and inq.newsletter_optin is True
    assert inq.status == "new" and inq.status_changed_at == inq.created_at
    assert inq.source_page == "https://blog.clinic.test/articles/ketamine-and-depression"
    assert inq.referrer == "https://www.google.com/"
    assert (inq.utm_source, inq.utm_medium, inq.utm_campaign, inq.utm_term, inq.utm_content) == (
        "newsletter", "email", "spring", "ketamine", "footer-link")
    assert inq.ip == CLIENT_IP and inq.user_agent == "Firefox/130"
    assert inq.created_at.tzinfo is not None
    thanks = await client.get("/contact/thanks")
    assert thanks.status_code == 200 and "What happens next" in thanks.text
    assert "Ana" not in thanks.text and "ana@example.org" not in thanks.text


async def test_both_emails_reach_smtp_with_right_recipients_reply_to_and_parts(
    client: httpx.AsyncClient, db: Database, smtp: SmtpServer
) -> None:
    r = await post_form(client)
    assert r.status_code == 303
    (inq,) = await stored_inquiries(db)
    assert await deliver(db, smtp) == 2
    by_rcpt = {tuple(m.recipients): m.message for m in smtp.received}
    staff = by_rcpt[("staff@clinic.test",)]
    reply = by_rcpt[("ana@example.org",)]
    assert staff["From"] == "Clinic <hello@clinic.test>" and staff["To"] == "staff@clinic.test"
    assert staff["Reply-To"] == "Ana Souza <ana@example.org>"
    assert staff["Subject"] == f"New inquiry #{inq.id} from Ana Souza"
    assert "depression" not in staff["Subject"]
    assert reply["To"] == "ana@example.org" and reply["Subject"].startswith("We have received your message")
    assert reply["Auto-Submitted"] == "auto-replied"
    for msg in (staff, reply):
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    staff_text = staff.get_body(("plain",)).get_content()
    staff_html = staff.get_body(("html",)).get_content()
    for body in (staff_text, staff_html):
        assert f"http://testserver/admin/inquiries/{inq.id}" in body
        assert "Ana Souza" in body and "depression" in body and "+1 (555) 010-2030" in body
        assert "ketamine-assisted therapy could help me" not in body  # the message stays in the admin
    reply_text = reply.get_body(("plain",)).get_content()
    assert "What happens next" in reply_text and "get in touch by email or phone" in reply_text
    assert "What happens next" in reply.get_body(("html",)).get_content()
    assert all(m.status == "sent" for m in await outbox_messages(db))


async def _errors_for(client: httpx.AsyncClient, db: Database, **changes: object) -> tuple[str, dict[str, str]]:
    r = await post_form(client, **changes)
    assert r.status_code == 422
    assert await count_rows(db) == (0, 0)
    errors = dict(re.findall(r'<p class="error" id="([a-z_]+)-error"><span class="visually-hidden">Error: </span>'
                             r'([^<]*)</p>', r.text))
    return r.text, errors


async def test_every_invalid_field_is_reported_next_to_it_and_nothing_is_stored(
    client: httpx.AsyncClient, db: Database
) -> None:
    cases: list[tuple[dict[str, object], str, str]] = [
        ({"name": ""}, "name", "Please enter your name"),
        ({"name": "A" * 201}, "name", "Your name is too long"),
        ({"name": "Ana\r\nBcc: x@evil.test"}, "name", "Your name must be a single line"),
        ({"email": ""}, "email", "Please enter your email address"),
        ({"email": "ana@"}, "email", "This email address is not valid"),
        ({"email": "a" * 250 + "@x.org"}, "email", "Email address is too long"),
        ({"email": "ana@example.org\nBcc: x@evil.test"}, "email", "must be a single line"),
        ({"phone": "call me maybe"}, "phone", "Phone number may contain only digits"),
        ({"phone": "123"}, "phone", "between 6 and 15 digits"),
        ({"phone": "1" * 41}, "phone", "Phone number is too long"),
        ({"phone": "", "contact_method": "phone"}, "phone", "Please enter your phone number"),
        ({"topic": ""}, "topic", "Please choose a topic"),
        ({"topic": "astrology"}, "topic", "Please choose a topic from the list"),
        ({"contact_method": "pigeon"}, "contact_method", "from the list"),
        ({"message": "   "}, "message", "Please enter your message"),
        ({"message": "x" * 5001}, "message", "Your message is too long (5001 characters; at most 5000)"),
        ({"message": "hi\x00there"}, "message", "Your message contains control characters"),
        ({"consent": None}, "consent", "Please tick this box"),
    ]
    for changes, field, expected in cases:
        html, errors = await _errors_for(client, db, **changes)
        assert list(errors) == [field], (changes, errors)
        assert expected.replace("'", "&#39;") in errors[field], (changes, errors[field])
        # the summary links to the field, and the field points at its error
        anchor = "inquiry-contact_method-email" if field == "contact_method" else f"inquiry-{field}"
        assert f'<a href="#{anchor}">' in html
        assert re.search(rf'aria-describedby="[^"]*{field}-error"', html)
        assert html.count('aria-invalid="true"') == 1


async def test_rerendered_form_keeps_every_value_typed(client: httpx.AsyncClient, db: Database) -> None:
    r = await post_form(client, email="not-an-email", newsletter="yes", contact_method="phone",
                        message="Line one\nLine two")
    assert r.status_code == 422
    html = r.text
    assert 'value="Ana Souza"' in html and 'value="not-an-email"' in html and 'value="+1 (555) 010-2030"' in html
    assert '<option value="depression" selected>' in html
    assert 'value="phone" checked' in html
    assert ">Line one\nLine two</textarea>" in html
    assert re.search(r'name="consent" value="yes" checked', html)
    assert re.search(r'name="newsletter" value="yes" checked', html)
    assert 'name="utm_campaign" value="spring"' in html
    assert "There is a problem with your answers" in html
    assert token_in(html)


async def test_several_errors_are_all_listed_in_the_summary(client: httpx.AsyncClient, db: Database) -> None:
    r = await post_form(client, name="", email="", topic="", message="", consent=None)
    assert r.status_code == 422
    assert "There are 5 problems with your answers" in r.text
    assert r.text.index('href="#inquiry-name"') < r.text.index('href="#inquiry-email"') < r.text.index(
        'href="#inquiry-consent"')


HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>']


async def test_html_in_every_field_is_stored_verbatim_and_escaped_on_output(
    client: httpx.AsyncClient, db: Database, smtp: SmtpServer
) -> None:
    for i, evil in enumerate(HOSTILE):
        token = await form_token(client)
        r = await client.post("/contact", data=valid_fields(
            name=f"Ana {evil}", email=f"ana{i}@example.org", message=f"Hello {evil}", source_page=evil,
            referrer=evil, utm_source=evil, utm_medium=evil, utm_campaign=evil, utm_term=evil, utm_content=evil,
            form_token=token,
        ), headers={"User-Agent": evil})
        assert r.status_code == 303
    rows = await stored_inquiries(db)
    for inq, evil in zip(rows, HOSTILE, strict=True):
        assert inq.name == f"Ana {evil}" and inq.message == f"Hello {evil}"
        assert inq.source_page == inq.referrer == inq.utm_source == inq.utm_content == inq.user_agent == evil
    # escaped when the form comes back with the hostile values
    r = await post_form(client, name=HOSTILE[1], email="bad", message=HOSTILE[0], utm_term=HOSTILE[1])
    assert r.status_code == 422
    assert "<script>alert" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "&#34;&gt;&lt;img src=x" in r.text
    # escaped in the staff email; the name only reaches headers as a quoted display name
    await deliver(db, smtp)
    staff = [m.message for m in smtp.received if m.recipients == ["staff@clinic.test"]]
    assert len(staff) == 2
    for msg in staff:
        html = msg.get_body(("html",)).get_content()
        assert "<script>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html or "&lt;img src=x" in html
        assert msg["Reply-To"].addresses[0].display_name.startswith("Ana ")


async def test_line_breaks_never_reach_a_mail_header(client: httpx.AsyncClient, db: Database) -> None:
    for field in ("name", "email", "phone", "topic", "contact_method"):
        for evil in ("x\r\nBcc: victim@evil.test", "x\nSubject: hi", "x\rTo: a@b.c", "x\u2028y"):
            r = await post_form(client, **{field: evil})
            assert r.status_code == 422, (field, evil)
    assert await count_rows(db) == (0, 0)
    # the message may have line breaks: stored with \n, never in a header
    r = await post_form(client, message="Hello\r\nBcc: victim@evil.test\r\n\r\nbye")
    assert r.status_code == 303
    (inq,) = await stored_inquiries(db)
    assert inq.message == "Hello\nBcc: victim@evil.test\n\nbye"
    for row in await outbox_messages(db):
        headers = outbox_email(row).as_bytes().split(b"\r\n\r\n", 1)[0]
        assert b"victim@evil.test" not in headers


async def test_hidden_attribution_fields_are_flattened_not_refused(client: httpx.AsyncClient, db: Database) -> None:
    r = await post_form(client, utm_source="a\r\nb", source_page="https://x.test/" + "p" * 3000, referrer="r\x00")
    assert r.status_code == 303
    (inq,) = await stored_inquiries(db)
    assert inq.utm_source == "a b" and len(inq.source_page) == 2000 and inq.referrer == "r"


async def test_invalid_utf8_in_a_form_field_is_refused_by_name(client: httpx.AsyncClient, db: Database) -> None:
    token = await form_token(client)
    body = (b"name=Ana%FF%FEx&email=ana%40example.org&topic=anxiety&message=hi&consent=yes&form_token="
            + token.encode())
    r = await client.post("/contact", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "Your name contains characters that are not valid UTF-8" in r.text
    raw = b"name=Ana&email=ana%40example.org&topic=anxiety&message=caf\xe9&consent=yes&form_token=" + token.encode()
    r = await client.post("/contact", content=raw, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "Your message contains characters that are not valid UTF-8" in r.text
    assert await count_rows(db) == (0, 0)


async def test_form_in_non_latin_script_is_stored_as_typed(client: httpx.AsyncClient, db: Database) -> None:
    r = await post_form(client, name="Zoë Δημητρίου 山田", message="Здравствуйте 🙂")
    assert r.status_code == 303
    (inq,) = await stored_inquiries(db)
    assert inq.name == "Zoë Δημητρίου 山田" and inq.message == "Здравствуйте 🙂"


async def test_multipart_form_is_accepted_too(client: httpx.AsyncClient, db: Database) -> None:
    fields = valid_fields(form_token=await form_token(client))
    r = await client.post("/contact", files={k: (None, v) for k, v in fields.items()})
    assert r.status_code == 303
    assert len(await stored_inquiries(db)) == 1


async def test_wrong_content_type_for_the_form_is_415(client: httpx.AsyncClient, db: Database) -> None:
    r = await client.post("/contact", content=b"<xml/>", headers={"Content-Type": "application/xml"})
    assert r.status_code == 415 and "application/x-www-form-urlencoded" in r.text
    assert await count_rows(db) == (0, 0)



async def test_international_addresses_reach_mail_headers_in_ascii_form(
    client: httpx.AsyncClient, db: Database, smtp: SmtpServer
) -> None:
    assert (await post_form(client, email="ana@exämple.org")).status_code == 303
    # a non-ASCII local part needs SMTPUTF8: stored and the staff are told, no automatic reply
    assert (await post_form(client, email="josé@example.org", name="José")).status_code == 303
    assert [i.email for i in await stored_inquiries(db)] == ["ana@exämple.org", "josé@example.org"]
    assert await deliver(db, smtp) == 3
    recipients = sorted(m.recipients[0] for m in smtp.received)
    assert recipients == ["ana@xn--exmple-cua.org", "staff@clinic.test", "staff@clinic.test"]
    replies = sorted(str(m.message["Reply-To"]) for m in smtp.received if m.recipients == ["staff@clinic.test"])
    assert replies == ["Ana Souza <ana@xn--exmple-cua.org>", "None"]
    jose = next(m.message for m in smtp.received if "José" in str(m.message["Subject"]))
    assert "josé@example.org" in jose.get_body(("plain",)).get_content()
