"""SEND_YIELD: while an app process reports being busy, a digest goes out with fewer messages per
tick (the worker leaves the CPU, the database and the SMTP server to the requests); while the
web is idle it sends at full speed; either way everyone gets it once."""

from __future__ import annotations

import asyncio
from collections import Counter

from service.activity import report_activity
from service.campaigns.throttle import web_yield_for
from service.db import transaction, utcnow
from service.newsletter.models import Subscriber
from service.settings import Settings
from tests.conftest import Database
from tests.factories import make_campaign, sender_for
from tests.smtp import SmtpServer

AUDIENCE = 200


async def _audience(db: Database) -> None:
    now = utcnow()
    async with db.sessions.begin() as session:
        session.add_all(Subscriber(email=f"reader{i}@example.org", email_key=f"reader{i}@example.org", name="",
                                   status="confirmed", created_at=now, status_changed_at=now, signup_at=now,
                                   confirmed_at=now) for i in range(AUDIENCE))


async def _busy_web(db: Database, stop: asyncio.Event) -> None:
    """An app process with a request in flight all the time, reporting as `run_reporter` does."""
    while not stop.is_set():
        async with transaction(db.sessions) as session:
            await report_activity(session, process="app-1", busy=1.0, requests=120, now=utcnow())
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


async def test_fewer_messages_per_tick_while_the_web_reports_busy(db: Database, settings: Settings,
                                                                  smtp: SmtpServer) -> None:
    await _audience(db)
    web_yield = web_yield_for(0.5, db.sessions)
    assert web_yield is not None and web_yield_for(0, db.sessions) is None
    sender = sender_for(db, settings, smtp.url, web_yield=web_yield)

    await make_campaign(db, settings, subject="Quiet web")
    while await sender.run_once():
        pass
    quiet = [sent for sent, limit in web_yield.ticks if sent]
    assert quiet and all(limit is None for _sent, limit in web_yield.ticks)  # idle web: never held back
    assert max(web_yield.full) >= 2

    stop = asyncio.Event()
    reporter = asyncio.create_task(_busy_web(db, stop))
    try:
        await make_campaign(db, settings, subject="Busy web")
        for _ in range(200):  # until the reporter's first row is committed (a busy machine may delay it)
            await web_yield.refresh()
            if web_yield.busy == 1.0:
                break
            await asyncio.sleep(0.05)
        assert web_yield.busy == 1.0
        before = len(web_yield.ticks)
        while await sender.run_once():
            pass
    finally:
        stop.set()
        await reporter
    await sender.transport.close()
    busy = list(web_yield.ticks)[before + 1:]  # the first one recorded is the quiet campaign's last
    # The full speed is read only now: that last quiet tick ends when the busy campaign's first
    # message is taken, and counts among the unthrottled ones (how much it sent depends on how
    # fast the machine was just then); every busy tick's limit is computed after it.
    full = max(web_yield.full)
    limits = {limit for _sent, limit in busy}
    assert limits == {full // 2}  # SEND_YIELD 0.5 of the full speed, in every tick
    assert max(sent for sent, _limit in busy) <= full // 2  # and so fewer than at full speed (>= 2)

    by_rcpt = Counter(r for m in smtp.received for r in m.recipients)
    assert len(by_rcpt) == AUDIENCE and set(by_rcpt.values()) == {2}  # both digests, once each


async def test_a_stale_report_does_not_hold_sending_back(db: Database, settings: Settings) -> None:
    """A report older than a few seconds (an app process that stopped) counts as an idle web."""
    import datetime as dt

    async with transaction(db.sessions) as session:
        await report_activity(session, process="gone", busy=1.0, requests=50,
                              now=utcnow() - dt.timedelta(seconds=10))
    web_yield = web_yield_for(0.5, db.sessions)
    assert web_yield is not None
    await web_yield.refresh()
    assert web_yield.busy == 0.0
    async with transaction(db.sessions) as session:
        await report_activity(session, process="gone", busy=0.75, requests=50, now=utcnow())  # the same row again
    await web_yield.refresh()
    assert web_yield.busy == 0.75


async def test_an_app_serving_requests_reports_being_busy(db: Database, settings: Settings) -> None:
    """The app's own reporter (its lifespan) writes its row while requests keep it busy."""
    from service.activity import web_busy
    from service.app import create_app
    from tests.factories import new_client

    app = create_app(settings, sessions=db.sessions)
    busy = 0.0
    async with app.router.lifespan_context(app), new_client(app) as client:
        for _ in range(2000):  # requests back to back until a report says so (about a second)
            assert (await client.get("/archive")).status_code == 200
            async with db.sessions() as session:
                busy = await web_busy(session, now=utcnow())
            if busy > 0:
                break
    assert busy > 0
