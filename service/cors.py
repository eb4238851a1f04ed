"""CORS for the public JSON API only (/api/...): the blog's own scripts may call it from
ALLOWED_ORIGINS, without credentials. Pages and the admin never get CORS headers.

Domain route lists are built before the settings exist, so the origins are read from the app's
settings at the first request (and cached per set of origins)."""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send


class ApiCorsMiddleware:
    """Use as `Route(..., middleware=[Middleware(ApiCorsMiddleware)])`; list OPTIONS in the
    route's methods so that preflight requests reach it."""

    def __init__(self, app: ASGIApp, methods: tuple[str, ...] = ("GET", "POST")) -> None:
        self.app = app
        self.methods = methods
        self._cors: dict[tuple[str, ...], CORSMiddleware] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origins: tuple[str, ...] = scope["app"].state.settings.allowed_origins
        cors = self._cors.get(origins)
        if cors is None:
            cors = self._cors[origins] = CORSMiddleware(
                self.app, allow_origins=list(origins), allow_methods=list(self.methods),
                allow_headers=["Content-Type"], allow_credentials=False, max_age=600,
            )
        await cors(scope, receive, send)
