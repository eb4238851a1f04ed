"""DKIM signing of every message Tidings sends, when DKIM_PRIVATE_KEY_FILE and DKIM_SELECTOR
are set: campaigns and test sends (`service.campaigns.message`), and every transactional message
(confirmation, welcome, auto-reply, staff notice, `tidings mail-test`), signed by the transports
of `service.mail.transport` over the very bytes they send.

`DkimSigner.sign` is the one signing function: RFC 6376 rsa-sha256 with relaxed/relaxed
canonicalisation, written here (about forty lines) so that the RSA signature goes through
`cryptography` (OpenSSL, about 1 ms a message) instead of dkimpy's pure-Python RSA (about
6 ms), which capped a signed digest at a few hundred messages a second. dkimpy stays the
verifier in the tests (every kind of email verifies with it). The key is loaded once; the
signature covers the list headers too (RFC 8058 section 4 requires List-Unsubscribe and
List-Unsubscribe-Post to be covered), so they cannot be stripped or altered without breaking
it. Headers listed here that a message lacks are left out of `h=`.

`alignment_problem` says when DKIM_DOMAIN would not align with the From domain (DMARC relaxed
alignment: the same organisational domain), which the start-up of serve and worker warns about.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from collections.abc import Iterable
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from service.mail.headers import HeaderInjectionError, check_fields, header_fields, is_one_field
from service.settings import Settings, SettingsError

SIGNED_HEADERS = (
    b"From", b"To", b"Subject", b"Date", b"Message-ID", b"MIME-Version", b"Content-Type", b"Reply-To",
    b"List-Unsubscribe", b"List-Unsubscribe-Post", b"List-Id", b"Feedback-ID", b"Auto-Submitted",
)
_SIGNED_LOWER = tuple(h.lower() for h in SIGNED_HEADERS)


def _one_space(text: bytes) -> bytes:
    """Every run of spaces and tabs as one space, by plain replaces (C speed; a run of n spaces
    takes log2(n) passes) rather than a regular expression that stops at every space."""
    if b"\t" in text:
        text = text.replace(b"\t", b" ")
    while b"  " in text:
        text = text.replace(b"  ", b" ")
    return text


def relaxed_lines(data: bytes) -> bytes:
    """The line-by-line part of the relaxed body canonicalisation: runs of white space as one
    space, none at the end of a line. For whole lines (CRLF at the end) the canonical form of a
    concatenation is the concatenation of the canonical forms, so a campaign canonicalises its
    shared pieces once (`service.campaigns.render`) and only the personal lines per message."""
    data = _one_space(data)
    return data.replace(b" \r\n", b"\r\n") if b" \r\n" in data else data


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 section 3.4.4 (as dkimpy reads it): runs of white space as one space, none at the
    end of a line, empty lines at the end dropped, CRLF at the end of a non-empty body."""
    return _body_end(relaxed_lines(body))


def body_hash(canonical_lines: bytes) -> bytes:
    """bh= for a body whose lines are already canonical (`relaxed_lines`): the empty lines at
    its end dropped, base64 of its SHA-256."""
    return base64.b64encode(hashlib.sha256(_body_end(canonical_lines)).digest())


def _body_end(body: bytes) -> bytes:
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    return body[:end] + b"\r\n" if end else b""


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 section 3.4.2: the name in lower case, the value unfolded, runs of white space as
    one space, none at either end; `name:value` CRLF."""
    return name.strip().lower() + b":" + _one_space(value.replace(b"\r\n", b"")).strip(b" ") + b"\r\n"


class DkimSigner:
    HEADER_CACHE = 512  # canonical header fields kept (a campaign's fixed ones are asked for again and again)

    def __init__(self, *, selector: str, domain: str, private_key: bytes) -> None:
        self.selector = selector.encode()
        self.domain = domain.encode()
        key = serialization.load_pem_private_key(private_key, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the DKIM key must be an RSA private key (rsa-sha256)")
        self.key = key
        self._padding = padding.PKCS1v15()
        self._hash = hashes.SHA256()
        self._canonical: dict[tuple[bytes, bytes], bytes] = {}

    def sign(self, raw: bytes, *, expected: Iterable[str] | None = None, now: int | None = None,
             bh: bytes | None = None) -> bytes:
        """`raw` (CRLF line ends) with a DKIM-Signature header in front, rsa-sha256, relaxed/relaxed.
        The header block of `raw` is read once (`header_fields`): it must be clean and, when
        `expected` is given, have exactly those headers (`check_fields`); the signature header is
        checked on its own, so the bytes returned hold exactly those headers plus the signature.
        `bh`: the body's hash when the caller has it (`body_hash` of its canonical lines)."""
        fields = header_fields(raw)
        if expected is not None:
            check_fields(fields, expected)
        last = {name.lower(): value for name, value in fields}  # its last occurrence (RFC 6376 5.4.2)
        signed = [h for h in _SIGNED_LOWER if h in last]
        if bh is None:
            bh = base64.b64encode(hashlib.sha256(relaxed_body(raw[raw.index(b"\r\n\r\n") + 4:])).digest())
        stamp = int(time.time()) if now is None else now
        value = (b" v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + self.domain + b"; s=" + self.selector
                 + b"; t=" + str(stamp).encode() + b";\r\n h=" + b":".join(signed) + b";\r\n bh=" + bh
                 + b";\r\n b=")
        data = b"".join([self._relaxed(h, last[h]) for h in signed]) + relaxed_header(b"dkim-signature", value)
        signature = base64.b64encode(self.key.sign(data[:-2], self._padding, self._hash))
        header = b"DKIM-Signature:" + value + b"\r\n ".join(signature[i:i + 72] for i in range(0, len(signature), 72))
        if not is_one_field(header):
            raise HeaderInjectionError("DKIM-Signature: not one clean header field; not sent")
        return header + b"\r\n" + raw

    def _relaxed(self, name: bytes, value: bytes) -> bytes:
        """`relaxed_header`, remembered: a campaign's From, Subject, List-Id … are the same for
        every message it sends."""
        canonical = self._canonical.get((name, value))
        if canonical is None:
            if len(self._canonical) >= self.HEADER_CACHE:
                self._canonical.clear()
            canonical = self._canonical[(name, value)] = relaxed_header(name, value)
        return canonical


def signer_from_settings(settings: Settings) -> DkimSigner | None:
    """The signer, or None when DKIM is not configured; SettingsError for an unreadable key."""
    if not settings.dkim_private_key_file:
        return None
    return _signer(settings.dkim_private_key_file, settings.dkim_selector or "", settings.dkim_domain or "")


@functools.lru_cache(maxsize=4)
def _signer(key_file: str, selector: str, domain: str) -> DkimSigner:
    path = Path(key_file)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"DKIM_PRIVATE_KEY_FILE: cannot read {path} ({exc.strerror or exc})") from None
    if b"PRIVATE KEY-----" not in key:
        raise SettingsError(f"DKIM_PRIVATE_KEY_FILE: {path} is not a PEM private key")
    # Parsed now, so a damaged or wrong key stops serve and worker at start with one line instead
    # of failing every message later (the error names the file, never its content).
    try:
        parsed = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SettingsError(f"DKIM_PRIVATE_KEY_FILE: {path} is not a readable, unencrypted PEM private key") from None
    if not isinstance(parsed, rsa.RSAPrivateKey) or parsed.key_size < 1024:
        raise SettingsError(f"DKIM_PRIVATE_KEY_FILE: {path} must hold an RSA key of at least 1024 bits "
                            "(2048 recommended; RFC 8301)")
    return DkimSigner(selector=selector, domain=domain, private_key=key)


def organisational_domain(domain: str) -> str:
    """The registrable part of `domain` by the Public Suffix List (publicsuffixlist, bundled, no
    network): news.clinic.example.co.uk -> example.co.uk."""
    return _psl().privatesuffix(domain.lower().rstrip(".")) or domain.lower().rstrip(".")


@functools.lru_cache(maxsize=1)
def _psl() -> Any:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def alignment_problem(settings: Settings) -> str | None:
    """A warning when DKIM is configured with a DKIM_DOMAIN that does not align with MAIL_FROM's
    domain (DMARC relaxed alignment); None when it aligns or DKIM is off."""
    if not settings.dkim_private_key_file or not settings.dkim_domain:
        return None
    from_domain = parseaddr(settings.mail_from)[1].rpartition("@")[2].lower()
    if organisational_domain(settings.dkim_domain) == organisational_domain(from_domain):
        return None
    return (f"DKIM_DOMAIN {settings.dkim_domain} is not aligned with the domain of MAIL_FROM ({from_domain}): "
            "DMARC will not count the signature; use a DKIM_DOMAIN of the same organisational domain")
