"""Fixed-window rate limits kept in the database, so every app process shares them, and the one
rule that turns a client's address into the key a per-IP limit counts (`ip_limit_key`)."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import time
from typing import Any

from sqlalchemy import Integer, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, insert_for, rowcount
from service.settings import RateLimit


class RateLimitCounter(Base):
    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


IPV6_PREFIX = 64


def ip_limit_key(ip: str) -> str:
    """What a per-IP limit counts for `ip`: an IPv4 address alone (an IPv4-mapped IPv6 address
    counts as its IPv4 address), an IPv6 address by its /64 network, since one subscriber or
    host is handed a whole /64 and could otherwise walk past every limit. Anything that is not
    an address (a test client's name) is its own key."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


async def hit_rate_limit(session: AsyncSession, *, key: str, limit: RateLimit) -> bool:
    """Count one hit for `key`; True when it is within `limit`, False when over it."""
    now = time.time()
    window = int(now // limit.seconds) * limit.seconds
    expires = dt.datetime.fromtimestamp(window + limit.seconds, dt.UTC)
    stmt = _upsert_statement(insert_for(session))
    params = {"key": key, "window_start": window, "count": 1, "expires_at": expires}
    # Core on the session's connection: the ORM's execute path costs more than the statement
    count = (await (await session.connection()).execute(stmt, params)).scalar_one()
    return count <= limit.count


@functools.lru_cache(maxsize=2)
def _upsert_statement(insert: Any) -> Any:
    """Built once per dialect's `insert` (bound values only), so SQLAlchemy compiles it once."""
    table = RateLimitCounter.__table__
    return (
        insert(table)
        .on_conflict_do_update(index_elements=["key", "window_start"], set_={"count": table.c.count + 1})
        .returning(table.c.count)
    )


async def peek_rate_limit(session: AsyncSession, *, key: str, limit: RateLimit) -> int:
    """Hits counted for `key` in the current window."""
    window = int(time.time() // limit.seconds) * limit.seconds
    stmt = select(func.coalesce(func.sum(RateLimitCounter.count), 0)).where(
        RateLimitCounter.key == key, RateLimitCounter.window_start == window
    )
    return int((await session.execute(stmt)).scalar_one())


async def purge_rate_limits(session: AsyncSession, *, now: dt.datetime) -> int:
    """Delete windows that have ended; returns how many rows went."""
    result = await session.execute(delete(RateLimitCounter).where(RateLimitCounter.expires_at < now))
    return rowcount(result)
