"""Messages carry an HTML and a text part, and no header can be smuggled in through CR/LF."""

from __future__ import annotations

import dataclasses

import pytest

from service.campaigns.message import MessageFactory
from service.mail.message import (
    HeaderInjectionError,
    build_message,
    format_address,
    list_headers,
    message_parts,
    parse_raw,
    serialise,
)
from service.mail.render import render_email
from service.settings import Settings


def _build(**overrides: str) -> None:
    args = {"sender": "Clinic <hello@clinic.test>", "to": "ana@example.org", "subject": "Hello",
            "text": "hi", "html": "<p>hi</p>"}
    args.update(overrides)
    build_message(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["subject", "to", "sender", "reply_to"])
@pytest.mark.parametrize("payload", ["x\r\nBcc: victim@example.org", "x\nBcc: victim@example.org", "x\rY", "x\x00"])
def test_header_injection_refused(field: str, payload: str) -> None:
    value = f"ana{payload}@example.org" if field in ("to", "sender", "reply_to") else payload
    with pytest.raises(HeaderInjectionError):
        _build(**{field: value})


def test_extra_header_injection_refused() -> None:
    with pytest.raises(HeaderInjectionError):
        build_message(sender="a@b.test", to="c@d.test", subject="s", text="t", html="h",
                      headers={"List-Id": "x\r\nBcc: e@f.test"})


def test_display_name_line_breaks_become_spaces() -> None:
    # a display name is a person's text: made safe (see tests/mail/test_header_safety.py), not refused
    assert format_address("ana@example.org", "Ana\r\nBcc: x@evil.test") == '"Ana Bcc: x@evil.test" <ana@example.org>'
    assert format_address("ana@example.org", 'Ana "The" Client') == '"Ana \\"The\\" Client" <ana@example.org>'


def test_message_has_text_and_html_and_survives_a_round_trip() -> None:
    rendered = render_email("smtp_check", {"org_name": "Clinic <&>", "sent_at": "now"})
    assert "Clinic &lt;&amp;&gt;" in rendered.html
    assert "Clinic <&>" in rendered.text
    assert 'style="' in rendered.html  # CSS inlined for mail clients
    msg = build_message(sender="Clinic <hello@clinic.test>", to="Zoë <zoe@example.org>", subject="Grüße",
                        text=rendered.text, html=rendered.html, reply_to="team@clinic.test")
    parsed = parse_raw(msg.as_bytes())
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = message_parts(parsed)
    assert "Mail from Clinic <&> works" in text
    assert "<h1" in html
    assert parsed["Subject"] == "Grüße"
    assert parsed["Reply-To"] == "team@clinic.test"
    assert parsed["Message-ID"].endswith("@clinic.test>")


@pytest.mark.parametrize("org_name", ["Tidings", "Clinique Évian, Inc."])
def test_welcome_and_digest_carry_the_same_list_headers(settings: Settings, org_name: str) -> None:
    """One function builds the list headers of both kinds of newsletter email: List-Id in the
    RFC 2919 form `Org name <list.id>` (encoded when the name is not ASCII), one-click unsubscribe."""
    settings = dataclasses.replace(settings, org_name=org_name, list_id="news.clinic.test")
    url = "http://testserver/unsubscribe/abc"
    welcome = parse_raw(serialise(build_message(
        sender="Clinic <hello@clinic.test>", to="ana@example.org", subject="Welcome", text="hi", html="<p>hi</p>",
        headers=list_headers(settings, url))))
    factory = MessageFactory.for_campaign(settings, campaign_id=1, subject="Digest", install_id="i1")
    _mid, raw = factory.build(delivery_id=1, to_email="ana@example.org", to_name="Ana", unsubscribe_url=url,
                              html="<p>hi</p>", text="hi")
    digest = parse_raw(raw)
    for name in ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert str(welcome[name]).strip() == str(digest[name]).strip(), name
    assert str(digest["List-Id"]) in (f"{org_name} <news.clinic.test>", f'"{org_name}" <news.clinic.test>')
    assert digest["List-Unsubscribe"] == f"<{url}>"
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
