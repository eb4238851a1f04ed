"""One error style on every form, public and admin: a summary at the top (role=alert, focus)
linking to each field, each error by its field, every invalid field aria-invalid and described
by its error."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import Database
from tests.factories import PASSWORD, csrf, form_token, make_staff, post_form, sign_in, signed_in_client, token_in


def check_error_style(html: str, fields: dict[str, str], problems: int) -> None:
    """`fields`: the id of each invalid input -> the id of its error."""
    summary = re.search(r'<div class="alert error-summary" role="alert" aria-labelledby="error-summary-title" '
                        r'tabindex="-1" autofocus>(.*?)</div>', html, re.S)
    assert summary, "no error summary"
    title = "There is a problem" if problems == 1 else f"There are {problems} problems"
    assert title in summary.group(1)
    for input_id, error_id in fields.items():
        assert f'<a href="#{input_id}">' in summary.group(1), input_id
        tag = re.search(rf'<(?:input|textarea|select|fieldset)[^>]*id="{input_id}"[^>]*>', html)
        assert tag, input_id
        assert 'aria-invalid="true"' in tag.group(0), tag.group(0)
        assert re.search(rf'aria-describedby="[^"]*{error_id}', tag.group(0)), tag.group(0)
        assert re.search(rf'<p class="error" id="{error_id}"><span class="visually-hidden">Error: </span>', html)


async def test_contact_form_errors(client: httpx.AsyncClient) -> None:
    r = await post_form(client, name="", email="ana@")
    assert r.status_code == 422
    check_error_style(r.text, {"inquiry-name": "name-error", "inquiry-email": "email-error"}, 2)


async def test_newsletter_signup_errors(client: httpx.AsyncClient) -> None:
    r = await client.post("/subscribe", data={"form_token": await form_token(client, "/subscribe"), "website": "",
                                              "email": "not an address", "name": "x" * 201})
    assert r.status_code == 422
    check_error_style(r.text, {"email": "email-error", "name": "name-error"}, 2)


async def test_admin_campaign_form_errors(app: Any, db: Database) -> None:
    async with signed_in_client(app, await make_staff(db)) as admin:
        r = await admin.post("/admin/campaigns/new", data={"csrf_token": await csrf(admin), "subject": "x" * 301,
                                                            "save": "1"})
    assert r.status_code == 422, r.status_code
    check_error_style(r.text, {"f-subject": "err-subject"}, 2)
    assert '<a href="#f-articles">Write a body, or pick at least one article (or both).</a>' in r.text
    assert "nothing was saved" in r.text


async def test_admin_digest_rule_form_errors(app: Any, db: Database) -> None:
    async with signed_in_client(app, await make_staff(db)) as admin:
        r = await admin.post("/admin/digest-rules/new", data={"csrf_token": await csrf(admin), "name": "",
                                                               "weekday": "0", "at_time": "25:00",
                                                               "timezone": "Europe/London"})
    assert r.status_code == 422, r.status_code
    assert 'id="r-time"' in r.text
    check_error_style(r.text, {"r-time": "err-at_time"}, len(re.findall(r'<p class="error" id="err-', r.text)))


async def test_admin_sign_in_account_and_invite_forms_errors(client: httpx.AsyncClient, app: Any, db: Database) -> None:
    """The forms that report one sentence (sign-in, forgot password, change password, invite)
    show it in the same style, by the field it is about."""
    admin = await make_staff(db)
    r = await sign_in(client, password="not the password at all")
    assert r.status_code == 401
    check_error_style(r.text, {"password": "password-error"}, 1)
    page = await client.get("/admin/forgot-password")
    r = await client.post("/admin/forgot-password", data={"form_token": token_in(page.text), "email": ""})
    assert r.status_code == 422, r.status_code
    check_error_style(r.text, {"email": "email-error"}, 1)
    async with signed_in_client(app, admin) as staff:
        r = await staff.post("/admin/account", data={"csrf_token": await csrf(staff), "current": "wrong wrong wrong",
                                                     "password": "a new password 123", "confirm": "a new password 123"})
        assert r.status_code == 422
        check_error_style(r.text, {"current": "current-error"}, 1)
        r = await staff.post("/admin/account", data={"csrf_token": await csrf(staff), "current": PASSWORD,
                                                     "password": "short", "confirm": "short"})
        assert r.status_code == 422
        check_error_style(r.text, {"password": "password-error"}, 1)
        r = await staff.post("/admin/users/invite", data={"csrf_token": await csrf(staff), "email": "nope",
                                                          "name": "", "role": "staff"})
        assert r.status_code == 422
        check_error_style(r.text, {"inv-email": "inv-email-error"}, 1)
