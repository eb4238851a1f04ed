"""Optional DKIM signing of campaign messages (dkimpy), when DKIM_PRIVATE_KEY_FILE and
DKIM_SELECTOR are set. The key is read once; each message is signed over its list headers too,
so that List-Unsubscribe cannot be stripped or altered without breaking the signature."""

from __future__ import annotations

from pathlib import Path

import dkim

from service.settings import Settings, SettingsError

SIGNED_HEADERS = (
    b"From", b"To", b"Subject", b"Date", b"Message-ID", b"MIME-Version", b"Content-Type",
    b"List-Unsubscribe", b"List-Unsubscribe-Post", b"List-Id", b"Feedback-ID",
)


class DkimSigner:
    def __init__(self, *, selector: str, domain: str, private_key: bytes) -> None:
        self.selector = selector.encode()
        self.domain = domain.encode()
        self.private_key = private_key

    def sign(self, raw: bytes) -> bytes:
        signature = dkim.sign(raw, self.selector, self.domain, self.private_key, include_headers=list(SIGNED_HEADERS),
                              canonicalize=(b"relaxed", b"relaxed"), linesep=b"\r\n")
        return signature + raw


def signer_from_settings(settings: Settings) -> DkimSigner | None:
    """The signer, or None when DKIM is not configured; SettingsError for an unreadable key."""
    if not settings.dkim_private_key_file:
        return None
    path = Path(settings.dkim_private_key_file)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"DKIM_PRIVATE_KEY_FILE: cannot read {path} ({exc.strerror or exc})") from None
    if b"PRIVATE KEY-----" not in key:
        raise SettingsError(f"DKIM_PRIVATE_KEY_FILE: {path} is not a PEM private key")
    return DkimSigner(selector=settings.dkim_selector or "", domain=settings.dkim_domain or "", private_key=key)
