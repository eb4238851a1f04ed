"""The personal access tokens page (/admin/tokens): a token is shown once and kept only as its
SHA-256, works on the API (its last use noted), never on the HTML admin, and stops at once when
revoked by its owner or by an admin; staff see and revoke only their own; bad input creates
nothing; every create and revoke is audited."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import select

from service.admin.models import ApiToken
from tests.api.conftest import api_client, make_token
from tests.conftest import Database
from tests.factories import STAFF_EMAIL, audit_actions, count, csrf, make_staff, signed_in_client

TOKEN = re.compile(r"tdg_[A-Za-z0-9_-]{43}")


async def _tokens(db: Database) -> list[ApiToken]:
    async with db.sessions() as session:
        return list((await session.scalars(select(ApiToken).order_by(ApiToken.id))).all())


async def _create(client: Any, **fields: str) -> Any:
    data = {"csrf_token": await csrf(client), "name": "CRM sync", "days": "30", "scope_inquiries": "read",
            "scope_tokens": "write", **fields}
    return await client.post("/admin/tokens", data=data)


async def test_a_new_token_is_shown_once_stored_hashed_and_works_on_the_api_only(app: Any, db: Database) -> None:
    staff = await make_staff(db, STAFF_EMAIL, role="staff")
    async with signed_in_client(app, staff) as browser:
        r = await _create(browser)
        assert r.status_code == 200, r.text
        shown = TOKEN.findall(r.text)
        assert len(set(shown)) == 1
        raw = shown[0]
        assert r.headers["cache-control"] == "no-store"
        again = await browser.get("/admin/tokens")
        assert raw not in again.text and "CRM sync" in again.text and raw[:12] in again.text
    [row] = await _tokens(db)
    assert row.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {row.name, row.prefix, row.scopes, row.token_hash}
    assert row.scopes == "inquiries:read tokens:write" and row.last_used_at is None
    assert (row.expires_at - row.created_at).days == 30
    async with api_client(app, raw) as api:
        r = await api.get("/api/v1/tokens")
        assert r.status_code == 200, r.text
        assert [t["prefix"] for t in r.json()["data"]] == [row.prefix]
        html = await api.get("/admin/inquiries", follow_redirects=False)
        assert html.status_code == 303 and html.headers["location"].startswith("/admin/login")
    [used] = await _tokens(db)
    assert used.last_used_at is not None
    assert ("api_token_create", STAFF_EMAIL, str(row.id)) in await audit_actions(db)


async def test_revoking_on_the_page_stops_the_token_at_once(app: Any, db: Database) -> None:
    staff = await make_staff(db, STAFF_EMAIL, role="staff")
    raw = await make_token(db, staff)
    [row] = await _tokens(db)
    async with signed_in_client(app, staff) as browser, api_client(app, raw) as api:
        assert (await api.get("/api/v1/tokens")).status_code == 200
        r = await browser.post(f"/admin/tokens/{row.id}/revoke", data={"csrf_token": await csrf(browser)})
        assert r.status_code == 303
        refused = await api.get("/api/v1/tokens")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"
    assert ("api_token_revoke", STAFF_EMAIL, str(row.id)) in await audit_actions(db)


async def test_an_admin_sees_and_revokes_everyones_tokens_staff_only_their_own(app: Any, db: Database) -> None:
    admin = await make_staff(db)
    staff = await make_staff(db, STAFF_EMAIL, role="staff")
    other = await make_staff(db, "other@clinic.test", role="staff")
    staff_raw = await make_token(db, staff)
    await make_token(db, other)
    staff_row, other_row = await _tokens(db)
    async with signed_in_client(app, staff) as browser:
        page = await browser.get("/admin/tokens")
        assert staff_row.prefix in page.text and other_row.prefix not in page.text
        r = await browser.post(f"/admin/tokens/{other_row.id}/revoke", data={"csrf_token": await csrf(browser)})
        assert r.status_code == 403
    assert all(t.revoked_at is None for t in await _tokens(db))
    async with signed_in_client(app, admin) as browser:
        page = await browser.get("/admin/tokens")
        assert staff_row.prefix in page.text and other_row.prefix in page.text and STAFF_EMAIL in page.text
        r = await browser.post(f"/admin/tokens/{staff_row.id}/revoke", data={"csrf_token": await csrf(browser)})
        assert r.status_code == 303
    async with api_client(app, staff_raw) as api:
        assert (await api.get("/api/v1/tokens")).status_code == 401
    assert ("api_token_revoke", admin.email, str(staff_row.id)) in await audit_actions(db)


async def test_bad_input_names_the_field_and_creates_nothing(app: Any, db: Database) -> None:
    staff = await make_staff(db, STAFF_EMAIL, role="staff")
    async with signed_in_client(app, staff) as browser:
        for fields, word in [({"days": "0"}, "Expires in"), ({"days": "366"}, "Expires in"),
                             ({"name": "  "}, "Name"), ({"name": "nul\x00"}, "Name"),
                             ({"scope_inquiries": "", "scope_tokens": ""}, "Scopes"),
                             ({"scope_inquiries": "admin"}, "Scopes")]:
            r = await _create(browser, **fields)
            assert r.status_code == 422, fields
            assert word in r.text and "Nothing was created" in r.text and not TOKEN.search(r.text)
        r = await browser.post("/admin/tokens", data={"name": "x", "days": "30", "scope_inquiries": "read"})
        assert r.status_code == 403  # no CSRF token
        r = await _create(browser, days="1")  # any whole number of days up to 365 is accepted
        assert r.status_code == 200
    assert await count(db, ApiToken) == 1


async def test_sending_the_same_form_again_makes_no_second_token(app: Any, db: Database) -> None:
    """A reload of the answer that showed the token sends the form again (same `once` value, and the
    cookie that answer set): it says the token was made already and makes none. A new form (a new
    `once`) makes a new token; another staff member's cookie is no use."""
    staff = await make_staff(db, STAFF_EMAIL, role="staff")
    async with signed_in_client(app, staff) as browser:
        form = await browser.get("/admin/tokens")
        [once] = re.findall(r'name="once" value="([^"]+)"', form.text)
        first = await _create(browser, once=once)
        assert first.status_code == 200 and TOKEN.search(first.text)
        raw = TOKEN.findall(first.text)[0]
        reload = await _create(browser, once=once)
        assert reload.status_code == 200 and 'id="token-repeated"' in reload.text
        assert not TOKEN.search(reload.text) and raw[:12] in reload.text
        assert len(await _tokens(db)) == 1
        [fresh] = re.findall(r'name="once" value="([^"]+)"', (await browser.get("/admin/tokens")).text)
        assert fresh != once
        assert TOKEN.search((await _create(browser, once=fresh)).text)
        assert len(await _tokens(db)) == 2
        browser.cookies.set("tdg_token_once", "forged", path="/admin/tokens")
        assert TOKEN.search((await _create(browser, once=fresh)).text)  # an unsigned cookie proves nothing
        assert len(await _tokens(db)) == 3
    creates = [a for a, _who, _t in await audit_actions(db) if a == "api_token_create"]
    assert len(creates) == 3
