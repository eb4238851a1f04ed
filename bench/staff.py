"""Staff page views at a fixed arrival rate, shared by bench/admin.py and bench/million.py.

Their saturated runs have each staff member click again the moment a page arrives (a closed
loop): that finds the throughput limit, and its p95 is mostly time spent waiting in line behind
the other staff. Here page views arrive at a set rate whether or not earlier ones have come back
(an open loop, Poisson arrivals, seeded), so a slow page does not slow the arrivals down and the
p95 is what a person at the desk feels at that load.
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx


async def paced_views(staff: list[httpx.AsyncClient], urls: dict[str, str], rate: float,
                      seconds: float) -> dict[str, list[float]]:
    """Milliseconds per page name: `rate` views a second in all for `seconds`, each by the next
    of the signed-in `staff` clients in turn, every page once first and then pages at random.
    Every client opens every page once beforehand (caches, prepared statements), untimed."""
    for c in staff:
        for url in urls.values():
            r = await c.get(url)
            assert r.status_code == 200, (url, r.status_code)
    timings: dict[str, list[float]] = {name: [] for name in urls}
    pages = list(urls.items())
    rng = random.Random(7)

    async def view(c: httpx.AsyncClient, name: str, url: str) -> None:
        started = time.perf_counter()
        r = await c.get(url)
        timings[name].append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, (url, r.status_code)

    tasks = []
    start = time.perf_counter()
    due, i = 0.0, 0
    while due < seconds:
        delay = start + due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        name, url = pages[i] if i < len(pages) else rng.choice(pages)
        tasks.append(asyncio.create_task(view(staff[i % len(staff)], name, url)))
        i += 1
        due += rng.expovariate(rate)
    await asyncio.gather(*tasks)
    return timings
