from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.settings import Settings
from tests.conftest import Database, make_settings
from tests.webhooks.receiver import Receiver


@pytest.fixture
def settings(db: Database) -> Settings:
    # Every receiver in these tests listens on loopback, over http unless a test says otherwise.
    # 3 s: one test waits out a hanging receiver once; a receiver that merely answers late on a
    # loaded machine must not look like one that hangs (1 s left little room for that).
    return make_settings(db, webhook_allow_http=True, webhook_allow_private=True, webhook_timeout=3.0)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()
