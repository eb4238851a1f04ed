"""A failing statement's error (what the logs get: the worker logs it, a 500 logs its traceback)
names the SQL but never its parameters, which carry inquiries: health information."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tests.conftest import Database

SECRET_STORY = "I have had PTSD since the accident and ketamine is my last hope"


async def test_a_failed_insert_does_not_put_the_inquiry_into_the_error_message(db: Database) -> None:
    with pytest.raises(IntegrityError) as failure:
        async with db.sessions.begin() as session:
            await session.execute(text("INSERT INTO inquiries (name, message) VALUES (:name, :message)"),
                                  {"name": "Ana Souza", "message": SECRET_STORY})
    message = str(failure.value)
    assert "INSERT INTO inquiries" in message
    assert SECRET_STORY not in message and "Ana Souza" not in message
