"""Newsletter tests sign up many addresses from one client IP: lift the per-IP form limit
(the limit itself is tested with the shared form defences)."""

from __future__ import annotations

import pytest

from service.settings import Settings
from tests.conftest import Database, make_settings
from tests.factories import ROOMY


@pytest.fixture
def settings(db: Database) -> Settings:
    return make_settings(db, form_rate_limit=ROOMY)
