"""How busy the web is, told to the workers through the database.

Each app process measures how much of each second it spends with at least one request in
flight (`ActivityGauge`, fed by `ActivityMiddleware`) and writes that share to its own row of
`web_activity` once a second while it is busy (and once more when it goes idle). The campaign
sender reads the rows (`web_busy`) and slows down while the web is busy, so a digest sending at
full speed leaves the CPU and the database to requests (SEND_YIELD, `service.campaigns.throttle`).

Why a table: the app processes and the workers may run on different hosts or containers, but
they always share the database; one small UPSERT a second per busy app process and one SELECT
of a few rows every half second per sending worker cost nothing beside the work they describe,
and a row nobody refreshes for a few seconds (a stopped process) simply stops counting.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time

from sqlalchemy import Float, Integer, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from starlette.types import ASGIApp, Receive, Scope, Send

from service.db import Base, Sessions, UTCDateTime, insert_for, is_database_outage, sleep_unless_stopped, transaction

log = logging.getLogger("tidings.activity")

PUBLISH_EVERY = 1.0  # seconds between an app process's reports
FRESH_FOR = dt.timedelta(seconds=3)  # a report older than this no longer counts
PURGE_AFTER = dt.timedelta(hours=1)  # rows of processes gone this long are deleted


class WebActivity(Base):
    """One app process's latest report."""

    __tablename__ = "web_activity"

    process: Mapped[str] = mapped_column(String(200), primary_key=True)
    busy: Mapped[float] = mapped_column(Float)  # share of the last period with a request in flight, 0-1
    requests: Mapped[int] = mapped_column(Integer)  # requests finished in that period
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ActivityGauge:
    """Counts requests in flight and the time spent with at least one, in this process."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.requests = 0
        self._busy = 0.0  # seconds with a request in flight since the last sample
        self._since = time.monotonic()  # when the current busy stretch (or the sample) began
        self._sampled = self._since

    def started(self) -> None:
        if self.in_flight == 0:
            self._since = time.monotonic()
        self.in_flight += 1

    def finished(self) -> None:
        self.in_flight -= 1
        self.requests += 1
        if self.in_flight == 0:
            self._busy += time.monotonic() - self._since

    def sample(self) -> tuple[float, int]:
        """The share of the time since the last sample spent with a request in flight, and the
        requests finished meanwhile; starts the next period."""
        now = time.monotonic()
        busy = self._busy
        if self.in_flight:
            busy += now - self._since
            self._since = now
        share = min(1.0, busy / max(now - self._sampled, 1e-6))
        requests, self.requests, self._busy, self._sampled = self.requests, 0, 0.0, now
        return share, requests


class ActivityMiddleware:
    """Feeds the gauge: an HTTP request is in flight from its first byte until its response is sent."""

    def __init__(self, app: ASGIApp, gauge: ActivityGauge) -> None:
        self.app = app
        self.gauge = gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.gauge.started()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gauge.finished()


async def report_activity(session: AsyncSession, *, process: str, busy: float, requests: int,
                          now: dt.datetime) -> None:
    """Write one app process's report (an upsert of its row)."""
    insert = insert_for(session)
    stmt = insert(WebActivity).values(process=process, busy=busy, requests=requests, updated_at=now)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["process"], set_={"busy": busy, "requests": requests, "updated_at": now}))


async def web_busy(session: AsyncSession, *, now: dt.datetime) -> float:
    """How busy the busiest app process was lately: 0 (idle, or no fresh report) to 1."""
    value = await session.scalar(select(func.max(WebActivity.busy)).where(WebActivity.updated_at >= now - FRESH_FOR))
    return float(value or 0.0)


async def purge_activity(session: AsyncSession, *, now: dt.datetime) -> None:
    """Delete the rows of app processes that stopped reporting long ago."""
    await session.execute(delete(WebActivity).where(WebActivity.updated_at < now - PURGE_AFTER))


async def run_reporter(gauge: ActivityGauge, sessions: Sessions, stop: asyncio.Event) -> None:
    """Report this app process's activity every PUBLISH_EVERY s while it is busy (and once when it
    goes idle) until `stop` is set. An unreachable database skips a report, nothing more."""
    process = f"{socket.gethostname()}:{os.getpid()}"
    reported = 0.0
    purged = 0.0
    gauge.sample()
    while not await sleep_unless_stopped(stop, PUBLISH_EVERY):
        busy, requests = gauge.sample()
        if busy == 0 and reported == 0:
            continue
        try:
            async with transaction(sessions) as session:
                now = dt.datetime.now(dt.UTC)
                await report_activity(session, process=process, busy=busy, requests=requests, now=now)
                if time.monotonic() - purged > 600:
                    await purge_activity(session, now=now)
                    purged = time.monotonic()
            reported = busy
        except Exception as exc:  # the web keeps serving; the next report may go through
            if not is_database_outage(exc):
                log.warning("cannot report web activity: %s: %s", type(exc).__name__, exc)
