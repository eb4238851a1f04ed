"""Reports about nobody we keep (no subscriber, no inquiry) are deleted INQUIRY_RETENTION_DAYS
after they arrived, by the worker, with an audit row that counts them and names nobody; reports
about a subscriber stay with the subscriber."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from service.admin.models import AuditEvent
from service.bounces.models import BounceEvent
from service.bounces.retention import expire_reports_job
from service.db import utcnow
from service.loops import WorkerContext
from service.mail.transport import LocalMailboxTransport
from service.settings import Settings
from service.worker import default_loops
from tests.bounces.helpers import stored_events
from tests.conftest import Database
from tests.factories import add_subscriber


def _report(key: str, recipient: str, received: dt.datetime, subscriber_id: int | None = None) -> BounceEvent:
    return BounceEvent(event_key=key, kind="hard", source="webhook", recipient=recipient, recipient_key=recipient,
                       occurred_at=received, received_at=received, diagnostic="550 no such user", outcome="recorded",
                       subscriber_id=subscriber_id)


async def test_unlinked_reports_expire_and_a_subscribers_history_stays(db: Database, settings: Settings) -> None:
    sid = await add_subscriber(db, "kept@example.org")
    now = utcnow()
    old, recent = now - dt.timedelta(days=31), now - dt.timedelta(days=29)
    async with db.sessions.begin() as session:
        session.add_all([_report("old-stranger", "stranger@example.org", old),
                         _report("new-stranger", "newer@example.org", recent),
                         _report("old-subscriber", "kept@example.org", old, subscriber_id=sid)])
    ctx = WorkerContext(settings=settings.with_(inquiry_retention_days=30), sessions=db.sessions,
                        mailer=LocalMailboxTransport(db.sessions))
    assert "bounce-retention" in {loop.name for loop in default_loops(ctx.settings)}

    assert await expire_reports_job(ctx) == 1
    assert await expire_reports_job(ctx) == 0

    assert [e.event_key for e in await stored_events(db)] == ["new-stranger", "old-subscriber"]
    async with db.sessions() as session:
        (audit,) = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "bounce_retention"))).all()
    assert audit.detail == {"deleted": 1, "retention_days": 30} and "stranger" not in str(audit.target_id)
