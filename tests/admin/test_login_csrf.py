"""Login CSRF: another site cannot sign a browser in to an account of its choosing. The sign-in
and set-password forms carry a token bound to the browser's pre-session cookie, and a form sent
from another origin is refused; nothing changes and no session cookie is set."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.admin.auth import set_password_url
from service.admin.guard import COOKIE_NAME, LOGIN_COOKIE
from service.admin.models import StaffUser
from service.settings import Settings
from service.tokens import Tokens
from tests.conftest import Database
from tests.factories import ADMIN_EMAIL, PASSWORD, make_staff, new_client, token_in

ATTACKER = "attacker@clinic.test"


async def _login_form(client: httpx.AsyncClient) -> str:
    page = await client.get("/admin/login")
    assert page.status_code == 200
    return token_in(page.text)


def _signed_in(response: httpx.Response) -> bool:
    return response.status_code == 303 and COOKIE_NAME in response.headers.get("set-cookie", "")


async def test_a_form_token_from_another_browser_does_not_sign_in(app: Any, db: Database) -> None:
    await make_staff(db, ATTACKER, role="staff")
    async with new_client(app, ip="198.51.100.66") as attacker:
        stolen = await _login_form(attacker)  # what the attacking site fetched for itself
    data = {"email": ATTACKER, "password": PASSWORD, "form_token": stolen}
    async with new_client(app) as victim:
        fresh = await victim.post("/admin/login", data=data)  # the victim has never seen the page
        assert fresh.status_code == 403 and "did not come from this site" in fresh.text
        assert not _signed_in(fresh)
        await _login_form(victim)  # the victim has a pre-session cookie of its own
        r = await victim.post("/admin/login", data=data)
        assert r.status_code == 403 and not _signed_in(r)
        assert (await victim.get("/admin/")).status_code == 303  # still not signed in
        ok = await victim.post("/admin/login", data={**data, "form_token": await _login_form(victim)})
        assert _signed_in(ok)  # its own form works


@pytest.mark.parametrize(("headers", "allowed"), [
    ({"origin": "https://evil.test"}, False),
    ({"origin": "null"}, False),
    ({"referer": "https://evil.test/page"}, False),
    ({"origin": "https://evil.test", "referer": "http://testserver/admin/login"}, False),
    ({"origin": "http://testserver"}, True),
    ({"referer": "http://testserver/admin/login?next=/admin/"}, True),
    ({}, True),  # neither header (stripped by a privacy setting): the bound token decides
])
async def test_sign_in_checks_the_origin(app: Any, db: Database, headers: dict[str, str], allowed: bool) -> None:
    await make_staff(db)
    async with new_client(app) as client:
        token = await _login_form(client)
        r = await client.post("/admin/login", headers=headers,
                              data={"email": ADMIN_EMAIL, "password": PASSWORD, "form_token": token})
    assert _signed_in(r) is allowed
    if not allowed:
        assert r.status_code == 403


async def test_the_pre_session_cookie_is_httponly_and_lax(app: Any) -> None:
    async with new_client(app) as client:
        page = await client.get("/admin/login")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{LOGIN_COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/admin" in cookie


async def test_set_password_form_is_bound_to_the_browser_and_origin(
    app: Any, db: Database, settings: Settings
) -> None:
    user = await make_staff(db, ATTACKER, role="staff", password=None)
    link = set_password_url(settings, Tokens(settings), user).removeprefix(settings.base_url)
    async with new_client(app, ip="198.51.100.66") as attacker:
        stolen = token_in((await attacker.get(link)).text)
    data = {"password": "the attacker's password", "confirm": "the attacker's password", "form_token": stolen}
    async with new_client(app) as victim:
        assert (await victim.post(link, data=data)).status_code == 403
        own = token_in((await victim.get(link)).text)
        r = await victim.post(link, data={**data, "form_token": own}, headers={"origin": "https://evil.test"})
        assert r.status_code == 403 and not _signed_in(r)
    async with db.sessions() as session:
        row = (await session.scalars(select(StaffUser).where(StaffUser.email == ATTACKER))).one()
    assert row.password_hash is None  # nothing changed
