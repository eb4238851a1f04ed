"""Two-factor sign-in: a staff member sets it up on their account page (the secret read off the
page, codes computed with pyotp as their phone would), then signing in takes a code after the
password; codes are never accepted twice, wrong ones count toward the lockout, recovery codes
work once, an admin can require it of everyone, and neither a reset nor an invitation link is a
way round it."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import httpx
import itsdangerous
import pyotp
from sqlalchemy import select

from service.admin.auth import ACCOUNT_MAX_FAILURES, COOKIE_NAME
from service.admin.models import AuditEvent, RecoveryCode, StaffUser
from tests.conftest import TEST_SECRET, Database
from tests.factories import (
    ADMIN_EMAIL,
    PASSWORD,
    STAFF_EMAIL,
    csrf,
    make_staff,
    new_client,
    sign_in,
    signed_in_client,
    token_in,
)

PAGE = "/admin/account/two-factor"


def code_for(secret: str, steps_ahead: int = 0) -> str:
    """What the phone shows now (or `steps_ahead` 30-second steps later: a code not yet used)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def wrong_code(secret: str) -> str:
    """Six digits that are no code of this secret anywhere near now."""
    near = {code_for(secret, k) for k in range(-3, 4)}
    return next(c for c in ("000000", "123456", "999999", "424242", "135790") if c not in near)


async def enrol(client: httpx.AsyncClient) -> tuple[str, list[str]]:
    """Set up two-factor sign-in through the page: the secret and the recovery codes shown."""
    page = await client.get(PAGE)
    assert page.status_code == 200, page.text
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page.text)
    enrol_token = re.search(r'name="enrol_token" value="([^"]+)"', page.text)
    assert secret and enrol_token
    key = secret.group(1).replace(" ", "")
    assert f"secret={key}" in page.text and "<svg" in page.text  # the otpauth:// link and its QR code
    done = await client.post(PAGE, data={"csrf_token": token_in(page.text), "action": "enable",
                                         "enrol_token": enrol_token.group(1), "code": code_for(key)})
    assert done.status_code == 200, done.text
    codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", done.text)
    return key, codes


async def code_step(client: httpx.AsyncClient, code: str) -> httpx.Response:
    page = await client.get("/admin/login/code")
    assert page.status_code == 200, page.text
    return await client.post("/admin/login/code", data={"form_token": token_in(page.text), "code": code})


async def sign_out(client: httpx.AsyncClient) -> None:
    r = await client.post("/admin/logout", data={"csrf_token": await csrf(client)})
    assert r.status_code == 303


async def actions(db: Database) -> list[str]:
    async with db.sessions() as session:
        return list((await session.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all())


async def test_enrol_then_sign_out_and_sign_in_with_a_code(app: Any, admin: StaffUser, db: Database) -> None:
    async with signed_in_client(app, admin) as c:
        page = await c.get(PAGE)
        token = re.search(r'name="enrol_token" value="([^"]+)"', page.text)
        assert token
        refused = await c.post(PAGE, data={"csrf_token": token_in(page.text), "action": "enable",
                                           "enrol_token": token.group(1), "code": "12345"})
        assert refused.status_code == 422 and "Code: that is not the current code" in refused.text
        secret, codes = await enrol(c)
        assert len(codes) == 10 and len(set(codes)) == 10
        assert "Recovery codes left: <strong>10</strong>" in (await c.get(PAGE)).text
        await sign_out(c)
    async with db.sessions() as session:
        user = await session.get(StaffUser, admin.id)
        stored = (await session.scalars(select(RecoveryCode.code_hash))).all()
    assert user is not None and user.totp_secret == secret
    assert len(stored) == 10 and not set(codes) & set(stored)  # hashed, not kept as given

    async with new_client(app) as c:
        first = await sign_in(c)
        assert first.status_code == 303 and first.headers["location"] == "/admin/login/code"
        assert COOKIE_NAME not in c.cookies  # no session yet
        assert (await c.get("/admin/")).headers["location"].startswith("/admin/login")
        done = await code_step(c, code_for(secret, 1))
        assert done.status_code == 303 and done.headers["location"] == "/admin/"
        assert (await c.get("/admin/")).status_code == 200
    assert await actions(db) == ["two_factor_enable", "sign_out", "sign_in"]


async def test_a_code_is_not_accepted_twice(app: Any, admin: StaffUser) -> None:
    async with signed_in_client(app, admin) as c:
        secret, _ = await enrol(c)
    code = code_for(secret, 1)
    async with new_client(app) as c:
        await sign_in(c)
        assert (await code_step(c, code)).status_code == 303
    async with new_client(app, ip="203.0.113.9") as other:  # someone who saw the code
        await sign_in(other)
        replay = await code_step(other, code)
    assert replay.status_code == 401 and "this code was used already" in replay.text
    assert COOKIE_NAME not in other.cookies


async def test_wrong_codes_count_toward_the_lockout_like_wrong_passwords(app: Any, admin: StaffUser) -> None:
    async with signed_in_client(app, admin) as c:
        secret, _ = await enrol(c)
    async with new_client(app) as c:
        for _ in range(2):
            assert (await sign_in(c, password="not the password at all")).status_code == 401
        assert (await sign_in(c)).status_code == 303  # the right password does not forgive the failures
        for _ in range(ACCOUNT_MAX_FAILURES - 3):
            wrong = await code_step(c, wrong_code(secret))
            assert wrong.status_code == 401 and "that code did not work" in wrong.text
        locked = await code_step(c, wrong_code(secret))
        assert locked.status_code == 401 and "This account is locked after 5 failed sign-ins, until" in locked.text
        right = await code_step(c, code_for(secret, 1))  # even the right code waits now
        assert right.status_code == 401 and "This account is locked" in right.text
        assert COOKIE_NAME not in c.cookies
        assert "This account is locked" in (await sign_in(c)).text


async def test_a_recovery_code_signs_in_once(app: Any, admin: StaffUser, db: Database) -> None:
    async with signed_in_client(app, admin) as c:
        _, codes = await enrol(c)
    async with new_client(app) as c:
        await sign_in(c)
        used = await code_step(c, codes[3].upper().replace("-", " "))  # as typed from paper
        assert used.status_code == 303
        assert "Recovery codes left: <strong>9</strong>" in (await c.get(PAGE)).text
        await sign_out(c)
        await sign_in(c)
        again = await code_step(c, codes[3])
    assert again.status_code == 401 and "that recovery code did not work (each one works once)" in again.text
    async with db.sessions() as session:
        rows = (await session.execute(select(AuditEvent.action, AuditEvent.detail)
                                      .where(AuditEvent.action.startswith("two_factor")))).all()
    assert [tuple(r) for r in rows][-1] == ("two_factor_recovery_used", {"email": ADMIN_EMAIL, "left": 9})


async def test_new_recovery_codes_replace_the_old_ones(app: Any, admin: StaffUser) -> None:
    async with signed_in_client(app, admin) as c:
        secret, old = await enrol(c)
        page = await c.get(PAGE)
        r = await c.post(PAGE, data={"csrf_token": token_in(page.text), "action": "regenerate",
                                     "code": code_for(secret, 1)})
        assert r.status_code == 200 and "your old codes no longer work" in r.text
        new = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", r.text)
        assert len(new) == 10 and not set(new) & set(old)
    async with new_client(app) as c:
        await sign_in(c)
        assert (await code_step(c, old[0])).status_code == 401
        assert (await code_step(c, new[0])).status_code == 303


async def test_turning_it_off_needs_the_password_and_a_code(app: Any, admin: StaffUser, db: Database) -> None:
    async with signed_in_client(app, admin) as c:
        secret, _ = await enrol(c)
        page = await c.get(PAGE)
        wrong = await c.post(PAGE, data={"csrf_token": token_in(page.text), "action": "disable",
                                         "password": "not my password", "code": code_for(secret, 1)})
        assert wrong.status_code == 422 and "Password: this is not your current password." in wrong.text
        no_code = await c.post(PAGE, data={"csrf_token": token_in(page.text), "action": "disable",
                                           "password": PASSWORD, "code": wrong_code(secret)})
        assert no_code.status_code == 422 and "It is on" in no_code.text
        off = await c.post(PAGE, data={"csrf_token": token_in(page.text), "action": "disable",
                                       "password": PASSWORD, "code": code_for(secret, 1)})
        assert off.status_code == 303
        assert "Two-factor sign-in is off for your account." in (await c.get(off.headers["location"])).text
    async with new_client(app) as c:
        assert (await sign_in(c)).headers["location"] == "/admin/"  # the password alone again
    assert (await actions(db))[-2:] == ["two_factor_disable", "sign_in"]


async def test_every_form_needs_its_csrf_token(app: Any, admin: StaffUser, db: Database) -> None:
    async with signed_in_client(app, admin) as c:
        secret, _ = await enrol(c)
        r = await c.post(PAGE, data={"action": "disable", "password": PASSWORD, "code": code_for(secret, 1)})
        assert r.status_code == 403
        assert (await c.post("/admin/users/two-factor", data={"required": "1"})).status_code == 403
    async with new_client(app) as c:
        await sign_in(c)
        r = await c.post("/admin/login/code", data={"code": code_for(secret, 1)})
        assert r.status_code == 403 and COOKIE_NAME not in c.cookies
    async with db.sessions() as session:
        user = await session.get(StaffUser, admin.id)
    assert user is not None and user.totp_secret == secret


async def test_the_pending_sign_in_expires_and_cannot_be_forged(app: Any, admin: StaffUser) -> None:
    async with signed_in_client(app, admin) as c:
        secret, _ = await enrol(c)

    class OldSigner(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - 6 * 60)

    old = itsdangerous.URLSafeTimedSerializer(TEST_SECRET, salt="tidings.admin-2fa-pending", signer=OldSigner)
    for value in (old.dumps([admin.id, admin.session_version, "/admin/"]), "forged." + secrets.token_urlsafe(20)):
        async with new_client(app) as c:
            c.cookies.set("tidings_2fa", value, domain="testserver.local", path="/admin")
            r = await c.get("/admin/login/code")
            assert r.status_code == 400 and "Signing in took too long" in r.text
            assert COOKIE_NAME not in c.cookies


async def test_requiring_it_of_everyone_sends_staff_to_set_it_up_first(app: Any, admin: StaffUser,
                                                                      db: Database) -> None:
    await make_staff(db, STAFF_EMAIL, role="staff")
    async with signed_in_client(app, admin) as c:
        users = await c.get("/admin/users")
        refused = await c.post("/admin/users/two-factor", data={"csrf_token": token_in(users.text), "required": "1"})
        assert refused.status_code == 409 and "Set up two-factor sign-in for your own account first" in refused.text
        await enrol(c)
        on = await c.post("/admin/users/two-factor", data={"csrf_token": token_in(users.text), "required": "1"})
        assert on.status_code == 303
        assert "Required of everyone" in (await c.get("/admin/users")).text
    async with new_client(app, ip="203.0.113.8") as c:
        r = await sign_in(c, STAFF_EMAIL)
        assert r.status_code == 303 and COOKIE_NAME in c.cookies
        for path in ("/admin/", "/admin/inquiries", "/admin/account"):
            blocked = await c.get(path)
            assert blocked.status_code == 303 and blocked.headers["location"] == PAGE, path
        assert "An admin requires two-factor sign-in of everyone here" in (await c.get(PAGE)).text
        await enrol(c)
        assert (await c.get("/admin/inquiries")).status_code == 200
    async with db.sessions() as session:
        detail = await session.scalar(select(AuditEvent.detail).where(AuditEvent.action == "two_factor_require"))
    assert detail == {"required": True}


async def test_only_admins_may_require_it(staff_client: httpx.AsyncClient) -> None:
    r = await staff_client.post("/admin/users/two-factor", data={"csrf_token": await csrf(staff_client),
                                                                 "required": "1"})
    assert r.status_code == 403


async def test_a_password_reset_is_no_way_round_the_second_factor(app: Any, admin: StaffUser, db: Database) -> None:
    from service.admin.auth import reset_password_url
    from service.tokens import Tokens

    async with signed_in_client(app, admin) as c:
        secret, _ = await enrol(c)
    async with db.sessions() as session:
        user = await session.get(StaffUser, admin.id)
        assert user is not None
        path = reset_password_url(app.state.settings, Tokens(app.state.settings), user).split("testserver", 1)[1]
    async with new_client(app) as c:
        page = await c.get(path)
        done = await c.post(path, data={"form_token": token_in(page.text), "password": "a brand new long password",
                                        "confirm": "a brand new long password"})
        assert done.status_code == 303 and done.headers["location"] == "/admin/login/code"
        assert COOKIE_NAME not in c.cookies
        assert (await c.get("/admin/")).headers["location"].startswith("/admin/login")
        assert (await code_step(c, code_for(secret, 1))).status_code == 303
        assert (await c.get("/admin/")).status_code == 200


async def test_an_invited_user_sets_it_up_before_using_the_admin_when_required(app: Any, admin: StaffUser) -> None:
    async with signed_in_client(app, admin) as c:
        await enrol(c)
        users = await c.get("/admin/users")
        await c.post("/admin/users/two-factor", data={"csrf_token": token_in(users.text), "required": "1"})
        invited = await c.post("/admin/users/invite", data={"csrf_token": token_in(users.text),
                                                           "email": "new@clinic.test", "role": "staff"})
        link = re.search(r'value="http://testserver(/admin/set-password/[^"]+)"', invited.text)
        assert link
    async with new_client(app, ip="203.0.113.10") as c:
        page = await c.get(link.group(1))
        chosen = "the invitee's password"
        done = await c.post(link.group(1), data={"form_token": token_in(page.text), "password": chosen,
                                                 "confirm": chosen})
        assert done.status_code == 303
        first = await c.get(done.headers["location"])
        assert first.status_code == 303 and first.headers["location"] == PAGE
        await enrol(c)
        assert (await c.get("/admin/")).status_code == 200


async def test_an_admin_removes_a_colleagues_lost_factor(app: Any, admin: StaffUser, db: Database) -> None:
    colleague = await make_staff(db, STAFF_EMAIL, role="staff")
    async with signed_in_client(app, colleague, ip="203.0.113.8") as c:
        await enrol(c)
    async with signed_in_client(app, admin) as c:
        users = await c.get("/admin/users")
        assert "two-factor on" in users.text
        r = await c.post(f"/admin/users/{colleague.id}/two-factor-reset", data={"csrf_token": token_in(users.text)})
        assert r.status_code == 303
    async with new_client(app, ip="203.0.113.8") as c:
        assert (await sign_in(c, STAFF_EMAIL)).headers["location"] == "/admin/"
    assert "two_factor_reset" in await actions(db)

