"""One error style on every form, public and admin (the contact form, the signup, the resend
form, the preference centre, every admin form that refuses input): a summary at the top
(role=alert, focus) linking to each field, each error by its field, every invalid field
aria-invalid and described by its error."""

from __future__ import annotations

import re
from typing import Any

import httpx

from service.newsletter.tokens import unsubscribe_url
from service.tokens import Tokens
from tests.admin.test_two_factor import enrol, wrong_code
from tests.conftest import Database, make_settings
from tests.factories import (
    PASSWORD,
    add_subscriber,
    client_with,
    csrf,
    form_token,
    make_staff,
    post_form,
    sign_in,
    signed_in_client,
    subscriber,
    token_in,
)


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


async def test_two_factor_form_errors_are_by_the_code_or_password_field(app: Any, db: Database) -> None:
    async with signed_in_client(app, await make_staff(db)) as staff:
        page = await staff.get("/admin/account/two-factor")
        enrol_token = re.search(r'name="enrol_token" value="([^"]+)"', page.text)
        assert enrol_token
        r = await staff.post("/admin/account/two-factor", data={"csrf_token": token_in(page.text), "action": "enable",
                                                                "enrol_token": enrol_token.group(1), "code": "12"})
        assert r.status_code == 422, r.status_code
        check_error_style(r.text, {"enrol-code": "enrol-code-error"}, 1)
        assert 'class="alert" role="alert"' not in r.text.replace('class="alert error-summary"', "")
        key, _codes = await enrol(staff)
        r = await staff.post("/admin/account/two-factor", data={"csrf_token": await csrf(staff), "action": "disable",
                                                                "password": "not my password", "code": "123456"})
        assert r.status_code == 422, r.status_code
        check_error_style(r.text, {"off-password": "off-password-error"}, 1)
        assert 'id="off-code" name="code" type="text" autocomplete="one-time-code" required maxlength="20">' in r.text
        r = await staff.post("/admin/account/two-factor", data={"csrf_token": await csrf(staff), "action": "regenerate",
                                                                "code": wrong_code(key)})
        assert r.status_code == 422, r.status_code
        check_error_style(r.text, {"regen-code": "regen-code-error"}, 1)


async def test_subscriber_import_errors_are_by_the_file_or_source_field(app: Any, db: Database) -> None:
    async with signed_in_client(app, await make_staff(db)) as staff:
        r = await staff.post("/admin/subscribers/import", data={"csrf_token": await csrf(staff), "step": "check"},
                             files={"file": ("", b"", "text/csv")})
        assert r.status_code == 422, r.status_code
        check_error_style(r.text, {"check-file": "check-file-error"}, 1)
        assert "File: choose a CSV file to upload." in r.text
        r = await staff.post("/admin/subscribers/import", data={"csrf_token": await csrf(staff), "step": "check",
                                                                "from": "myspace"},
                             files={"file": ("a.csv", b"email\na@example.org\n", "text/csv")})
        assert r.status_code == 422, r.status_code
        check_error_style(r.text, {"check-from": "check-from-error"}, 1)


async def test_articles_import_error_is_summarised_and_shown_by_the_feed(app: Any, db: Database) -> None:
    async with signed_in_client(app, await make_staff(db)) as staff:  # FEED_URL is not set in the tests
        r = await staff.post("/admin/articles/import", data={"csrf_token": await csrf(staff)})
    assert r.status_code == 409, r.status_code
    summary = re.search(r'<div class="alert error-summary" role="alert"[^>]*>(.*?)</div>', r.text, re.S)
    assert summary and "There is a problem" in summary.group(1)
    assert '<a href="#feed">FEED_URL is not set' in summary.group(1)
    assert '<span class="hint" id="feed" tabindex="-1">FEED_URL is not set</span>' in r.text
    assert re.search(r'<p class="error" id="feed-error"><span class="visually-hidden">Error: </span>FEED_URL', r.text)
    assert '<button type="submit" aria-describedby="feed-error">Import now</button>' in r.text


async def test_campaign_page_errors_failed_test_and_refused_action(app: Any, db: Database) -> None:
    async with signed_in_client(app, await make_staff(db)) as staff:
        r = await staff.post("/admin/campaigns/new", data={"csrf_token": await csrf(staff), "subject": "Hours",
                                                            "body": "Open on Saturdays.", "save": "1"})
        assert r.status_code == 303, r.status_code
        url = r.headers["location"].split("?")[0]
        r = await staff.get(f"{url}?notice=test-failed&reason=refused")
        check_error_style(r.text, {"f-address": "err-address"}, 1)
        assert "The test was not sent." in r.text and 'id="test-failed"' not in r.text
        r = await staff.post(f"{url}/test", data={"csrf_token": await csrf(staff), "address": "not an address"})
        assert r.status_code == 422, r.status_code
        check_error_style(r.text, {"f-address": "err-address"}, 1)
        r = await staff.post(f"{url}/schedule", data={"csrf_token": await csrf(staff), "when": "soon",
                                                       "timezone": "Mars/Olympus"})
        assert r.status_code == 422, r.status_code
        check_error_style(r.text, {"f-when": "err-when", "f-timezone": "err-timezone"}, 2)
        r = await staff.post(f"{url}/send", data={"csrf_token": await csrf(staff)})
        assert r.status_code == 303
        r = await staff.post(f"{url}/delete", data={"csrf_token": await csrf(staff)})  # no longer a draft
        assert r.status_code == 409, r.status_code
    summary = re.search(r'<div class="alert error-summary" role="alert"[^>]*>(.*?)</div>', r.text, re.S)
    assert summary and '<a href="#t-actions">Delete: ' in summary.group(1)
    assert '<h2 id="t-actions" tabindex="-1">' in r.text
    assert re.search(r'<p class="error" id="err-send"><span class="visually-hidden">Error: </span>Delete: ', r.text)


async def test_preference_centre_refuses_unknown_topics_in_the_error_style(db: Database) -> None:
    settings = make_settings(db)
    sid = await add_subscriber(db, "pref@example.org", topics=[settings.topics[0]])
    path = unsubscribe_url(settings, Tokens(settings), sid).removeprefix("http://testserver")
    async with client_with(db) as client:
        r = await client.post(f"{path}/preferences", data={"topics": [settings.topics[1], "crypto tips"]})
    assert r.status_code == 422, r.status_code
    check_error_style(r.text, {"topics": "topics-error"}, 1)
    assert "Please choose topics from the list" in r.text
    assert (await subscriber(db, sid)).topics == [settings.topics[0]]  # type: ignore[union-attr]  # nothing saved


async def test_resend_form_errors(client: httpx.AsyncClient) -> None:
    r = await client.post("/subscribe/resend", data={"form_token": await form_token(client, "/subscribe"),
                                                     "website": "", "email": "ana@"})
    assert r.status_code == 422, r.status_code
    check_error_style(r.text, {"resend-email": "resend-email-error"}, 1)
