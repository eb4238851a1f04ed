"""Erasure: of one inquiry (staff, on the person's request), of a subscriber (staff), of expired
inquiries (the retention job), and the ledger that lets a restore apply them all again.

The ledger (`erasures`) keeps a keyed hash (HMAC under the secret key, `Tokens.keyed_hash`) of
what identified the erased record, never the record: for a subscriber the normalised address
(the same hash as the newsletter's suppression list), for an inquiry its id and dedupe key. After
`tidings restore`, `apply_ledger` erases again every record of the restored data whose hash is in
the ledger (a subscriber only if their row is older than the erasure: someone who signed up again
afterwards gave fresh consent), so an erased person never comes back from a backup.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from service.db import utcnow
from service.inquiries import removal
from service.newsletter import flows as newsletter_flows
from service.newsletter import queries as newsletter_queries
from service.privacy.models import Erasure
from service.privacy.stores import forget_address_everywhere, forget_inquiries_everywhere
from service.tokens import Tokens
from service.validation import email_key

INQUIRY_PURPOSE = "erasure.inquiry"
SUBSCRIBER_PURPOSE = "suppression"  # the newsletter's suppression hash of the address, reused


def _inquiry_identity(inquiry_id: int, dedupe_key: str) -> str:
    return f"{inquiry_id}:{dedupe_key}"


def _inquiry_hash(tokens: Tokens, inquiry_id: int, dedupe_key: str) -> str:
    return tokens.keyed_hash(INQUIRY_PURPOSE, _inquiry_identity(inquiry_id, dedupe_key))


def subscriber_hash(tokens: Tokens, email: str) -> str:
    return tokens.keyed_hash(SUBSCRIBER_PURPOSE, email_key(email))


async def record_erasure(session: AsyncSession, *, kind: str, subject_hash: str, reason: str,
                         now: dt.datetime) -> None:
    session.add(Erasure(kind=kind, subject_hash=subject_hash, reason=reason, erased_at=now))
    await session.flush()


async def remove_inquiries(session: AsyncSession, *, tokens: Tokens, inquiry_ids: Sequence[int], reason: str,
                           now: dt.datetime, ledger: bool = True) -> int:
    """Delete the inquiries, their notes and events and every stored copy of their emails (each
    registered store), and note each in the ledger; returns how many inquiries went."""
    identities = await removal.inquiry_identities(session, inquiry_ids=inquiry_ids)
    ids = [i for i, _k in identities]
    if not ids:
        return 0
    await forget_inquiries_everywhere(session, ids)
    gone = await removal.delete_inquiries(session, inquiry_ids=ids)
    if ledger:
        session.add_all(Erasure(kind="inquiry", subject_hash=_inquiry_hash(tokens, i, k), reason=reason,
                                erased_at=now) for i, k in identities)
        await session.flush()
    return gone


async def erase_inquiry(session: AsyncSession, *, tokens: Tokens, inquiry_id: int,
                        request: HTTPConnection | None = None) -> bool:
    """Erase one inquiry on the person's request, with an audit row that names only its id.
    False when there is no such inquiry."""
    from service.admin.audit import record_audit

    if not await remove_inquiries(session, tokens=tokens, inquiry_ids=[inquiry_id], reason="erased",
                                  now=utcnow()):
        return False
    await record_audit(session, request=request, action="inquiry_erase", target_type="inquiry",
                       target_id=inquiry_id)
    return True


async def erase_subscriber(session: AsyncSession, *, tokens: Tokens, subscriber_id: int,
                           ledger: bool = True) -> bool:
    """Right to be forgotten for a subscriber: the newsletter's erase (row, topics, deliveries;
    the suppression hash stays), every stored copy of mail to the address in every registered
    store, and a ledger entry. False when not found."""
    email = await newsletter_flows.erase_subscriber(session, tokens=tokens, subscriber_id=subscriber_id)
    if email is None:
        return False
    await forget_address_everywhere(session, email)
    if ledger:
        await record_erasure(session, kind="subscriber", subject_hash=subscriber_hash(tokens, email),
                             reason="erased", now=utcnow())
    return True


# -- the ledger across a restore ----------------------------------------------------------------


@dataclass(frozen=True)
class LedgerEntry:
    kind: str
    subject_hash: str
    reason: str
    erased_at: dt.datetime


async def read_ledger(session: AsyncSession) -> list[LedgerEntry]:
    rows = (await session.execute(
        select(Erasure.kind, Erasure.subject_hash, Erasure.reason, Erasure.erased_at).order_by(Erasure.id))).all()
    return [LedgerEntry(*row) for row in rows]


async def merge_ledger(session: AsyncSession, entries: Sequence[LedgerEntry]) -> int:
    """Make the ledger the union of what it holds and `entries`; returns how many were added."""
    have = set(await read_ledger(session))
    missing = [e for e in dict.fromkeys(entries) if e not in have]
    if missing:
        await session.execute(insert(Erasure), [
            {"kind": e.kind, "subject_hash": e.subject_hash, "reason": e.reason, "erased_at": e.erased_at}
            for e in missing])
    return len(missing)


@dataclass(frozen=True)
class Reapplied:
    subscribers: int
    addresses: int
    inquiries: int


async def apply_ledger(session: AsyncSession, *, tokens: Tokens) -> Reapplied:
    """Erase again whatever in the database the ledger says was erased (after a restore)."""
    from service.mail.outbox import stored_recipients

    erased_at: dict[str, dt.datetime] = {}
    inquiry_hashes: set[str] = set()
    for entry in await read_ledger(session):
        if entry.kind == "subscriber":
            erased_at[entry.subject_hash] = max(entry.erased_at, erased_at.get(entry.subject_hash, entry.erased_at))
        else:
            inquiry_hashes.add(entry.subject_hash)

    def when_erased(email: str) -> dt.datetime | None:
        times = [erased_at[h] for h in newsletter_queries.suppression_hashes(tokens, email) if h in erased_at]
        return max(times) if times else None

    subscribers = []
    async for batch in newsletter_queries.iter_subscriber_identities(session):
        subscribers += [sid for sid, email, created in batch
                        if (t := when_erased(email)) is not None and created <= t]
    for sid in subscribers:
        await erase_subscriber(session, tokens=tokens, subscriber_id=sid, ledger=False)
    addresses = 0
    for address in sorted(await stored_recipients(session)):
        if (t := when_erased(address)) is not None:
            addresses += 1
            await forget_address_everywhere(session, address, t)
    inquiries: list[int] = []
    async for rows in removal.iter_inquiry_identities(session):
        inquiries += [i for i, k in rows
                      if inquiry_hashes.intersection(tokens.keyed_hashes(INQUIRY_PURPOSE, _inquiry_identity(i, k)))]
    gone = await remove_inquiries(session, tokens=tokens, inquiry_ids=inquiries, reason="erased", now=utcnow(),
                                  ledger=False)
    return Reapplied(subscribers=len(subscribers), addresses=addresses, inquiries=gone)

