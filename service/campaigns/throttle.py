"""SEND_RATE as a token bucket shared by everything that sends campaigns in one process.

The cap is per worker process: N workers on one database send up to N x SEND_RATE together
(docs/digests.md says so). A rate of 0 means unlimited.
"""

from __future__ import annotations

import asyncio
import time
import weakref


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
