"""Admin fixtures: an admin account, and clients signed in as an admin or as staff with the
session cookie the login route would set; `login_form_client` signs in through the real form
(kept by the two page tests that need what signing in records; tests/admin/test_auth.py tests
signing in itself with `sign_in`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.admin.models import StaffUser
from tests.conftest import Database
from tests.factories import STAFF_EMAIL, make_staff, new_client, sign_in, signed_in_client


@pytest.fixture
async def admin(db: Database) -> StaffUser:
    return await make_staff(db)


@pytest.fixture
async def admin_client(app: Any, admin: StaffUser) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in_client(app, admin) as c:
        yield c


@pytest.fixture
async def staff_client(app: Any, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    staff = await make_staff(db, STAFF_EMAIL, role="staff")
    async with signed_in_client(app, staff, ip="203.0.113.8") as c:
        yield c


@pytest.fixture
async def login_form_client(app: Any, admin: StaffUser) -> AsyncIterator[httpx.AsyncClient]:
    """An admin signed in through the login page and form, like a browser."""
    async with new_client(app) as c:
        r = await sign_in(c)
        assert r.status_code == 303, r.text
        yield c
