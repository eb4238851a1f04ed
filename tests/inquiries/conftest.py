"""Inquiry tests send many forms from one client IP: lift the per-IP form limit (the limit
itself is tested with a client of its own)."""

from __future__ import annotations

import pytest

from service.settings import Settings
from tests.conftest import Database, make_settings
from tests.factories import ROOMY


@pytest.fixture
def settings(db: Database) -> Settings:
    """The suite's settings with a rate limit no test reaches unless it means to."""
    return make_settings(db, form_rate_limit=ROOMY)
