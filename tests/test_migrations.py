"""The schema comes only from Alembic, and the models agree with it on both databases."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from service.db import Base, alembic_config, current_revision
from tests.conftest import Database


async def test_migrations_reach_head_on_empty_database(db: Database) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert await current_revision(db.engine) == head
    async with db.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables


async def test_models_and_migrations_agree(db: Database) -> None:
    def diff(connection: Any) -> list[Any]:
        ctx = MigrationContext.configure(connection, opts={"compare_type": True})
        with warnings.catch_warnings():
            # SQLite cannot reflect expression indexes; PostgreSQL-only ones (tsvector GIN) are not made there.
            warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression-based index")
            return list(compare_metadata(ctx, Base.metadata))

    async with db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


def test_single_migration_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"migrations have several heads: {heads}"


@pytest.mark.slow  # runs `tidings` as a process
def test_tidings_migrate_command_on_fresh_sqlite(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert result.stdout.strip() == f"database is at revision {head}"
    again = subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout == result.stdout
