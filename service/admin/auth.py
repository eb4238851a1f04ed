"""Staff authentication: argon2 password hashes, sign-in with per-account and per-IP lockout,
one-time set-password links, and the signed session cookie with its CSRF token.

A session cookie carries the user id, the account's `session_version` and the time of sign-in,
signed (itsdangerous, so it is timestamped too). It is valid while the signature is younger
than the idle timeout (the cookie is re-signed as the user works), the sign-in is younger than
the absolute timeout, the account is active and its `session_version` still matches: signing
out or changing the password bumps the version and so ends every session of that account.
The CSRF token is an HMAC of the same three values, so it dies with the session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.models import ROLES, StaffUser
from service.db import utcnow
from service.ratelimit import hit_rate_limit, ip_limit_key, peek_rate_limit
from service.settings import RateLimit, Settings
from service.tokens import TokenError, Tokens

COOKIE_NAME = "tidings_admin"
COOKIE_PATH = "/admin"
IDLE_SECONDS = 2 * 60 * 60
ABSOLUTE_SECONDS = 12 * 60 * 60
RENEW_AFTER_SECONDS = 5 * 60
SET_PASSWORD_SECONDS = 24 * 60 * 60
ACCOUNT_MAX_FAILURES = 5
ACCOUNT_LOCK = dt.timedelta(minutes=15)
IP_LIMIT = RateLimit(20, 15 * 60)  # failed sign-ins per client IP
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
RESET_PASSWORD_SECONDS = 60 * 60
LOGIN_FAILED = ("That email and password did not work. After several failed attempts sign-in is "
                "paused for 15 minutes; if you have forgotten your password, use “Forgot your password?”.")


def locked_message(until: dt.datetime, now: dt.datetime) -> str:
    """What a locked account's owner is told when they give the right password."""
    minutes = max(1, -(-int((until - now).total_seconds()) // 60))
    return (f"This account is locked after {ACCOUNT_MAX_FAILURES} failed sign-ins, until "
            f"{until.strftime('%H:%M')} UTC (in {minutes} minute{'s' if minutes != 1 else ''}). "
            "Try again then, reset your password by email, or ask an admin to unlock it.")

# Parameters for new hashes; every hash records its own, so any of them verifies under any profile.
HASH_PROFILES = {
    "default": profiles.RFC_9106_LOW_MEMORY,  # argon2id, 64 MiB, 3 passes: what Tidings always uses
    "insecure-fast-for-tests": profiles.CHEAPEST,  # the test suite only; microseconds instead of ~0.5 s
}
_hasher = PasswordHasher.from_parameters(HASH_PROFILES["default"])
# Verified against when the account does not exist, so that both cases take the same time.
# Made on first use, not at import: every `tidings` command imports this module, and one
# argon2 hash costs about half a second of CPU.
_dummy_hash: str | None = None


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("not-a-password-of-anyone")
    return _dummy_hash


def configure_password_hashing(profile: str) -> None:
    """Choose the argon2 parameters of new password hashes for this process. Tidings itself
    never calls it (production uses "default"); the test suite selects the cheap profile once,
    so that creating staff and signing in do not cost half a second of CPU each."""
    global _hasher, _dummy_hash
    if profile not in HASH_PROFILES:
        raise ValueError(f"Password hashing profile: expected one of {', '.join(HASH_PROFILES)}, got {profile!r}.")
    _hasher = PasswordHasher.from_parameters(HASH_PROFILES[profile])
    _dummy_hash = None


class PasswordError(ValueError):
    """A new password that does not meet the rules (the message says which)."""


def check_new_password(password: str, confirm: str | None = None) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordError(f"Password: use at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordError(f"Password: use at most {MAX_PASSWORD_LENGTH} characters.")
    if confirm is not None and password != confirm:
        raise PasswordError("Password: the two passwords are not the same.")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


# -- accounts ---------------------------------------------------------------------------------


_STAFF_EMAIL = re.compile(r"[^@\s<>\"\x00-\x1f\x7f]+@[^@\s<>\"\x00-\x1f\x7f]+")


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def get_staff_by_email(session: AsyncSession, email: str) -> StaffUser | None:
    return await session.scalar(select(StaffUser).where(StaffUser.email == normalise_email(email)))


async def count_staff_users(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(StaffUser)) or 0)


async def create_staff_user(
    session: AsyncSession, *, email: str, role: str, name: str = "", password: str | None = None
) -> StaffUser:
    """A new account; without a password it can only be entered through a set-password link."""
    if role not in ROLES:
        raise ValueError(f"Role: expected one of {', '.join(ROLES)}.")
    # A sign-in name, never mailed by us: internal domains (clinic.local) are fine.
    address = normalise_email(email)
    if not _STAFF_EMAIL.fullmatch(address) or len(address) > 320:
        raise ValueError("Email: expected an address such as name@clinic.org.")
    if await get_staff_by_email(session, address) is not None:
        raise ValueError("Email: a staff account with this address already exists.")
    name = name.strip()
    if len(name) > 200 or any(ch in name for ch in "\r\n"):
        raise ValueError("Name: use one line of at most 200 characters.")
    user = StaffUser(
        email=address, name=name, role=role, active=True, session_version=1, failed_logins=0,
        password_hash=hash_password(check_new_password(password)) if password is not None else None,
    )
    session.add(user)
    await session.flush()
    return user


async def set_password(session: AsyncSession, user: StaffUser, password: str) -> None:
    """Store a new password and end every session of the account (and any set-password link)."""
    user.password_hash = hash_password(password)
    user.session_version += 1
    user.failed_logins = 0
    user.locked_until = None
    await session.flush()


# -- sign-in ----------------------------------------------------------------------------------


async def count_failed_sign_in(session: AsyncSession, user: StaffUser, *, ip: str, now: dt.datetime) -> None:
    """One failed sign-in (a wrong password or a wrong second-factor code): counted against the
    client IP and the account, which is locked for ACCOUNT_LOCK after ACCOUNT_MAX_FAILURES."""
    await hit_rate_limit(session, key=f"admin-login:{ip_limit_key(ip)}", limit=IP_LIMIT)
    user.failed_logins += 1
    if user.failed_logins >= ACCOUNT_MAX_FAILURES:
        user.locked_until = now + ACCOUNT_LOCK
        user.failed_logins = 0


async def ip_locked(session: AsyncSession, ip: str) -> bool:
    """Whether this client IP has failed to sign in too often."""
    return await peek_rate_limit(session, key=f"admin-login:{ip_limit_key(ip)}", limit=IP_LIMIT) >= IP_LIMIT.count


@dataclass(frozen=True)
class LoginResult:
    user: StaffUser | None
    reason: str  # "ok", "unknown", "bad_password", "locked", "inactive", "ip_locked"
    password_ok: bool = False  # "locked" with the right password: its owner may be told it is locked


async def authenticate(session: AsyncSession, *, email: str, password: str, ip: str,
                       now: dt.datetime | None = None) -> LoginResult:
    """Check a sign-in attempt, counting failures per account and per IP. Callers show the same
    message for every failure, so nobody learns whether an address has an account."""
    now = now or utcnow()
    ip_key = f"admin-login:{ip_limit_key(ip)}"
    user = await get_staff_by_email(session, email) if len(email) <= 320 else None
    password_ok = verify_password(user.password_hash if user else None, password[:MAX_PASSWORD_LENGTH])
    if await ip_locked(session, ip):
        return LoginResult(user, "ip_locked")
    if user is None:
        await hit_rate_limit(session, key=ip_key, limit=IP_LIMIT)
        return LoginResult(None, "unknown")
    if user.locked_until is not None and user.locked_until > now:
        return LoginResult(user, "locked", password_ok)
    if not password_ok:
        await count_failed_sign_in(session, user, ip=ip, now=now)
        return LoginResult(user, "bad_password")
    if not user.active:
        return LoginResult(user, "inactive")
    if not user.has_two_factor:  # else the failures are forgiven only once the code passed too
        signed_in(user, now)
    if _hasher.check_needs_rehash(user.password_hash or ""):
        user.password_hash = hash_password(password)
    return LoginResult(user, "ok")


def signed_in(user: StaffUser, now: dt.datetime) -> None:
    """The account passed every step of signing in: its failed attempts are forgotten."""
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now


# -- set-password links -----------------------------------------------------------------------


def _password_fingerprint(user: StaffUser) -> str:
    return hashlib.sha256((user.password_hash or "none").encode()).hexdigest()[:16]


def set_password_token(tokens: Tokens, user: StaffUser, purpose: str = "admin-set-password") -> str:
    """Valid only once: it names the session version and the current password, so setting a
    password (or signing out everywhere) ends it. An invitation or an admin's link
    ("admin-set-password") lasts 24 hours, a reset asked for by email ("admin-reset-password") 1 hour."""
    return tokens.dumps(purpose, {"u": user.id, "v": user.session_version, "h": _password_fingerprint(user)})


def set_password_url(settings: Settings, tokens: Tokens, user: StaffUser) -> str:
    return f"{settings.base_url}/admin/set-password/{set_password_token(tokens, user)}"


def reset_password_url(settings: Settings, tokens: Tokens, user: StaffUser) -> str:
    return f"{settings.base_url}/admin/reset-password/{set_password_token(tokens, user, 'admin-reset-password')}"


LINK_LIFETIMES = {"admin-set-password": SET_PASSWORD_SECONDS, "admin-reset-password": RESET_PASSWORD_SECONDS}


async def user_for_set_password(session: AsyncSession, tokens: Tokens, token: str,
                                purpose: str = "admin-set-password") -> StaffUser:
    """The account a set-password link is for; TokenError when it is forged, expired or used."""
    data = tokens.loads(purpose, token, max_age=LINK_LIFETIMES[purpose])
    if not isinstance(data, dict):
        raise TokenError("this link is not valid")
    user = await session.get(StaffUser, data.get("u"))
    if (user is None or not user.active or user.session_version != data.get("v")
            or _password_fingerprint(user) != data.get("h")):
        raise TokenError("this link has already been used or is no longer valid")
    return user


# -- the session cookie and CSRF --------------------------------------------------------------


@dataclass(frozen=True)
class AdminSession:
    user_id: int
    version: int
    issued_at: int  # sign-in time, seconds since the epoch
    signed_age: float  # seconds since the cookie was last signed


def session_cookie_value(tokens: Tokens, user: StaffUser, issued_at: int | None = None) -> str:
    return tokens.dumps("admin-session", [user.id, user.session_version, issued_at or int(time.time())])


def read_session_cookie(tokens: Tokens, value: str | None) -> AdminSession | None:
    """The session a cookie names, or None when it is missing, forged, idle or too old."""
    if not value:
        return None
    try:
        data, age = tokens.loads_with_age("admin-session", value)
    except TokenError:
        return None
    if (not isinstance(data, list) or len(data) != 3 or not all(isinstance(v, int) for v in data)
            or age > IDLE_SECONDS or time.time() - data[2] > ABSOLUTE_SECONDS):
        return None
    return AdminSession(user_id=data[0], version=data[1], issued_at=data[2], signed_age=age)


def csrf_token(tokens: Tokens, session: AdminSession) -> str:
    return tokens.keyed_hash("admin-csrf", f"{session.user_id}:{session.version}:{session.issued_at}")


def csrf_ok(tokens: Tokens, session: AdminSession, given: str | None) -> bool:
    if not given:
        return False
    return any(hmac.compare_digest(candidate, given)
               for candidate in tokens.keyed_hashes("admin-csrf",
                                                    f"{session.user_id}:{session.version}:{session.issued_at}"))


LOGIN_FORM_SECONDS = 2 * 60 * 60
_BINDING = re.compile(r"[A-Za-z0-9_-]{43}")


def new_login_binding() -> str:
    """A random value for the browser's pre-session cookie (256 bits)."""
    return secrets.token_urlsafe(32)


def is_login_binding(value: str | None) -> bool:
    return bool(value) and bool(_BINDING.fullmatch(value or ""))


def login_form_token(tokens: Tokens, binding: str) -> str:
    """CSRF for the sign-in and set-password forms (there is no session yet): signed, expiring,
    and bound to this browser by an HMAC of its pre-session cookie, so a form token fetched by
    another site (for its own browser) is worthless in the victim's (login CSRF)."""
    return tokens.dumps("admin-login-form", tokens.keyed_hash("admin-login-binding", binding))


def login_form_token_ok(tokens: Tokens, given: str | None, binding: str | None) -> bool:
    if not is_login_binding(binding):
        return False
    try:
        data = tokens.loads("admin-login-form", given or "", max_age=LOGIN_FORM_SECONDS)
    except TokenError:
        return False
    return isinstance(data, str) and any(
        hmac.compare_digest(data, h) for h in tokens.keyed_hashes("admin-login-binding", binding or ""))


# -- redirects --------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def safe_next(value: str | None, default: str = "/admin/") -> str:
    """`value` when it is a path inside the admin area of this site, else `default`."""
    if not value or len(value) > 2000 or _CONTROL.search(value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return default
    if not (parts.path == "/admin" or parts.path.startswith("/admin/")):
        return default
    return value
