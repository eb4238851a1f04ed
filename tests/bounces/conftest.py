"""Bounce tests run with a return path configured (RETURN_PATH), unless a test turns it off."""

from __future__ import annotations

import pytest

from service.settings import RateLimit, Settings
from tests.conftest import Database, make_settings

RETURN_PATH = "bounces+{token}@bounces.clinic.test"


@pytest.fixture
def settings(db: Database) -> Settings:
    return make_settings(db, return_path=RETURN_PATH, form_rate_limit=RateLimit(10_000, 600))
