"""Staff who cannot get in: the sign-in page of a fresh install names the command that creates
the first admin; "Forgot your password?" emails a signed, single-use, one-hour link through the
outbox (the same answer whether or not the address has an account, limited per account and per
IP), and setting the password lifts the lock; an invitation is emailed with its link too."""

from __future__ import annotations

import time
from typing import Any

import httpx
import itsdangerous
import pytest
from sqlalchemy import select

from service.admin.auth import ACCOUNT_MAX_FAILURES
from service.admin.models import AuditEvent
from service.admin.recovery import RESET_ADDRESS_LIMIT, RESET_ANSWER
from service.mail.models import OutboxMessage
from tests.conftest import TEST_SECRET, Database
from tests.factories import (
    ADMIN_EMAIL,
    PASSWORD,
    csrf,
    deliver,
    link_in,
    make_staff,
    new_client,
    outbox_messages,
    sign_in,
    token_in,
)
from tests.smtp import SmtpServer

NEW_PASSWORD = "a brand new long password"


async def forgot(client: httpx.AsyncClient, email: str) -> httpx.Response:
    page = await client.get("/admin/forgot-password")
    assert page.status_code == 200
    return await client.post("/admin/forgot-password", data={"email": email, "form_token": token_in(page.text)})


async def set_new_password(client: httpx.AsyncClient, path: str, password: str = NEW_PASSWORD) -> httpx.Response:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return await client.post(path, data={"form_token": token_in(page.text), "password": password,
                                         "confirm": password})


async def test_a_fresh_install_sign_in_page_names_the_command_that_creates_the_first_admin(
        app: Any, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    async with new_client(app) as c:
        monkeypatch.setenv("TIDINGS_LAUNCHER", "./dev tidings")  # started through ./dev
        page = await c.get("/admin/login")
        assert "There is no staff account yet" in page.text
        assert "<code>./dev tidings create-admin you@example.org</code>" in page.text
        monkeypatch.delenv("TIDINGS_LAUNCHER")  # an installed package
        assert "<code>tidings create-admin you@example.org</code>" in (await c.get("/admin/login")).text
        await make_staff(db)
        page = await c.get("/admin/login")
    assert "There is no staff account yet" not in page.text and "create-admin" not in page.text
    assert 'href="/admin/forgot-password"' in page.text


async def test_forgot_password_emails_a_single_use_link_that_lifts_the_lock(
        app: Any, db: Database, smtp: SmtpServer) -> None:
    await make_staff(db)
    async with new_client(app) as c:
        for _ in range(ACCOUNT_MAX_FAILURES):
            await sign_in(c, password="wrong password here")
        assert "This account is locked" in (await sign_in(c)).text
        known = await forgot(c, ADMIN_EMAIL.upper())
        unknown = await forgot(c, "nobody@clinic.test")
        assert known.status_code == unknown.status_code == 200
        assert RESET_ANSWER in known.text and RESET_ANSWER in unknown.text
        assert known.text == unknown.text  # nothing tells whether the address has an account
        assert await deliver(db, smtp) == 1  # one email, to the account that exists
        [mail] = smtp.received
        assert mail.recipients == [ADMIN_EMAIL]
        assert mail.message["Subject"] == "Set a new password for Tidings"
        path = link_in(mail.message, "/admin/reset-password/")
        assert "works once, for 60 minutes" in mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        done = await set_new_password(c, path)
        assert done.status_code == 303 and done.headers["location"] == "/admin/"
        assert (await c.get("/admin/")).status_code == 200  # signed in
        again = await c.get(path)
        assert again.status_code == 400 and "already been used" in again.text
    async with new_client(app, ip="203.0.113.60") as other:
        assert (await sign_in(other, password=NEW_PASSWORD)).status_code == 303  # lock lifted
        assert (await sign_in(other, password=PASSWORD)).status_code == 401  # old password gone
    async with db.sessions() as session:
        rows = (await session.execute(select(AuditEvent.action, AuditEvent.detail)
                                      .where(AuditEvent.action.like("password_%")).order_by(AuditEvent.id))).all()
    assert [(a, d.get("outcome")) for a, d in rows[:2]] == [("password_reset_request", "sent"),
                                                            ("password_reset_request", "unknown")]
    assert rows[2] == ("password_reset", {"unlocked": True})


async def test_reset_requests_are_limited_per_account_and_bad_input_changes_nothing(app: Any, db: Database) -> None:
    await make_staff(db)
    async with new_client(app) as c:
        for i in range(RESET_ADDRESS_LIMIT.count + 2):
            async with new_client(app, ip=f"198.51.100.{i + 1}") as each:  # different IPs: the account limit
                r = await forgot(each, ADMIN_EMAIL)
                assert r.status_code == 200 and RESET_ANSWER in r.text
        empty = await forgot(c, "   ")
        assert empty.status_code == 422 and "Email: enter the address you sign in with." in empty.text
        page = await c.get("/admin/forgot-password")
        forged = await c.post("/admin/forgot-password", data={"email": ADMIN_EMAIL, "form_token": "forged"})
        assert forged.status_code == 403 and token_in(page.text)
    assert len(await outbox_messages(db)) == RESET_ADDRESS_LIMIT.count
    async with db.sessions() as session:
        outcomes = (await session.scalars(select(AuditEvent.detail)
                                          .where(AuditEvent.action == "password_reset_request"))).all()
    assert [d["outcome"] for d in outcomes].count("limited") == 2


def _old_reset_token(user_id: int, version: int, fingerprint: str, age: int) -> str:
    class OldSigner(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age)

    return itsdangerous.URLSafeTimedSerializer(TEST_SECRET, salt="tidings.admin-reset-password",
                                               signer=OldSigner).dumps({"u": user_id, "v": version, "h": fingerprint})


async def test_a_reset_link_expires_after_an_hour_and_an_invitation_link_is_not_a_reset_link(
        app: Any, db: Database, smtp: SmtpServer) -> None:
    from service.admin.auth import _password_fingerprint, set_password_token
    from service.tokens import Tokens

    user = await make_staff(db)
    fingerprint = _password_fingerprint(user)
    async with new_client(app) as c:
        fresh = await c.get(f"/admin/reset-password/{_old_reset_token(user.id, 1, fingerprint, 50 * 60)}")
        assert fresh.status_code == 200 and "Set your password" in fresh.text
        old = await c.get(f"/admin/reset-password/{_old_reset_token(user.id, 1, fingerprint, 61 * 60)}")
        assert old.status_code == 410 and "Ask for a new one on the sign-in page" in old.text
        invite_token = set_password_token(Tokens(app.state.settings), user)
        assert (await c.get(f"/admin/reset-password/{invite_token}")).status_code == 400


async def test_an_invitation_is_emailed_with_its_link(app: Any, db: Database, smtp: SmtpServer,
                                                       admin_client: httpx.AsyncClient) -> None:
    r = await admin_client.post("/admin/users/invite", data={"csrf_token": await csrf(admin_client),
                                                             "email": "New.Colleague@clinic.test", "name": "Ana",
                                                             "role": "staff"})
    assert r.status_code == 200
    assert "We have emailed <strong>new.colleague@clinic.test</strong> an invitation" in r.text
    assert await deliver(db, smtp) == 1
    [mail] = smtp.received
    assert mail.recipients == ["new.colleague@clinic.test"]
    assert mail.message["Subject"] == "Your staff account at Tidings"
    path = link_in(mail.message, "/admin/set-password/")
    assert path in r.text  # the same link is shown, for when mail is slow
    async with new_client(app, ip="203.0.113.70") as invited:
        assert (await set_new_password(invited, path)).status_code == 303
        assert (await invited.get("/admin/inquiries")).status_code == 200
    async with db.sessions() as session:
        detail = (await session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "user_invite"))).one()
    assert detail == {"email": "new.colleague@clinic.test", "role": "staff", "emailed": True}


@pytest.mark.parametrize("name", ["jörg@clinic.test", "front(desk)@clinic.test"])
async def test_a_sign_in_name_that_cannot_be_mailed_as_it_is_still_gets_a_link_to_copy(
        db: Database, admin_client: httpx.AsyncClient, name: str) -> None:
    """A non-ASCII local part cannot go into a header; "front(desk)@…" would reach front@… instead."""
    r = await admin_client.post("/admin/users/invite", data={"csrf_token": await csrf(admin_client),
                                                             "email": name, "role": "staff"})
    assert r.status_code == 200 and f"Send this one-time link to <strong>{name}</strong>" in r.text
    assert "/admin/set-password/" in r.text
    async with db.sessions() as session:
        assert (await session.scalars(select(OutboxMessage.recipient))).all() == []
