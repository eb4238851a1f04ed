"""/api/v1/tokens: a token's owner lists and revokes their tokens (an admin: everyone's).
Tokens are created only on /admin/tokens, by a signed-in person: a token cannot make another."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.admin import apitokens
from service.admin.models import ApiToken, StaffUser
from service.api.core import ApiError, actor_of, iso, needs, path_id, user_of
from service.db import get_session, utcnow


def token_json(token: ApiToken, owner: str) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "prefix": token.prefix, "owner": owner,
            "scopes": token.scopes.split(), "created_at": iso(token.created_at), "expires_at": iso(token.expires_at),
            "last_used_at": iso(token.last_used_at), "revoked_at": iso(token.revoked_at),
            "status": apitokens.token_status(token, utcnow())}


@needs("tokens", "read")
async def list_own(request: Request) -> Response:
    rows = await apitokens.list_tokens(get_session(request), user_id=user_of(request).id)
    return JSONResponse({"data": [token_json(t, owner) for t, owner in rows], "next_cursor": None})


@needs("tokens", "read", admin=True)
async def list_all(request: Request) -> Response:
    rows = await apitokens.list_tokens(get_session(request), user_id=None)
    return JSONResponse({"data": [token_json(t, owner) for t, owner in rows], "next_cursor": None})


@needs("tokens", "write")
async def revoke(request: Request) -> Response:
    session = get_session(request)
    token = await session.get(ApiToken, path_id(request, "token_id"))
    user = user_of(request)
    if token is None or (token.staff_user_id != user.id and not user.is_admin):
        raise ApiError(404, "There is no such token among yours.")
    await apitokens.revoke_token(session, token=token, by_user=user, actor=actor_of(request), now=utcnow())
    owner = user if token.staff_user_id == user.id else await session.get(StaffUser, token.staff_user_id)
    return JSONResponse(token_json(token, owner.email if owner else ""))


routes = [
    Route("/tokens", list_own, methods=["GET"]),
    Route("/tokens/all", list_all, methods=["GET"]),
    Route("/tokens/{token_id:int}/revoke", revoke, methods=["POST"]),
]
