"""The registry of stores that hold personal data beyond the inquiry and subscriber rows.

Retention and erasure go through this list, so nothing is forgotten in one place and kept in
another: erasing or expiring an inquiry calls every store's `forget_inquiries` before the
inquiry rows go; erasing a subscriber calls every store's `forget_address`. **Every later store
of personal data registers here** (bounce and complaint reports, webhook delivery logs, searchable
mail copies ...): call `register_store(PersonalDataStore(...))` at import time of its module and
add that module to `STORE_MODULES`, and it falls under the same retention, erase and
re-erase-after-restore as the mail copies. A store function takes the caller's session, must
not commit, must be idempotent (the ledger applies erasures again after a restore) and returns
how many records it removed.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

ForgetInquiries = Callable[[AsyncSession, Sequence[int]], Awaitable[int]]
# (session, address, until): forget what was stored for `address` at or before `until` (None: all)
ForgetAddress = Callable[[AsyncSession, str, "dt.datetime | None"], Awaitable[int]]


@dataclass(frozen=True)
class PersonalDataStore:
    name: str
    forget_inquiries: ForgetInquiries | None = None
    forget_address: ForgetAddress | None = None


_STORES: dict[str, PersonalDataStore] = {}

# Modules that register a store when imported (so that the registry is complete whichever
# entry point - web app, worker, CLI - runs first).
STORE_MODULES = ("service.privacy.stores", "service.bounces.queries", "service.webhooks.queries")


def register_store(store: PersonalDataStore) -> None:
    """Add (or replace, by name) a store of personal data."""
    _STORES[store.name] = store


def registered_stores() -> list[PersonalDataStore]:
    for module in STORE_MODULES:
        importlib.import_module(module)
    return list(_STORES.values())


async def forget_inquiries_everywhere(session: AsyncSession, inquiry_ids: Sequence[int]) -> int:
    """Remove what every store holds about these inquiries; returns how many records went."""
    total = 0
    for store in registered_stores():
        if store.forget_inquiries is not None:
            total += await store.forget_inquiries(session, inquiry_ids)
    return total


async def forget_address_everywhere(session: AsyncSession, address: str, until: dt.datetime | None = None) -> int:
    """Remove what every store holds for this email address; returns how many records went."""
    total = 0
    for store in registered_stores():
        if store.forget_address is not None:
            total += await store.forget_address(session, address, until)
    return total


# -- the stores of today -----------------------------------------------------------------------


async def _mail_forget_inquiries(session: AsyncSession, inquiry_ids: Sequence[int]) -> int:
    from service.mail.outbox import forget_inquiry_mail

    return await forget_inquiry_mail(session, inquiry_ids=inquiry_ids)


async def _mail_forget_address(session: AsyncSession, address: str, until: dt.datetime | None) -> int:
    from service.mail.outbox import forget_recipient

    return await forget_recipient(session, address=address, until=until)


# The durable outbox (rendered bytes once sent, template context before) and the local mailbox.
register_store(PersonalDataStore("mail", forget_inquiries=_mail_forget_inquiries,
                                 forget_address=_mail_forget_address))
