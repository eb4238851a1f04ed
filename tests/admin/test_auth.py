"""Staff sign-in and sessions: every admin route is behind the gate, CSRF is enforced, lockouts
do not reveal accounts, sign-out and password change end every session, set-password links are
single use, and `next` never leads off the site."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from starlette.routing import Mount, Route

from service.admin.auth import ACCOUNT_MAX_FAILURES, IP_LIMIT, LOGIN_FAILED, set_password_url
from service.admin.models import AuditEvent, StaffUser
from service.inquiries.models import Inquiry, InquiryEvent
from tests.conftest import Database
from tests.factories import (
    ADMIN_EMAIL,
    PASSWORD,
    STAFF_EMAIL,
    add_inquiries,
    audit_actions,
    count,
    csrf,
    inquiry_row,
    make_staff,
    new_client,
    sign_in,
    token_in,
)


def admin_endpoints(app: Any) -> list[tuple[str, str]]:
    """(method, concrete path) for every route under /admin, read from the app itself."""
    found = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(route.routes, prefix + route.path)
            elif isinstance(route, Route):
                path = prefix + route.path
                if not path.startswith("/admin"):
                    continue
                concrete = re.sub(r"\{[^}:]+:int\}", "1", path)
                concrete = re.sub(r"\{[^}]+\}", "sometoken", concrete)
                for method in sorted(route.methods or {"GET"}):
                    if method != "HEAD":
                        found.append((method, concrete))

    walk(app.routes, "")
    return found


OPEN = {"/admin/login", "/admin/login/code", "/admin/set-password/sometoken",
        "/admin/reset-password/sometoken", "/admin/forgot-password"}


async def test_every_admin_route_redirects_to_login_without_a_session(app: Any, client: httpx.AsyncClient,
                                                                      db: Database) -> None:
    endpoints = admin_endpoints(app)
    assert ("GET", "/admin/inquiries") in endpoints and ("POST", "/admin/users/1") in endpoints
    assert len(endpoints) >= 20
    for method, path in endpoints:
        if path in OPEN:
            continue
        r = await client.request(method, path + "?x=1", data={"csrf_token": "x"} if method == "POST" else None)
        assert r.status_code == 303, (method, path, r.status_code)
        # A page comes back to itself after sign-in; a form sent without a session to the admin home.
        expected = f"/admin/login?next={path}%3Fx%3D1" if method == "GET" else "/admin/login?next=/admin/"
        assert r.headers["location"] == expected, (method, path)


async def test_form_sent_after_the_session_ended_returns_to_its_page(client: httpx.AsyncClient) -> None:
    r = await client.post("/admin/inquiries/5/notes", data={"note": "x"},
                          headers={"referer": "http://testserver/admin/inquiries/5"})
    assert r.headers["location"] == "/admin/login?next=/admin/inquiries/5"
    r = await client.post("/admin/inquiries/5/notes", data={"note": "x"},
                          headers={"referer": "https://evil.example/admin/inquiries/5"})
    assert r.headers["location"] == "/admin/login?next=/admin/"


async def test_open_pages_need_no_session(client: httpx.AsyncClient) -> None:
    assert (await client.get("/admin/login")).status_code == 200
    r = await client.get("/admin/set-password/sometoken")
    assert r.status_code == 400 and "cannot be used" in r.text


async def test_a_forged_cookie_is_not_a_session(admin: StaffUser, client: httpx.AsyncClient) -> None:
    client.cookies.set("tidings_admin", "WzEsMSwxXQ.forged.signature", path="/admin")
    r = await client.get("/admin/")
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")


async def test_sign_in_sets_a_hardened_cookie_and_records_it(app: Any, admin: StaffUser, db: Database) -> None:
    async with new_client(app) as c:
        r = await sign_in(c, next_url="/admin/inquiries?status=new")
        assert r.status_code == 303 and r.headers["location"] == "/admin/inquiries?status=new"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/admin" in cookie
        assert "Secure" not in cookie  # BASE_URL is http in tests
        page = await c.get("/admin/")
        assert page.status_code == 200 and "Dashboard" in page.text
        assert page.headers["cache-control"] == "no-store"
    assert await audit_actions(db) == [("sign_in", ADMIN_EMAIL, str(admin.id))]


async def test_cookie_is_secure_when_base_url_is_https(settings: Any, db: Database, admin: StaffUser) -> None:
    from service.app import create_app

    app = create_app(settings.with_(base_url="https://news.clinic.test"), sessions=db.sessions)
    # over https, as such a site is reached: the pre-session cookie is Secure too, so plain http would not send it
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
                                 base_url="https://news.clinic.test") as c:
        r = await sign_in(c)
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


async def test_wrong_password_and_unknown_account_get_the_same_answer(app: Any, admin: StaffUser,
                                                                      db: Database) -> None:
    async with new_client(app) as c:
        wrong = await sign_in(c, password="not the password at all")
        unknown = await sign_in(c, email="nobody@clinic.test")
    assert wrong.status_code == unknown.status_code == 401
    assert LOGIN_FAILED in wrong.text and LOGIN_FAILED in unknown.text
    assert "set-cookie" not in wrong.headers and "set-cookie" not in unknown.headers
    events = await audit_actions(db)
    assert events == [("sign_in_failed", "", str(admin.id)), ("sign_in_failed", "", "")]
    async with db.sessions() as session:
        details = (await session.execute(select(AuditEvent.detail)))
        for (detail,) in details.all():
            assert "not the password" not in str(detail)


async def test_account_lockout_tells_only_the_owner_that_the_account_is_locked(app: Any, admin: StaffUser,
                                                                                db: Database) -> None:
    """To a guesser a locked account looks like any failure; its owner, who gives the right
    password, is told it is locked and until when (not "that email and password did not work")."""
    async with new_client(app) as c:
        for _ in range(ACCOUNT_MAX_FAILURES):
            assert (await sign_in(c, password="wrong password here")).status_code == 401
        guessing = await sign_in(c, password="another wrong one")
        locked = await sign_in(c)  # the right password, but the account is locked
        nobody = await sign_in(c, email="nobody@clinic.test")
    assert locked.status_code == nobody.status_code == guessing.status_code == 401
    assert LOGIN_FAILED in guessing.text and LOGIN_FAILED in nobody.text and "locked" not in guessing.text
    assert LOGIN_FAILED not in locked.text
    async with db.sessions() as session:
        until = (await session.scalars(select(StaffUser.locked_until))).one()
    assert until is not None
    assert (f"This account is locked after {ACCOUNT_MAX_FAILURES} failed sign-ins, until "
            f"{until.strftime('%H:%M')} UTC") in locked.text
    assert "set-cookie" not in locked.headers
    async with db.sessions.begin() as session:  # the lock runs out: sign-in works again
        await session.execute(update(StaffUser).values(locked_until=None))
    async with new_client(app, ip="203.0.113.50") as c:
        assert (await sign_in(c)).status_code == 303


async def test_ip_lockout_stops_guessing_across_accounts(app: Any, admin: StaffUser, db: Database) -> None:
    # The limit counts in fixed windows of wall-clock time (service/ratelimit.py): guesses that
    # straddle a window's end are counted in two windows, and the address is not blocked. That is
    # the limiter's design, not a failure, so such a run is repeated once from a fresh address
    # (the second cannot straddle too: the windows are 15 minutes long).
    for attempt, ip in enumerate(("198.51.100.9", "198.51.100.19")):
        window = _ip_window()
        async with new_client(app, ip=ip) as c:
            for i in range(IP_LIMIT.count):
                guess = await sign_in(c, email=f"guess{i}@clinic.test", password="guess guess guess")
                assert guess.status_code == 401
            blocked = await sign_in(c)  # right credentials, from the blocked address
        if attempt == 0 and _ip_window() != window:
            continue
        assert blocked.status_code == 401 and LOGIN_FAILED in blocked.text
        break
    async with new_client(app, ip="198.51.100.10") as other:  # another address is not affected
        assert (await sign_in(other)).status_code == 303


def _ip_window() -> int:
    """The per-IP sign-in limit's current window (as service/ratelimit.py computes it)."""
    return int(time.time() // IP_LIMIT.seconds)


async def test_deactivated_user_loses_access_at_once(app: Any, admin: StaffUser, db: Database,
                                                     staff_client: httpx.AsyncClient) -> None:
    assert (await staff_client.get("/admin/inquiries")).status_code == 200
    async with db.sessions.begin() as session:
        await session.execute(update(StaffUser).where(StaffUser.email == STAFF_EMAIL).values(active=False))
    r = await staff_client.get("/admin/inquiries")
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")
    again = await sign_in(staff_client, STAFF_EMAIL)
    assert again.status_code == 401 and LOGIN_FAILED in again.text


async def test_logout_ends_the_session_everywhere(app: Any, admin: StaffUser, db: Database) -> None:
    async with new_client(app) as laptop, new_client(app, ip="203.0.113.99") as phone:
        await sign_in(laptop)
        await sign_in(phone)
        assert (await phone.get("/admin/")).status_code == 200
        r = await laptop.post("/admin/logout", data={"csrf_token": await csrf(laptop)})
        assert r.status_code == 303 and r.headers["location"] == "/admin/login"
        for c in (laptop, phone):
            r = await c.get("/admin/")
            assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")
    assert [a for a, _, _ in await audit_actions(db)] == ["sign_in", "sign_in", "sign_out"]


async def test_password_change_ends_other_sessions_and_keeps_this_one(app: Any, admin: StaffUser,
                                                                      db: Database) -> None:
    new_password = "a brand new long password"
    async with new_client(app) as laptop, new_client(app, ip="203.0.113.99") as phone:
        await sign_in(laptop)
        await sign_in(phone)
        r = await laptop.post("/admin/account", data={"csrf_token": await csrf(laptop), "current": PASSWORD,
                                                      "password": new_password, "confirm": new_password})
        assert r.status_code == 303
        assert (await laptop.get("/admin/account?done=1")).status_code == 200
        assert (await phone.get("/admin/")).status_code == 303
    async with new_client(app, ip="203.0.113.98") as c:
        assert (await sign_in(c)).status_code == 401
        assert (await sign_in(c, password=new_password)).status_code == 303
    assert "password_change" in [a for a, _, _ in await audit_actions(db)]


async def test_password_change_needs_the_current_password_and_twelve_characters(admin_client: httpx.AsyncClient,
                                                                                db: Database) -> None:
    token = await csrf(admin_client)
    r = await admin_client.post("/admin/account", data={"csrf_token": token, "current": "wrong wrong wrong",
                                                        "password": "x" * 20, "confirm": "x" * 20})
    assert r.status_code == 422 and "Current password" in r.text
    r = await admin_client.post("/admin/account", data={"csrf_token": token, "current": PASSWORD,
                                                        "password": "short", "confirm": "short"})
    assert r.status_code == 422 and "at least 12 characters" in r.text
    assert (await admin_client.get("/admin/")).status_code == 200  # still signed in, nothing changed


async def test_set_password_link_is_single_use(app: Any, settings: Any, db: Database) -> None:
    user = await make_staff(db, "new@clinic.test", role="staff", password=None)
    async with new_client(app) as c:
        from service.tokens import Tokens

        link = set_password_url(settings, Tokens(settings), user).removeprefix("http://testserver")
        page = await c.get(link)
        assert page.status_code == 200 and "new@clinic.test" in page.text
        short = await c.post(link, data={"form_token": token_in(page.text), "password": "short",
                                         "confirm": "short"})
        assert short.status_code == 422
        r = await c.post(link, data={"form_token": token_in(page.text), "password": "a good long password",
                                     "confirm": "a good long password"})
        assert r.status_code == 303 and r.headers["location"] == "/admin/"
        assert (await c.get("/admin/")).status_code == 200  # signed in
        used = await c.get(link)
        assert used.status_code == 400 and "already been used" in used.text
        again = await c.post(link, data={"form_token": token_in(page.text), "password": "another long password",
                                         "confirm": "another long password"})
        assert again.status_code == 400
    async with new_client(app, ip="203.0.113.77") as c:
        assert (await sign_in(c, "new@clinic.test", "a good long password")).status_code == 303


async def test_tampered_set_password_link_is_refused(app: Any, settings: Any, db: Database) -> None:
    user = await make_staff(db, "new@clinic.test", role="staff", password=None)
    from service.tokens import Tokens

    link = set_password_url(settings, Tokens(settings), user).removeprefix("http://testserver")
    async with new_client(app) as c:
        r = await c.get(link[:-3] + "abc")
    assert r.status_code == 400


@pytest.mark.parametrize("target", [
    "//evil.example/admin/", "/\\evil.example", "https://evil.example/admin/", "javascript:alert(1)",
    "/admin/\r\nLocation: https://evil.example", "http:/admin/", "/not-admin", "\\\\evil.example",
])
async def test_next_never_leads_off_the_admin_area(app: Any, admin: StaffUser, target: str) -> None:
    async with new_client(app) as c:
        page = await c.get("/admin/login", params={"next": target})
        assert 'name="next" value="/admin/"' in page.text
        r = await sign_in(c, next_url=target)
    assert r.status_code == 303 and r.headers["location"] == "/admin/"


async def test_csrf_missing_or_wrong_is_refused_and_changes_nothing(admin_client: httpx.AsyncClient,
                                                                    db: Database) -> None:
    [inquiry_id] = await add_inquiries(db, [inquiry_row(1)])
    for data in ({"status": "spam"}, {"status": "spam", "csrf_token": "wrong"}, {"status": "spam", "csrf_token": ""}):
        r = await admin_client.post(f"/admin/inquiries/{inquiry_id}/status", data=data)
        assert r.status_code == 403 and "did not come from this site" in r.text
    r = await admin_client.post(f"/admin/inquiries/{inquiry_id}/notes", data={"note": "hello"},
                                headers={"x-csrf-token": "wrong"})
    assert r.status_code == 403
    r = await admin_client.post("/admin/logout")
    assert r.status_code == 403
    r = await admin_client.post("/admin/users/invite", data={"email": "x@clinic.test", "role": "admin"})
    assert r.status_code == 403
    async with db.sessions() as session:
        assert (await session.get(Inquiry, inquiry_id)).status == "new"  # type: ignore[union-attr]
    assert await count(db, InquiryEvent) == 0
    assert await count(db, StaffUser) == 1
    assert (await admin_client.get("/admin/")).status_code == 200  # still signed in


async def test_csrf_token_of_another_session_is_refused(app: Any, admin: StaffUser, db: Database) -> None:
    [inquiry_id] = await add_inquiries(db, [inquiry_row(1)])
    async with new_client(app) as first, new_client(app) as second:
        await sign_in(first)
        token = await csrf(first)
        await first.post("/admin/logout", data={"csrf_token": token})
        await sign_in(second)
        r = await second.post(f"/admin/inquiries/{inquiry_id}/status", data={"status": "spam", "csrf_token": token})
    assert r.status_code == 403


async def test_login_form_needs_its_form_token(client: httpx.AsyncClient, admin: StaffUser) -> None:
    r = await client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert r.status_code == 403 and "set-cookie" not in r.headers


async def test_staff_cannot_reach_user_management(staff_client: httpx.AsyncClient, db: Database) -> None:
    admin = await make_staff(db)
    refused = await staff_client.get("/admin/users")
    assert refused.status_code == 403 and "Only admins can manage staff accounts." in refused.text
    assert 'href="/admin/inquiries"' in refused.text  # still inside the admin layout
    token = await csrf(staff_client)
    r = await staff_client.post("/admin/users/invite", data={"csrf_token": token, "email": "x@clinic.test",
                                                             "role": "admin"})
    assert r.status_code == 403
    r = await staff_client.post(f"/admin/users/{admin.id}", data={"csrf_token": token, "active": "0"})
    assert r.status_code == 403
    assert await count(db, StaffUser) == 2
    page = await staff_client.get("/admin/")
    assert 'href="/admin/users"' not in page.text


def _cookie_signed(settings: Any, payload: list[int], seconds_ago: int) -> str:
    """A session cookie as the app would have signed it `seconds_ago` seconds ago."""
    import time

    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds_ago

    serializer = URLSafeTimedSerializer(settings.secret_key, salt="tidings.admin-session", signer=PastSigner)
    return serializer.dumps(payload)


async def test_idle_and_absolute_session_expiry(app: Any, settings: Any, admin: StaffUser) -> None:
    import time

    now = int(time.time())
    cases = {
        "fresh": (_cookie_signed(settings, [admin.id, 1, now - 60], 60), 200),
        "idle for three hours": (_cookie_signed(settings, [admin.id, 1, now - 3 * 3600], 3 * 3600), 303),
        "active but signed in 13 hours ago": (_cookie_signed(settings, [admin.id, 1, now - 13 * 3600], 60), 303),
        "an older session version": (_cookie_signed(settings, [admin.id, 0, now - 60], 60), 303),
    }
    for name, (cookie, status) in cases.items():
        async with new_client(app) as c:
            c.cookies.set("tidings_admin", cookie)
            r = await c.get("/admin/")
        assert r.status_code == status, name


async def test_session_cookie_is_renewed_while_working(app: Any, settings: Any, admin: StaffUser) -> None:
    import time

    cookie = _cookie_signed(settings, [admin.id, 1, int(time.time()) - 600], 600)
    async with new_client(app) as c:
        c.cookies.set("tidings_admin", cookie)
        r = await c.get("/admin/")
    assert r.status_code == 200
    renewed = r.headers["set-cookie"]
    assert renewed.startswith("tidings_admin=") and cookie not in renewed and "HttpOnly" in renewed


async def test_audit_and_lockout_use_the_client_address_behind_a_trusted_proxy(settings: Any, db: Database,
                                                                              admin: StaffUser) -> None:
    from ipaddress import ip_network

    from service.app import create_app

    app = create_app(settings.with_(trusted_proxies=(ip_network("203.0.113.0/24"),)), sessions=db.sessions)
    async with new_client(app) as c:
        c.headers["x-forwarded-for"] = "198.51.100.77"
        await sign_in(c)
    async with db.sessions() as session:
        ips = (await session.scalars(select(AuditEvent.ip))).all()
    assert ips == ["198.51.100.77"]
