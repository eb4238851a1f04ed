"""A phone number reaches staff as it was typed; a message over the limit is refused by its
field (nothing stored), and the page counts characters as the person types."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Database
from tests.factories import deliver, make_staff, post_form, signed_in_client, stored_inquiries
from tests.smtp import SmtpServer


async def test_phone_number_is_kept_as_typed_for_staff(client: httpx.AsyncClient, app: object, db: Database,
                                                     smtp: SmtpServer) -> None:
    r = await post_form(client, phone="  +49 170\u00a0 1234567 ")
    assert r.status_code == 303
    (inq,) = await stored_inquiries(db)
    assert inq.phone == "+49 170 1234567"
    await deliver(db, smtp)
    staff = next(m.message for m in smtp.received if m.recipients == ["staff@clinic.test"])
    for part in ("plain", "html"):
        assert "+49 170 1234567" in staff.get_body((part,)).get_content()
    async with signed_in_client(app, await make_staff(db)) as admin:
        page = await admin.get(f"/admin/inquiries/{inq.id}")
    assert '<a href="tel:+491701234567">+49 170 1234567</a>' in page.text


async def test_a_misplaced_plus_is_refused_by_the_phone_field(client: httpx.AsyncClient, db: Database) -> None:
    r = await post_form(client, phone="0170 +1234567")
    assert r.status_code == 422
    assert re.search(r'id="phone-error">.*Phone number may have a \+ only at its start', r.text)
    assert await stored_inquiries(db) == []


async def test_a_message_over_the_limit_is_refused_by_its_field_and_nothing_is_stored(
        client: httpx.AsyncClient, db: Database) -> None:
    page = await client.get("/contact")
    textarea = re.search(r"<textarea [^>]*>", page.text)
    assert textarea and "maxlength" not in textarea.group(0)  # the browser must not cut it silently
    assert 'data-max-chars="5000"' in textarea.group(0) and "counter.js" in page.text
    r = await post_form(client, message="é" * 5001)
    assert r.status_code == 422
    assert re.search(r'id="message-error">.*Your message is too long \(5001 characters; at most 5000\)', r.text)
    assert '<a href="#inquiry-message">' in r.text  # the summary links to the field
    assert "é" * 5001 + "</textarea>" in r.text  # their text is kept to shorten, not lost
    assert await stored_inquiries(db) == []
    assert (await post_form(client, message="é" * 5000)).status_code == 303
