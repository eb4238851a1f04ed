"""Emails read well in dark mode: after css-inline has inlined the light styles, the rendered
HTML still carries the `prefers-color-scheme: dark` block and the color-scheme meta tags, the
dark colours derived from the brand's accent keep their contrast on the dark card, and the logo
sits on a tile that stays white."""

from __future__ import annotations

import re

import pytest

from service.admin.brand import Brand, brand_context
from service.admin.brand_values import DARK_CARD, contrast, dark_accent
from service.campaigns.render import build_digest
from service.mail.render import render_email
from service.settings import Settings

BRAND = Brand(install_id="x", postal_address="Rua das Flores 12", stored=True, name="Calm Clinic", accent="#8a1c4a",
              logo_url="https://clinic.example.org/brand/logo/0123456789abcdef.png", logo_size=(144, 48))


def _dark_block(html: str) -> str:
    match = re.search(r"@media \(prefers-color-scheme: dark\) \{(.*?)\n  \}", html, re.S)
    assert match, "the dark-mode block was lost"
    return match.group(1)


def _assert_dark_ready(html: str) -> None:
    assert '<meta name="color-scheme" content="light dark">' in html
    assert '<meta name="supported-color-schemes" content="light dark">' in html
    dark = _dark_block(html)
    assert dark_accent("#8a1c4a") in dark and ".logo img { background: #ffffff !important; }" in dark
    # the light colours were inlined (clients without <style> support still get them) ...
    assert re.search(r"<a [^>]*style=\"[^\"]*(color|background): ?#8a1c4a", html)
    # ... and the logo, on its white tile, carries its size for Outlook
    assert re.search(r'<img src="https://clinic.example.org/brand/logo/0123456789abcdef.png" alt="Calm Clinic" '
                     r'width="144" height="48" style="[^"]*background: ?#ffffff', html)


def test_transactional_email_keeps_its_dark_mode_block_after_inlining() -> None:
    ctx = {**brand_context(BRAND), "name": "Maya", "confirm_url": "https://clinic.example.org/confirm/x"}
    _assert_dark_ready(render_email("newsletter_confirm", ctx).html)


def test_digest_keeps_its_dark_mode_block_after_inlining(settings: Settings) -> None:
    digest = build_digest(settings, subject="Spring", preheader="", intro="Hello.", body="A [link](https://a.example/).",
                          articles=[], brand=BRAND)
    personal = digest.personalise(name="", topics=(), unsubscribe_url="https://clinic.example.org/u/x")
    assert personal is not None
    _assert_dark_ready(personal.html)


@pytest.mark.parametrize("accent", ["#0b5d5b", "#8a1c4a", "#000000", "#1a237e", "#595959"])
def test_dark_accent_keeps_contrast_on_the_dark_card(accent: str) -> None:
    assert contrast(dark_accent(accent), DARK_CARD) >= 4.5
    assert contrast(accent, "#ffffff") >= 4.5  # what the Settings page accepts reads on white
