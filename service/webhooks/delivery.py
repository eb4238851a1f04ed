"""The webhook worker: claims leased batches of due deliveries, posts them signed, and records
what happened, like the mail outbox (`service.mail.outbox`).

- A batch is claimed in one transaction (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's
  writers take turns), posted concurrently (up to WEBHOOK_CONCURRENCY at once per endpoint,
  over kept-alive connections), and each endpoint's outcomes written in one statement, fenced on
  the lease, as soon as that endpoint has answered them all, so two workers never post one
  delivery twice in a run without faults.
- One slow endpoint holds back only itself: a batch waits at most STRAGGLER_WAIT for it, then
  the lane goes on while its posts finish in the background (and record themselves); until they
  have, this worker claims nothing more of that endpoint. Without this a receiver that takes
  WEBHOOK_TIMEOUT to fail would delay every other endpoint's deliveries by as much, batch after
  batch. A worker that dies
  mid-batch leaves its rows leased; another claims them when the lease ends: delivery is at
  least once, and the `webhook-id` lets a receiver drop a repeat.
- A 2xx answer delivers. Errors, timeouts and any other answer are retried with backoff (10 s,
  20 s … 2 h, jittered) until a day after the event, then the delivery fails. A redirect fails
  at once: it is not followed (its target would escape the address check).
- Before every batch each endpoint's URL is checked and its host resolved once, and every
  address checked (`guard`); the connection goes to a checked address (`client`).
- An endpoint whose deliveries have all failed for a day is disabled, its queued deliveries
  failed, and the admins are told by email (through the mail outbox) and by a banner."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import random
import ssl
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import Sessions, utcnow
from service.settings import Settings
from service.webhooks import queries as q
from service.webhooks.client import Answer, WebhookClient
from service.webhooks.guard import RefusedEndpoint, Target, check_url, resolve
from service.webhooks.signing import webhook_headers

log = logging.getLogger("tidings.webhooks")

DISABLE_AFTER = dt.timedelta(days=1)
STRAGGLER_WAIT = 1.0  # seconds a batch waits for its slowest endpoint before its lane goes on


def backoff(attempts: int, *, base: float = 10.0, cap: float = 7200.0) -> dt.timedelta:
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return dt.timedelta(seconds=delay * random.uniform(0.5, 1.0))


def batch_lease(settings: Settings, *, batch_size: int, pipelines: int) -> dt.timedelta:
    """A lease longer than the slowest batch can take (every request to one endpoint running into
    WEBHOOK_TIMEOUT, WEBHOOK_CONCURRENCY at a time, all lanes' batches sharing them), with a
    margin: a batch still being posted is never claimed again by another worker."""
    rounds = -(-pipelines * batch_size // settings.webhook_concurrency) + 1
    return dt.timedelta(seconds=max(120.0, rounds * settings.webhook_timeout * 1.5))


class WebhookWorker:
    """Delivers due webhook deliveries; many may run at once against one database."""

    def __init__(self, sessions: Sessions, settings: Settings, *, owner: str, batch_size: int = 256,
                 lease: dt.timedelta | None = None, ssl_context: ssl.SSLContext | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, pipelines: int = 2) -> None:
        self.sessions = sessions
        self.settings = settings
        self.owner = owner
        self.batch_size = batch_size
        self.pipelines = pipelines
        self.lease = lease or batch_lease(settings, batch_size=batch_size, pipelines=pipelines)
        self.clock = clock
        self.client = WebhookClient(timeout=settings.webhook_timeout, ssl_context=ssl_context)
        self._limits: dict[int, asyncio.Semaphore] = {}
        self._posting: dict[int, set[asyncio.Task[None]]] = {}  # endpoint -> its groups still posting

    async def run_once(self) -> int:
        """Run `pipelines` lanes of batches at once (claim, post, record each), so that one
        batch's database round trips overlap another's requests; how many were claimed."""
        if self.pipelines == 1:
            return await self.run_batch()
        return sum(await asyncio.gather(*(self._lane() for _ in range(self.pipelines))))

    async def _lane(self, rounds: int = 4) -> int:
        """Up to `rounds` batches one after the other, while they come back full: lanes drift
        apart, so that one is posting while another is in the database."""
        total = 0
        for _ in range(rounds):
            n = await self.run_batch()
            total += n
            if n < self.batch_size:
                break
        return total

    async def run_batch(self) -> int:
        """Claim one batch (of endpoints not still posting an earlier one), post each delivery once
        and record the outcomes endpoint by endpoint; how many were claimed. Returns once every
        endpoint of the batch is done, or after STRAGGLER_WAIT with the slow ones left posting."""
        now = self.clock()
        async with self.sessions.begin() as session:
            batch = await q.claim_deliveries(session, owner=self.owner, limit=self.batch_size, lease=self.lease,
                                             now=now, skip_endpoints=sorted(self._posting))
            if not batch:
                return 0
            endpoints = await q.endpoint_keys(session, ids=sorted({c.endpoint_id for c in batch}), now=now)
        groups: dict[int, list[q.Claim]] = {}
        for claim in batch:
            groups.setdefault(claim.endpoint_id, []).append(claim)
        tasks = [self._start(ident, claims, endpoints[ident]) for ident, claims in groups.items()]
        done, _still_posting = await asyncio.wait(tasks, timeout=STRAGGLER_WAIT)
        for task in done:
            task.result()  # a failure to record reaches the loop (which logs it and backs off)
        return len(batch)

    def _start(self, ident: int, claims: list[q.Claim], endpoint: q.EndpointKeys) -> asyncio.Task[None]:
        task = asyncio.ensure_future(self._deliver(claims, endpoint))
        self._posting.setdefault(ident, set()).add(task)
        task.add_done_callback(functools.partial(self._finished, ident))
        return task

    def _finished(self, ident: int, task: asyncio.Task[None]) -> None:
        group = self._posting.get(ident, set())
        group.discard(task)
        if not group:
            self._posting.pop(ident, None)
        if not task.cancelled() and task.exception() is not None:
            # seen here for a straggler (nobody awaits it); its rows stay leased and are retried
            # when the lease ends
            log.warning("webhook deliveries to endpoint %s: %s", ident, task.exception())

    async def _deliver(self, claims: list[q.Claim], endpoint: q.EndpointKeys) -> None:
        """Post one endpoint's share of a batch (its URL checked and resolved once), then record it."""
        checked = asyncio.ensure_future(self._check(endpoint.url))
        answers = await asyncio.gather(*(self._post(c, endpoint, checked) for c in claims))
        await self._record(claims, answers, {endpoint.id: endpoint})

    async def settle(self) -> None:
        """Wait for the posts still running in the background (each records itself)."""
        while self._posting:
            await asyncio.wait({t for group in self._posting.values() for t in group})

    async def _check(self, url: str) -> tuple[Target, list[str]]:
        target = check_url(url, allow_http=self.settings.webhook_allow_http)
        return target, await resolve(target, allow_private=self.settings.webhook_allow_private)

    async def _post(self, claim: q.Claim, endpoint: q.EndpointKeys,
                    checked: asyncio.Task[tuple[Target, list[str]]]) -> Answer | RefusedEndpoint:
        if claim.payload is None:
            return Answer(None, error="the payload is gone (past the delivery log's retention)")
        try:
            target, addresses = await asyncio.shield(checked)
        except RefusedEndpoint as exc:
            return exc
        except (OSError, ValueError) as exc:
            return Answer(None, error=str(exc))
        body = claim.payload.encode()
        headers = webhook_headers(endpoint.secrets, msg_id=claim.msg_id, timestamp=int(time.time()), body=body)
        limit = self._limits.setdefault(endpoint.id, asyncio.Semaphore(self.settings.webhook_concurrency))
        async with limit:
            return await self.client.post(target, addresses, headers, body)

    async def _record(self, batch: list[q.Claim], answers: list[Answer | RefusedEndpoint],
                      endpoints: dict[int, q.EndpointKeys]) -> None:
        now = self.clock()
        outcomes: list[dict[str, Any]] = []
        ok: set[int] = set()
        bad: set[int] = set()
        for claim, answer in zip(batch, answers, strict=True):
            outcome = _outcome(claim, answer, now)
            outcomes.append(outcome)
            (ok if outcome["status"] == "delivered" else bad).add(claim.endpoint_id)
            if outcome["status"] != "delivered":
                log.info("webhook delivery %s (attempt %s): %s", claim.id, claim.attempts, outcome["error"])
        bad -= ok
        # The endpoints' failing streaks change only on news: spare the statements otherwise.
        recovered = sorted(i for i in ok if endpoints[i].failing_since is not None)
        started = sorted(i for i in bad if endpoints[i].failing_since is None)
        overdue = sorted(i for i in bad if (since := endpoints[i].failing_since) is not None
                         and since <= now - DISABLE_AFTER)
        async with self.sessions.begin() as session:
            await q.record_outcomes(session, owner=self.owner, outcomes=outcomes)
            if recovered or started:
                await q.note_endpoint_health(session, succeeded=recovered, failed=started, now=now)
            disabled = await q.disable_failing_endpoints(session, ids=overdue, failing_for=DISABLE_AFTER, now=now)
            for endpoint_id, url in disabled:
                log.warning("webhook endpoint %s (%s) disabled: every delivery failed for a day", endpoint_id, url)
                await notify_admins(session, self.settings, endpoint_id=endpoint_id, url=url)

    async def drain(self) -> int:
        """Run batches until nothing is due and nothing is still posting (tests and the CLI).

        A claim that skipped an endpoint still posting proves nothing about that endpoint's
        deliveries: if its group finished during the claim's round trip, `_posting` is empty by
        the time the claim returns 0, yet the deliveries it skipped are due. Only a claim that
        skipped nothing and found nothing ends the drain."""
        total = 0
        while True:
            skipped = bool(self._posting)
            if n := await self.run_batch():
                total += n
            elif self._posting:
                await self.settle()
            elif not skipped:
                return total

    def close(self) -> None:
        """Stop: posts still running are cancelled (their rows are claimed again when the lease ends)."""
        for group in self._posting.values():
            for task in group:
                task.cancel()
        self.client.close()


def _outcome(claim: q.Claim, answer: Answer | RefusedEndpoint, now: dt.datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"id": claim.id, "next": now, "delivered": None, "code": None, "body": None,
                              "ms": None, "error": None}
    if isinstance(answer, RefusedEndpoint):
        return {**values, "status": "failed", "error": f"refused: {answer}"}
    values.update(code=answer.status, body=answer.body or None, ms=answer.elapsed_ms)
    if answer.status is not None and 200 <= answer.status < 300:
        return {**values, "status": "delivered", "delivered": now}
    if answer.status is not None and 300 <= answer.status < 400:
        where = f" to {answer.location}" if answer.location else ""
        return {**values, "status": "failed",
                "error": f"HTTP {answer.status}: a redirect{where}, not followed; register the final URL"}
    error = answer.error or "no answer"
    if now >= claim.retry_until:
        return {**values, "status": "failed", "error": f"gave up after {claim.attempts} attempts in a day: {error}"}
    return {**values, "status": "queued", "next": min(now + backoff(claim.attempts), claim.retry_until),
            "error": error}


async def notify_admins(session: AsyncSession, settings: Settings, *, endpoint_id: int, url: str) -> None:
    """Email every active admin that an endpoint was disabled (queued in the mail outbox)."""
    from service.admin.brand import brand_context, load_brand
    from service.admin.models import StaffUser
    from service.mail.outbox import queue_email

    brand = await load_brand(session, settings)
    admins = (await session.scalars(select(StaffUser.email).where(StaffUser.role == "admin",
                                                                   StaffUser.active.is_(True)))).all()
    for address in admins:
        await queue_email(session, kind="webhook_disabled", sender=settings.mail_from, to=address,
                          subject=f"Webhook endpoint #{endpoint_id} disabled", template="webhook_disabled",
                          ctx={**brand_context(brand), "endpoint_id": endpoint_id, "url": url,
                               "admin_url": f"{settings.base_url}/admin/webhooks/{endpoint_id}"},
                          headers={"Auto-Submitted": "auto-generated"})
