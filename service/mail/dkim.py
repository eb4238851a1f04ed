"""DKIM signing of every message Tidings sends (dkimpy), when DKIM_PRIVATE_KEY_FILE and
DKIM_SELECTOR are set: campaigns and test sends (`service.campaigns.message`), and every
transactional message (confirmation, welcome, auto-reply, staff notice, `tidings mail-test`),
signed by the transports of `service.mail.transport` over the very bytes they send.

`DkimSigner.sign` is the one signing function. The key is read once; the signature covers the
list headers too (RFC 8058 section 4 requires List-Unsubscribe and List-Unsubscribe-Post to be
covered), so they cannot be stripped or altered without breaking it. Headers listed here that a
message lacks are left out of `h=` by dkimpy.

`alignment_problem` says when DKIM_DOMAIN would not align with the From domain (DMARC relaxed
alignment: the same organisational domain), which the start-up of serve and worker warns about.
"""

from __future__ import annotations

import functools
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.mail.headers import check_serialised, header_names
from service.settings import Settings, SettingsError

SIGNED_HEADERS = (
    b"From", b"To", b"Subject", b"Date", b"Message-ID", b"MIME-Version", b"Content-Type", b"Reply-To",
    b"List-Unsubscribe", b"List-Unsubscribe-Post", b"List-Id", b"Feedback-ID", b"Auto-Submitted",
)


class DkimSigner:
    def __init__(self, *, selector: str, domain: str, private_key: bytes) -> None:
        self.selector = selector.encode()
        self.domain = domain.encode()
        self.private_key = private_key

    def sign(self, raw: bytes) -> bytes:
        """`raw` (CRLF line ends) with a DKIM-Signature header in front, relaxed/relaxed; the
        header block checked again: exactly the headers it had, plus the signature."""
        present = header_names(raw)
        wanted = [h for h in SIGNED_HEADERS if h.decode().lower() in present]
        signature = dkim.sign(raw, self.selector, self.domain, self.private_key, include_headers=wanted,
                              canonicalize=(b"relaxed", b"relaxed"), linesep=b"\r\n")
        signed = signature + raw
        expected = [name for name, count in present.items() for _ in range(count)]
        return check_serialised(signed, [*expected, "DKIM-Signature"])


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
