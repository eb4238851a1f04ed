"""Clicks counted in memory and written in batches: a click costs no database round trip.

Each app process keeps one `ClickCounter` (`app.state.clicks`). A click is judged at once by the
request rules of `service.insight.scanners` (HEAD, scanner user agents); a click that may be a
person's waits BURST_SECONDS "on probation", so that a burst of one client's clicks found later
still moves it to the scanners' count. `flush()` (every FLUSH_SECONDS from the app's lifespan,
and a last time with `final=True` on a graceful stop) adds what was counted to the database in
one transaction; when that fails the counts are kept for the next flush, so a click is counted
once, never twice, never lost while the process lives.

Distinct readers: a hash of the campaign, the client's address and its user agent, keyed with
today's salt (`todays_salt`, shared by the processes through the database and deleted after its
day). Nothing is ever stored against a subscriber; links carry no subscriber at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from service.db import Sessions, sleep_unless_stopped, transaction, utcnow
from service.insight.links import Link
from service.insight.queries import CountKey, ReaderKey, add_click_counts, add_click_readers, todays_salt
from service.insight.scanners import BURST_LINKS, BURST_SECONDS, request_rule

FLUSH_SECONDS = 1.0
MAX_READERS = 1_000_000  # kept in memory while the database is away; beyond it only clicks are counted
log = logging.getLogger("tidings.insight")


def reader_hash(salt: bytes, campaign_id: int, ip: str, user_agent: str) -> str:
    """16 hex characters naming a client for one campaign and one day, and nothing else."""
    data = f"{campaign_id}\n{ip}\n{user_agent}".encode("utf-8", "replace")
    return hashlib.blake2b(data, key=salt, digest_size=8).hexdigest()


@dataclass
class _Click:
    campaign_id: int
    link: int
    hour: dt.datetime
    day: dt.date
    reader: str
    at: float
    kind: str = "person"


@dataclass
class _Client:
    """One client's recent clicks of one campaign (for rule 3)."""

    clicks: deque[_Click] = field(default_factory=deque)
    links: dict[int, float] = field(default_factory=dict)  # link -> when last followed
    burst_until: float = -1.0


class ClickCounter:
    def __init__(self, sessions: Sessions, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.sessions = sessions
        self.clock = clock
        self.counts: dict[CountKey, int] = {}
        self.readers: set[ReaderKey] = set()
        self._probation: deque[_Click] = deque()
        self._recent: dict[tuple[int, str], _Client] = {}
        self._salt: tuple[dt.date, bytes] | None = None
        self._salt_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()

    async def salt(self, day: dt.date) -> bytes:
        """Today's salt, read (or made) once per process and day."""
        if self._salt is None or self._salt[0] != day:
            async with self._salt_lock:
                if self._salt is None or self._salt[0] != day:
                    async with transaction(self.sessions) as session:
                        self._salt = (day, bytes.fromhex(await todays_salt(session, day=day)))
        return self._salt[1]

    async def record(self, link: Link, *, method: str, ip: str, user_agent: str,
                     now: dt.datetime | None = None) -> str:
        """Count one click; the kind it was judged (person, head, agent, burst)."""
        now = now or utcnow()
        hour = now.replace(minute=0, second=0, microsecond=0)
        rule = request_rule(method, user_agent)
        if rule is not None:
            self._add((link.campaign_id, link.link, hour, rule))
            return rule
        try:
            reader = reader_hash(await self.salt(now.date()), link.campaign_id, ip, user_agent)
        except Exception as exc:  # the database is away: count the click, not the reader
            log.warning("click counted without its reader: the daily salt could not be read (%s)",
                        type(exc).__name__)
            self._add((link.campaign_id, link.link, hour, "person"))
            return "person"
        return self._judge(_Click(link.campaign_id, link.link, hour, now.date(), reader, self.clock()))

    def _judge(self, click: _Click) -> str:
        """Rule 3 (burst): put the click on probation, and move the client's recent clicks to the
        scanners' count when it followed more than BURST_LINKS different links in BURST_SECONDS."""
        key = (click.campaign_id, click.reader)
        state = self._recent.get(key)
        if state is None:
            state = self._recent[key] = _Client()
        since = click.at - BURST_SECONDS
        while state.clicks and state.clicks[0].at < since:
            state.clicks.popleft()
        state.clicks.append(click)
        state.links[click.link] = click.at
        self._probation.append(click)
        if state.burst_until >= click.at:
            click.kind = "burst"
        elif len(state.links) > BURST_LINKS and sum(1 for t in state.links.values() if t >= since) > BURST_LINKS:
            for earlier in state.clicks:
                earlier.kind = "burst"
        else:
            if len(state.links) > BURST_LINKS:  # forget links followed before the window
                state.links = {link: t for link, t in state.links.items() if t >= since}
            return click.kind
        state.burst_until = click.at + BURST_SECONDS
        return click.kind

    def _add(self, key: CountKey, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def _release(self, final: bool) -> None:
        """Move the clicks whose probation is over (all of them when `final`) into the counts."""
        horizon = self.clock() - BURST_SECONDS
        while self._probation and (final or self._probation[0].at < horizon):
            c = self._probation.popleft()
            self._add((c.campaign_id, c.link, c.hour, c.kind))
            if c.kind == "person" and len(self.readers) < MAX_READERS:
                self.readers.add((c.campaign_id, c.link, c.day, c.reader))
        for key in [k for k, c in self._recent.items() if (not c.clicks or c.clicks[-1].at < horizon)
                    and c.burst_until < horizon]:
            del self._recent[key]

    @property
    def pending(self) -> int:
        """Clicks counted here and not yet in the database."""
        return sum(self.counts.values()) + len(self._probation)

    async def flush(self, *, final: bool = False) -> int:
        """Write what was counted (and is off probation) to the database; the clicks written."""
        async with self._flush_lock:
            self._release(final)
            counts, readers = self.counts, self.readers
            if not counts and not readers:
                return 0
            self.counts, self.readers = {}, set()
            try:
                async with transaction(self.sessions) as session:
                    await add_click_counts(session, counts)
                    await add_click_readers(session, readers)
            except BaseException:
                for key, n in counts.items():  # kept for the next flush: counted once, not lost
                    self._add(key, n)
                self.readers |= readers
                raise
            return sum(counts.values())


async def run_flusher(counter: ClickCounter, stop: asyncio.Event) -> None:
    """Flush every FLUSH_SECONDS until `stop` is set, then once more with everything (graceful stop)."""
    failures = 0
    while not stop.is_set():
        await sleep_unless_stopped(stop, FLUSH_SECONDS)
        try:
            await counter.flush()
            failures = 0
        except Exception as exc:
            failures += 1
            if failures in (1, 10) or failures % 60 == 0:
                log.warning("click counts not written yet (%s); kept in memory, retrying", type(exc).__name__)
    with contextlib.suppress(Exception):
        await counter.flush(final=True)
    if counter.pending:
        log.error("%s clicks could not be written before the stop: the database did not answer", counter.pending)
