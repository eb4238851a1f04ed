"""`header_names` reads a clean header block with two regular expressions and any other line by
line: both readings agree on every block, and what the fast one accepts the careful one accepts."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.mail.headers import HeaderInjectionError, _header_names_by_line, header_fields, header_names

PIECES = [b"From", b"To", b"X-a", b":", b" ", b"\t", b"\r\n", b"\r", b"\n", b"v", b"\xc3\xa9", b"=?", b"a b", b"\x00"]


def by_line(block: bytes) -> Counter[str] | str:
    try:
        return _header_names_by_line(block)
    except HeaderInjectionError as exc:
        return str(exc)


def read(block: bytes) -> Counter[str] | str:
    try:
        return header_names(block + b"\r\n\r\nbody")
    except HeaderInjectionError as exc:
        return str(exc)


@given(st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join) | st.binary(max_size=80))
def test_the_fast_reading_agrees_with_the_line_by_line_one(block: bytes) -> None:
    if b"\r\n\r\n" in block + b"\r\n":  # the block ends at the first empty line
        block = (block + b"\r\n").split(b"\r\n\r\n", 1)[0]
    assert read(block) == by_line(block)


@pytest.mark.parametrize(("block", "error"), [
    (b"From: a\r\nBcc x", "From: followed by a line that is not a header"),
    (b" From: a", "the message starts with a folded line"),
    (b"From: a\nBcc: b", "From: a line break that is not CRLF inside the header"),
    (b"From: \xc3\xa9", "From: characters that are not ASCII in the header"),
])
def test_a_block_that_is_not_clean_is_refused_with_what_is_wrong(block: bytes, error: str) -> None:
    with pytest.raises(HeaderInjectionError, match=error):
        header_names(block + b"\r\n\r\n")


def test_a_clean_block_counts_its_fields_not_their_continuation_lines() -> None:
    block = b"From: a\r\nSubject: one\r\n two: not a field\r\n\tthree\r\nsubject:x\r\nX-Y:"
    assert header_names(block + b"\r\n\r\nBcc: body\r\n") == Counter({"from": 1, "subject": 2, "x-y": 1})


@given(st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join) | st.binary(max_size=80))
def test_the_fields_read_for_signing_are_the_fields_counted(block: bytes) -> None:
    """`header_fields` (what DKIM canonicalises and the names check reads) refuses what
    `header_names` refuses, and otherwise gives the same names, each with its whole value."""
    if b"\r\n\r\n" in block + b"\r\n":
        block = (block + b"\r\n").split(b"\r\n\r\n", 1)[0]
    counted = read(block)
    try:
        fields = header_fields(block + b"\r\n\r\nbody")
    except HeaderInjectionError as exc:
        assert counted == str(exc)
        return
    assert Counter(name.decode().lower() for name, _value in fields) == counted
    assert b"\r\n".join(name + b":" + value for name, value in fields) == block
