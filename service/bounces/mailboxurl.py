"""BOUNCE_MAILBOX_URL, read: which mailbox the worker polls for bounces and how it logs in.

`imaps://user:pass@host[:993]/INBOX` and `pop3s://user:pass@host[:995]` (implicit TLS);
`imap://…:143` and `pop3://…:110` use STARTTLS when the server offers it (`?starttls=require`
or `never`); `?verify=false` skips certificate checks. Special characters in the user name or
password are URL-encoded. The password never appears in a repr, a log line or an error message:
`MailboxConfig.display` is the URL without it. Imports nothing of Tidings (settings.py uses it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlsplit

SCHEMES = {"imaps": 993, "imap": 143, "pop3s": 995, "pop3": 110}
EXAMPLE = "such as imaps://user:pass@mail.example.org/INBOX or pop3s://user:pass@mail.example.org"
_QUERY = {"starttls": ("require", "never"), "verify": ("true", "false")}
# A folder to move processed messages to: a name of printable characters, no wildcards.
_FOLDER = re.compile(r"[^\x00-\x1f\x7f%*\"\\]{1,200}")


class MailboxUrlError(ValueError):
    """The URL is not a usable mailbox URL; the message never quotes the password."""


@dataclass(frozen=True)
class MailboxConfig:
    protocol: str  # "imap" | "pop3"
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    folder: str = "INBOX"  # IMAP only
    implicit_tls: bool = True
    starttls: bool | None = None  # None: when offered; True: required; False: never
    verify: bool = True
    done: str = "delete"  # "delete", or (IMAP) the folder processed messages are moved to

    @property
    def display(self) -> str:
        """The URL without the password, for logs and errors."""
        scheme = self.protocol + ("s" if self.implicit_tls else "")
        path = f"/{self.folder}" if self.protocol == "imap" else ""
        return f"{scheme}://{quote(self.username, safe='')}@{self.host}:{self.port}{path}"


def parse_mailbox_url(url: str, *, done: str = "delete") -> MailboxConfig:
    """The mailbox a URL names; `done` is BOUNCE_MAILBOX_DONE. Raises MailboxUrlError."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise MailboxUrlError(f"expected a URL {EXAMPLE}, got the scheme {scheme or 'none'!r}")
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError as exc:
        raise MailboxUrlError("the port is not a number between 1 and 65535") from exc
    if not parts.hostname:
        raise MailboxUrlError(f"the host is missing: expected a URL {EXAMPLE}")
    if not parts.username or parts.password is None:
        raise MailboxUrlError(f"expected a user name and a password in the URL, {EXAMPLE}")
    if parts.fragment:
        raise MailboxUrlError("a fragment (#…) has no meaning in a mailbox URL")
    query = _query(parts.query)
    implicit = scheme.endswith("s")
    protocol = "pop3" if scheme.startswith("pop3") else "imap"
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    if protocol == "pop3" and parts.path.strip("/"):
        raise MailboxUrlError("POP3 has one mailbox only: remove the path after the host")
    if protocol == "imap" and not _FOLDER.fullmatch(folder):
        raise MailboxUrlError(f"the folder {folder!r} is not a valid IMAP mailbox name")
    if implicit and "starttls" in query:
        raise MailboxUrlError(f"?starttls has no meaning with {scheme}:// (TLS from the start)")
    return MailboxConfig(
        protocol=protocol, host=parts.hostname, port=port, username=unquote(parts.username),
        password=unquote(parts.password), folder=folder if protocol == "imap" else "INBOX", implicit_tls=implicit,
        starttls=None if implicit else {"require": True, "never": False}.get(query.get("starttls", ""), None),
        verify=query.get("verify", "true") == "true", done=_done(done, protocol),
    )


def _query(text: str) -> dict[str, str]:
    query = {k.lower(): v[-1].lower() for k, v in parse_qs(text, keep_blank_values=True).items()}
    for name, value in query.items():
        if name not in _QUERY:
            raise MailboxUrlError(f"unknown option ?{name}=: expected starttls=require|never or verify=false")
        if value not in _QUERY[name]:
            raise MailboxUrlError(f"?{name}= expects {' or '.join(_QUERY[name])}, got {value!r}")
    return query


def _done(value: str, protocol: str) -> str:
    value = value.strip()
    if value.lower() == "delete":
        return "delete"
    if protocol == "pop3":
        raise MailboxUrlError("BOUNCE_MAILBOX_DONE: POP3 can only delete processed messages; set it to delete")
    if not _FOLDER.fullmatch(value):
        raise MailboxUrlError(f"BOUNCE_MAILBOX_DONE: expected delete or an IMAP folder name, got {value!r}")
    return value
