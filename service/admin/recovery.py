"""Staff accounts by email: invitations mailed with their set-password link, "forgot password"
links, and unlocking an account locked by failed sign-ins.

A reset link is the set-password token under its own purpose ("admin-reset-password"): signed,
valid for an hour, and single-use because it names the account's session version and a
fingerprint of its current password. Asking for one gives the same answer whether or not the
address has an account; the requests are limited per client IP and per address, so the form
cannot be used to flood a colleague's inbox. Mail goes through the outbox like every other
transactional message."""

from __future__ import annotations

import datetime as dt
from email.utils import parseaddr

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin import auth
from service.admin.brand import Brand, brand_context, load_brand
from service.admin.models import StaffUser
from service.i18n import gettext, language
from service.mail.message import format_address
from service.mail.outbox import queue_email
from service.ratelimit import hit_rate_limit, ip_limit_key
from service.settings import RateLimit, Settings
from service.tokens import Tokens

RESET_IP_LIMIT = RateLimit(10, 60 * 60)  # reset requests per client IP
RESET_ADDRESS_LIMIT = RateLimit(3, 60 * 60)  # reset emails per account
RESET_ANSWER = ("If an active staff account has this address, a link to set a new password is on its way to it. "
                "The link works once, for 1 hour. Nothing arrived? Check the address and the spam folder, "
                "or ask an admin.")


def _staff_text(settings: Settings, brand: Brand, text: str) -> str:
    """A staff email's subject in the install's LANGUAGE (the admin itself is English)."""
    with language(settings.language):
        return gettext(text, org=brand.name)


async def _queue(session: AsyncSession, settings: Settings, user: StaffUser, *, kind: str, subject: str,
                 ctx: dict[str, object], brand: Brand) -> bool:
    """Queue one email to a staff member; False when the address cannot be mailed (a sign-in
    name such as ops@clinic.local is allowed for staff but may not be a valid mail header)."""
    to = format_address(user.email, user.name)
    if parseaddr(to)[1].lower() != user.email:  # e.g. "a(b)@x.org" reads as a@x.org with a comment: not theirs
        return False
    try:
        await queue_email(session, kind=kind, sender=settings.mail_from, to=to,
                          subject=subject, template=kind,
                          ctx={**brand_context(brand), "name": user.name, "email": user.email,
                               "lang": settings.language, **ctx},
                          headers={"Auto-Submitted": "auto-generated", "X-Tidings-Kind": kind})
    except ValueError:  # HeaderInjectionError is a ValueError too
        return False
    return True


async def email_invitation(session: AsyncSession, settings: Settings, tokens: Tokens, user: StaffUser,
                           *, inviter: str) -> str:
    """Queue the invitation with its one-time set-password link; returns the link (shown to the
    admin as well, for when mail is slow or the address is internal), or "" when not mailable."""
    link = auth.set_password_url(settings, tokens, user)
    brand = await load_brand(session, settings)
    sent = await _queue(session, settings, user, kind="staff_invite", brand=brand,
                        subject=_staff_text(settings, brand, "Your staff account at %(org)s"),
                        ctx={"link": link, "inviter": inviter, "role": user.role,
                             "hours": auth.SET_PASSWORD_SECONDS // 3600,
                             "login_url": f"{settings.base_url}/admin/login"})
    return link if sent else ""


async def email_password_reset(session: AsyncSession, settings: Settings, tokens: Tokens, user: StaffUser) -> bool:
    """Queue a reset link to the account's own address."""
    brand = await load_brand(session, settings)
    return await _queue(session, settings, user, kind="staff_password_reset", brand=brand,
                        subject=_staff_text(settings, brand, "Set a new password for %(org)s"),
                        ctx={"link": auth.reset_password_url(settings, tokens, user),
                             "minutes": auth.RESET_PASSWORD_SECONDS // 60})


async def request_password_reset(session: AsyncSession, *, settings: Settings, tokens: Tokens, email: str,
                                 ip: str) -> tuple[StaffUser | None, str]:
    """Handle a "forgot password" request: the account it names (if any) and what happened
    ("sent", "unknown", "inactive", "limited", "unmailable"), for the audit log only; the person
    asking always gets RESET_ANSWER."""
    if not await hit_rate_limit(session, key=f"admin-reset:{ip_limit_key(ip)}", limit=RESET_IP_LIMIT):
        return None, "limited"
    user = await auth.get_staff_by_email(session, email) if len(email) <= 320 else None
    if user is None:
        return None, "unknown"
    if not user.active:
        return user, "inactive"
    if not await hit_rate_limit(session, key=f"admin-reset-account:{user.id}", limit=RESET_ADDRESS_LIMIT):
        return user, "limited"
    return user, "sent" if await email_password_reset(session, settings, tokens, user) else "unmailable"


def unlock(user: StaffUser) -> dt.datetime | None:
    """Lift a sign-in lock; returns until when it was locked (None: it was not)."""
    was = user.locked_until
    user.locked_until = None
    user.failed_logins = 0
    return was
