"""`tidings staff unlock EMAIL`, `tidings staff reset-password EMAIL [--send]` and `tidings staff
reset-2fa EMAIL`: what an operator does for a colleague who is locked out, has forgotten their
password or lost their second factor, from the command line (audit-logged as `cli:<OS user name>`)."""

from __future__ import annotations

import argparse
from typing import Any

from service.admin import auth
from service.admin.audit import Actor, record_audit
from service.admin.models import StaffUser
from service.admin.recovery import email_password_reset, unlock
from service.admin.twofactor import remove_two_factor, two_factor_required
from service.command import CommandError, database_command, link_caveat
from service.db import Sessions, transaction, utcnow
from service.settings import Settings
from service.tokens import Tokens


async def _account(session: Any, email: str) -> StaffUser:
    user = await auth.get_staff_by_email(session, email)
    if user is None:
        raise CommandError(f"no staff account has the address {auth.normalise_email(email)!r}")
    return user


async def _unlock(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    async with transaction(sessions) as session:
        user = await _account(session, args.email)
        was = unlock(user)
        locked = was is not None and was > utcnow()
        await record_audit(session, by=Actor.cli(), action="user_unlock", target_type="staff_user",
                           target_id=user.id, detail={"email": user.email, "was_locked": locked})
    print(f"unlocked {user.email}" if locked else f"{user.email} was not locked; failed sign-ins reset to 0")


async def _reset_password(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    async with transaction(sessions) as session:
        user = await _account(session, args.email)
        if not user.active:
            raise CommandError(f"{user.email} is deactivated: reactivate the account first (admin, Users)")
        tokens = Tokens(settings)
        if args.send and not await email_password_reset(session, settings, tokens, user):
            raise CommandError(f"{user.email} cannot be mailed; run this again without --send and pass the link on")
        await record_audit(session, by=Actor.cli(), action="user_password_link", target_type="staff_user",
                           target_id=user.id, detail={"email": user.email, "via": "email" if args.send else "printed"})
        link = auth.reset_password_url(settings, tokens, user)
    minutes = auth.RESET_PASSWORD_SECONDS // 60
    if args.send:
        print(f"emailed {user.email} a link to set a new password (works once, for {minutes} minutes)"
              + link_caveat(settings))
    else:
        print(f"Give this one-time link to {user.email} (works once, for {minutes} minutes; setting the password "
              f"also lifts a lock):\n{link}" + link_caveat(settings))


async def _reset_two_factor(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    async with transaction(sessions) as session:
        user = await _account(session, args.email)
        removed = await remove_two_factor(session, user=user, actor=Actor.cli(), action="two_factor_reset")
        required = await two_factor_required(session)
    if not removed:
        print(f"{user.email} had no second factor; nothing changed")
        return
    then = ("they must set up a new one right after their next sign-in (it is required of everyone)" if required
            else "they sign in with their password alone until they set up a new one")
    print(f"removed the second factor (authenticator and recovery codes) of {user.email}; {then}")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("staff", help="help a staff member who is locked out, has forgotten their password "
                                           "or lost their second factor")
    staff = p.add_subparsers(dest="staff_command", metavar="ACTION", required=True)
    u = staff.add_parser("unlock", help="lift the lock after failed sign-ins at once")
    u.add_argument("email", metavar="EMAIL")
    u.set_defaults(handler=database_command(_unlock))
    r = staff.add_parser("reset-password", help="print a one-time link to set a new password (1 hour), "
                                                "or email it with --send")
    r.add_argument("email", metavar="EMAIL")
    r.add_argument("--send", action="store_true", help="email the link to the account's address (through the "
                                                       "outbox) instead of printing it")
    r.set_defaults(handler=database_command(_reset_password))
    t = staff.add_parser("reset-2fa", help="remove a lost second factor (authenticator app and recovery codes)")
    t.add_argument("email", metavar="EMAIL")
    t.set_defaults(handler=database_command(_reset_two_factor))
