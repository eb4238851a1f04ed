"""The campaign delivery engine: claim a leased batch, send it in small chunks, record results.

- A batch (default 500 deliveries) is claimed in one short transaction with a lease; the rows
  stay 'sending' and fenced on this worker's owner id until their results are written.
- The batch is sent in chunks covering at most ~0.1 s of sending at SEND_RATE (at most 200).
  Before each chunk the campaign's status is read again, so pause and cancel take effect within
  a second; unsent rows of the batch are handed back at once.
- Each chunk's results are written in ONE transaction (executemany, fenced on the lease owner):
  a few commits per second, not one per message.
- 4xx and dropped connections are retried with exponential backoff until OUTBOX_MAX_AGE after the
  delivery was queued (as transactional mail is); 5xx fails the delivery at once, and a 5xx on
  the recipient also suppresses the address as bounced.
- A worker killed mid-batch leaves its rows 'sending'; another claims them when the lease runs
  out. Messages whose SMTP answer arrived but whose chunk was not yet committed are sent again
  then (at-least-once within one chunk), with the same Message-ID, so receivers see the same
  message; the unique (campaign, subscriber) key means nobody can get a second, different one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from service.admin.brand import load_brand
from service.campaigns import queries as q
from service.campaigns.message import MessageFactory
from service.campaigns.render import DigestTemplate, build_digest
from service.campaigns.skips import skip_reason_for_status
from service.campaigns.throttle import TokenBucket, WebYield, process_bucket
from service.db import Sessions, transaction, utcnow
from service.i18n import pick_language
from service.mail.bulk import BulkTransport, Outcome, Outgoing
from service.mail.dkim import DkimSigner
from service.mail.outbox import retry_time
from service.mail.redact import redact
from service.mail.smtp import PermanentFailure
from service.newsletter.tokens import unsubscribe_url
from service.settings import Settings
from service.tokens import Tokens

log = logging.getLogger("tidings.campaigns")

MAX_CHUNK = 200
NO_MATCH = "not sent: no article matches the subscriber's topics"


@dataclass
class Prepared:
    template: DigestTemplate  # in the install's LANGUAGE
    factory: MessageFactory
    updated_at: dt.datetime
    build: Callable[[str], DigestTemplate] | None = None  # the same campaign in another language
    others: dict[str, DigestTemplate] = field(default_factory=dict)

    def template_for(self, lang: str) -> DigestTemplate:
        """The digest with its fixed texts in `lang`, rendered once per campaign and language."""
        if lang == self.template.lang or self.build is None:
            return self.template
        if lang not in self.others:
            self.others[lang] = self.build(lang)
        return self.others[lang]


@dataclass
class ChunkResult:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0


Progress = Callable[[ChunkResult], None]


class CampaignSender:
    """Sends the deliveries of 'sending' campaigns; many may run at once against one database."""

    def __init__(
        self,
        sessions: Sessions,
        settings: Settings,
        transport: BulkTransport,
        *,
        owner: str,
        batch_size: int = 500,
        lease: dt.timedelta = dt.timedelta(minutes=5),
        backoff_base: float = 30.0,
        backoff_cap: float = 1800.0,
        max_age: dt.timedelta | None = None,
        bucket: TokenBucket | None = None,
        signer: DkimSigner | None = None,
        on_progress: Progress | None = None,
        web_yield: WebYield | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.transport = transport
        self.owner = owner
        self.batch_size = batch_size
        self.lease = lease
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_age = max_age if max_age is not None else dt.timedelta(seconds=settings.outbox_max_age)
        self.bucket = bucket or process_bucket(settings.send_rate)
        self.signer = signer
        self.on_progress = on_progress
        self.web_yield = web_yield  # SEND_YIELD: slower while the web is busy
        self.tokens = Tokens(settings)
        self._prepared: dict[int, Prepared] = {}
        rate = self.bucket.rate
        self.chunk_size = MAX_CHUNK if rate <= 0 else max(1, min(MAX_CHUNK, int(rate / 10)))

    async def take(self) -> None:
        """Wait until the next message may go: SEND_RATE, then SEND_YIELD."""
        await self.bucket.take()
        if self.web_yield is not None:
            await self.web_yield.take()

    # -- rendering once per campaign ------------------------------------------------------------

    async def prepare(self, campaign_id: int) -> Prepared:
        """The campaign's rendered digest and message factory, cached until the campaign changes."""
        async with self.sessions() as session:
            campaign = await q.get_campaign(session, campaign_id=campaign_id)
            cached = self._prepared.get(campaign_id)
            if cached is not None and cached.updated_at == campaign.updated_at:
                return cached
            articles = await q.campaign_articles(session, campaign_id=campaign_id)
            brand = await load_brand(session, self.settings)
            await session.commit()  # the brand row may have been created just now
        def build(lang: str | None = None) -> DigestTemplate:
            return build_digest(self.settings, subject=campaign.subject, preheader=campaign.preheader,
                                intro=campaign.intro, articles=articles, slug=campaign.slug,
                                brand=brand, body=campaign.body, lang=lang, campaign_id=campaign.id)

        template = build()
        factory = MessageFactory.for_campaign(self.settings, campaign_id=campaign_id, subject=campaign.subject,
                                              install_id=brand.install_id, signer=self.signer,
                                              org_name=brand.name)
        prepared = self._prepared[campaign_id] = Prepared(template, factory, campaign.updated_at, build)
        return prepared

    # -- the loop -------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """One batch of the first sending campaign with work due; returns how many were claimed."""
        async with self.sessions() as session:
            campaign_ids = await q.sending_campaign_ids(session)
        for campaign_id in campaign_ids:
            claimed = await self.send_batch(campaign_id)
            if claimed:
                return claimed
        return 0

    async def run_campaign(self, campaign_id: int, stop: asyncio.Event | None = None) -> str:
        """Send one campaign until it is done, paused, cancelled or `stop` is set; its final status."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            if await self.send_batch(campaign_id, stop):
                continue
            async with self.sessions() as session:
                status = await q.campaign_status(session, campaign_id=campaign_id)
            if status != "sending":
                return status or "missing"
            # Only retries (or another worker's leases) remain: wait a little for them.
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except TimeoutError:
                pass
        async with self.sessions() as session:
            return await q.campaign_status(session, campaign_id=campaign_id) or "missing"

    async def send_batch(self, campaign_id: int, stop: asyncio.Event | None = None) -> int:
        """Claim a batch of this campaign and send it; 0 when nothing was due."""
        now = utcnow()
        async with transaction(self.sessions) as session:
            if await q.campaign_status(session, campaign_id=campaign_id) != "sending":
                return 0
            claimed = await q.claim_delivery_batch(session, campaign_id=campaign_id, owner=self.owner,
                                                   limit=self.batch_size, lease=self.lease, now=now)
            if not claimed:
                await q.finish_campaign_if_done(session, campaign_id=campaign_id, now=now)
                return 0
        try:
            prepared = await self.prepare(campaign_id)
            async with self.sessions() as session:
                recipients = await q.load_recipients(session, subscriber_ids=[c.subscriber_id for c in claimed])
        except BaseException:
            await self._release([c.id for c in claimed])
            raise
        await _Batch(self, prepared, campaign_id, claimed, recipients, stop).run()
        async with transaction(self.sessions) as session:
            await q.finish_campaign_if_done(session, campaign_id=campaign_id, now=utcnow())
        return len(claimed)

    async def _release(self, ids: list[int]) -> None:
        if ids:
            async with transaction(self.sessions) as session:
                await q.release_deliveries(session, owner=self.owner, ids=ids)


class _Batch:
    """One claimed batch streamed through the transport: connections pull the next message as
    soon as they are free, results are written in groups by a background task (so sending never
    waits for the database), and a watcher re-reads the campaign status every STATUS_EVERY s."""

    STATUS_EVERY = 0.25

    def __init__(self, sender: CampaignSender, prepared: Prepared, campaign_id: int, claimed: list[q.Claimed],
                 recipients: dict[int, q.Recipient], stop: asyncio.Event | None) -> None:
        self.s = sender
        self.prepared = prepared
        self.campaign_id = campaign_id
        self.pending = deque(claimed)
        self.recipients = recipients
        self.stop = stop
        self.halted = False
        self.rows: dict[str, list[Any]] = _empty_rows()
        self.buffered = 0
        self.writes: list[asyncio.Task[None]] = []
        self.write_lock = asyncio.Lock()

    def next_item(self) -> tuple[q.Claimed, Outgoing] | None:
        """The next message to send, or None when the batch is done or halted."""
        factory = self.prepared.factory
        while self.pending and not self.halted:
            claim = self.pending.popleft()
            person = self.recipients.get(claim.subscriber_id)
            if person is None or not person.mailable:
                self._add("skipped", {"id": claim.id, "response": f"not sent: the subscriber is "
                                                                   f"{person.status if person else 'deleted'}",
                                      "skip_reason": skip_reason_for_status(person.status if person else None)})
                continue
            url = unsubscribe_url(self.s.settings, self.s.tokens, claim.subscriber_id)
            template = self.prepared.template_for(pick_language(person.language, self.s.settings.language))
            bodies = template.encode_for(name=person.name, topics=person.topics, unsubscribe_url=url,
                                         relaxed=factory.signer is not None)
            if bodies is None:
                self._add("skipped", {"id": claim.id, "response": NO_MATCH, "skip_reason": "no_article"})
                continue
            try:
                message_id, raw = factory.build(delivery_id=claim.id, to_email=claim.email, to_name=person.name,
                                                html_qp=bodies.html, text_qp=bodies.text, unsubscribe_url=url,
                                                html_relaxed=bodies.html_relaxed, text_relaxed=bodies.text_relaxed)
            except ValueError as exc:  # HeaderInjectionError: these bytes must not go out
                self._add("failed", {"id": claim.id, "message_id": factory.message_id(claim.id),
                                     "response": f"not sent: {exc}", "bounced": False})
                continue
            return claim, Outgoing(factory.envelope_for(claim.id), claim.email, factory.subject, message_id, raw)
        return None

    def done(self, claim: q.Claimed, item: Outgoing, outcome: Outcome) -> None:
        """Classify one result: sent, retry later (4xx, dropped), or failed (5xx / past OUTBOX_MAX_AGE)."""
        if isinstance(outcome, str):
            self._add("sent", {"id": claim.id, "message_id": item.message_id, "response": outcome, "sent_at": utcnow()})
        elif isinstance(outcome, PermanentFailure):
            self._add("failed", {"id": claim.id, "message_id": item.message_id, "response": str(outcome),
                                 "bounced": outcome.recipient_refused})
            if outcome.recipient_refused:
                self.rows["bounced"].append((claim.subscriber_id, str(outcome)))
        elif (retry_at := retry_time(claim.created_at, claim.attempts, now=utcnow(), max_age=self.s.max_age,
                                     base=self.s.backoff_base, cap=self.s.backoff_cap)) is None:
            self._add("failed", {"id": claim.id, "message_id": item.message_id,
                                 "response": f"gave up after {claim.attempts} attempts: {outcome}"})
        else:
            self._add("retry", {"id": claim.id, "error": str(outcome), "retry_at": retry_at})

    def _add(self, kind: str, row: dict[str, Any]) -> None:
        self.rows[kind].append(row)
        self.buffered += 1
        if self.buffered >= self.s.chunk_size:
            self._flush()

    def _flush(self) -> None:
        if self.buffered:
            rows, self.rows, self.buffered = self.rows, _empty_rows(), 0
            self.writes.append(asyncio.create_task(self._write(rows)))

    async def _write(self, rows: dict[str, list[Any]]) -> None:
        owner, now = self.s.owner, utcnow()
        async with self.write_lock, transaction(self.s.sessions) as session:
            await q.mark_deliveries_sent(session, owner=owner, rows=rows["sent"])
            await q.mark_deliveries_retry(session, owner=owner, rows=rows["retry"])
            await q.mark_deliveries_done(session, owner=owner, status="failed", rows=rows["failed"])
            await q.mark_deliveries_done(session, owner=owner, status="skipped", rows=rows["skipped"])
            for subscriber_id, reason in rows["bounced"]:
                await q.suppress_bounced(session, subscriber_id=subscriber_id, reason=reason, now=now)
        if rows["retry"]:
            log.warning("campaign %s: %s deliveries will be retried (%s)", self.campaign_id, len(rows["retry"]),
                        redact(rows["retry"][0]["error"]))
        if self.s.on_progress is not None:
            self.s.on_progress(ChunkResult(len(rows["sent"]), len(rows["failed"]), len(rows["retry"]),
                                           len(rows["skipped"])))

    async def watch(self) -> None:
        while not self.halted:
            await asyncio.sleep(self.STATUS_EVERY)
            self._flush()
            async with self.s.sessions() as session:
                status = await q.campaign_status(session, campaign_id=self.campaign_id)
            if status != "sending" or (self.stop is not None and self.stop.is_set()):
                self.halted = True

    async def run(self) -> None:
        if self.stop is not None and self.stop.is_set():
            self.halted = True
        watcher = asyncio.create_task(self.watch())
        try:
            await self.s.transport.send_stream(self.next_item, self.done, self.s.take)
        finally:
            watcher.cancel()
            self._flush()
            results = await asyncio.gather(*self.writes, return_exceptions=True)
            await self.s._release([c.id for c in self.pending])
            with suppress(asyncio.CancelledError):
                await watcher
        for result in results:
            if isinstance(result, BaseException):
                raise result


def _empty_rows() -> dict[str, list[Any]]:
    return {"sent": [], "retry": [], "failed": [], "skipped": [], "bounced": []}
