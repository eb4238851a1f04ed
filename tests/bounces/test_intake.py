"""Reports arriving by email, through every door: `tidings bounces process` on standard input
(exit code and one line), and `tidings inbound` over LMTP (one reply per recipient, RFC 2033)
and SMTP, which refuses every address that is not one of our verified return paths."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from aiosmtpd.smtp import SMTP

from service.bounces.inbound import PerRecipientLMTP, start_inbound
from service.bounces.returnpath import make_token, return_path
from service.settings import Settings
from tests.bounces.helpers import lmtp_send, sample, stored_events
from tests.conftest import TEST_SECRET, Database
from tests.factories import add_subscriber, deliveries, make_campaign, sender_for, subscriber
from tests.smtp import SmtpServer


async def _sent(db: Database, settings: Settings, smtp: SmtpServer, *emails: str) -> dict[str, tuple[int, str, str]]:
    """Send a campaign to `emails`: address -> (subscriber id, VERP envelope sender, Message-ID)."""
    ids = {e: await add_subscriber(db, e) for e in emails}
    campaign_id = await make_campaign(db, settings)
    sender = sender_for(db, settings, smtp.url)
    assert await sender.run_campaign(campaign_id) == "sent"
    await sender.transport.close()
    assert len(await deliveries(db, campaign_id)) == len(emails)
    return {m.recipients[0]: (ids[m.recipients[0]], m.sender, str(m.message["Message-ID"])) for m in smtp.received}


def _process(db: Database, settings: Settings, raw: bytes) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("SMTP_URL", "BOUNCE_DOMAIN")}
    env.update(DATABASE_URL=db.url, SECRET_KEY=TEST_SECRET, RETURN_PATH=settings.return_path or "")
    return subprocess.run([sys.executable, "-m", "service.cli", "bounces", "process"], input=raw, env=env,
                          capture_output=True, timeout=120, check=False)


@pytest.mark.slow  # real `tidings` processes
async def test_bounces_process_records_a_report_from_standard_input(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    sent = await _sent(db, settings, smtp, "gone.user@example.org")
    sid, verp, message_id = sent["gone.user@example.org"]
    raw = sample("postfix_dsn", return_path=verp, rcpt="gone.user@example.org", message_id=message_id)
    done = await asyncio.to_thread(_process, db, settings, raw)
    assert done.returncode == 0, done.stderr
    line = done.stdout.decode().strip()
    assert line.startswith("bounce (a delivery-status report (RFC 3464)): hard 5.1.1 for ")
    assert line.endswith(": suppressed") and "gone.user@" not in line  # the address is masked
    row = await subscriber(db, sid)
    assert row.status == "bounced" and "User unknown in virtual mailbox table" in (row.last_bounce or "")
    again = await asyncio.to_thread(_process, db, settings, raw)
    assert again.returncode == 0
    assert again.stdout.decode().strip().endswith(": duplicate (this report was recorded before)")
    assert len(await stored_events(db)) == 1


@pytest.mark.slow  # real `tidings` processes
async def test_bounces_process_exit_codes_say_what_the_message_was(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    sent = await _sent(db, settings, smtp, "ooo@example.org")
    sid, verp, message_id = sent["ooo@example.org"]
    auto = await asyncio.to_thread(_process, db, settings, sample(
        "out_of_office", return_path=verp, rcpt="ooo@example.org", message_id=message_id))
    assert auto.returncode == 0 and auto.stdout.decode().startswith("autoreply: an automatic reply, ignored")
    forged = verp.replace(verp.split("+")[1][:4], "aaaa" if not verp.split("+")[1].startswith("aaaa") else "bbbb")
    rejected = await asyncio.to_thread(_process, db, settings, sample(
        "postfix_dsn", return_path=forged, rcpt="ooo@example.org", message_id=message_id))
    assert rejected.returncode == 65 and b"rejected (the return path's token does not verify)" in rejected.stdout
    other = await asyncio.to_thread(_process, db, settings, b"Subject: hello\r\n\r\nJust saying hi.\r\n")
    assert other.returncode == 65 and other.stdout.startswith(b"unrecognised:")
    empty = await asyncio.to_thread(_process, db, settings, b"")
    assert empty.returncode == 65 and empty.stderr.decode().strip() == "error: no message on standard input"
    assert await stored_events(db) == [] and (await subscriber(db, sid)).status == "confirmed"


async def test_lmtp_replies_once_per_recipient(db: Database, settings: Settings, smtp: SmtpServer) -> None:
    sent = await _sent(db, settings, smtp, "ana@example.org")
    sid, verp, message_id = sent["ana@example.org"]
    # a validly signed return path whose delivery does not exist: accepted at RCPT, fails processing
    orphan = return_path(settings, "delivery", 987_654) or ""
    server = await start_inbound(db.sessions, settings, port=0)
    try:
        port = server.sockets[0].getsockname()[1]
        raw = sample("postfix_dsn", return_path=verp, rcpt="ana@example.org", message_id=message_id)
        rcpt, data = await lmtp_send(port, [verp, orphan, "postmaster@bounces.clinic.test"], raw)
    finally:
        server.close()
        await server.wait_closed()
    assert [r[:3] for r in rcpt] == ["250", "250", "550"]  # only our verified return paths get in
    assert len(data) == 2  # RFC 2033: one reply per accepted recipient, in order
    assert data[0] == "250 2.0.0 bounce recorded"
    assert data[1] == "550 5.1.1 this return path names no message we sent; nothing changed"
    assert (await subscriber(db, sid)).status == "bounced"
    (stored,) = await stored_events(db)
    assert stored.source == "lmtp" and stored.status == "5.1.1"


async def test_inbound_refuses_strangers_and_forged_tokens_and_speaks_smtp(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    sent = await _sent(db, settings, smtp, "ben@example.org")
    sid, verp, message_id = sent["ben@example.org"]
    token = verp.split("+")[1].split("@")[0]
    forged = verp.replace(token, make_token(settings.with_(secret_key="another-key-" + "x" * 30), "delivery", 1))
    server = await start_inbound(db.sessions, settings, port=0, lmtp=False)
    try:
        port = server.sockets[0].getsockname()[1]
        raw = sample("arf_abuse", return_path=verp, rcpt="ben@example.org", message_id=message_id)
        refused, nothing = await lmtp_send(port, ["ben@example.org", forged, "bounces+x@bounces.clinic.test"], raw,
                                           lmtp=False)
        assert [r[:3] for r in refused] == ["550", "550", "550"] and nothing == []
        rcpt, data = await lmtp_send(port, [verp.upper()], raw, lmtp=False)  # an MTA that upper-cased it
    finally:
        server.close()
        await server.wait_closed()
    assert rcpt[0].startswith("250") and data == ["250 2.0.0 complaint recorded"]
    assert (await subscriber(db, sid)).status == "complained"


@pytest.mark.slow  # real `tidings` processes
async def test_tidings_inbound_command_serves_lmtp_until_sigterm(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    import signal

    from tests.smtp import free_port

    sent = await _sent(db, settings, smtp, "cmd@example.org")
    sid, verp, message_id = sent["cmd@example.org"]
    env = {k: v for k, v in os.environ.items() if k not in ("SMTP_URL", "BOUNCE_DOMAIN")}
    env.update(DATABASE_URL=db.url, SECRET_KEY=TEST_SECRET, RETURN_PATH=settings.return_path or "")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "service.cli", "inbound", "--port", str(port),
                                                env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert line.decode().strip() == f"tidings inbound: LMTP on 127.0.0.1:{port}"
        raw = sample("gmail_dsn", return_path=verp, rcpt="cmd@example.org", message_id=message_id)
        rcpt, data = await lmtp_send(port, [verp], raw)
        assert rcpt[0].startswith("250") and data == ["250 2.0.0 bounce recorded"]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"cmd@example.org" not in err  # the log masks addresses
    assert (await subscriber(db, sid)).status == "bounced"


async def test_reports_arriving_together_are_committed_together_each_with_its_own_reply(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    """Messages on several connections at once go into shared transactions (group commit):
    each recipient still gets the reply for its own report, a report delivered twice at the
    same moment counts once, and a report about no message of ours changes nothing."""
    people = [f"p{n}@example.org" for n in range(6)]
    sent = await _sent(db, settings, smtp, *people)
    orphan = return_path(settings, "delivery", 987_654) or ""
    server = await start_inbound(db.sessions, settings, port=0)
    try:
        port = server.sockets[0].getsockname()[1]
        jobs = [(sent[p][1], sample("postfix_dsn", return_path=sent[p][1], rcpt=p, message_id=sent[p][2]))
                for p in people]
        jobs.append(jobs[0])  # the same report again, at the same time
        jobs.append((orphan, sample("postfix_dsn", return_path=orphan, rcpt="x@example.org")))
        results = await asyncio.gather(*(lmtp_send(port, [rcpt], raw) for rcpt, raw in jobs))
    finally:
        server.close()
        await server.wait_closed()
    replies = [data for _, data in results]
    assert replies[:-1] == [["250 2.0.0 bounce recorded"]] * (len(people) + 1)
    assert replies[-1] == ["550 5.1.1 this return path names no message we sent; nothing changed"]
    assert [(await subscriber(db, sent[p][0])).status for p in people] == ["bounced"] * len(people)
    stored = await stored_events(db)
    assert sorted(e.recipient for e in stored) == sorted(people)


async def test_idle_open_connections_do_not_hold_back_a_report(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    """The writer waits a moment for the reports of the other open connections (group commit),
    but connections that send nothing (an MTA's cached ones) only delay it: the report is
    recorded and answered, and the idle connections are served as usual afterwards."""
    sent = await _sent(db, settings, smtp, "busy@example.org")
    sid, verp, message_id = sent["busy@example.org"]
    server = await start_inbound(db.sessions, settings, port=0)
    port = server.sockets[0].getsockname()[1]
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    try:
        for reader, _writer in idle:
            assert (await asyncio.wait_for(reader.readline(), 30)).startswith(b"220")
        raw = sample("postfix_dsn", return_path=verp, rcpt="busy@example.org", message_id=message_id)
        _rcpt, replies = await lmtp_send(port, [verp], raw)
        reader, writer = idle[0]
        writer.write(b"LHLO late.example\r\nNOOP\r\n")
        answers: list[bytes] = []
        while sum(a[3:4] == b" " for a in answers) < 2:  # the last lines of LHLO's and NOOP's replies
            answers.append(await asyncio.wait_for(reader.readline(), 30))
    finally:
        for _reader, writer in idle:
            writer.close()
        server.close()
        await server.wait_closed()
    assert replies == ["250 2.0.0 bounce recorded"]
    assert (await subscriber(db, sid)).status == "bounced"
    assert answers[-1].startswith(b"250") and any(b"PIPELINING" in a for a in answers)


async def test_lmtp_offers_pipelining_and_answers_pipelined_commands_in_order(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    """RFC 2033 requires PIPELINING of an LMTP server: Postfix then sends MAIL, RCPT and DATA
    at once; each gets its own reply, in order, and a refused recipient makes DATA fail."""
    sent = await _sent(db, settings, smtp, "pip@example.org")
    sid, verp, message_id = sent["pip@example.org"]
    raw = sample("postfix_dsn", return_path=verp, rcpt="pip@example.org", message_id=message_id)
    server = await start_inbound(db.sessions, settings, port=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])

    async def replies(count: int) -> list[str]:
        lines: list[str] = []
        while len([line for line in lines if line[3:4] != "-"]) < count:
            lines.append((await asyncio.wait_for(reader.readline(), 30)).decode().rstrip("\r\n"))
        return lines

    try:
        await replies(1)
        writer.write(b"LHLO mta.example\r\n")
        assert "250-PIPELINING" in await replies(1)
        writer.write(b"MAIL FROM:<>\r\nRCPT TO:<postmaster@bounces.clinic.test>\r\nDATA\r\n")
        refused = await replies(3)
        writer.write(f"RSET\r\nMAIL FROM:<>\r\nRCPT TO:<{verp}>\r\nDATA\r\n".encode())
        accepted = await replies(4)
        writer.write(raw.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        done = await replies(1)
        writer.write(b"QUIT\r\n")
    finally:
        writer.close()
        server.close()
        await server.wait_closed()
    assert [r[:3] for r in refused] == ["250", "550", "503"]
    assert [r[:3] for r in accepted] == ["250", "250", "250", "354"]
    assert done == ["250 2.0.0 bounce recorded"]
    assert (await subscriber(db, sid)).status == "bounced"


@pytest.mark.slow  # real `tidings` processes
async def test_tidings_inbound_processes_share_one_port_and_stop_together(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    import signal

    from tests.smtp import free_port

    sent = await _sent(db, settings, smtp, "one@example.org", "two@example.org")
    env = {k: v for k, v in os.environ.items() if k not in ("SMTP_URL", "BOUNCE_DOMAIN")}
    env.update(DATABASE_URL=db.url, SECRET_KEY=TEST_SECRET, RETURN_PATH=settings.return_path or "")
    cli = [sys.executable, "-m", "service.cli", "inbound"]
    bad = await asyncio.to_thread(subprocess.run, [*cli, "--processes", "0"], env=env, capture_output=True,
                                  timeout=120, check=False)
    assert bad.returncode == 1
    assert bad.stderr.decode().strip() == ("error: --processes: expected 1 or more, and a fixed --port for more "
                                           "than 1")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(*cli, "--port", str(port), "--processes", "2", env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        for _ in range(2):  # each receiver says where it listens
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            assert line.decode().strip() == f"tidings inbound: LMTP on 127.0.0.1:{port}"
        reports = [(verp, sample("postfix_dsn", return_path=verp, rcpt=address, message_id=mid))
                   for address, (_sid, verp, mid) in sent.items()]
        results = await asyncio.gather(*(lmtp_send(port, [verp], raw) for verp, raw in reports))
        assert [data for _rcpt, data in results] == [["250 2.0.0 bounce recorded"]] * 2
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert [(await subscriber(db, sid)).status for sid, _v, _m in sent.values()] == ["bounced"] * 2


def test_plain_envelope_paths_read_as_aiosmtpd_reads_them() -> None:
    """`tidings inbound` reads `<>` and `<local@domain>` without the address parser: the same
    address and parameters as aiosmtpd's own reading, which still reads everything else."""
    ours, theirs = PerRecipientLMTP.__new__(PerRecipientLMTP), SMTP.__new__(SMTP)
    for server in (ours, theirs):
        server.local_part_limit = 0
    for arg in ["<>", "<a@b.c>", "<a@b.c> SIZE=10 BODY=8BITMIME", " <a@b.c>", "<a@b.c>\t x", "<a@b.c>x",
                "<>  SMTPUTF8", "a@b.c", "<a..b@c>", '<"q r"@x>', "<a@[1.2.3.4]>", "<@relay:a@b.c>", "<A+b@C.d>",
                "<a@b.c> (note) SIZE=1", "<a@b", "<a b@c>", "<bounces+abc234@bounces.clinic.test>"]:
        assert ours._getaddr(arg) == theirs._getaddr(arg), arg
    ours.local_part_limit = theirs.local_part_limit = 3
    assert ours._getaddr("<abcd@e.f>") == theirs._getaddr("<abcd@e.f>") == (None, None)
