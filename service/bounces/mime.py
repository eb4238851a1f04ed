"""A quick reader for the reports mail servers write (multipart/report, RFC 6522), built from the
email package's own pieces (`Message`, compat32's header parsing), that reads only what a report
needs: the top headers, each part's headers and text, the delivery-status blocks (RFC 3464) or
feedback fields (RFC 5965), and of a returned message (message/rfc822) only its headers.

Why: the email package's feed parser reads every line of every nested part, the whole returned
newsletter included, and costs ten times more than a bounce's recording; it was the largest cost
of `tidings inbound`. The result is the `Message` tree the feed parser would build for the parts
a report is read from. Anything this reader does not expect (another top-level type, a nested
multipart, a line that is no header where headers belong, a missing boundary, unusual line
breaks) gives None, and the caller parses the message fully instead.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import Message
from email.utils import getaddresses, parseaddr

_POLICY = email.policy.compat32
_NAME = re.compile(r"[\041-\071\073-\176]+:")  # a header field's name and colon (as the feed parser)
# Line breaks str.splitlines knows but the feed parser does not (\x85 and \u2028 cannot occur:
# the bytes are read as ASCII with surrogate escapes).
_OTHER_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e]")
_LAST_BREAK = re.compile(r"(\r\n|\r|\n)\Z")
_BOUNDARY_END = re.compile(r"(--)?[ \t]*(\r\n|\r|\n)?$")  # after `--boundary`, as the feed parser reads it


def quick_report(raw: bytes) -> Message | None:
    """The parts of a multipart/report that a report is read from, or None (parse it fully)."""
    text = raw.decode("ascii", "surrogateescape")
    if _OTHER_BREAKS.search(text):
        return None
    lines = text.splitlines(keepends=True)
    top, at = _headers(lines, 0)
    if top is None or top.get_content_type() != "multipart/report":
        return None
    boundary = top.get_boundary()
    spans = _parts(lines, at, boundary) if boundary else None
    if spans is None:
        return None
    parts: list[Message | str] = []
    for start, end in spans:
        part = _part(lines[start:end])
        if part is None:
            return None
        parts.append(part)
    top.set_payload(parts)
    wanted = {"delivery-status": "message/delivery-status", "feedback-report": "message/feedback-report"}
    named = wanted.get(str(top.get_param("report-type") or "").lower())
    if named is not None and not any(isinstance(p, Message) and p.get_content_type() == named for p in parts):
        return None  # the part the report names is not at the top: leave the search to the full parse
    return top


def headers_only(data: bytes) -> Message:
    """The header fields of `data` (a text/rfc822-headers part) as a Message."""
    text = data.decode("ascii", "surrogateescape")
    msg, _at = (None, 0) if _OTHER_BREAKS.search(text) else _headers(text.splitlines(keepends=True), 0)
    return msg if msg is not None else email.message_from_bytes(data, policy=_POLICY)


def _blank(line: str) -> bool:
    return line in ("\r\n", "\n", "\r")


def _headers(lines: list[str], at: int) -> tuple[Message | None, int]:
    """The header block starting at line `at` and the index after its blank line; None when a
    line is neither a field nor a continuation (the feed parser would note a defect)."""
    msg = Message(policy=_POLICY)
    field: list[str] = []
    while at < len(lines):
        line = lines[at]
        at += 1
        if _blank(line):
            break
        if line[0] in " \t":
            if not field:
                return None, at
            field.append(line)
        elif _NAME.match(line):
            if field:
                msg.set_raw(*_POLICY.header_source_parse(field))
            field = [line]
        else:
            return None, at
    if field:
        msg.set_raw(*_POLICY.header_source_parse(field))
    return msg, at


def _parts(lines: list[str], at: int, boundary: str) -> list[tuple[int, int]] | None:
    """The line spans of the parts between `--boundary` lines; None without a closing one."""
    mark = "--" + boundary  # no regex of its own: each report has a new boundary, each would be compiled
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for i in range(at, len(lines)):
        found = _BOUNDARY_END.match(lines[i], len(mark)) if lines[i].startswith(mark) else None
        if found is None:
            continue
        if start is not None:
            spans.append((start, i))
        if found.group(1):
            return spans
        start = i + 1
    return None


def _part(lines: list[str]) -> Message | None:
    part, at = _headers(lines, 0)
    if part is None or part.get_content_maintype() == "multipart":
        return None
    body = lines[at:]
    kind = part.get_content_type()
    if kind == "message/delivery-status":
        blocks = _blocks(body)
        if blocks is None:
            return None
        part.set_payload(blocks)
    elif part.get_content_maintype() == "message":  # one message: only its headers are read
        inner, inner_at = _headers(body, 0)
        if inner is None:
            return None
        inner.set_payload("".join(body[inner_at:]))
        part.set_payload([inner])
    else:  # the line break before the boundary belongs to the boundary
        part.set_payload(_LAST_BREAK.sub("", "".join(body), count=1))
    return part


def _blocks(body: list[str]) -> list[Message | str] | None:
    """RFC 3464's blocks of fields separated by blank lines, one Message each, as the feed
    parser splits them (two blank lines in a row make an empty block)."""
    blocks: list[Message | str] = []
    at = 0
    while True:
        end = at
        while end < len(body) and not _blank(body[end]):
            end += 1
        block, _at = _headers(body[at:end], 0)
        if block is None:
            return None
        block.set_payload("")
        blocks.append(block)
        at = end + 1
        if at >= len(body):
            return blocks


# A bare dot-atom address, alone or in angle brackets: what the address parser would return it
# as, read without it (it is slow, and these are most of what reports carry).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_PLAIN = re.compile(rf"\s*(?:<({_DOT_ATOM}@{_DOT_ATOM})>|({_DOT_ATOM}@{_DOT_ATOM}))\s*")


def address_of(value: str) -> str:
    """The address in one header value or envelope address (email.utils.parseaddr's answer)."""
    plain = _PLAIN.fullmatch(value)
    if plain is not None:
        return plain.group(1) or plain.group(2)
    return parseaddr(value)[1]


def addresses_of(values: list[str]) -> list[str]:
    """The addresses in header values (email.utils.getaddresses' addresses)."""
    found: list[str] = []
    for value in values:
        plain = _PLAIN.fullmatch(value)
        if plain is not None:
            found.append(plain.group(1) or plain.group(2))
        else:
            found += [a for _n, a in getaddresses([value])]
    return found
