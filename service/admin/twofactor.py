"""Two-factor sign-in for staff: TOTP codes (RFC 6238, 6 digits, 30 s, via pyotp) with ten
single-use recovery codes, and the install-wide rule that every staff member must use one.

A secret is stored only once a code from the staff member's app confirmed it; until then it
travels in a signed, expiring enrolment token in the form. A code is accepted for the time
step before, at or after now (clock drift), and only for a step later than the last one
accepted, so a code seen over someone's shoulder cannot be used again. Recovery codes are
kept as keyed hashes (HMAC with SECRET_KEY, every accepted key checked): they are random
(50 bits), so a slow hash adds nothing but seconds, and a stolen table is worthless without
the key. Every change here is an action taking an `Actor` and writing its audit row, shared by
the account page, the Users page and `tidings staff reset-2fa`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from dataclasses import dataclass

import pyotp
import segno
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import Actor, record_audit
from service.admin.models import RecoveryCode, SecuritySettings, StaffUser
from service.tokens import TokenError, Tokens

STEP_SECONDS = 30
DRIFT_STEPS = 1  # a code of the step before or after now is accepted too
RECOVERY_CODE_COUNT = 10
ENROL_SECONDS = 15 * 60
PENDING_SECONDS = 5 * 60  # between a correct password and the code
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: codes are typed from paper
_DIGITS = re.compile(r"\d{6}")


class CodeError(ValueError):
    """A code that did not pass (the message says what to do)."""


# -- codes ------------------------------------------------------------------------------------


def new_secret() -> str:
    return pyotp.random_base32()  # 32 base32 characters, 160 bits


def time_step(now: dt.datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def matching_step(secret: str, code: str, *, now: dt.datetime, last_step: int | None) -> int | None:
    """The time step `code` is valid for, near now and later than `last_step`; None when none."""
    code = re.sub(r"[\s-]", "", code)
    if not _DIGITS.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = time_step(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if (last_step is None or step > last_step) and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def looks_like_totp(code: str) -> bool:
    return bool(_DIGITS.fullmatch(re.sub(r"[\s-]", "", code)))


def provisioning_uri(secret: str, *, email: str, issuer: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The otpauth:// URI as an inline SVG QR code (no external image, nothing sent anywhere)."""
    return str(segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff",
                                                     title="QR code to scan with an authenticator app"))


def grouped(secret: str) -> str:
    """The secret in groups of four, easier to type."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def _normalise_recovery(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def _recovery_hashes(tokens: Tokens, code: str) -> list[str]:
    return tokens.keyed_hashes("admin-recovery-code", _normalise_recovery(code))


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


# -- enrolment token --------------------------------------------------------------------------


def enrol_token(tokens: Tokens, user: StaffUser, secret: str) -> str:
    return tokens.dumps("admin-totp-enrol", [user.id, secret])


def secret_of_enrol_token(tokens: Tokens, user: StaffUser, token: str) -> str:
    """The secret an enrolment form carries; TokenError when forged, expired or someone else's."""
    data = tokens.loads("admin-totp-enrol", token, max_age=ENROL_SECONDS)
    if not (isinstance(data, list) and len(data) == 2 and data[0] == user.id and isinstance(data[1], str)):
        raise TokenError("this form is not valid")
    return data[1]


# -- the sign-in between password and code ----------------------------------------------------


@dataclass(frozen=True)
class Pending:
    user_id: int
    version: int
    next_url: str


def pending_token(tokens: Tokens, user: StaffUser, next_url: str) -> str:
    """What the browser holds between a correct password and the code: signed, for
    PENDING_SECONDS, and only while the account's session version is unchanged."""
    return tokens.dumps("admin-2fa-pending", [user.id, user.session_version, next_url])


def read_pending(tokens: Tokens, value: str | None) -> Pending | None:
    if not value:
        return None
    try:
        data = tokens.loads("admin-2fa-pending", value, max_age=PENDING_SECONDS)
    except TokenError:
        return None
    if not (isinstance(data, list) and len(data) == 3 and isinstance(data[0], int) and isinstance(data[1], int)
            and isinstance(data[2], str)):
        return None
    return Pending(data[0], data[1], data[2])


# -- actions ----------------------------------------------------------------------------------


async def _replace_recovery_codes(session: AsyncSession, tokens: Tokens, user: StaffUser) -> list[str]:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.staff_user_id == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    session.add_all(RecoveryCode(staff_user_id=user.id, code_hash=_recovery_hashes(tokens, c)[0]) for c in codes)
    await session.flush()
    return codes


async def enable_two_factor(session: AsyncSession, tokens: Tokens, *, user: StaffUser, secret: str, code: str,
                            actor: Actor, now: dt.datetime) -> list[str]:
    """Switch the second factor on once `code` proves the app holds `secret`; the new recovery
    codes (shown once). CodeError when the code does not match; nothing changes then."""
    step = matching_step(secret, code, now=now, last_step=None)
    if step is None:
        raise CodeError("Code: that is not the current code of this secret. Enter the 6 digits your app shows "
                        "now (check that the phone's clock is right).")
    user.totp_secret, user.totp_enabled_at, user.totp_last_step = secret, now, step
    codes = await _replace_recovery_codes(session, tokens, user)
    await record_audit(session, by=actor, action="two_factor_enable", target_type="staff_user", target_id=user.id,
                       detail={"email": user.email})
    return codes


async def check_code(session: AsyncSession, tokens: Tokens, *, user: StaffUser, code: str, actor: Actor,
                     now: dt.datetime, recovery: bool = True) -> str:
    """Accept a current authenticator code (never one already used) or, when `recovery`, an
    unused recovery code (then used up, audited). Returns "totp" or "recovery"; CodeError else."""
    if user.totp_secret is None:
        raise CodeError("Two-factor sign-in is not on for this account.")
    if looks_like_totp(code):
        step = matching_step(user.totp_secret, code, now=now, last_step=user.totp_last_step)
        if step is not None:
            user.totp_last_step = step
            await session.flush()
            return "totp"
        used = matching_step(user.totp_secret, code, now=now, last_step=None) is not None
        raise CodeError("Code: this code was used already; wait for the next one your app shows." if used else
                        "Code: that code did not work. Enter the 6 digits your app shows now.")
    if recovery and code.strip():
        hashes = _recovery_hashes(tokens, code)
        result = await session.execute(
            update(RecoveryCode).where(RecoveryCode.staff_user_id == user.id, RecoveryCode.used_at.is_(None),
                                       RecoveryCode.code_hash.in_(hashes)).values(used_at=now))
        if (result.rowcount or 0) > 0:  # type: ignore[attr-defined]
            await record_audit(session, by=actor, action="two_factor_recovery_used", target_type="staff_user",
                               target_id=user.id, detail={"email": user.email,
                                                          "left": await recovery_codes_left(session, user)})
            return "recovery"
        raise CodeError("Code: that recovery code did not work (each one works once).")
    raise CodeError("Code: enter the 6 digits your app shows" + (", or a recovery code." if recovery else "."))


async def recovery_codes_left(session: AsyncSession, user: StaffUser) -> int:
    return int(await session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.staff_user_id == user.id, RecoveryCode.used_at.is_(None))) or 0)


async def regenerate_recovery_codes(session: AsyncSession, tokens: Tokens, *, user: StaffUser, code: str,
                                    actor: Actor, now: dt.datetime) -> list[str]:
    """New recovery codes for old ones (all of which stop working), after a current app code."""
    await check_code(session, tokens, user=user, code=code, actor=actor, now=now, recovery=False)
    codes = await _replace_recovery_codes(session, tokens, user)
    await record_audit(session, by=actor, action="two_factor_recovery_regenerate", target_type="staff_user",
                       target_id=user.id, detail={"email": user.email})
    return codes


async def remove_two_factor(session: AsyncSession, *, user: StaffUser, actor: Actor, action: str) -> bool:
    """Switch the second factor off (its recovery codes go too); False when it was not on.
    `action`: "two_factor_disable" (its owner) or "two_factor_reset" (an admin or the CLI)."""
    if user.totp_secret is None:
        return False
    user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
    await session.execute(delete(RecoveryCode).where(RecoveryCode.staff_user_id == user.id))
    await record_audit(session, by=actor, action=action, target_type="staff_user", target_id=user.id,
                       detail={"email": user.email})
    return True


# -- the install-wide rule --------------------------------------------------------------------


class RequireError(ValueError):
    """The rule cannot be switched on now (the message says why)."""


async def two_factor_required(session: AsyncSession) -> bool:
    """Whether every staff member must sign in with a second factor."""
    return bool(await session.scalar(select(SecuritySettings.require_two_factor).where(SecuritySettings.id == 1)))


async def set_two_factor_required(session: AsyncSession, *, required: bool, actor_user: StaffUser, actor: Actor,
                                  now: dt.datetime) -> bool:
    """Require (or stop requiring) a second factor of everyone; False when nothing changed. An
    admin turns it on only with their own second factor on (so it is known to work here)."""
    if required and actor_user.totp_secret is None:
        raise RequireError("Set up two-factor sign-in for your own account first (Your account), then require it "
                           "of everyone.")
    row = await session.get(SecuritySettings, 1)
    if row is None:
        try:
            async with session.begin_nested():
                row = SecuritySettings(id=1, require_two_factor=False)
                session.add(row)
        except IntegrityError:
            row = await session.get(SecuritySettings, 1, populate_existing=True)
    assert row is not None
    if row.require_two_factor == required:
        return False
    row.require_two_factor, row.updated_at = required, now
    await record_audit(session, by=actor, action="two_factor_require", target_type="security",
                       target_id="1", detail={"required": required})
    return True
