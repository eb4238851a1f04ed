"""The /api/v1 Mount: every admin API route behind ApiGateMiddleware (a bearer token only)."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from service.api import campaigns, inquiries, subscribers, tokens
from service.api.core import API_PREFIX, ApiGateMiddleware

api_routes: list[BaseRoute] = [*inquiries.routes, *subscribers.routes, *campaigns.routes, *tokens.routes]

routes: list[BaseRoute] = [Mount(API_PREFIX, routes=api_routes, middleware=[Middleware(ApiGateMiddleware)])]
