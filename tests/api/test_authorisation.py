"""Who may call what on /api/v1, for every route the app has (read from its routes, so a route
added later is checked too, and a route without a `needs` declaration fails here): no token, an
unknown, expired or revoked token, a deactivated owner, a read-only token on writes, a token of
other scopes, a staff token on admin-only actions and a signed-in session cookie are all refused
before the handler runs, with the one error shape; per-token rate limits answer 429."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import update
from starlette.routing import Mount, Route

from service.admin.apitokens import RESOURCES
from service.admin.audit import Actor
from service.admin.models import StaffUser
from service.admin.twofactor import new_secret, set_two_factor_required
from service.api.core import API_PREFIX, Access
from service.app import create_app, domain_routes
from service.db import utcnow
from service.settings import RateLimit
from tests.api.conftest import EVERY_SCOPE, api_client, audit_rows, make_token
from tests.conftest import Database, make_settings
from tests.factories import STAFF_EMAIL, make_staff, signed_in_client


def api_routes() -> list[tuple[str, str, Access]]:
    """(method, a concrete path, what it needs) of every /api/v1 route."""
    [mount] = [r for r in domain_routes() if isinstance(r, Mount) and r.path == API_PREFIX]
    found = []
    for route in mount.routes:
        assert isinstance(route, Route)
        access = getattr(route.endpoint, "api_access", None)
        assert isinstance(access, Access), f"{route.path} has no needs(...) declaration"
        path = API_PREFIX + re.sub(r"\{\w+(:\w+)?\}", "1", route.path)
        found += [(m, path, access) for m in sorted(route.methods or ()) if m != "HEAD"]
    return found


ROUTES = api_routes()
IDS = [f"{m} {p}" for m, p, _ in ROUTES]


def test_every_route_is_enumerated_and_declares_a_scope() -> None:
    assert len(ROUTES) >= 20
    assert {a.resource for _, _, a in ROUTES} == set(RESOURCES)
    assert any(a.admin for _, _, a in ROUTES) and any(a.level == "write" for _, _, a in ROUTES)
    assert all(a.level == "read" for m, _, a in ROUTES if m == "GET")


def _error(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, (r.request.method, r.request.url, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code and body["error"]["message"]


@pytest.mark.parametrize(("method", "path", "access"), ROUTES, ids=IDS)
async def test_refused_without_a_working_token(app: Any, db: Database, method: str, path: str,
                                               access: Access) -> None:
    admin = await make_staff(db)
    expired = await make_token(db, admin, expired=True)
    revoked = await make_token(db, admin, revoked=True)
    before = await audit_rows(db)
    async with api_client(app, None) as api:
        _error(await api.request(method, path), 401, "missing_token")
        r = await api.request(method, path, headers={"Authorization": "Basic YWRtaW46eA=="})
        _error(r, 401, "missing_token")
        assert r.headers["www-authenticate"].startswith("Bearer")
    for token, code in [(expired, "token_expired"), (revoked, "token_revoked"),
                        ("tdg_" + "A" * 43, "invalid_token"), ("not-a-token", "invalid_token")]:
        async with api_client(app, token) as api:
            _error(await api.request(method, path), 401, code)
    async with signed_in_client(app, admin) as browser:  # a session cookie is no way in
        _error(await browser.request(method, path), 401, "missing_token")
    assert await audit_rows(db) == before


@pytest.mark.parametrize(("method", "path", "access"), ROUTES, ids=IDS)
async def test_refused_without_the_scope_or_the_role(app: Any, db: Database, method: str, path: str,
                                                     access: Access) -> None:
    admin = await make_staff(db)
    staff = await make_staff(db, STAFF_EMAIL, role="staff")
    read_only = await make_token(db, admin, [f"{r}:read" for r in RESOURCES])
    others = await make_token(db, admin, [f"{r}:write" for r in RESOURCES if r != access.resource])
    staff_all = await make_token(db, staff, EVERY_SCOPE)
    before = await audit_rows(db)
    async with api_client(app, others) as api:
        _error(await api.request(method, path), 403, "insufficient_scope")
    async with api_client(app, read_only) as api:
        r = await api.request(method, path)
        if access.level == "write":
            _error(r, 403, "insufficient_scope")
        else:
            assert r.status_code not in (401, 403), r.text  # past the gate: the handler answered
    async with api_client(app, staff_all) as api:
        r = await api.request(method, path)
        if access.admin:
            _error(r, 403, "admin_only")
        else:
            assert r.status_code not in (401, 403) or r.json()["error"]["code"] not in ("admin_only",
                                                                                      "insufficient_scope")
    if access.level == "write":
        assert await audit_rows(db) == before


async def test_a_deactivated_owners_token_stops_working(app: Any, db: Database) -> None:
    staff = await make_staff(db, STAFF_EMAIL, role="staff")
    raw = await make_token(db, staff)
    async with api_client(app, raw) as api:
        assert (await api.get("/api/v1/tokens")).status_code == 200
        async with db.sessions.begin() as session:
            await session.execute(update(StaffUser).where(StaffUser.id == staff.id).values(active=False))
        _error(await api.get("/api/v1/tokens"), 401, "invalid_token")


async def test_a_staff_member_cannot_revoke_anothers_token(app: Any, db: Database) -> None:
    admin = await make_staff(db)
    staff = await make_staff(db, STAFF_EMAIL, role="staff")
    await make_token(db, admin)
    staff_raw = await make_token(db, staff)
    async with api_client(app, staff_raw) as api:
        _error(await api.post("/api/v1/tokens/1/revoke"), 404, "not_found")
        r = await api.post("/api/v1/tokens/2/revoke")
        assert r.status_code == 200 and r.json()["status"] == "revoked"


async def test_each_token_has_its_own_rate_limit(db: Database) -> None:
    app = create_app(make_settings(db, api_rate_limit=RateLimit(3, 600)), sessions=db.sessions)
    admin = await make_staff(db)
    first, second = await make_token(db, admin), await make_token(db, admin)
    async with api_client(app, first) as api:
        for _ in range(3):
            assert (await api.get("/api/v1/tokens")).status_code == 200
        r = await api.get("/api/v1/tokens")
        _error(r, 429, "rate_limited")
        assert 0 < int(r.headers["retry-after"]) <= 600
    async with api_client(app, second) as api:
        assert (await api.get("/api/v1/tokens")).status_code == 200


async def test_unknown_paths_and_methods_answer_the_same_error_shape(app: Any, db: Database) -> None:
    admin = await make_staff(db)
    async with api_client(app, await make_token(db, admin)) as api:
        _error(await api.get("/api/v1/nothing-here"), 404, "not_found")
        _error(await api.delete("/api/v1/inquiries"), 405, "method_not_allowed")
        _error(await api.get("/api/v1/inquiries/99999999999"), 404, "not_found")


async def test_tokens_wait_for_their_owners_second_factor_once_it_is_required(app: Any, db: Database) -> None:
    """Requiring two-factor sign-in of everyone holds the API to it too: a token made before stops
    working until its owner sets up a second factor, then works again."""
    admin = await make_staff(db)
    staff = await make_staff(db, STAFF_EMAIL, role="staff")
    raw = await make_token(db, staff)
    async with api_client(app, raw) as api:
        assert (await api.get("/api/v1/tokens")).status_code == 200
        async with db.sessions.begin() as session:
            await session.execute(update(StaffUser).where(StaffUser.id == admin.id).values(totp_secret=new_secret()))
            owner = await session.get(StaffUser, admin.id)
            assert owner is not None
            assert await set_two_factor_required(session, required=True, actor_user=owner,
                                                 actor=Actor.staff(owner, "203.0.113.7"), now=utcnow())
        r = await api.get("/api/v1/tokens")
        _error(r, 401, "two_factor_required")
        assert "/admin/account/two-factor" in r.json()["error"]["message"]
        async with db.sessions.begin() as session:
            await session.execute(update(StaffUser).where(StaffUser.id == staff.id).values(totp_secret=new_secret()))
        assert (await api.get("/api/v1/tokens")).status_code == 200
