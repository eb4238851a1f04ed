"""Every SQLite/PostgreSQL difference of a query lives in service/db.py (its helpers: insert_for,
day_bucket, word_search, bulk_insert, analyze, without_jit, lock_names, postgresql_only): a module
elsewhere that asks which database it runs on fails here, naming the file and line."""

from __future__ import annotations

import re
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[1] / "service"
# Asking the dialect, or importing a dialect's own insert construct.
DIALECT_CHECK = re.compile(r"dialect\.name|[=!]= *[\"'](postgresql|sqlite)[\"']|sqlalchemy\.dialects\.")


def dialect_checks(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "db.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if DIALECT_CHECK.search(line):
                found.append(f"{path.relative_to(root.parent)}:{number}: {line.strip()}")
    return found


def test_no_dialect_checks_outside_db() -> None:
    assert dialect_checks(SERVICE) == []


def test_the_guard_finds_a_dialect_check(tmp_path: Path) -> None:
    (tmp_path / "db.py").write_text('POSTGRES = engine.dialect.name == "postgresql"\n')
    (tmp_path / "stats.py").write_text('def day(session):\n    if session.bind.dialect.name == "sqlite":\n'
                                       '        return 1\n')
    (tmp_path / "ok.py").write_text("from service.db import insert_for\n")
    assert [hit.split(": ")[0] for hit in dialect_checks(tmp_path)] == [f"{tmp_path.name}/stats.py:2"]
