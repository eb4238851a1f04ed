"""Admin API fixtures: staff accounts and their personal access tokens, made by the same action
the /admin/tokens page calls, and clients that send a token (and nothing else)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy import update

from service.admin.apitokens import RESOURCES, create_token
from service.admin.audit import Actor
from service.admin.models import ApiToken, StaffUser
from service.db import utcnow
from tests.conftest import Database
from tests.factories import CLIENT_IP

EVERY_SCOPE = tuple(f"{r}:write" for r in RESOURCES)


async def make_token(db: Database, user: StaffUser, scopes: Sequence[str] = EVERY_SCOPE, *, days: int = 30,
                     expired: bool = False, revoked: bool = False) -> str:
    """A token of `user` (made as the page makes it); expired or revoked when asked."""
    async with db.sessions.begin() as session:
        owner = await session.get(StaffUser, user.id)
        assert owner is not None
        token, raw = await create_token(session, user=owner, actor=Actor.staff(owner, "203.0.113.7"), name="test",
                                        scopes=list(scopes), days=days, now=utcnow())
        changes: dict[str, Any] = {}
        if expired:
            changes["expires_at"] = utcnow() - dt.timedelta(seconds=1)
        if revoked:
            changes["revoked_at"] = utcnow()
        if changes:
            await session.execute(update(ApiToken).where(ApiToken.id == token.id).values(**changes))
    return raw


def api_client(app: Any, token: str | None, ip: str = CLIENT_IP) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 50000)),
                             base_url="http://testserver", headers=headers)


async def audit_rows(db: Database) -> list[dict[str, Any]]:
    """Every audit row as what the admin's audit log shows of it, oldest first (no id or time)."""
    from sqlalchemy import select

    from service.admin.models import AuditEvent

    async with db.sessions() as session:
        rows = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
    return [{"action": r.action, "actor_id": r.actor_id, "actor": r.actor_email, "target_type": r.target_type,
             "target_id": r.target_id, "ip": r.ip, "detail": r.detail} for r in rows]


def same_but_target(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {**a, "target_id": ""} == {**b, "target_id": ""}
