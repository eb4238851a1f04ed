"""`tidings create-admin` and the first-run hint of `tidings serve`, run as real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.admin.models import StaffUser
from service.app import create_app
from service.cli import startup_hints
from service.settings import Settings
from tests.conftest import TEST_SECRET, Database
from tests.factories import make_staff, new_client, sign_in, token_in


def tidings(args: list[str], db_url: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "BASE_URL")}
    env.update(DATABASE_URL=db_url, SECRET_KEY=TEST_SECRET, BASE_URL="http://testserver")
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # runs `tidings` as a process
async def test_create_admin_with_password_from_stdin_can_sign_in(db: Database, app: Any, tmp_path: Path) -> None:
    r = tidings(["create-admin", "Boss@Clinic.test", "--name", "Boss", "--password-stdin"], db.url, tmp_path,
                stdin="a long enough password\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "created admin boss@clinic.test; sign in at http://testserver/admin/login"
    async with new_client(app) as c:
        assert (await sign_in(c, "boss@clinic.test", "a long enough password")).status_code == 303
        assert (await c.get("/admin/users")).status_code == 200


@pytest.mark.slow  # runs `tidings` as a process
async def test_create_admin_without_a_terminal_prints_a_one_time_link(db: Database, app: Any,
                                                                      tmp_path: Path) -> None:
    r = tidings(["create-admin", "helper@clinic.test", "--role", "staff"], db.url, tmp_path)
    assert r.returncode == 0, r.stderr
    link = re.search(r"http://testserver(/admin/set-password/\S+)", r.stdout)
    assert link, r.stdout
    async with new_client(app) as c:
        page = await c.get(link.group(1))
        assert page.status_code == 200
        done = await c.post(link.group(1), data={"form_token": token_in(page.text),
                                                 "password": "helper password 1", "confirm": "helper password 1"})
        assert done.status_code == 303
        assert (await c.get("/admin/users")).status_code == 403  # staff role
        assert (await c.get(link.group(1))).status_code == 400  # used


@pytest.mark.slow  # runs `tidings` as a process
async def test_create_admin_refuses_bad_input_with_one_line(db: Database, tmp_path: Path) -> None:
    await make_staff(db, "taken@clinic.test")
    for args, stdin, message in (
        (["create-admin", "taken@clinic.test", "--password-stdin"], "a long enough password\n", "already exists"),
        (["create-admin", "short@clinic.test", "--password-stdin"], "short\n", "at least 12 characters"),
        (["create-admin", "not-an-address", "--password-stdin"], "a long enough password\n", "Email: expected"),
    ):
        r = tidings(args, db.url, tmp_path, stdin=stdin)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    async with db.sessions() as session:
        assert (await session.scalars(select(StaffUser.email))).all() == ["taken@clinic.test"]


@pytest.mark.slow  # runs `tidings` as a process
def test_serve_hint_on_an_empty_embedded_database(tmp_path: Path) -> None:
    from service.cli import _migrate, run

    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}", secret_key=TEST_SECRET)
    run(_migrate(settings))
    hints = startup_hints(settings)
    assert any("tidings create-admin" in line for line in hints)
    r = tidings(["create-admin", "first@clinic.test", "--password-stdin"], settings.database_url, tmp_path,
                stdin="first admin password\n")
    assert r.returncode == 0, r.stderr
    assert startup_hints(settings) == []


async def test_login_page_works_with_the_real_app(settings: Settings, db: Database) -> None:
    app = create_app(settings, sessions=db.sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        r = await c.get("/admin")
    assert r.status_code == 303 and r.headers["location"] == "/admin/login?next=/admin"
