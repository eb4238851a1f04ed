"""Helpers for bounce tests: events as an intake would make them, and the rows they leave."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from sqlalchemy import select

from service.admin.models import AuditEvent
from service.bounces.events import MailEvent
from service.bounces.models import BounceEvent
from service.bounces.policy import Outcome, record
from service.db import utcnow
from service.settings import Settings
from tests.conftest import Database

_keys = itertools.count(1)


def event(kind: str, recipient: str, *, token: str | None = None, source: str = "lmtp", key: str | None = None,
          at: dt.datetime | None = None, **kw: Any) -> MailEvent:
    return MailEvent(kind=kind, recipient=recipient, source=source, event_key=key or f"test-{next(_keys)}",
                     occurred_at=at or utcnow(), return_token=token, **kw)


async def record_one(db: Database, settings: Settings, mail_event: MailEvent) -> Outcome:
    async with db.sessions.begin() as session:
        return await record(session, mail_event, settings=settings)


async def stored_events(db: Database) -> list[BounceEvent]:
    async with db.sessions() as session:
        return list((await session.scalars(select(BounceEvent).order_by(BounceEvent.id))).all())


async def audit_rows(db: Database, action: str) -> list[AuditEvent]:
    async with db.sessions() as session:
        return list((await session.scalars(select(AuditEvent).where(AuditEvent.action == action))).all())


def token_of(sender: str) -> str:
    """The token of a VERP envelope sender as the SMTP server saw it."""
    local = sender.partition("@")[0]
    assert local.startswith("bounces+"), sender
    return local.removeprefix("bounces+")
