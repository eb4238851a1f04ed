"""Our own rsa-sha256 relaxed/relaxed signer (`service.mail.dkim`) against dkimpy, the verifier:
the canonicalisation is dkimpy's for any body and any folded header value, and awkward messages (folded and repeated
headers, white space runs, trailing empty lines, an empty body) verify; any change breaks them."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import dkim
import pytest
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import strategies as st

from service.mail.dkim import DkimSigner, body_hash, relaxed_body, relaxed_header, relaxed_lines
from service.mail.headers import HeaderInjectionError


@given(st.binary(max_size=60) | st.lists(st.sampled_from([b" ", b"\t", b"\r\n", b"\r", b"\n", b"a", b"=20"]),
                                         max_size=30).map(b"".join))
def test_relaxed_body_is_dkimpys(body: bytes) -> None:
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


_LINES = st.lists(st.sampled_from([b" ", b"\t", b"\r\n", b"\r", b"\n", b"a", b"=20"]), max_size=12).map(
    lambda parts: b"".join(parts) + b"\r\n")


@given(st.lists(_LINES, max_size=6))
def test_whole_lines_relaxed_apart_hash_as_the_relaxed_body(pieces: list[bytes]) -> None:
    """What a campaign relies on: its shared pieces canonicalised once, the personal lines per
    message, give the body hash of canonicalising the whole message."""
    whole = b"".join(pieces)
    assert body_hash(b"".join(map(relaxed_lines, pieces))) == base64.b64encode(
        hashlib.sha256(Relaxed.canonicalize_body(whole)).digest())


@given(st.lists(st.sampled_from([b" ", b"\t", b"\r\n ", b"\r\n\t", b"a", b"b=", b";", b"  x"]), max_size=20)
       .map(b"".join))
def test_relaxed_header_is_dkimpys_for_any_folded_value(value: bytes) -> None:
    name, canonical = Relaxed.canonicalize_headers([(b"Subject", value)])[0]
    assert relaxed_header(b"Subject", value) == name + b":" + canonical


def signer(private: Path) -> DkimSigner:
    return DkimSigner(selector="t2026", domain="clinic.example", private_key=private.read_bytes())


def dns_for(public: bytes):  # type: ignore[no-untyped-def]
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"t2026._domainkey.clinic.example."
        return b"v=DKIM1; k=rsa; p=" + public

    return dns


AWKWARD = (
    b"From: Clinic <hello@clinic.example>\r\n"
    b"To:   Ana \t Lopez\r\n  <ana@example.org>  \r\n"
    b"Subject: =?utf-8?b?w7xiZXI=?=\r\n =?utf-8?b?w7xiZXI=?=\r\n"
    b"Subject: the second subject is the one signed\r\n"
    b"Date: Thu, 03 Dec 2026 08:00:00 +0000\r\n"
    b"Message-ID: <x.1@clinic.example>\r\n"
    b"X-Other: not signed\r\n"
    b"\r\n"
    b"Hello  Ana,\t\r\n  indented  line \r\n\r\n=3D quoted =\r\nsoft break\r\n\r\n\r\n"
)


@pytest.mark.parametrize("raw", [
    AWKWARD,
    AWKWARD.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n",  # empty body
    AWKWARD.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\nno line end at the end ",
])
def test_signatures_verify_with_dkimpy_and_break_on_any_change(key_pair: tuple[Path, bytes], raw: bytes) -> None:
    private, public = key_pair
    signed = signer(private).sign(raw)
    assert signed.endswith(raw)
    dns = dns_for(public)
    assert dkim.verify(signed, dnsfunc=dns)
    head = signed.split(b"\r\n\r\n", 1)[0]
    assert b"h=from:to:subject:date:message-id;" in head
    assert not dkim.verify(signed.replace(b"second subject", b"Second subject"), dnsfunc=dns)
    assert not dkim.verify(signed.replace(b"<ana@", b"<eve@"), dnsfunc=dns)
    assert not dkim.verify(signed + b"P.S.\r\n", dnsfunc=dns)
    # white space the relaxed rules ignore may change in transit
    assert dkim.verify(signed.replace(b"Lopez\r\n", b"Lopez \r\n").replace(b"line \r\n", b"line\r\n"), dnsfunc=dns)


def test_a_header_block_that_is_not_clean_is_refused_before_signing(key_pair: tuple[Path, bytes]) -> None:
    private, _ = key_pair
    with pytest.raises(HeaderInjectionError, match="a line that is not a header"):
        signer(private).sign(b"From: a@b.example\r\nnot a header\r\n\r\nbody\r\n")
    with pytest.raises(HeaderInjectionError, match="no blank line"):
        signer(private).sign(b"From: a@b.example\r\n")


def test_signing_checks_the_headers_it_was_told_to_expect(key_pair: tuple[Path, bytes]) -> None:
    private, _ = key_pair
    raw = b"From: a@b.example\r\nTo: c@d.example\r\nBcc: eve@evil.example\r\n\r\nbody\r\n"
    with pytest.raises(HeaderInjectionError, match="Bcc: the message as written has 1 such header"):
        signer(private).sign(raw, expected=["From", "To"])
    assert signer(private).sign(raw, expected=["From", "To", "Bcc"]).endswith(raw)
