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
from dataclasses import dataclass
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


Fields = dict[str, list[str]]  # lower-cased field name -> its values in order, as compat32 unfolds them


@dataclass(frozen=True)
class DsnParts:
    """What a delivery-status report is read from, as plain fields (`lean_dsn`)."""

    top: Fields
    blocks: list[Fields]  # the message/delivery-status part's blocks; the first is per message
    returned: Fields | None  # the headers of the returned message (message/rfc822 or text/rfc822-headers)


# One parameter of a Content-Type in the plain forms only (a token, or a quoted string with no
# escapes or angle brackets): these read the same as with the email package's parameter parser.
_PARAM = re.compile(r';\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"([^"\\\r\n<>]*)"|([^\s;"\\<>]+))\s*')
_PLAIN_CTE = ("", "7bit", "8bit", "binary")


def lean_dsn(raw: bytes) -> DsnParts | None:
    """The fields of an RFC 3464 report (multipart/report; report-type=delivery-status) read
    without building any `Message`: the quickest path, for the reports MTAs send by the
    thousand. It reads what `parse.report_of` reads from the full parse, and gives None for
    anything it does not expect (non-ASCII bytes, an unusual Content-Type parameter, a nested
    multipart, an encoded returned-headers part, the delivery-status part after a returned
    message, ...), which is then read by `quick_report` or the full parse."""
    if not raw.isascii():
        return None
    text = raw.decode("ascii")
    if _OTHER_BREAKS.search(text):
        return None
    lines = text.splitlines(keepends=True)
    top, at = _fields(lines, 0)
    if top is None:
        return None
    ctype, params = _content_type(top)
    if ctype != "multipart/report" or params is None or params.get("report-type", "").lower() != "delivery-status":
        return None
    boundary = params.get("boundary", "").rstrip()
    spans = _parts(lines, at, boundary) if boundary else None
    if spans is None:
        return None
    blocks: list[Fields] | None = None
    returned: Fields | None = None
    for start, end in spans:
        part, body_at = _fields(lines, start, end)
        if part is None:
            return None
        kind, _params = _content_type(part)
        if kind.startswith("multipart/"):
            return None
        if kind == "message/delivery-status" and blocks is None:
            blocks = _lean_blocks(lines, body_at, end)
            if blocks is None or any("content-type" in b for b in blocks):
                return None
        elif kind in ("message/rfc822", "text/rfc822-headers"):
            if kind == "message/rfc822" and blocks is None:
                return None  # the full parse would look inside the returned message for the report
            if kind == "text/rfc822-headers" and _first(part, "content-transfer-encoding").strip().lower() \
                    not in _PLAIN_CTE:
                return None
            inner, _inner_at = _fields(lines, body_at, end)
            if inner is None:
                return None
            returned = inner if returned is None else returned
    if blocks is None:
        return None
    return DsnParts(top, blocks, returned)


def _first(fields: Fields, name: str) -> str:
    values = fields.get(name)
    return values[0] if values else ""


def _content_type(fields: Fields) -> tuple[str, dict[str, str] | None]:
    """`Message.get_content_type()` of these fields, and the parameters (None: not a plain form)."""
    values = fields.get("content-type")
    if not values:
        return "text/plain", {}
    value = values[0]
    main, _sep, _rest = value.partition(";")
    ctype = main.strip().lower()
    params: dict[str, str] | None = {}
    at = len(main)
    while params is not None and at < len(value):
        found = _PARAM.match(value, at)
        if found is None:
            params = None
            break
        params.setdefault(found.group(1).lower(), found.group(2) if found.group(2) is not None else found.group(3))
        at = found.end()
    return (ctype if ctype.count("/") == 1 else "text/plain"), params


def _raw_fields(lines: list[str], at: int, end: int) -> tuple[list[list[str]] | None, int]:
    """The header block from line `at` (up to `end`) as each field's lines, and the index after
    its blank line; None when a line is neither a field nor a continuation (the feed parser
    would note a defect). Both readers below build on it."""
    fields: list[list[str]] = []
    while at < end:
        line = lines[at]
        at += 1
        if _blank(line):
            break
        if line[0] in " \t":
            if not fields:
                return None, at
            fields[-1].append(line)
        elif _NAME.match(line):
            fields.append([line])
        else:
            return None, at
    return fields, at


def _fields(lines: list[str], at: int, end: int | None = None) -> tuple[Fields | None, int]:
    """`_headers` as plain fields, from line `at` up to `end`."""
    raw, at = _raw_fields(lines, at, len(lines) if end is None else end)
    if raw is None:
        return None, at
    fields: Fields = {}
    for field in raw:
        _add(fields, field)
    return fields, at


def _add(fields: Fields, lines: list[str]) -> None:
    name, value = lines[0].split(":", 1)  # compat32's header_source_parse
    value = value.lstrip(" \t") + "".join(lines[1:])
    fields.setdefault(name.lower(), []).append(value.rstrip("\r\n"))


def _lean_blocks(lines: list[str], at: int, end: int) -> list[Fields] | None:
    """`_blocks` as plain fields."""
    blocks: list[Fields] = []
    while True:
        stop = at
        while stop < end and not _blank(lines[stop]):
            stop += 1
        block, _at = _fields(lines, at, stop)
        if block is None:
            return None
        blocks.append(block)
        at = stop + 1
        if at >= end:
            return blocks


def headers_only(data: bytes) -> Message:
    """The header fields of `data` (a text/rfc822-headers part) as a Message."""
    text = data.decode("ascii", "surrogateescape")
    msg, _at = (None, 0) if _OTHER_BREAKS.search(text) else _headers(text.splitlines(keepends=True), 0)
    return msg if msg is not None else email.message_from_bytes(data, policy=_POLICY)


def _blank(line: str) -> bool:
    return line in ("\r\n", "\n", "\r")


def _headers(lines: list[str], at: int) -> tuple[Message | None, int]:
    """The header block starting at line `at` as a Message, and the index after its blank line."""
    raw, at = _raw_fields(lines, at, len(lines))
    if raw is None:
        return None, at
    msg = Message(policy=_POLICY)
    for field in raw:
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
PLAIN_ADDRESS = rf"{_DOT_ATOM}@{_DOT_ATOM}"
_PLAIN = re.compile(rf"\s*(?:<({PLAIN_ADDRESS})>|({PLAIN_ADDRESS}))\s*")


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
