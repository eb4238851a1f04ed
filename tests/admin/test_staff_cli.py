"""`tidings staff unlock EMAIL` and `tidings staff reset-password EMAIL [--send]`, run through
`service.cli.main` in this process (the real parser, handlers and database), audited as
`cli:<OS user name>`; the printed link is then used through the real app."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import select, update

from service.admin.models import AuditEvent, StaffUser
from service.app import create_app
from service.cli import main
from service.db import create_engine, session_factory
from service.mail.models import OutboxMessage
from tests.conftest import TEST_SECRET, Database, make_settings
from tests.factories import ADMIN_EMAIL, PASSWORD, new_client, sign_in, token_in


@pytest.fixture
async def locked_admin(db: Database) -> Database:
    from tests.factories import make_staff

    await make_staff(db)
    async with db.sessions.begin() as session:
        await session.execute(update(StaffUser).values(
            locked_until=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10), failed_logins=0))
    return db


@pytest.fixture
def cli_env(locked_admin: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("DATABASE_URL", locked_admin.url)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("BASE_URL", "http://testserver")
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.chdir(tmp_path)
    return locked_admin


def _run(db: Database, coro_fn):  # type: ignore[no-untyped-def]
    """Run `coro_fn(sessions, app)` on a fresh engine (the CLI ran in this thread with asyncio.run)."""
    async def go():  # type: ignore[no-untyped-def]
        engine = create_engine(db.url)
        try:
            sessions = session_factory(engine)
            return await coro_fn(sessions, create_app(make_settings(db), sessions=sessions))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_staff_unlock_lifts_the_lock_and_is_audited(cli_env: Database, capsys: pytest.CaptureFixture[str]) -> None:
    async def sign_in_status(sessions, app):  # type: ignore[no-untyped-def]
        async with new_client(app) as c:
            return (await sign_in(c)).status_code

    assert _run(cli_env, sign_in_status) == 401  # locked
    assert main(["staff", "unlock", ADMIN_EMAIL.upper()]) == 0
    assert capsys.readouterr().out == f"unlocked {ADMIN_EMAIL}\n"
    assert main(["staff", "unlock", "nobody@clinic.test"]) == 1
    assert capsys.readouterr().err == "error: no staff account has the address 'nobody@clinic.test'\n"

    async def audit(sessions, app):  # type: ignore[no-untyped-def]
        async with sessions() as session:
            return (await session.execute(select(AuditEvent.action, AuditEvent.actor_email, AuditEvent.ip,
                                                 AuditEvent.detail))).all()

    assert [tuple(r) for r in _run(cli_env, audit)] == [
        ("sign_in_failed", "", "203.0.113.7", {"email": ADMIN_EMAIL, "reason": "locked"}),
        ("user_unlock", "cli:alice", "cli", {"email": ADMIN_EMAIL, "was_locked": True})]
    assert _run(cli_env, sign_in_status) == 303


def test_staff_reset_password_prints_a_link_that_works_once(cli_env: Database,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["staff", "reset-password", ADMIN_EMAIL]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Give this one-time link to {ADMIN_EMAIL} (works once, for 60 minutes;")
    path = re.search(r"http://testserver(/admin/reset-password/\S+)", out)
    assert path, out

    async def use(sessions, app):  # type: ignore[no-untyped-def]
        async with new_client(app) as c:
            page = await c.get(path.group(1))
            done = await c.post(path.group(1), data={"form_token": token_in(page.text),
                                                     "password": "set from the cli", "confirm": "set from the cli"})
            again = await c.get(path.group(1))
        async with new_client(app, ip="203.0.113.80") as other:
            old = (await sign_in(other, password=PASSWORD)).status_code
            new = (await sign_in(other, password="set from the cli")).status_code
        return done.status_code, again.status_code, old, new

    assert _run(cli_env, use) == (303, 400, 401, 303)  # set, used up, old password gone, lock lifted


def test_staff_reset_password_send_queues_the_email_and_refuses_unknown_accounts(
        cli_env: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["staff", "reset-password", ADMIN_EMAIL, "--send"]) == 0
    assert capsys.readouterr().out == (f"emailed {ADMIN_EMAIL} a link to set a new password "
                                       "(works once, for 60 minutes)\n")
    assert main(["staff", "reset-password", "nobody@clinic.test", "--send"]) == 1
    assert "no staff account has the address" in capsys.readouterr().err

    async def rows(sessions, app):  # type: ignore[no-untyped-def]
        async with sessions() as session:
            mail = (await session.execute(select(OutboxMessage.recipient, OutboxMessage.kind))).all()
            audit = (await session.execute(select(AuditEvent.action, AuditEvent.actor_email,
                                                  AuditEvent.detail))).all()
        return [tuple(m) for m in mail], [tuple(a) for a in audit]

    assert _run(cli_env, rows) == ([(ADMIN_EMAIL, "staff_password_reset")],
                                   [("user_password_link", "cli:alice", {"email": ADMIN_EMAIL, "via": "email"})])


def test_without_base_url_on_sqlite_a_printed_link_says_which_address_it_assumes(
        cli_env: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`tidings serve` without BASE_URL links to the address it listens on; a command run beside it
    cannot know that address, so it says what it assumed (PostgreSQL needs BASE_URL anyway)."""
    monkeypatch.delenv("BASE_URL")
    assert main(["staff", "reset-password", ADMIN_EMAIL]) == 0
    out = capsys.readouterr().out
    caveat = ("(BASE_URL is not set, so this link assumes http://localhost:8000; if the server listens elsewhere, "
              "use its address, or set BASE_URL)")
    assert "http://localhost:8000/admin/reset-password/" in out
    assert (caveat in out) == (not cli_env.is_postgres)


def test_staff_reset_2fa_removes_a_lost_second_factor(cli_env: Database, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.admin.test_two_factor import enrol
    from tests.factories import signed_in_client

    async def set_up(sessions, app):  # type: ignore[no-untyped-def]
        async with sessions() as session:
            user = (await session.scalars(select(StaffUser))).one()
        async with signed_in_client(app, user) as c:
            return len((await enrol(c))[1])

    assert _run(cli_env, set_up) == 10
    assert main(["staff", "unlock", ADMIN_EMAIL]) == 0
    assert main(["staff", "reset-2fa", ADMIN_EMAIL]) == 0
    out = capsys.readouterr().out
    assert out.endswith(f"removed the second factor (authenticator and recovery codes) of {ADMIN_EMAIL}; they sign "
                        "in with their password alone until they set up a new one\n")
    assert main(["staff", "reset-2fa", ADMIN_EMAIL]) == 0
    assert capsys.readouterr().out == f"{ADMIN_EMAIL} had no second factor; nothing changed\n"
    assert main(["staff", "reset-2fa", "nobody@clinic.test"]) == 1
    assert capsys.readouterr().err == "error: no staff account has the address 'nobody@clinic.test'\n"

    async def after(sessions, app):  # type: ignore[no-untyped-def]
        async with new_client(app) as c:
            location = (await sign_in(c)).headers["location"]
        async with sessions() as session:
            audit = (await session.execute(select(AuditEvent.actor_email, AuditEvent.detail)
                                           .where(AuditEvent.action == "two_factor_reset"))).all()
        return location, [tuple(a) for a in audit]

    assert _run(cli_env, after) == ("/admin/", [("cli:alice", {"email": ADMIN_EMAIL})])
