"""A campaign goes out in signup order, every time: deliveries are queued in subscriber order and
claimed in queue order, the rows of a dead worker (whose leases ran out) first.

On PostgreSQL a query without ORDER BY returns rows in the heap's physical order, which updates
and deleted-then-reused space scramble. The tests scramble it on purpose (updating rows newest
first) so that an order the engine does not ask for shows up as a failure on PostgreSQL."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from service.campaigns import queries as q
from service.campaigns.models import Delivery
from service.db import utcnow
from service.newsletter.models import Subscriber
from service.settings import Settings
from tests.conftest import Database
from tests.factories import add_subscriber, deliveries, make_campaign

ADDRESSES = [f"o{i:02d}@example.org" for i in range(12)]
LEASE = dt.timedelta(minutes=5)


async def _touch_newest_first(db: Database, model: type[Subscriber] | type[Delivery]) -> None:
    """Rewrite every row, highest id first, changing an indexed column and back, so that both
    the heap and the status indexes hold the new versions newest first."""
    async with db.sessions.begin() as session:
        rows = (await session.execute(select(model.id, model.status).order_by(model.id.desc()))).all()
        for ident, status in rows:
            await session.execute(update(model).where(model.id == ident).values(status="moving"))
            await session.execute(update(model).where(model.id == ident).values(status=status))


async def _claim(db: Database, campaign_id: int, limit: int, *, owner: str) -> list[str]:
    async with db.sessions.begin() as session:
        claimed = await q.claim_delivery_batch(session, campaign_id=campaign_id, owner=owner, limit=limit,
                                               lease=LEASE, now=utcnow())
        return [c.email for c in claimed]


async def test_deliveries_are_queued_in_signup_order(db: Database, settings: Settings) -> None:
    for address in ADDRESSES:
        await add_subscriber(db, address)
    await _touch_newest_first(db, Subscriber)

    campaign_id = await make_campaign(db, settings)

    assert [d.email for d in await deliveries(db, campaign_id)] == ADDRESSES


async def test_workers_claim_in_queue_order_and_a_dead_workers_rows_first(db: Database, settings: Settings) -> None:
    for address in ADDRESSES:
        await add_subscriber(db, address)
    campaign_id = await make_campaign(db, settings)
    assert await _claim(db, campaign_id, 4, owner="dead") == ADDRESSES[:4]
    await _touch_newest_first(db, Delivery)
    async with db.sessions.begin() as session:  # the dead worker's leases run out
        await session.execute(update(Delivery).where(Delivery.lease_owner == "dead")
                              .values(lease_expires_at=Delivery.created_at))

    assert await _claim(db, campaign_id, 2, owner="next") == ADDRESSES[:2]
    assert await _claim(db, campaign_id, 5, owner="next") == ADDRESSES[2:7]
    assert await _claim(db, campaign_id, 10, owner="next") == ADDRESSES[7:]
