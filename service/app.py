"""The application factory: the only place where routes, middleware and resources meet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

import service.models  # noqa: F401 - every table mapped before the first request
from service.activity import ActivityGauge, ActivityMiddleware, run_reporter
from service.admin.brand_web import BrandMiddleware, template_brand
from service.admin.guard import http_error
from service.db import DbSessionMiddleware, Sessions, create_engine, get_session, session_factory
from service.i18n import LanguageMiddleware
from service.insight.counter import ClickCounter, run_flusher
from service.insight.links import LinkReader
from service.insight.routes import ClickMiddleware
from service.mail.transport import Mailer, mailer_for
from service.paths import TEMPLATES_DIR
from service.settings import Settings
from service.tokens import Tokens
from service.web import (
    BodyTooLargeMiddleware,
    DatabaseOutageMiddleware,
    RequestLogMiddleware,
    SecurityHeadersMiddleware,
    is_database_outage,
    make_localised_templates,
    server_error_handler,
)
from service.worker import WorkerContext, run_worker

log = logging.getLogger("tidings")


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the database answers a query."""
    try:
        await get_session(request).execute(text("SELECT 1"))
    except Exception as exc:
        if not is_database_outage(exc):
            raise
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


def domain_routes() -> list[BaseRoute]:
    """Every domain's routes, in the order they are matched."""
    from service.admin.brand_web import routes as brand_routes
    from service.admin.routes import routes as admin_routes
    from service.api.routes import routes as api_routes
    from service.bounces.webhooks.routes import routes as webhook_routes
    from service.campaigns.routes import routes as campaign_routes
    from service.home import route as home_route
    from service.inquiries.routes import routes as inquiry_routes
    from service.insight.routes import routes as insight_routes
    from service.newsletter.routes import routes as newsletter_routes
    from service.openapi import route as openapi_route
    from service.privacy.routes import routes as privacy_routes

    return [
        *insight_routes,  # first: a digest link is the most frequent request, and matched first
        home_route,
        *admin_routes,
        *api_routes,
        *inquiry_routes,
        *newsletter_routes,
        *privacy_routes,
        *campaign_routes,
        *webhook_routes,
        openapi_route,
        *brand_routes,
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Mount("/static", app=StaticFiles(directory=TEMPLATES_DIR / "static"), name="static"),
    ]


def create_app(
    settings: Settings | None = None,
    *,
    sessions: Sessions | None = None,
    mailer: Mailer | None = None,
    worker: bool = False,
) -> Starlette:
    """Build the app. Whatever is passed in is used as is; the lifespan opens the rest (the
    database engine and the mail transport) and, with `worker=True`, runs the send worker in
    this process."""
    settings = settings or Settings.from_env()
    owns_engine = sessions is None
    engine: AsyncEngine | None = None
    if sessions is None:
        engine = create_engine(settings.database_url)
        sessions = session_factory(engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app_mailer = mailer or mailer_for(settings, sessions)
        app.state.mailer = app_mailer
        stop = asyncio.Event()
        task = None
        if worker:
            ctx = WorkerContext(settings=settings, sessions=sessions, mailer=app_mailer)
            task = asyncio.create_task(run_worker(ctx, stop), name="tidings-worker")
        flusher = asyncio.create_task(run_flusher(clicks, stop), name="tidings-clicks")
        reporter = asyncio.create_task(run_reporter(gauge, sessions, stop), name="tidings-activity")
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            await flusher  # the last click counts are written before the database is closed
            await reporter
            if mailer is None:
                await app_mailer.close()
            if owns_engine and engine is not None:
                await engine.dispose()

    gauge = ActivityGauge()
    app = Starlette(
        routes=domain_routes(),
        middleware=[
            Middleware(ActivityMiddleware, gauge=gauge),  # how busy the web is, for the workers (activity.py)
            Middleware(ClickMiddleware, settings=settings),  # digest links, before the rest (insight/routes.py)
            Middleware(RequestLogMiddleware),
            Middleware(LanguageMiddleware, default=settings.language),
            Middleware(SecurityHeadersMiddleware, settings=settings),
            Middleware(BodyTooLargeMiddleware),  # outside the limit, so it sees the limit's answer
            Middleware(RequestBodyLimitMiddleware, max_body_size=settings.max_body_bytes),
            Middleware(DatabaseOutageMiddleware),
            Middleware(DbSessionMiddleware, sessions=sessions),
            Middleware(BrandMiddleware),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error_handler},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.templates = make_localised_templates(settings)
    for localised in app.state.templates.values():
        localised.context_processors.append(template_brand)
    app.state.clicks = clicks = ClickCounter(sessions)
    app.state.links = LinkReader(Tokens(settings))
    if mailer is not None:
        app.state.mailer = mailer
    return app
