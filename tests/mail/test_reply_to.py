"""Replies reach the staff: the automatic reply says "simply reply to this email", so it carries
`Reply-To: REPLY_TO` (default STAFF_INBOX) even with a no-reply MAIL_FROM; the staff notification
keeps `Reply-To` the client. Read back from the real SMTP server."""

from __future__ import annotations

import pytest

from service.settings import Settings, SettingsError
from tests.conftest import Database
from tests.factories import client_with, deliver, post_json
from tests.smtp import SmtpServer

NO_REPLY = "Clinic <no-reply@clinic.test>"


async def _sent(db: Database, smtp: SmtpServer, **settings: object) -> dict[str, object]:
    async with client_with(db, mail_from=NO_REPLY, **settings) as client:
        r = await post_json(client, name="Pat Doe", email="pat@example.org")
        assert r.status_code == 201, r.text
    assert await deliver(db, smtp) == 2
    return {m.recipients[0]: m.message for m in smtp.received}


async def test_a_reply_to_the_automatic_reply_goes_to_the_staff_inbox(db: Database, smtp: SmtpServer) -> None:
    got = await _sent(db, smtp)
    auto, staff = got["pat@example.org"], got["staff@clinic.test"]
    assert "simply reply to this email" in auto.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert auto["From"].addresses[0].addr_spec == "no-reply@clinic.test"
    assert [a.addr_spec for a in auto["Reply-To"].addresses] == ["staff@clinic.test"]
    assert [(a.display_name, a.addr_spec) for a in staff["Reply-To"].addresses] == [("Pat Doe", "pat@example.org")]


async def test_reply_to_setting_overrides_the_staff_inbox(db: Database, smtp: SmtpServer) -> None:
    got = await _sent(db, smtp, reply_to="Front desk <desk@clinic.test>")
    auto = got["pat@example.org"]
    assert [(a.display_name, a.addr_spec) for a in auto["Reply-To"].addresses] == [("Front desk", "desk@clinic.test")]
    assert got["staff@clinic.test"]["Reply-To"].addresses[0].addr_spec == "pat@example.org"


def _env(**values: str) -> dict[str, str]:
    return {"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": "k" * 20 + "0123456789abcdefghijkl", **values}


def test_reply_to_defaults_to_the_staff_inbox_and_is_validated() -> None:
    assert Settings.from_env(_env(STAFF_INBOX="team@clinic.test"), env_file=None).reply_address == "team@clinic.test"
    s = Settings.from_env(_env(REPLY_TO="Desk <desk@clinic.test>"), env_file=None)
    assert s.reply_address == "Desk <desk@clinic.test>"
    for bad in ("not an address", "desk@clinic.test\r\nBcc: x@evil.test"):
        with pytest.raises(SettingsError, match=r"^REPLY_TO: expected an email address"):
            Settings.from_env(_env(REPLY_TO=bad), env_file=None)
