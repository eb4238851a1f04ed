"""Fixed-window rate limits kept in the database, so every app process shares them."""

from __future__ import annotations

import datetime as dt
import functools
import time
from typing import Any

from sqlalchemy import Integer, String, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime
from service.settings import RateLimit


class RateLimitCounter(Base):
    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


async def hit_rate_limit(session: AsyncSession, *, key: str, limit: RateLimit) -> bool:
    """Count one hit for `key`; True when it is within `limit`, False when over it."""
    now = time.time()
    window = int(now // limit.seconds) * limit.seconds
    expires = dt.datetime.fromtimestamp(window + limit.seconds, dt.UTC)
    stmt = _upsert_statement(session.bind.dialect.name)
    params = {"key": key, "window_start": window, "count": 1, "expires_at": expires}
    count = (await session.execute(stmt, params)).scalar_one()
    return count <= limit.count


@functools.lru_cache(maxsize=2)
def _upsert_statement(dialect: str) -> Any:
    """Built once per dialect (bound values only), so SQLAlchemy compiles it once."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
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
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
