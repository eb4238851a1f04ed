"""Personal access tokens for the admin API (/api/v1): created by a staff member on
/admin/tokens, shown once, kept only as a SHA-256, with scopes, an expiry, the time of last use,
and revocation (by their owner, or by an admin for anyone).

A token is `tdg_` and 43 URL-safe characters (32 bytes from `secrets`). Its plain SHA-256 is
enough at rest: a token is 256 random bits, so there is nothing to guess, and a stolen table
yields no token that works. Scopes are `RESOURCE:LEVEL`; `write` includes `read`. A call is
authorised as the token's owner with their role (an admin-only action stays admin-only).

Creating and revoking are action functions (an `Actor`, their audit row: `api_token_create`,
`api_token_revoke`), shared by the admin page and `POST /api/v1/tokens/{id}/revoke`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import Actor, record_audit
from service.admin.models import ApiToken, StaffUser
from service.admin.twofactor import two_factor_required

TOKEN_PREFIX = "tdg_"  # noqa: S105 - the mark every token starts with, not a secret
TOKEN_BYTES = 32  # 43 characters of base64url
VISIBLE = len(TOKEN_PREFIX) + 8  # what lists show to recognise a token: "tdg_AbCd1234"
RESOURCES = ("inquiries", "subscribers", "campaigns", "tokens")  # articles fall under campaigns
LEVELS = ("read", "write")
EXPIRY_CHOICES = (7, 30, 90, 365)  # days offered on the page; any whole number 1..MAX_DAYS is accepted
MAX_DAYS = 365
NAME_MAX = 100
# Last use is written at most this often per token: a busy script does not update the row on every call.
LAST_USED_GRANULARITY = dt.timedelta(seconds=60)


class TokenInputError(ValueError):
    """A token form or request that cannot be used; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotAllowedError(PermissionError):
    """The actor may not do this to that token (a staff member revoking another's)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def looks_like_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX) and len(value) == len(TOKEN_PREFIX) + 43


def parse_scopes(values: Iterable[str]) -> list[str]:
    """Clean `RESOURCE:LEVEL` scopes (at most one level per resource, the higher kept), or
    TokenInputError naming the field `scopes`."""
    levels: dict[str, str] = {}
    for value in values:
        resource, _, level = value.strip().partition(":")
        if resource not in RESOURCES or level not in LEVELS:
            raise TokenInputError("scopes", f"Scopes: {value.strip()[:40]!r} is not one of "
                                  f"{', '.join(f'{r}:{lv}' for r in RESOURCES for lv in LEVELS)}.")
        if levels.get(resource) != "write":
            levels[resource] = level
    if not levels:
        raise TokenInputError("scopes", "Scopes: choose at least one (read or write on inquiries, subscribers, "
                                        "campaigns or tokens).")
    return [f"{r}:{levels[r]}" for r in RESOURCES if r in levels]


def token_allows(scopes: str, resource: str, level: str) -> bool:
    """Whether a token's scopes (as stored) allow `level` on `resource` (write includes read)."""
    granted = dict(s.partition(":")[::2] for s in scopes.split())
    have = granted.get(resource)
    return have == "write" or (have == "read" and level == "read")


def parse_days(value: str | int) -> int:
    try:
        days = int(str(value).strip())
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_DAYS:
        raise TokenInputError("days", f"Expires in: a whole number of days from 1 to {MAX_DAYS}.")
    return days


def parse_name(value: str) -> str:
    name = " ".join(value.split())
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise TokenInputError("name", "Name: it contains control characters; write plain text.")
    if not name:
        raise TokenInputError("name", "Name: say what the token is for, e.g. \"CRM sync\".")
    if len(name) > NAME_MAX:
        raise TokenInputError("name", f"Name: at most {NAME_MAX} characters.")
    return name


@dataclass(frozen=True)
class TokenState:
    """Why a token does or does not work now: "ok", "expired", "revoked", "inactive" (its owner
    was deactivated), "no_second_factor" (two-factor sign-in is required and its owner has none
    yet) or "unknown"."""

    status: str
    token: ApiToken | None = None
    user: StaffUser | None = None


async def check_token(session: AsyncSession, raw: str, *, now: dt.datetime) -> TokenState:
    """The token `raw` and its owner, if it works now; its last use is noted (at most once a minute)."""
    if not looks_like_token(raw):
        return TokenState("unknown")
    token = await session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    if token is None:
        return TokenState("unknown")
    if token.revoked_at is not None:
        return TokenState("revoked", token)
    if token.expires_at <= now:
        return TokenState("expired", token)
    user = await session.get(StaffUser, token.staff_user_id)
    if user is None or not user.active:
        return TokenState("inactive", token)
    if not user.has_two_factor and await two_factor_required(session):
        # as the admin sends such an account to set up its second factor and nowhere else, its
        # tokens (made before the requirement) wait for it too
        return TokenState("no_second_factor", token)
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_GRANULARITY:
        token.last_used_at = now
    return TokenState("ok", token, user)


async def create_token(session: AsyncSession, *, user: StaffUser, actor: Actor, name: str, scopes: Sequence[str],
                       days: int, now: dt.datetime) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the token itself (never stored, shown once)."""
    raw = new_token()
    token = ApiToken(staff_user_id=user.id, name=name, prefix=raw[:VISIBLE], token_hash=hash_token(raw),
                     scopes=" ".join(scopes), created_at=now, expires_at=now + dt.timedelta(days=days))
    session.add(token)
    await session.flush()
    await record_audit(session, by=actor, action="api_token_create", target_type="api_token", target_id=token.id,
                       detail={"name": name, "prefix": token.prefix, "scopes": list(scopes), "days": days,
                               "owner": user.email})
    return token, raw


async def revoke_token(session: AsyncSession, *, token: ApiToken, by_user: StaffUser, actor: Actor,
                       now: dt.datetime) -> bool:
    """Revoke `token` (its owner, or an admin for anyone); False when it was already revoked."""
    if token.staff_user_id != by_user.id and not by_user.is_admin:
        raise NotAllowedError("Only an admin can revoke another staff member's token.")
    if token.revoked_at is not None:
        return False
    token.revoked_at = now
    token.revoked_by_id = by_user.id
    await record_audit(session, by=actor, action="api_token_revoke", target_type="api_token", target_id=token.id,
                       detail={"name": token.name, "prefix": token.prefix})
    return True


async def list_tokens(session: AsyncSession, *, user_id: int | None) -> list[tuple[ApiToken, str]]:
    """Tokens newest first with their owner's address: one user's, or everyone's (`user_id` None)."""
    stmt = (select(ApiToken, StaffUser.email).join(StaffUser, StaffUser.id == ApiToken.staff_user_id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc()))
    if user_id is not None:
        stmt = stmt.where(ApiToken.staff_user_id == user_id)
    return [(t, e) for t, e in (await session.execute(stmt)).all()]


def token_status(token: ApiToken, now: dt.datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if token.expires_at <= now else "active"
