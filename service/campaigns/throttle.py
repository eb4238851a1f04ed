"""How fast campaigns go: SEND_RATE as a token bucket shared by everything that sends campaigns
in one process, and SEND_YIELD, which slows sending down while the web is busy (`WebYield`).

The cap is per worker process: N workers on one database send up to N x SEND_RATE together
(docs/digests.md says so). A rate of 0 means unlimited.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable

from service.activity import web_busy
from service.db import Sessions, utcnow

log = logging.getLogger("tidings.campaigns")
BUSY_FULL = 0.5  # an app process with a request in flight half the time or more: the full SEND_YIELD


class TokenBucket:
    """`rate` tokens per second, bursts of at most `burst` (default: a tenth of a second's worth)."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate / 10)
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    async def take(self) -> None:
        """Wait until one message may go."""
        if self.rate <= 0:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


_BUCKETS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, TokenBucket]] = (
    weakref.WeakKeyDictionary())


def process_bucket(rate: float) -> TokenBucket:
    """The one bucket of this process and event loop for `rate` (a bucket's lock belongs to one
    loop: a second `asyncio.run` in the same process, e.g. two commands run through `main()`,
    gets a bucket of its own)."""
    buckets = _BUCKETS.setdefault(asyncio.get_running_loop(), {})
    bucket = buckets.get(rate)
    if bucket is None:
        bucket = buckets[rate] = TokenBucket(rate)
    return bucket


class WebYield:
    """Campaign sending gives way to the web (SEND_YIELD, the share `share`).

    Sending is counted in ticks of TICK seconds. While no app process reports being busy, a tick
    sends as much as it can, and the most any of the last WINDOW such ticks sent is taken as the
    worker's full speed. While the web is busy (`busy`, 0 to 1: the busiest app process's share
    of the last second with a request in flight, `service.activity`), a tick sends at most
    full x (1 - share x min(1, busy / BUSY_FULL)) messages, then the sender waits for the next
    tick, leaving the CPU, the database and the SMTP server to the requests. `busy` is read in
    the background every REFRESH seconds; sending never waits for that read."""

    TICK = 0.1
    REFRESH = 0.5
    WINDOW = 50

    def __init__(self, share: float, read_busy: Callable[[], Awaitable[float]]) -> None:
        self.share = share
        self.read_busy = read_busy
        self.busy = 0.0
        self.full: deque[int] = deque(maxlen=self.WINDOW)  # messages of recent unthrottled ticks
        self.ticks: deque[tuple[int, int | None]] = deque(maxlen=10_000)  # (sent, limit) of past ticks
        self._start = time.monotonic()
        self._sent = 0
        self._limit: int | None = None
        self._read_at = float("-inf")
        self._reading: asyncio.Task[None] | None = None

    def limit(self) -> int | None:
        """The most a tick may send now; None: no limit."""
        factor = 1 - self.share * min(1.0, self.busy / BUSY_FULL)
        if factor >= 1 or not self.full:
            return None
        return max(1, int(max(self.full) * factor))

    async def refresh(self) -> None:
        """Read how busy the web is now (a failed read counts as idle: sending must not stop)."""
        self._read_at = time.monotonic()
        try:
            self.busy = await self.read_busy()
        except Exception as exc:
            log.debug("cannot read web activity: %s", exc)
            self.busy = 0.0

    async def take(self) -> None:
        """Wait until one more message may go in this tick."""
        now = time.monotonic()
        if now - self._read_at >= self.REFRESH and (self._reading is None or self._reading.done()):
            self._read_at = now
            self._reading = asyncio.create_task(self.refresh())
        while True:
            if now - self._start >= self.TICK:
                self._next_tick(now)
            if self._limit is None or self._sent < self._limit:
                self._sent += 1
                return
            await asyncio.sleep(self._start + self.TICK - now)
            now = time.monotonic()

    def _next_tick(self, now: float) -> None:
        self.ticks.append((self._sent, self._limit))
        if self._limit is None and self._sent:
            self.full.append(self._sent)
        self._start, self._sent, self._limit = now, 0, self.limit()


def web_yield_for(share: float, sessions: Sessions) -> WebYield | None:
    """The sender's WebYield reading the app processes' reports from the database; None when
    SEND_YIELD is 0."""
    if share <= 0:
        return None

    async def read_busy() -> float:
        async with sessions() as session:
            return await web_busy(session, now=utcnow())

    return WebYield(share, read_busy)
