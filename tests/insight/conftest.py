"""Insight tests: the admin's signed-in clients (tests/admin/conftest.py), and a form rate limit
no test reaches, since a test sends several inquiries from one client."""

from __future__ import annotations

import pytest

from service.settings import Settings
from tests.admin.conftest import admin, admin_client, staff_client  # noqa: F401 - fixtures
from tests.conftest import Database, make_settings
from tests.factories import ROOMY


@pytest.fixture
def settings(db: Database) -> Settings:
    return make_settings(db, form_rate_limit=ROOMY)
