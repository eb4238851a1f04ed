"""The organisation's brand settings kept in the database (one row): the postal address every
newsletter footer carries (CAN-SPAM requires one; ORG_POSTAL_ADDRESS is its default until staff
save one under Settings), and the random install id that makes Message-IDs differ between
installs. Staff change the address through `save_postal_address` (audited)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import Actor, record_audit
from service.admin.models import BrandSettings
from service.settings import Settings

ROW_ID = 1
MAX_ADDRESS = 500


@dataclass(frozen=True)
class Brand:
    install_id: str
    postal_address: str  # the stored one, else ORG_POSTAL_ADDRESS; "" when neither is known
    stored: bool  # staff saved the address (it is not the setting's default)


class PostalAddressError(ValueError):
    """A postal address that cannot be used; the message says why."""


def clean_postal_address(value: str) -> str:
    """The address as lines without surrounding spaces; PostalAddressError when it is empty, too
    long or holds control characters."""
    lines = [line.strip() for line in value.replace("\r\n", "\n").split("\n") if line.strip()]
    text = "\n".join(lines)
    if not text:
        raise PostalAddressError("enter the organisation's postal address (the law requires it in newsletters)")
    if len(text) > MAX_ADDRESS:
        raise PostalAddressError(f"at most {MAX_ADDRESS} characters")
    if any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) <= 0x9F for c in text):
        raise PostalAddressError("control characters are not allowed")
    return text


async def _row(session: AsyncSession) -> BrandSettings:
    """The row, created with a fresh random install id the first time (a concurrent creator wins)."""
    row = await session.get(BrandSettings, ROW_ID)
    if row is not None:
        return row
    try:
        async with session.begin_nested():
            session.add(BrandSettings(id=ROW_ID, install_id=uuid.uuid4().hex))
    except IntegrityError:
        pass
    row = (await session.scalars(select(BrandSettings).where(BrandSettings.id == ROW_ID)
                                 .execution_options(populate_existing=True))).one()
    return row


async def load_brand(session: AsyncSession, settings: Settings) -> Brand:
    """The brand settings in force (creating the install id on first use)."""
    row = await _row(session)
    if row.postal_address is not None:
        return Brand(row.install_id, row.postal_address, True)
    return Brand(row.install_id, settings.org_postal_address, False)


async def save_postal_address(session: AsyncSession, *, address: str, actor: Actor, now: dt.datetime) -> str:
    """Store the organisation's postal address (PostalAddressError for a bad one; nothing changes)."""
    text = clean_postal_address(address)
    row = await _row(session)
    before = row.postal_address
    row.postal_address = text
    row.updated_at = now
    await session.flush()
    await record_audit(session, by=actor, action="brand_postal_address", target_type="brand",
                       target_id=str(ROW_ID), detail={"changed": before != text})
    return text
