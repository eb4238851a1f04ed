"""Messages carry an HTML and a text part, and no header can be smuggled in through CR/LF."""

from __future__ import annotations

import pytest

from service.mail.message import HeaderInjectionError, build_message, format_address, message_parts, parse_raw
from service.mail.render import render_email


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
