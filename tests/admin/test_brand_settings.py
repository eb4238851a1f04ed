"""The brand on the Settings page: an admin's change is audited in words and reaches the emails
that go out (real SMTP) and the public pages; staff cannot change it; a bad colour, address or
logo is refused by its field and changes nothing; a form without its CSRF token is refused;
each field goes back to its environment default; and every email previews in the brand."""

from __future__ import annotations

import html
import re
import struct
import zlib
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import undefer

from service.admin.brand import FIELDS
from service.admin.brand_preview import PREVIEWS
from service.admin.models import AuditEvent, BrandSettings
from tests.conftest import Database
from tests.factories import deliver, new_client, signup, token_in
from tests.smtp import SmtpServer


def png(width: int = 120, height: int = 40) -> bytes:
    """A real (tiny, one-colour) PNG image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x0b\x5d\x5b" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


BRAND = {"org_name": "Lisbon Calm Clinic", "accent_color": "#8a1c4a",
         "postal_address": "Rua das Flores 12\n1200 Lisboa", "footer_text": "Registered clinic no. 4711", "blog_url": "https://blog.lisbon-calm.test"}


async def _save(client: httpx.AsyncClient, values: dict[str, str], logo: bytes | None = None,
                *, csrf: bool = True) -> httpx.Response:
    page = await client.get("/admin/settings")
    data = {**({"csrf_token": token_in(page.text)} if csrf else {}), **values}
    no_file = ("", b"", "application/octet-stream")  # what a browser sends when no file is chosen
    files = {"logo": ("logo.png", logo, "image/png") if logo is not None else no_file}
    return await client.post("/admin/settings", data=data, files=files)


async def _row(db: Database) -> BrandSettings | None:
    async with db.sessions() as session:
        return await session.get(BrandSettings, 1, options=[undefer(BrandSettings.logo)])


async def test_admin_change_is_audited_and_shows_in_sent_email_and_on_public_pages(
    admin_client: httpx.AsyncClient, app: Any, db: Database, smtp: SmtpServer,
) -> None:
    r = await _save(admin_client, BRAND, png())
    assert r.status_code == 303 and r.headers["location"] == "/admin/settings?saved=1"
    page = await admin_client.get("/admin/settings?saved=1")
    assert "Saved." in page.text and 'value="Lisbon Calm Clinic"' in page.text
    async with db.sessions() as session:
        (event,) = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "brand_change"))).all()
    assert event.actor_email == "admin@clinic.test"
    assert event.detail == {"changed": ["organisation name", "accent colour", "logo", "postal address",
                                        "footer text", "blog address"]}
    audit = html.unescape((await admin_client.get("/admin/audit")).text)
    assert "Changed the brand settings" in audit and "the brand settings" in audit and "accent colour" in audit

    async with new_client(app) as visitor:  # the public pages, as anyone sees them
        subscribe = await visitor.get("/subscribe")
        assert "Newsletter · Lisbon Calm Clinic" in subscribe.text
        assert "Registered clinic no. 4711" in subscribe.text
        css_link = re.search(r'href="(/brand\.css\?v=8a1c4a)"', subscribe.text)
        assert css_link is not None
        css = await visitor.get(css_link.group(1))
        assert "--accent: #8a1c4a" in css.text and "immutable" in css.headers["cache-control"]
        logo_url = re.search(r'<img class="logo" src="http://testserver(/brand/logo/[0-9a-f]{16}\.png)"',
                             subscribe.text)
        assert logo_url is not None
        logo = await visitor.get(logo_url.group(1))
        assert logo.status_code == 200 and logo.content == png() and logo.headers["content-type"] == "image/png"
        assert "max-age=31536000" in logo.headers["cache-control"]
        assert (await signup(visitor, "reader@example.org")).status_code == 303
        thanks = await visitor.get("/subscribe/thanks")
        assert 'href="https://blog.lisbon-calm.test"' in thanks.text
    assert await deliver(db, smtp) == 1
    (mail,) = smtp.received
    message = mail.message
    assert message["Subject"] == "Please confirm your subscription to Lisbon Calm Clinic"
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    sent = str(body.get_content())  # type: ignore[attr-defined]
    assert "#8a1c4a" in sent and "Registered clinic no. 4711" in sent
    assert f"http://testserver{logo_url.group(1)}" in sent and 'alt="Lisbon Calm Clinic"' in sent


async def test_plain_staff_get_403_and_change_nothing(staff_client: httpx.AsyncClient, db: Database) -> None:
    assert (await staff_client.get("/admin/settings")).status_code == 403
    page = await staff_client.get("/admin/account")
    assert 'href="/admin/settings"' not in page.text  # not offered in the menu either
    r = await staff_client.post("/admin/settings", data={"csrf_token": token_in(page.text), "org_name": "Hijack"})
    assert r.status_code == 403 and "Only admins can change the settings" in r.text
    r = await staff_client.post("/admin/settings/reset/org_name", data={"csrf_token": token_in(page.text)})
    assert r.status_code == 403
    assert (await staff_client.get("/admin/settings/preview/digest.html")).status_code == 403
    row = await _row(db)
    assert row is None or row.org_name is None


@pytest.mark.parametrize(("values", "logo", "field", "message"), [
    ({"accent_color": "red"}, None, "accent_color", "Accent colour: enter a hex colour such as #0b5d5b."),
    ({"accent_color": "#ffee00"}, None, "accent_color", "#ffee00 is too light for links and buttons on white"),
    ({"blog_url": "javascript:alert(1)"}, None, "blog_url", "Blog address: enter an address starting with https://"),
    ({"org_name": "Evil\r\nBcc: x@example.org"}, None, "org_name", "Organisation name: one line without line breaks"),
    ({}, png() + b"\x00" * (201 * 1024), "logo", "Logo: the file is 201 KB; at most 200 KB is accepted"),
    ({}, b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "logo",
     "Logo: SVG cannot be used"),
    ({}, b"GIF89a not a logo", "logo", "Logo: this is not a PNG or JPEG image"),
])
async def test_bad_value_gets_an_error_by_its_field_and_changes_nothing(
    admin_client: httpx.AsyncClient, db: Database, values: dict[str, str], logo: bytes | None, field: str,
    message: str,
) -> None:
    r = await _save(admin_client, {**BRAND, **values}, logo)
    assert r.status_code == 422
    text = html.unescape(r.text)
    assert message in text
    assert f'<p class="error" id="{field}-error">' in r.text  # by the field ...
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', r.text)  # ... which is marked
    assert f'href="#{field}"' in r.text  # and linked from the summary
    row = await _row(db)
    assert row is None or all(getattr(row, name) is None for name in FIELDS)
    async with db.sessions() as session:
        assert not (await session.scalars(select(AuditEvent).where(AuditEvent.action == "brand_change"))).all()


async def test_form_without_csrf_token_is_refused(admin_client: httpx.AsyncClient, db: Database) -> None:
    r = await _save(admin_client, BRAND, png(), csrf=False)
    assert r.status_code == 403 and "did not come from" in r.text
    row = await _row(db)
    assert row is None or row.org_name is None


async def test_each_field_resets_to_its_environment_default(admin_client: httpx.AsyncClient, db: Database) -> None:
    assert (await _save(admin_client, BRAND, png())).status_code == 303
    page = await admin_client.get("/admin/settings")
    assert page.text.count("Reset to default") == len(FIELDS)
    csrf = token_in(page.text)
    r = await admin_client.post("/admin/settings/reset/accent_color", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/admin/settings?saved=accent_color"
    page = await admin_client.get("/admin/settings?saved=accent_color")
    assert "The accent colour is back to its default." in page.text and 'value="#0b5d5b"' in page.text
    assert "/brand.css" not in page.text  # the stylesheets' own colour again
    r = await admin_client.post("/admin/settings/reset/logo", data={"csrf_token": csrf})
    assert r.status_code == 303
    row = await _row(db)
    assert row is not None and row.accent_color is None and row.logo is None and row.org_name == BRAND["org_name"]
    assert (await admin_client.get("/brand/logo/0123456789abcdef.png")).status_code == 404
    async with db.sessions() as session:
        resets = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "brand_reset"))).all()
    assert [e.detail for e in resets] == [{"field": "accent colour"}, {"field": "logo"}]
    r = await admin_client.post("/admin/settings/reset/nonsense", data={"csrf_token": csrf})
    assert r.status_code == 404


async def test_saving_the_defaults_keeps_them_defaults(admin_client: httpx.AsyncClient, db: Database,
                                                       settings: Any) -> None:
    """Saving the form unchanged stores nothing: a later change of ORG_NAME still applies."""
    page = await admin_client.get("/admin/settings")
    assert "Reset to default" not in page.text
    r = await _save(admin_client, {"org_name": settings.org_name, "accent_color": "#0B5D5B",
                                   "postal_address": settings.org_postal_address, "footer_text": "", "blog_url": ""})
    assert r.status_code == 303
    row = await _row(db)
    assert row is not None and all(getattr(row, name) is None for name in FIELDS)


@pytest.mark.parametrize("name", sorted(PREVIEWS))
async def test_every_email_previews_in_the_typed_brand(admin_client: httpx.AsyncClient, name: str) -> None:
    assert (await _save(admin_client, {"footer_text": "Saved footer"})).status_code == 303
    r = await admin_client.get(f"/admin/settings/preview/{name}.html",
                               params={"org_name": "Typed Clinic", "accent_color": "#8a1c4a", "blog_url": "nonsense"})
    assert r.status_code == 200
    assert r.headers["content-security-policy"].startswith("sandbox")
    assert "Typed Clinic" in r.text and "#8a1c4a" in r.text  # the typed values ...
    assert "Saved footer" in r.text  # ... over the saved ones
    assert "prefers-color-scheme: dark" in r.text  # the dark-mode block survives CSS inlining
    assert (await admin_client.get(f"/admin/settings?preview={name}")).status_code == 200


async def test_settings_page_frames_the_chosen_preview(admin_client: httpx.AsyncClient) -> None:
    page = await admin_client.get("/admin/settings?preview=inquiry_autoreply")
    frame = re.search(r'<iframe class="mail-frame" sandbox src="([^"]+)"', page.text)
    assert frame is not None
    src = html.unescape(frame.group(1))
    assert src.startswith("/admin/settings/preview/inquiry_autoreply.html?")
    assert (await admin_client.get(src)).status_code == 200
    assert (await admin_client.get("/admin/settings/preview/nonsense.html")).status_code == 404
