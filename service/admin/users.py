"""Staff account management (admins only): change role, deactivate, reactivate, with the guard
that the area always keeps at least one active admin."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.models import ROLES, StaffUser


class UserChangeError(ValueError):
    """A change that is refused (the message says why)."""


async def list_staff(session: AsyncSession) -> Sequence[StaffUser]:
    return (await session.scalars(select(StaffUser).order_by(StaffUser.active.desc(), StaffUser.email))).all()


async def _other_active_admins(session: AsyncSession, user: StaffUser) -> int:
    # Lock the admin rows so that two admins demoting each other at once cannot both succeed.
    stmt = (select(StaffUser.id).where(StaffUser.role == "admin", StaffUser.active.is_(True),
                                       StaffUser.id != user.id).with_for_update())
    return len((await session.scalars(stmt)).all())


async def change_role(session: AsyncSession, *, user: StaffUser, role: str) -> bool:
    """Give `user` another role; False when it already had it."""
    if role not in ROLES:
        raise UserChangeError(f"Role: expected one of {', '.join(ROLES)}.")
    if user.role == role:
        return False
    if user.role == "admin" and user.active and await _other_active_admins(session, user) == 0:
        raise UserChangeError("Role: this is the last active admin; make someone else an admin first.")
    user.role = role
    await session.flush()
    return True


async def set_active(session: AsyncSession, *, user: StaffUser, active: bool) -> bool:
    """Deactivate (their sessions end at once) or reactivate; False when nothing changed."""
    if user.active == active:
        return False
    if not active and user.role == "admin" and await _other_active_admins(session, user) == 0:
        raise UserChangeError("This is the last active admin; make someone else an admin first.")
    user.active = active
    user.session_version += 1
    await session.flush()
    return True
