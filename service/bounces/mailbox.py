"""Talking to the bounce mailbox (BOUNCE_MAILBOX_URL): list the messages waiting, fetch one, and
delete or move the ones that were processed. Blocking clients, run in a thread by
`service.bounces.jobs`: `imapclient` for IMAP (a mature client that parses IMAP's responses,
does STARTTLS, MOVE and UID EXPUNGE) and the standard library's `poplib` for POP3, so both
protocols share one model: connect, work, close, with a socket timeout on every call.

IMAP addresses messages by UID within the folder, reading them with BODY.PEEK[] (nothing is
marked seen). POP3 deletions take effect at QUIT only: a connection lost before it deletes
nothing, and the next round reads those messages again, which changes nothing (a report counts
once). Every failure to reach or use the mailbox is raised as `MailboxUnavailable`, whose text
names the mailbox without its password.
"""

from __future__ import annotations

import imaplib
import poplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from service.bounces.mailboxurl import MailboxConfig

TIMEOUT = 60.0


class MailboxUnavailable(Exception):
    """The mailbox could not be reached or used; the message is safe to log."""


@dataclass(frozen=True)
class Waiting:
    """One message in the mailbox: its id (an IMAP UID or a POP3 UIDL) and size in bytes."""

    id: str
    size: int


class MailboxSession(Protocol):
    def waiting(self, limit: int) -> list[Waiting]: ...
    def fetch(self, message_id: str) -> bytes: ...
    def done(self, message_ids: Sequence[str]) -> None: ...
    def close(self) -> None: ...


MAILBOX_ERRORS = (OSError, ssl.SSLError, imaplib.IMAP4.error, IMAPClientError, poplib.error_proto, EOFError)


def _tls_context(config: MailboxConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not config.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def unavailable(config: MailboxConfig, what: str, exc: BaseException) -> MailboxUnavailable:
    detail = str(exc).replace(config.password, "…") if config.password else str(exc)
    first = (detail.strip().splitlines() or [""])[0][:200]
    return MailboxUnavailable(f"bounce mailbox {config.display}: {what}: {type(exc).__name__}"
                              + (f": {first}" if first else ""))


def open_session(config: MailboxConfig) -> MailboxSession:
    """Connect and log in (blocking)."""
    try:
        return ImapSession(config) if config.protocol == "imap" else Pop3Session(config)
    except MAILBOX_ERRORS as exc:
        raise unavailable(config, "cannot open the mailbox", exc) from None


class ImapSession:
    def __init__(self, config: MailboxConfig) -> None:
        self.config = config
        client = IMAPClient(config.host, port=config.port, ssl=config.implicit_tls,
                            ssl_context=_tls_context(config), timeout=TIMEOUT)
        try:
            if not config.implicit_tls and config.starttls is not False:
                if b"STARTTLS" in client.capabilities():
                    client.starttls(_tls_context(config))
                elif config.starttls:
                    raise MailboxUnavailable(f"bounce mailbox {config.display}: the server does not offer STARTTLS")
            client.login(config.username, config.password)
            client.select_folder(config.folder)
            if config.done != "delete" and not client.folder_exists(config.done):
                client.create_folder(config.done)
        except BaseException:
            _quietly(client.shutdown)
            raise
        self.client = client

    def waiting(self, limit: int) -> list[Waiting]:
        """The oldest `limit` messages (a bounded FETCH: servers cap a command's length)."""
        uids = sorted(self.client.search(["UNDELETED"]))[:limit]
        sizes = self.client.fetch(uids, ["RFC822.SIZE"]) if uids else {}
        return [Waiting(str(uid), int(sizes[uid][b"RFC822.SIZE"])) for uid in sorted(sizes)]

    def fetch(self, message_id: str) -> bytes:
        data = self.client.fetch([int(message_id)], ["BODY.PEEK[]"])
        if int(message_id) not in data:
            raise MailboxUnavailable(f"bounce mailbox {self.config.display}: message {message_id} went away")
        return bytes(data[int(message_id)][b"BODY[]"])

    def done(self, message_ids: Sequence[str]) -> None:
        if not message_ids:
            return
        uids = [int(i) for i in message_ids]
        if self.config.done == "delete":
            self._delete(uids)
        elif self.client.has_capability("MOVE"):
            self.client.move(uids, self.config.done)
        else:
            self.client.copy(uids, self.config.done)
            self._delete(uids)

    def _delete(self, uids: list[int]) -> None:
        self.client.delete_messages(uids)
        # UID EXPUNGE removes only ours; without UIDPLUS, EXPUNGE removes every message marked deleted.
        self.client.expunge(uids if self.client.has_capability("UIDPLUS") else None)

    def close(self) -> None:
        _quietly(self.client.logout)


class Pop3Session:
    def __init__(self, config: MailboxConfig) -> None:
        self.config = config
        if config.implicit_tls:
            client: poplib.POP3 = poplib.POP3_SSL(config.host, config.port, timeout=TIMEOUT,
                                                  context=_tls_context(config))
        else:
            client = poplib.POP3(config.host, config.port, timeout=TIMEOUT)
        try:
            if not config.implicit_tls and config.starttls is not False:
                if "STLS" in _capabilities(client):
                    client.stls(_tls_context(config))
                elif config.starttls:
                    raise MailboxUnavailable(f"bounce mailbox {config.display}: the server does not offer STLS")
            client.user(config.username)
            client.pass_(config.password)
        except BaseException:
            _quietly(client.close)
            raise
        self.client = client
        self._numbers: dict[str, int] = {}

    def waiting(self, limit: int) -> list[Waiting]:
        uidls = dict(line.decode().split(" ", 1) for line in self.client.uidl()[1])
        sizes = dict(line.decode().split(" ", 1) for line in self.client.list()[1])
        self._numbers = {uid: int(number) for number, uid in uidls.items()}
        oldest = sorted(uidls.items(), key=lambda x: int(x[0]))[:limit]
        return [Waiting(uid, int(sizes[number])) for number, uid in oldest]

    def fetch(self, message_id: str) -> bytes:
        return b"\r\n".join(self.client.retr(self._numbers[message_id])[1]) + b"\r\n"

    def done(self, message_ids: Sequence[str]) -> None:
        for message_id in message_ids:
            self.client.dele(self._numbers[message_id])

    def close(self) -> None:
        """QUIT: the server deletes what was marked now, and only now (a failed QUIT deletes
        nothing: those messages are read again next round, and count once)."""
        _quietly(self.client.quit)


def _capabilities(client: poplib.POP3) -> dict[str, list[str]]:
    try:
        return client.capa()
    except poplib.error_proto:  # a server without CAPA offers nothing optional
        return {}


def _quietly(close: object) -> None:
    try:
        close()  # type: ignore[operator]
    except MAILBOX_ERRORS:
        pass
