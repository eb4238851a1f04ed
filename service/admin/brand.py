"""The organisation's brand, kept in the database (one row) with the environment as defaults: its
name (ORG_NAME), accent colour (BRAND_ACCENT_COLOR), logo (uploaded; BRAND_LOGO_URL until then),
footer text (BRAND_FOOTER_TEXT), the blog's address (BLOG_URL) and the postal address every
newsletter footer carries (CAN-SPAM; ORG_POSTAL_ADDRESS), plus the random install id that makes
Message-IDs differ between installs.

`load_brand` is the one place that says which value is in force; emails take `brand_context`,
pages `brand` (see `service.admin.brand_pages`). Admins change it through `save_brand` and
`reset_brand_field` (audited); a refused value changes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service.admin import brand_values as bv
from service.admin.audit import Actor, record_audit
from service.admin.models import BrandSettings
from service.settings import Settings

ROW_ID = 1
MAX_ADDRESS = 500
LOGO_PATH = "/brand/logo"
# form field -> what the audit log and the page call it
FIELDS = {"org_name": "organisation name", "accent_color": "accent colour", "logo": "logo",
          "postal_address": "postal address", "footer_text": "footer text", "blog_url": "blog address"}


class PostalAddressError(ValueError):
    """A postal address that cannot be used; the message says why."""


@dataclass(frozen=True)
class Brand:
    install_id: str
    postal_address: str  # the stored one, else ORG_POSTAL_ADDRESS; "" when neither is known
    stored: bool  # staff saved the address (it is not the setting's default)
    name: str = "Tidings"
    accent: str = bv.DEFAULT_ACCENT
    footer_text: str = ""
    blog_url: str | None = None
    logo_url: str | None = None  # absolute (emails need it), or None for no logo
    logo_size: tuple[int, int] | None = None  # the size it is shown at in emails, when known
    custom: frozenset[str] = field(default_factory=frozenset)  # the FIELDS staff set (not defaults)

    @property
    def accent_dark(self) -> str:
        return bv.dark_accent(self.accent)

    @property
    def postal_lines(self) -> list[str]:
        return [line for line in self.postal_address.splitlines() if line.strip()]

    @property
    def footer_lines(self) -> list[str]:
        return [line for line in self.footer_text.splitlines() if line.strip()]


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


def _column(name: str) -> str:
    """The column that says whether a field is set (the logo's bytes are deferred: its hash)."""
    return "logo_sha" if name == "logo" else name


def effective_brand(row: BrandSettings | None, settings: Settings) -> Brand:
    """The brand in force: each value staff stored in `row`, else its environment default."""
    custom = frozenset(f for f in FIELDS if row is not None and getattr(row, _column(f)) is not None)
    if row is not None and row.logo_sha is not None and row.logo_type is not None:
        ext = "png" if row.logo_type == "image/png" else "jpg"
        logo_url: str | None = f"{settings.base_url}{LOGO_PATH}/{row.logo_sha[:16]}.{ext}"
        size = bv.logo_display_size(row.logo_width or 1, row.logo_height or 1) if row.logo_width else None
    else:
        logo_url, size = settings.brand_logo_url, None

    def value(name: str, default: Any) -> Any:
        return getattr(row, name) if name in custom else default

    return Brand(
        install_id=row.install_id if row is not None else "",
        postal_address=value("postal_address", settings.org_postal_address),
        stored="postal_address" in custom,
        name=value("org_name", settings.org_name),
        accent=value("accent_color", settings.brand_accent_color),
        footer_text=value("footer_text", settings.brand_footer_text),
        blog_url=value("blog_url", settings.blog_url),
        logo_url=logo_url, logo_size=size, custom=custom,
    )


async def load_brand(session: AsyncSession, settings: Settings) -> Brand:
    """The brand settings in force (creating the row, with its install id, on first use)."""
    return effective_brand(await _row(session), settings)


async def read_brand(session: AsyncSession, settings: Settings) -> Brand:
    """The brand in force without writing anything (for pages; the install id may be "")."""
    return effective_brand(await session.get(BrandSettings, ROW_ID), settings)


def brand_context(brand: Brand) -> dict[str, Any]:
    """What every email template is given about the brand (JSON, as the outbox stores contexts)."""
    return {"org_name": brand.name, "postal_lines": brand.postal_lines, "brand": {
        "name": brand.name, "accent": brand.accent, "accent_dark": brand.accent_dark,
        "logo_url": brand.logo_url, "logo_width": brand.logo_size[0] if brand.logo_size else None,
        "logo_height": brand.logo_size[1] if brand.logo_size else None,
        "footer_lines": brand.footer_lines, "blog_url": brand.blog_url}}


# -- changes (admins) ------------------------------------------------------------------------


class BrandFormError(ValueError):
    """Values that cannot be used: field -> what is wrong. Nothing was stored."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def clean_brand_form(values: Mapping[str, str], logo: bytes | None) -> dict[str, Any]:
    """The columns to store for the fields present in `values` (and the logo, when one was sent);
    BrandFormError naming every field that is wrong."""
    rules = {"org_name": bv.clean_name, "accent_color": bv.clean_accent, "footer_text": bv.clean_footer,
             "blog_url": bv.clean_blog_url, "postal_address": clean_postal_address}
    columns: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, rule in rules.items():
        if name not in values:
            continue
        raw = values[name]
        if name == "blog_url" and not raw.strip():
            continue  # an empty address keeps what is in force; "reset" goes back to BLOG_URL
        try:
            columns[name] = rule(raw)
        except ValueError as exc:
            errors[name] = f"{FIELDS[name].capitalize()}: {exc}."
    if logo:
        try:
            image = bv.clean_logo(logo)
        except bv.BrandValueError as exc:
            errors["logo"] = f"Logo: {exc}."
        else:
            columns.update(logo=image.data, logo_type=image.content_type, logo_width=image.width,
                           logo_height=image.height, logo_sha=hashlib.sha256(image.data).hexdigest())
    if errors:
        raise BrandFormError(errors)
    return columns


_IN_FORCE = {"org_name": "name", "accent_color": "accent", "footer_text": "footer_text", "blog_url": "blog_url",
             "postal_address": "postal_address"}


async def save_brand(session: AsyncSession, *, settings: Settings, values: Mapping[str, str], logo: bytes | None,
                     actor: Actor, now: dt.datetime) -> list[str]:
    """Store the brand values given (BrandFormError, and nothing stored, when any is wrong); a
    value equal to the default in force stays the default. Returns the names of the fields that
    changed, which the audit row lists."""
    columns = clean_brand_form(values, logo)
    row = await _row(session)
    before = effective_brand(row, settings)
    for name, attr in _IN_FORCE.items():
        if name in columns and name not in before.custom and columns[name] == getattr(before, attr):
            del columns[name]
    changed = [name for name in FIELDS if name in columns and getattr(row, _column(name)) != columns[_column(name)]]
    for column, value in columns.items():
        setattr(row, column, value)
    row.updated_at = now
    await session.flush()
    if changed:
        await record_audit(session, by=actor, action="brand_change", target_type="brand", target_id=str(ROW_ID),
                           detail={"changed": [FIELDS[name] for name in changed]})
    return changed


async def reset_brand_field(session: AsyncSession, *, name: str, actor: Actor, now: dt.datetime) -> None:
    """Go back to the environment's default for one field (KeyError for an unknown one)."""
    what = FIELDS[name]
    row = await _row(session)
    columns = ["logo", "logo_type", "logo_sha", "logo_width", "logo_height"] if name == "logo" else [name]
    for column in columns:
        setattr(row, column, None)
    row.updated_at = now
    await session.flush()
    await record_audit(session, by=actor, action="brand_reset", target_type="brand", target_id=str(ROW_ID),
                       detail={"field": what})


async def logo_of(session: AsyncSession) -> tuple[bytes, str, str] | None:
    """The uploaded logo's bytes, content type and hash, or None."""
    found = (await session.execute(select(BrandSettings.logo, BrandSettings.logo_type, BrandSettings.logo_sha)
                                   .where(BrandSettings.id == ROW_ID))).first()
    if found is None or found.logo is None or found.logo_type is None or found.logo_sha is None:
        return None
    return found.logo, found.logo_type, found.logo_sha
