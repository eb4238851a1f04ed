"""The bounce mailbox the worker polls, against a real dovecot on loopback ports (IMAP and POP3):
one round records every report's events, then moves or deletes exactly the messages it
processed; a message it could not process stays and is logged by id alone; an unreachable
mailbox raises one clear error that never holds the password, and the next round catches up."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from service.bounces.jobs import poll_mailbox
from service.bounces.mailbox import MailboxUnavailable
from service.bounces.mailboxurl import parse_mailbox_url
from service.db import utcnow
from service.loops import WorkerContext
from service.mail.transport import LocalMailboxTransport
from service.settings import Settings
from service.worker import default_loops
from tests.bounces.dovecot import PASSWORD, Dovecot, start_dovecot, stop_dovecot
from tests.bounces.helpers import sample, stored_events
from tests.bounces.test_intake import _sent
from tests.conftest import Database
from tests.factories import subscriber
from tests.smtp import SmtpServer

pytestmark = pytest.mark.slow

BIG = b"Subject: a very large message\r\n\r\n" + (b"x" * 998 + b"\r\n") * 10_600  # > 10 MiB


@pytest.fixture(scope="module")
def dovecot_server() -> Iterator[Dovecot]:
    server = start_dovecot()
    try:
        yield server
    finally:
        stop_dovecot(server)


@pytest.fixture
def dovecot(dovecot_server: Dovecot) -> Iterator[Dovecot]:
    dovecot_server.empty()
    yield dovecot_server
    dovecot_server.empty()


def _ctx(db: Database, settings: Settings, url: str, done: str = "delete") -> WorkerContext:
    polling = settings.with_(bounce_mailbox=parse_mailbox_url(url, done=done))
    return WorkerContext(settings=polling, sessions=db.sessions, mailer=LocalMailboxTransport(db.sessions))


async def test_imap_round_records_reports_and_moves_only_what_it_processed(
        db: Database, settings: Settings, smtp: SmtpServer, dovecot: Dovecot, caplog: pytest.LogCaptureFixture) -> None:
    sent = await _sent(db, settings, smtp, "gone@example.org", "angry@example.org", "away@example.org")
    gone, angry, away = (sent[e] for e in ("gone@example.org", "angry@example.org", "away@example.org"))
    dovecot.deliver(
        sample("postfix_dsn", return_path=gone[1], rcpt="gone@example.org", message_id=gone[2]),
        BIG,
        sample("arf_abuse", return_path=angry[1], rcpt="angry@example.org", message_id=angry[2]),
        sample("out_of_office", return_path=away[1], rcpt="away@example.org", message_id=away[2]),
    )
    ctx = _ctx(db, settings, dovecot.url("imap"), done="Processed")
    caplog.set_level(logging.INFO, logger="tidings.bounces")

    assert await poll_mailbox(ctx) == 3

    assert (await subscriber(db, gone[0])).status == "bounced"
    assert (await subscriber(db, angry[0])).status == "complained"
    assert (await subscriber(db, away[0])).status == "confirmed"  # an out-of-office reply is no bounce
    assert sorted(e.kind for e in await stored_events(db)) == ["complaint", "hard"]
    assert {e.source for e in await stored_events(db)} == {"mailbox"}
    assert dovecot.messages() == [BIG]  # the one it could not read stays
    moved = dovecot.messages("Processed")
    assert len(moved) == 3 and any(b"Content-Type: message/delivery-status" in m for m in moved)
    logged = caplog.text
    assert "is larger than 10 MB: not read, left in the mailbox" in logged
    assert not any(e in logged for e in sent) and "xxxx" not in logged and PASSWORD not in logged

    assert await poll_mailbox(ctx) == 0  # the next round finds only the message it cannot read
    assert dovecot.messages() == [BIG] and len(await stored_events(db)) == 2


async def test_pop3_round_deletes_processed_messages_and_a_report_twice_counts_once(
        db: Database, settings: Settings, smtp: SmtpServer, dovecot: Dovecot) -> None:
    sent = await _sent(db, settings, smtp, "gone@example.org", "kept@example.org")
    sid, verp, message_id = sent["gone@example.org"]
    report = sample("postfix_dsn", return_path=verp, rcpt="gone@example.org", message_id=message_id)
    dovecot.deliver(report, report, BIG)

    assert await poll_mailbox(_ctx(db, settings, dovecot.url("pop3"))) == 2

    assert (await subscriber(db, sid)).status == "bounced"
    assert (await subscriber(db, sent["kept@example.org"][0])).status == "confirmed"
    (stored,) = await stored_events(db)
    assert (stored.kind, stored.source, stored.subscriber_id) == ("hard", "mailbox", sid)
    assert dovecot.messages() == [BIG]


async def test_forged_reports_are_cleared_without_changing_anything(
        db: Database, settings: Settings, smtp: SmtpServer, dovecot: Dovecot) -> None:
    sent = await _sent(db, settings, smtp, "ana@example.org")
    sid, verp, message_id = sent["ana@example.org"]
    token = verp.split("+")[1].split("@")[0]
    forged = verp.replace(token, ("b" if token[0] == "a" else "a") + token[1:])
    dovecot.deliver(sample("postfix_dsn", return_path=forged, rcpt="ana@example.org", message_id=message_id),
                    b"Subject: hello\r\n\r\nJust saying hi.\r\n")

    assert await poll_mailbox(_ctx(db, settings, dovecot.url("imap"))) == 2

    assert (await subscriber(db, sid)).status == "confirmed"
    assert await stored_events(db) == []
    assert dovecot.messages() == []


async def test_an_unreachable_mailbox_raises_one_clear_error_and_the_next_round_catches_up(
        db: Database, settings: Settings, smtp: SmtpServer, dovecot: Dovecot) -> None:
    sent = await _sent(db, settings, smtp, "gone@example.org")
    sid, verp, message_id = sent["gone@example.org"]
    dovecot.deliver(sample("postfix_dsn", return_path=verp, rcpt="gone@example.org", message_id=message_id))
    for scheme in ("imap", "pop3"):
        wrong = _ctx(db, settings, dovecot.url(scheme, password="not-the-password"))
        with pytest.raises(MailboxUnavailable) as refused:
            await poll_mailbox(wrong)
        assert str(refused.value).startswith(f"bounce mailbox {scheme}://bounces@127.0.0.1:")
        assert "cannot open the mailbox" in str(refused.value) and "not-the-password" not in str(refused.value)

    dovecot.stop()
    try:
        with pytest.raises(MailboxUnavailable) as down:
            await poll_mailbox(_ctx(db, settings, dovecot.url("imap")))
        assert "cannot open the mailbox: ConnectionRefusedError" in str(down.value) and PASSWORD not in str(down.value)
        assert (await subscriber(db, sid)).status == "confirmed"
    finally:
        dovecot.restart()

    assert await poll_mailbox(_ctx(db, settings, dovecot.url("imap"))) == 1
    assert (await subscriber(db, sid)).status == "bounced" and dovecot.messages() == []


def test_the_worker_polls_the_mailbox_only_when_one_is_set(settings: Settings) -> None:
    assert "bounce-mailbox" not in {loop.name for loop in default_loops(settings)}
    box = parse_mailbox_url("imaps://u:p@mail.clinic.test/INBOX")
    loops = {loop.name: loop for loop in default_loops(settings.with_(bounce_mailbox=box, bounce_mailbox_interval=90))}
    assert loops["bounce-mailbox"].interval == 90.0


async def test_a_report_dated_at_the_end_of_time_is_recorded_with_the_time_it_arrived(
        db: Database, settings: Settings, smtp: SmtpServer, dovecot: Dovecot) -> None:
    sent = await _sent(db, settings, smtp, "late@example.org")
    sid, verp, message_id = sent["late@example.org"]
    report = sample("postfix_dsn", return_path=verp, rcpt="late@example.org", message_id=message_id)
    head, _, body = report.partition(b"\r\n\r\n")
    head = b"\r\n".join(b"Date: Fri, 31 Dec 9999 23:59:00 -0100" if line.startswith(b"Date:") else line
                        for line in head.split(b"\r\n"))
    dovecot.deliver(head + b"\r\n\r\n" + body)

    assert await poll_mailbox(_ctx(db, settings, dovecot.url("imap"))) == 1

    assert (await subscriber(db, sid)).status == "bounced"
    (stored,) = await stored_events(db)
    assert stored.occurred_at.year == utcnow().year
    assert dovecot.messages() == []


@pytest.mark.parametrize(("scheme", "query"), [("imaps", "verify=false"), ("pop3s", "verify=false"),
                                               ("imap", "starttls=require&verify=false"),
                                               ("pop3", "starttls=require&verify=false")])
async def test_tls_from_the_start_or_by_starttls(db: Database, settings: Settings, smtp: SmtpServer, dovecot: Dovecot,
                                                 scheme: str, query: str) -> None:
    sent = await _sent(db, settings, smtp, "gone@example.org")
    sid, verp, message_id = sent["gone@example.org"]
    dovecot.deliver(sample("postfix_dsn", return_path=verp, rcpt="gone@example.org", message_id=message_id))
    assert await poll_mailbox(_ctx(db, settings, dovecot.url(scheme, query=query))) == 1
    assert (await subscriber(db, sid)).status == "bounced" and dovecot.messages() == []


@pytest.mark.parametrize("scheme", ["imaps", "imap", "pop3s", "pop3"])
async def test_a_certificate_that_does_not_verify_is_refused(db: Database, settings: Settings, dovecot: Dovecot,
                                                             scheme: str) -> None:
    dovecot.deliver(b"Subject: hello\r\n\r\nJust saying hi.\r\n")
    with pytest.raises(MailboxUnavailable) as refused:  # self-signed: refused unless ?verify=false
        await poll_mailbox(_ctx(db, settings, dovecot.url(scheme, query="")))
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value) and PASSWORD not in str(refused.value)
    assert len(dovecot.messages()) == 1
