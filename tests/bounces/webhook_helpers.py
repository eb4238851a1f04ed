"""Helpers for webhook tests: the documented sample payloads, and what a request left behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from service.bounces.models import BounceEvent, WebhookNonce
from service.newsletter.models import Subscriber
from tests.conftest import Database

SAMPLES = Path(__file__).parent / "samples" / "webhooks"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


async def state(db: Database) -> tuple[int, int, dict[str, str]]:
    """(stored events, taken nonces, each subscriber's status): what a refused request must not change."""
    async with db.sessions() as session:
        events = await session.scalar(select(func.count()).select_from(BounceEvent))
        nonces = await session.scalar(select(func.count()).select_from(WebhookNonce))
        statuses = dict((await session.execute(select(Subscriber.email, Subscriber.status))).all())
    return int(events or 0), int(nonces or 0), statuses


async def statuses(db: Database) -> dict[str, str]:
    return (await state(db))[2]
