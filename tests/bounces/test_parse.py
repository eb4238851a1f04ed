"""Each report format read from a realistic sample: RFC 3464 DSNs (Postfix, Gmail, Exchange,
Exim), the non-standard bounces (Exim without a DSN, qmail), RFC 5965 abuse reports (one with the
recipient redacted), and automatic replies, which are recognised and never counted; a person's
own reply is nothing at all. Bounces are recognised before auto-replies, though MTAs mark their
bounces `Auto-Submitted: auto-replied`."""

from __future__ import annotations

import email
import email.policy
from email.utils import getaddresses, parseaddr

import pytest

from service.bounces.events import report_key
from service.bounces.mime import address_of, addresses_of, lean_dsn, quick_report
from service.bounces.parse import mail_events, parse_report, report_of
from service.bounces.returnpath import make_token, return_path
from service.settings import Settings
from tests.bounces.helpers import SAMPLES, sample

SETTINGS = Settings(secret_key="k" * 20 + "0123456789abcdef", return_path="bounces+{token}@bounces.clinic.test")
RP = return_path(SETTINGS, "delivery", 77) or ""
TOKEN = make_token(SETTINGS, "delivery", 77)
MID = "<digest.3.77@clinic.test>"
RCPT = "gone.user@example.org"


def _report(name: str):  # type: ignore[no-untyped-def]
    return parse_report(sample(name, return_path=RP, rcpt=RCPT, message_id=MID), SETTINGS)


@pytest.mark.parametrize(("name", "kind", "status", "words"), [
    ("postfix_dsn", "hard", "5.1.1", "User unknown in virtual mailbox table"),
    ("gmail_dsn", "hard", "5.1.1", "The email account that you tried to reach does not exist"),
    ("exim_failed", "hard", "5.0.0", "550 5.1.1"),
    ("exchange_mailbox_full", "soft", "5.2.2", "mailbox full"),  # 5.2.2: full, not gone
    ("exim_plain", "hard", None, "550 No such user here"),
    ("qmail", "hard", "5.1.1", "no mailbox here by that name"),
])
def test_bounces_are_read_with_recipient_status_and_diagnostic(name: str, kind: str, status: str | None,
                                                              words: str) -> None:
    report = _report(name)
    assert report.kind == "bounce"
    (failure,) = report.failures
    assert (failure.kind, failure.recipient, failure.status) == (kind, RCPT, status)
    assert words in failure.diagnostic and "\n" not in failure.diagnostic and "\r" not in failure.diagnostic
    assert report.tokens == (TOKEN,)  # the message is identified by the return path
    assert report.message_id == MID  # and by the returned headers
    (event,) = mail_events(report, source="pipe", raw=b"")
    assert (event.kind, event.return_token, event.message_id, event.status) == (kind, TOKEN, MID, status)
    assert event.occurred_at.tzinfo is not None


def test_postfix_bounce_is_a_bounce_though_it_is_marked_auto_replied() -> None:
    raw = sample("postfix_dsn", return_path=RP, rcpt=RCPT, message_id=MID)
    assert b"Auto-Submitted: auto-replied" in raw
    assert parse_report(raw, SETTINGS).kind == "bounce"


@pytest.mark.parametrize("name", ["arf_abuse", "arf_redacted"])
def test_abuse_reports_are_complaints(name: str) -> None:
    report = _report(name)
    assert report.kind == "complaint"
    (failure,) = report.failures
    assert failure.kind == "complaint" and "abuse report" in failure.diagnostic
    assert report.tokens == (TOKEN,)  # from the Return-Path of the reported message
    assert report.message_id == MID
    if name == "arf_abuse":
        assert failure.recipient == RCPT


@pytest.mark.parametrize(("name", "kind"), [
    ("out_of_office", "autoreply"), ("outlook_automatic_reply", "autoreply"),
    ("postfix_delayed", "delay"), ("personal_reply", "unrecognised"),
])
def test_auto_replies_delays_and_other_mail_carry_no_event(name: str, kind: str) -> None:
    report = _report(name)
    assert report.kind == kind and report.failures == ()
    assert mail_events(report, source="lmtp", raw=b"") == []


def test_the_envelope_recipient_token_wins_and_keys_are_stable() -> None:
    raw = sample("postfix_dsn", return_path=RP, rcpt=RCPT, message_id=MID)
    report = parse_report(raw, SETTINGS)
    other = make_token(SETTINGS, "outbox", 5)
    (event,) = mail_events(report, source="lmtp", raw=raw, return_token=other)
    assert event.return_token == other
    (again,) = mail_events(parse_report(raw, SETTINGS), source="pipe", raw=raw)
    assert event.event_key == again.event_key == report_key(
        report_message_id="<20261202120107.4Yq2H01Ld9z9sWm@mx1.relay.example.net>", recipient=RCPT, kind="hard")


def test_garbage_is_unrecognised_not_an_error() -> None:
    for raw in (b"", b"\xff\xfe\x00garbage", b"Subject: hi\r\n\r\nhello", b"Content-Type: multipart/report\r\n\r\n",
                b"Subject: =?x-bogus?q?hi?=\r\n\r\nhello\r\n"):
        assert parse_report(raw, SETTINGS).kind == "unrecognised"


def test_a_broken_encoded_word_in_a_dsn_is_kept_as_text() -> None:
    raw = (b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
           b"Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           b"Diagnostic-Code: smtp; =?bogus?q?550_gone?=\r\n\r\n--b--\r\n")
    (failure,) = parse_report(raw, SETTINGS).failures
    assert (failure.kind, failure.recipient) == ("hard", "a@example.org")
    assert failure.diagnostic == "smtp; =?bogus?q?550_gone?="


@pytest.mark.parametrize("name", sorted(p.stem for p in SAMPLES.glob("*.eml")))
@pytest.mark.parametrize("line_end", ["\r\n", "\n"])
def test_every_sample_reads_the_same_as_with_the_full_parse(name: str, line_end: str) -> None:
    """The quick reader of standard reports gives what the email package's full parse gives."""
    raw = sample(name, return_path=RP, rcpt=RCPT, message_id=MID).replace(b"\r\n", line_end.encode())
    full = report_of(email.message_from_bytes(raw, policy=email.policy.compat32), SETTINGS)
    assert parse_report(raw, SETTINGS) == full


def test_the_quick_reader_reads_standard_reports_and_leaves_the_rest_to_the_full_parse() -> None:
    for name in ("postfix_dsn", "exim_failed", "exchange_mailbox_full", "postfix_delayed", "arf_abuse"):
        quick = quick_report(sample(name, return_path=RP, rcpt=RCPT, message_id=MID))
        assert quick is not None and quick.get_content_type() == "multipart/report", name
    for name in ("qmail", "exim_plain", "out_of_office", "personal_reply"):  # no multipart/report
        assert quick_report(sample(name, return_path=RP, rcpt=RCPT, message_id=MID)) is None
    dsn = sample("postfix_dsn", return_path=RP, rcpt=RCPT, message_id=MID)
    assert quick_report(dsn.replace(b"\r\n--", b"\r\n\x0c--", 1)) is None  # an odd line break
    assert quick_report(dsn.rsplit(b"--\r\n", 1)[0]) is None  # no closing boundary
    no_mid = dsn.replace(f"Message-ID: {MID}".encode(), b"X-Other: 1")
    assert parse_report(no_mid, SETTINGS) == report_of(email.message_from_bytes(no_mid, policy=email.policy.compat32),
                                                       SETTINGS)


def _full(raw: bytes):  # type: ignore[no-untyped-def]
    return report_of(email.message_from_bytes(raw, policy=email.policy.compat32), SETTINGS)


def test_the_lean_reader_reads_plain_dsns_and_leaves_the_rest_to_the_others() -> None:
    for name in ("postfix_dsn", "exim_failed", "exchange_mailbox_full", "postfix_delayed"):
        assert lean_dsn(sample(name, return_path=RP, rcpt=RCPT, message_id=MID)) is not None, name
    for name in ("gmail_dsn", "arf_abuse", "qmail", "exim_plain", "out_of_office", "personal_reply"):
        assert lean_dsn(sample(name, return_path=RP, rcpt=RCPT, message_id=MID)) is None, name
    dsn = sample("postfix_dsn", return_path=RP, rcpt=RCPT, message_id=MID)
    headers = b"Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: 8bit\r\n"
    left = [  # each read by the quick reader or the full parse instead, and still the same
        dsn.replace(b"boundary=", b"boundary*=", 1),  # an RFC 2231 parameter
        dsn.replace(b"boundary=\"", b"boundary=\"<", 1).replace(b"/mx1.relay.example.net\"", b"/mx1>\"", 1),
        dsn.replace(b"Subject: This month", "Subject: Ce mois-ci \u00e0".encode(), 1),  # 8-bit bytes
        dsn.replace(headers, headers.replace(b"8bit", b"base64")),
        dsn.replace(b"Content-Type: message/delivery-status", b"Content-Type: multipart/mixed; boundary=x", 1),
    ]
    for n, raw in enumerate(left):
        assert lean_dsn(raw) is None, n
        assert parse_report(raw, SETTINGS) == _full(raw), n
    no_mid = dsn.replace(f"Message-ID: {MID}".encode(), b"X-Other: 1")  # then looked for in the text
    assert parse_report(no_mid, SETTINGS) == _full(no_mid)
    taken = [  # plain variants the lean reader reads, exactly as the full parse does
        dsn.replace(b"Action: failed", b"Action: failed\r\nContent-Description: x\r\n\r\n\r\nAction: failed", 1),
        dsn.replace(b"Status: 5.1.1", b"Status: 4.4.1", 1),
        dsn.replace(b"Diagnostic-Code: smtp;", b"Diagnostic-Code: =?utf-8?q?smtp=3B?=", 1),
        dsn.replace(b"Message-Id: <", b"Message-Id: <a@b>\r\nMessage-Id: <", 1),  # the first one counts
        dsn.replace(b"To: " + RP.encode(), b"To: Someone <other@example.org>, " + RP.encode(), 1),
    ]
    for n, raw in enumerate(taken):
        assert lean_dsn(raw) is not None, n
        assert parse_report(raw, SETTINGS) == _full(raw), n


@pytest.mark.parametrize("value", ["a@b.c", " <a+b@c.d> ", "a..b@c.d", "x <a@b.c>", "a@b.c, d@e.f", "", "<>",
                                   '"q r"@x.org', "a@b.c (note)", "<a@b.c", "bounces+ab2@x.org"])
def test_addresses_read_without_the_parser_are_the_parsers_addresses(value: str) -> None:
    assert address_of(value) == parseaddr(value)[1]
    assert addresses_of([value]) == [a for _n, a in getaddresses([value])]
