"""What a bounce or complaint does, written once; every intake (LMTP, pipe, mailbox, webhooks)
calls `record` or `record_many`.

- The same report twice counts once: the event key is unique, a second copy changes nothing.
- A report from a route anybody can write to (an email: LMTP, a pipe, the bounce mailbox)
  counts only with a verified return token (`service.bounces.returnpath`): a forged or unknown
  token, or none, changes nothing. Provider webhooks are authenticated by their signature before
  they get here, so their events are matched by our Message-ID, else by the address.
- hard: the subscriber is suppressed at once (status "bounced", the values
  `newsletter.flows.mark_bounced` sets),
  the delivery counts as bounced in its campaign.
- soft: suppressed once SOFT_BOUNCE_LIMIT soft bounces of the address happened within
  SOFT_BOUNCE_DAYS (counting only those since the subscriber last confirmed).
- complaint: unsubscribed for good (status "complained", with the time beside the consent
  evidence on the subscriber's row; as `newsletter.flows.mark_complained`).
- A hard bounce (or a soft one reaching the limit) of an inquiry's automatic answer flags the
  inquiry: the address does not work, staff should call.
Every change staff can see writes an audit row by `bounce:<source>`.

`record_many` does this for a batch in a fixed number of statements (the look-ups in one SELECT
per table, the events in one INSERT, grouped UPDATEs, one audit INSERT) and gives exactly what
recording the events one by one in that order would: the policy runs over the batch in memory,
in order, on the state read once. `record` is the batch of one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import insert_audits
from service.bounces import queries
from service.bounces.events import EMAIL_SOURCES, MailEvent
from service.bounces.returnpath import ReturnToken, read_token
from service.campaigns.queries import DeliveryRef, find_deliveries, mark_deliveries_bounced
from service.db import utcnow
from service.inquiries.queries import flag_inquiries_bounced, unflagged_inquiries
from service.mail.outbox import OutboxRef, find_outbox_messages
from service.newsletter import queries as subscribers
from service.settings import Settings
from service.validation import email_key

AUTOREPLY_KIND = "inquiry_autoreply"


@dataclass(frozen=True)
class Outcome:
    """What `record` did. `action`: rejected (nothing changed: a forged, unknown or missing return
    token on an emailed report), duplicate (already recorded), recorded (stored, nothing else to
    do), counted (a soft bounce below the limit), suppressed, unsubscribed (a complaint), flagged
    (only an inquiry was flagged)."""

    action: str
    reason: str = ""
    event_id: int | None = None
    subscriber_id: int | None = None
    inquiry_id: int | None = None

    @property
    def stored(self) -> bool:
        return self.event_id is not None


@dataclass(frozen=True)
class _Target:
    address: str
    delivery: DeliveryRef | None = None
    outbox: OutboxRef | None = None


@dataclass
class _Sub:
    """A subscriber's row as the batch changes it, in memory."""

    id: int
    status: str
    confirmed_at: dt.datetime | None
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # status -> the UPDATE's values


@dataclass
class _State:
    """Everything a batch reads, once, before the policy runs over its events."""

    deliveries: dict[int, DeliveryRef] = field(default_factory=dict)
    deliveries_by_mid: dict[str, DeliveryRef] = field(default_factory=dict)
    outbox: dict[int, OutboxRef] = field(default_factory=dict)
    outbox_by_mid: dict[str, OutboxRef] = field(default_factory=dict)
    subs: dict[int, _Sub] = field(default_factory=dict)
    subs_by_key: dict[str, _Sub] = field(default_factory=dict)
    soft: dict[str, list[dt.datetime]] = field(default_factory=dict)  # recipient key -> soft bounces
    unflagged: set[int] = field(default_factory=set)  # inquiries not flagged yet
    flags: dict[int, str] = field(default_factory=dict)  # inquiry -> diagnostic, flagged by this batch
    bounced_deliveries: set[int] = field(default_factory=set)
    audits: list[dict[str, Any]] = field(default_factory=list)


def _token(event: MailEvent, settings: Settings) -> ReturnToken | str | None:
    """The verified return token, None when the event has none, or why it cannot count."""
    if event.return_token is not None:
        return read_token(settings, event.return_token) or "the return path's token does not verify"
    if event.source in EMAIL_SOURCES:
        return "an emailed report without our return path"
    return None


def _target(event: MailEvent, token: ReturnToken | None, state: _State) -> _Target | str:
    """The message the event is about, or why it cannot count."""
    if token is not None:
        if token.kind == "delivery":
            delivery = state.deliveries.get(token.id)
            return _Target(delivery.email, delivery=delivery) if delivery else "no such campaign delivery"
        outbox = state.outbox.get(token.id)
        return _Target(parseaddr(outbox.recipient)[1], outbox=outbox) if outbox else "no such outbox message"
    delivery = state.deliveries_by_mid.get(event.message_id) if event.message_id else None
    if delivery is not None and email_key(delivery.email) == email_key(event.recipient):
        return _Target(delivery.email, delivery=delivery)
    outbox = state.outbox_by_mid.get(event.message_id) if event.message_id else None
    if outbox is not None and email_key(parseaddr(outbox.recipient)[1]) == email_key(event.recipient):
        return _Target(parseaddr(outbox.recipient)[1], outbox=outbox)
    return _Target(event.recipient)


async def _load_messages(session: AsyncSession, tokens: list[ReturnToken | str | None], events: Sequence[MailEvent],
                         state: _State) -> None:
    """The deliveries and outbox messages the events name (by token, else by Message-ID)."""
    delivery_ids = {t.id for t in tokens if isinstance(t, ReturnToken) and t.kind == "delivery"}
    outbox_ids = {t.id for t in tokens if isinstance(t, ReturnToken) and t.kind != "delivery"}
    mids = {e.message_id for e, t in zip(events, tokens, strict=True) if t is None and e.message_id}
    if delivery_ids or mids:
        for ref, mid, person in await find_deliveries(session, ids=delivery_ids, message_ids=mids):
            state.deliveries[ref.id] = ref
            if person is not None:
                _add_sub(state, *person)
            if mid in mids:
                state.deliveries_by_mid.setdefault(mid, ref)
    if outbox_ids or mids:
        for message, mid in await find_outbox_messages(session, ids=outbox_ids, message_ids=mids):
            state.outbox[message.id] = message
            if mid in mids:
                state.outbox_by_mid.setdefault(mid, message)


async def _load_people(session: AsyncSession, targets: list[_Target | str], events: Sequence[MailEvent],
                       settings: Settings, state: _State) -> None:
    """The subscribers, soft-bounce history and inquiries the targets concern."""
    ids = {t.delivery.subscriber_id for t in targets if isinstance(t, _Target) and t.delivery} - state.subs.keys()
    keys = {email_key(t.address) for t in targets if isinstance(t, _Target) and not t.delivery and t.address}
    keys -= state.subs_by_key.keys()  # read with their deliveries
    for row in await subscribers.subscriber_states(session, ids=ids, email_keys=keys):
        _add_sub(state, row.id, row.email_key, row.status, row.confirmed_at)
    recipient_keys = {email_key(t.address) for t, e in zip(targets, events, strict=True)
                      if isinstance(t, _Target) and e.kind == "soft"}  # only a soft bounce counts them
    since = utcnow() - dt.timedelta(days=settings.soft_bounce_days)
    state.soft = await queries.soft_bounce_times(session, recipient_keys=recipient_keys, since=since)
    inquiry_ids = {t.outbox.inquiry_id for t in targets
                   if isinstance(t, _Target) and t.outbox and t.outbox.inquiry_id is not None}
    state.unflagged = await unflagged_inquiries(session, inquiry_ids)


def _add_sub(state: _State, sub_id: int, key: str, status: str, confirmed_at: dt.datetime | None) -> None:
    """A subscriber as read, once: a second read (by address after by delivery) keeps the first."""
    if sub_id not in state.subs:
        state.subs[sub_id] = state.subs_by_key[key] = _Sub(sub_id, status, confirmed_at)


def _row(event: MailEvent, target: _Target, sub: _Sub | None, now: dt.datetime) -> dict[str, Any]:
    return {
        "event_key": event.event_key, "kind": event.kind, "source": event.source,
        "recipient": target.address[:320], "recipient_key": email_key(target.address)[:320],
        "occurred_at": event.occurred_at, "received_at": now, "diagnostic": event.diagnostic,
        "status": event.status, "message_id": event.message_id,
        "outcome": "recorded", "subscriber_id": sub.id if sub else None,
        "campaign_id": target.delivery.campaign_id if target.delivery else None,
        "delivery_id": target.delivery.id if target.delivery else None,
        "outbox_message_id": target.outbox.id if target.outbox else None,
        "inquiry_id": target.outbox.inquiry_id if target.outbox else None,
    }


async def record(session: AsyncSession, event: MailEvent, *, settings: Settings) -> Outcome:
    """Record one event and apply the policy, in the caller's transaction; idempotent."""
    return (await record_many(session, [event], settings=settings))[0]


async def record_many(session: AsyncSession, events: Sequence[MailEvent], *, settings: Settings) -> list[Outcome]:
    """Record a batch of events in the caller's transaction, with the outcome of each, in order:
    the same as `record` for each in turn, in a fixed number of statements."""
    if not events:
        return []
    tokens = [_token(e, settings) for e in events]
    state = _State()
    await _load_messages(session, tokens, events, state)
    targets: list[_Target | str] = [t if isinstance(t, str) else _target(e, t, state)
                                    for e, t in zip(events, tokens, strict=True)]
    await _load_people(session, targets, events, settings, state)
    now = utcnow()
    subs = [_subscriber_of(t, state) for t in targets]
    rows: dict[str, dict[str, Any]] = {}
    for event, target, sub in zip(events, targets, subs, strict=True):
        if isinstance(target, _Target):
            rows.setdefault(event.event_key, _row(event, target, sub, now))
    ids = await queries.insert_events(session, list(rows.values()))
    outcomes: list[Outcome] = []
    outcome_updates: dict[str, list[int]] = {}
    for event, target, sub in zip(events, targets, subs, strict=True):
        if isinstance(target, str):
            outcomes.append(Outcome("rejected", reason=target))
            continue
        event_id = ids.pop(event.event_key, None)  # a second copy in the batch is a duplicate too
        if event_id is None:
            outcomes.append(Outcome("duplicate", reason="this report was recorded before"))
            continue
        action = _apply(event, settings=settings, event_id=event_id, target=target, sub=sub, state=state, now=now)
        if action != "recorded":
            outcome_updates.setdefault(action, []).append(event_id)
        inquiry_id = target.outbox.inquiry_id if target.outbox else None
        outcomes.append(Outcome(action, event_id=event_id, subscriber_id=sub.id if sub else None,
                                inquiry_id=inquiry_id))
    await _write(session, state, outcome_updates, now)
    return outcomes


def _subscriber_of(target: _Target | str, state: _State) -> _Sub | None:
    if isinstance(target, str):
        return None
    if target.delivery is not None:
        return state.subs.get(target.delivery.subscriber_id)
    return state.subs_by_key.get(email_key(target.address)) if target.address else None


def _apply(event: MailEvent, *, settings: Settings, event_id: int, target: _Target, sub: _Sub | None,
           state: _State, now: dt.datetime) -> str:
    """The policy for one stored event, on the batch's state in memory; what it did."""
    source = f"bounce:{event.source}"
    detail = {"event": event_id, "kind": event.kind, "status": event.status, "from": sub.status if sub else None}
    reason = f"{event.status} {event.diagnostic}".strip() if event.status else event.diagnostic
    key = email_key(target.address)
    if event.kind == "soft":
        state.soft.setdefault(key, []).append(event.occurred_at)
    if event.kind == "complaint":
        if sub is None or sub.status == "complained":
            return "recorded"
        _suppress(sub, "complained", f"complaint: {reason}", now)
        state.audits.append(_audit(source, "subscriber_complained", "subscriber", sub.id, detail, now))
        return "unsubscribed"
    dead = event.kind == "hard"
    if not dead:
        since = now - dt.timedelta(days=settings.soft_bounce_days)
        if sub is not None and sub.confirmed_at is not None and sub.confirmed_at > since:
            since = sub.confirmed_at
        count = sum(1 for t in state.soft.get(key, ()) if t >= since)
        dead = count >= settings.soft_bounce_limit
        reason = f"{count} soft bounces in {settings.soft_bounce_days} days; the last: {reason}"
    if not dead:
        return "counted"
    if event.kind == "hard" and target.delivery is not None:
        state.bounced_deliveries.add(target.delivery.id)
    action = "recorded"
    outbox = target.outbox
    if (outbox is not None and outbox.kind == AUTOREPLY_KIND and outbox.inquiry_id is not None
            and outbox.inquiry_id in state.unflagged):
        state.unflagged.discard(outbox.inquiry_id)
        state.flags[outbox.inquiry_id] = reason
        state.audits.append(_audit(source, "inquiry_bounced", "inquiry", outbox.inquiry_id, detail, now))
        action = "flagged"
    if sub is not None and sub.status not in ("bounced", "complained"):
        _suppress(sub, "bounced", reason, now)
        state.audits.append(_audit(source, "subscriber_bounced", "subscriber", sub.id, detail, now))
        action = "suppressed"
    return action


def _suppress(sub: _Sub, status: str, reason: str, now: dt.datetime) -> None:
    sub.status = status
    sub.changes[status] = {"status": status, "status_changed_at": now, f"{status}_at": now,
                           "last_bounce": reason[:2000]}


def _audit(by: str, action: str, target_type: str, target_id: int, detail: dict[str, Any],
           now: dt.datetime) -> dict[str, Any]:
    return {"created_at": now, "actor_id": None, "actor_email": by, "action": action[:64],
            "target_type": target_type, "target_id": str(target_id), "ip": "", "detail": detail}


async def _write(session: AsyncSession, state: _State, outcome_updates: dict[str, list[int]],
                 now: dt.datetime) -> None:
    """What the batch changed, in grouped statements (bounces before complaints, as in order a
    complaint after a bounce wins and a bounce never overwrites a complaint)."""
    for status in ("bounced", "complained"):
        changes = [{"sid": s.id, **s.changes[status]} for s in state.subs.values() if status in s.changes]
        await subscribers.set_statuses(session, status=status, changes=changes)
    await mark_deliveries_bounced(session, state.bounced_deliveries)
    await flag_inquiries_bounced(session, state.flags, now=now)
    await queries.set_event_outcomes(session, outcome_updates)
    await insert_audits(session, state.audits)
