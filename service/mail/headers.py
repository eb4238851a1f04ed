"""What makes a mail header safe, written once.

Text a person typed (an inquiry's name, a subscriber's name, a campaign subject) reaches a
header only through `header_text`, which makes it one plain line: every line-break-like or
control character (CR, LF, VT, FF, NEL U+0085, U+2028, U+2029, NUL, the rest of C0/C1) becomes
a space, and encoded-word syntax (`=?` ... `?=`) is broken up with a space, so that no decoder,
not even the standard library's header parser on Python < 3.11.10 (CVE-2024-6923), can turn
the text back into a line break. We then encode it ourselves (`TextHeader`, `AddressHeader`):
plain ASCII as it is, anything else as RFC 2047 encoded words of at most 75 characters on lines
of at most 76, and the standard library only writes those lines out.

Whatever produced a message, `check_serialised` reads the header block of the bytes that go to
the SMTP server (or the local outbox) and refuses them unless their header names and counts are
exactly the ones that were set: the last line of defence against header injection.
"""

from __future__ import annotations

import base64
import functools
import re
from collections import Counter
from collections.abc import Iterable
from email.policy import Policy
from email.utils import getaddresses, parseaddr

from service.validation import mail_address

# Everything a reader might take for the end of a line, and every other control character.
_BREAKS_AND_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# "=?" opens an encoded word and "?=" closes one: a space between the two characters breaks both.
_ENCODED_WORD_MARKS = re.compile(r"(=)(?=\?)|(\?)(?==)")
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")  # a phrase that needs no quoting
_ADDR_SPEC = re.compile(r"[!-~]+@[!-~]+")
_FIELD_NAME = re.compile(rb"[!-9;-~]+")
LINE_LIMIT = 76  # RFC 2047: a line holding an encoded word is at most 76 characters
WORD_LIMIT = 75  # RFC 2047: an encoded word is at most 75 characters


class HeaderInjectionError(ValueError):
    """A header value contained a line break or control character (or a built message carries
    headers other than the ones that were set)."""


def header_text(value: str) -> str:
    """`value` made safe for a header: one line, no control characters, no encoded-word syntax,
    runs of white space as one space. Idempotent, and readable: only spaces are added."""
    value = _BREAKS_AND_CONTROLS.sub(" ", value)
    value = " ".join(value.split())
    return _ENCODED_WORD_MARKS.sub(lambda m: (m.group(1) or m.group(2)) + " ", value)


def check_header_value(name: str, value: str) -> str:
    """`value` unchanged, or HeaderInjectionError naming the header when it holds a line break
    or a control character (text from a person goes through `header_text` first)."""
    if _BREAKS_AND_CONTROLS.search(value.replace("\t", " ")):
        raise HeaderInjectionError(f"{name}: line breaks and control characters are not allowed in a mail header")
    return value


def _encoded_words(text: str, room: int) -> list[str]:
    """`text` as RFC 2047 base64 words of at most `room` characters, cut between characters."""
    max_bytes = max(3, (room - len("=?utf-8?b??=")) // 4 * 3)
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        n = len(char.encode("utf-8"))
        if size + n > max_bytes and chunk:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += n
    if chunk:
        words.append("".join(chunk))
    return [f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words]


def _mixed_tokens(name: str, text: str, plain: re.Pattern[str]) -> list[str]:
    """The words of `text`: those that `plain` matches as they are, each run of the others as
    encoded words (a run keeps its inner spaces inside the encoded text, so every decoder,
    including Python's, reads the words back as they were)."""
    room = min(WORD_LIMIT, LINE_LIMIT - len(name) - 2)
    tokens: list[str] = []
    run: list[str] = []
    for word in text.split(" ") if text else []:
        if plain.fullmatch(word):
            if run:
                tokens += _encoded_words(" ".join(run), room)
                run = []
            tokens.append(word)
        else:
            run.append(word)
    if run:
        tokens += _encoded_words(" ".join(run), room)
    return tokens


_PLAIN_TEXT_WORD = re.compile(r"[!-~]*")  # printable ASCII, in unstructured text
_PLAIN_PHRASE_WORD = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")  # an atom, in a display name


def _text_tokens(name: str, text: str) -> list[str]:
    return _mixed_tokens(name, text, _PLAIN_TEXT_WORD)


def _phrase_tokens(name: str, display: str) -> list[str]:
    if display.isascii() and not _ATOMS.fullmatch(display):
        return [_quoted(display)]
    return _mixed_tokens(name, display, _PLAIN_PHRASE_WORD)


def _quoted(phrase: str) -> str:
    """An ASCII phrase as an RFC 5322 quoted string."""
    return '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_addr_spec(name: str, addr: str) -> None:
    """ValueError naming the header unless `addr` is a plain ASCII addr-spec (no spaces, brackets)."""
    if not _ADDR_SPEC.fullmatch(addr) or "<" in addr or ">" in addr:
        raise ValueError(f"{name}: not an email address")


def _fold(name: str, tokens: list[str], linesep: str) -> str:
    """`Name: tokens...` on lines of at most LINE_LIMIT characters where the tokens allow."""
    lines = [f"{name}:"]
    for token in tokens:
        if len(lines[-1]) + 1 + len(token) > LINE_LIMIT and lines[-1] != f"{name}:":
            lines.append(f" {token}")
        else:
            lines[-1] += f" {token}"
    return linesep.join(lines) + linesep


class TextHeader(str):
    """An unstructured header (Subject) whose value we encode and fold ourselves; as a `str` it
    is the safe text. The email package writes `fold()`'s lines as they are."""

    name: str

    def __new__(cls, name: str, value: str) -> TextHeader:
        self = super().__new__(cls, header_text(check_header_value(name, value)))
        self.name = name
        return self

    # str's takes one argument, ours two: copy and pickle rebuild the header from (name, value)
    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return (self.name, str(self))

    def fold(self, *, policy: Policy) -> str:
        return fold_text(self.name, str(self), policy.linesep)


def display_address(email: str, name: str = "") -> str:
    """'Name <email>' (the name through `header_text`, quoted as needed), or `email` alone."""
    check_header_value("address", email)
    name = header_text(name)
    if not name:
        return email
    if name.isascii() and _ATOMS.fullmatch(name):
        return f"{name} <{email}>"
    return f"{_quoted(name)} <{email}>"


class AddressHeader(str):
    """From, To, Reply-To: each address's display name through `header_text` and encoded by us,
    each addr-spec checked (ASCII, no spaces or brackets); as a `str` the readable form."""

    name: str
    pairs: tuple[tuple[str, str], ...]

    def __new__(cls, name: str, value: str) -> AddressHeader:
        check_header_value(name, value)
        pairs = tuple((header_text(display), addr) for display, addr in getaddresses([value]))
        if not pairs:
            raise ValueError(f"{name}: not an email address")
        pairs = tuple((display, mail_address(addr) or addr) for display, addr in pairs)
        for _display, addr in pairs:
            _check_addr_spec(name, addr)
        self = super().__new__(cls, ", ".join(display_address(addr, display) for display, addr in pairs))
        self.name = name
        self.pairs = pairs
        return self

    # str's takes one argument, ours two: copy and pickle rebuild the header from (name, value)
    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return (self.name, str(self))

    def fold(self, *, policy: Policy) -> str:
        return fold_addresses(self.name, self.pairs, policy.linesep)


def fold_addresses(name: str, pairs: Iterable[tuple[str, str]], linesep: str = "\r\n") -> str:
    """The header line(s) `Name: display <addr>, ...`, display names encoded by us; each display
    name through `header_text`, each addr-spec checked."""
    pairs = list(pairs)
    tokens: list[str] = []
    for i, (display, addr) in enumerate(pairs):
        addr = mail_address(addr) or addr
        _check_addr_spec(name, addr)
        display = header_text(display)
        comma = "," if i < len(pairs) - 1 else ""
        tokens += [*_phrase_tokens(name, display), f"<{addr}>{comma}"] if display else [f"{addr}{comma}"]
    return _fold(name, tokens, linesep)


def fold_list_id(value: str, linesep: str = "\r\n") -> str:
    """The `List-Id: phrase <list.id>` line(s) of RFC 2919, the phrase through `header_text`
    and encoded by us (quoted or RFC 2047 words as needed)."""
    check_header_value("List-Id", value)
    display, _lt, ident = value.rpartition("<")
    ident = ident.removesuffix(">")
    if not ident or not ident.isascii() or any(c in ident for c in " <>\"\\"):
        raise ValueError("List-Id: not of the form 'name <list.id>'")
    display = header_text(parseaddr(value)[0] if display.strip() else "")
    return _fold("List-Id", [*_phrase_tokens("List-Id", display), f"<{ident}>"] if display else [f"<{ident}>"],
                 linesep)


class ListIdHeader(str):
    """List-Id, encoded and folded by `fold_list_id` (so a non-ASCII organisation name works);
    the email package writes `fold()`'s lines as they are (it keeps a value with this `name`)."""

    name = "List-Id"

    def __new__(cls, value: str) -> ListIdHeader:
        fold_list_id(value)  # refuses a malformed value at once
        return super().__new__(cls, value)

    def fold(self, *, policy: Policy) -> str:
        return fold_list_id(str(self), policy.linesep)


def fold_text(name: str, value: str, linesep: str = "\r\n") -> str:
    """The header line(s) `Name: value`, the value through `header_text` and encoded by us."""
    return _fold(name, _text_tokens(name, header_text(check_header_value(name, value))), linesep)


# -- after serialisation -------------------------------------------------------------------------


# A clean header block: fields "name:value" with continuation lines starting with white space,
# CRLF between lines, nothing else; one match over the block instead of a loop over its lines.
_FIELD = rb"[!-9;-~]+:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*"
_CLEAN_BLOCK = re.compile(_FIELD + rb"(?:\r\n" + _FIELD + rb")*")
_FIELD_NAMES = re.compile(rb"(?:\A|\r\n)([!-9;-~]+):")


_FIELDS = re.compile(rb"(?:\A|\r\n)([!-9;-~]+):([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)")
_FIELD_START = re.compile(rb"^(?=[^ \t])", re.M)
_ONE_FIELD = re.compile(_FIELD)


def header_fields(raw: bytes) -> list[tuple[bytes, bytes]]:
    """The fields of the header block of `raw` in order, as (name, value): the value as written
    after the colon, folding kept, without its final CRLF. Raises HeaderInjectionError for a
    block that is not plain ASCII lines ending in CRLF (`header_names`). The one reading of a
    message's headers on the send path: the check of their names and DKIM's canonical form
    both start from it."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        raise HeaderInjectionError("the message has no blank line after its headers")
    block = raw[:end]
    if block.isascii() and _CLEAN_BLOCK.fullmatch(block):
        return _FIELDS.findall(block)
    _header_names_by_line(block)  # raises, naming what is wrong
    fields = (field.removesuffix(b"\r\n").partition(b":") for field in _FIELD_START.split(block + b"\r\n"))
    return [(name, value) for name, _colon, value in fields if name]


def header_names(raw: bytes) -> Counter[str]:
    """How often each header name (lower case) occurs in the header block of `raw`; raises
    HeaderInjectionError for a block that is not plain ASCII lines ending in CRLF. A clean block
    is read with two regular expressions (every message sent goes through here, some twice); any
    other is read line by line, which names what is wrong."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        raise HeaderInjectionError("the message has no blank line after its headers")
    block = raw[:end]
    if block.isascii() and _CLEAN_BLOCK.fullmatch(block):
        return Counter(name.decode("ascii").lower() for name in _FIELD_NAMES.findall(block))
    return _header_names_by_line(block)


def is_one_field(field: bytes) -> bool:
    """Whether `field` (no CRLF at its end) is exactly one clean header field, as `header_names`
    reads one: plain ASCII, a name, a colon, continuation lines starting with white space."""
    return field.isascii() and _ONE_FIELD.fullmatch(field) is not None


def _header_names_by_line(block: bytes) -> Counter[str]:
    names: Counter[str] = Counter()
    current = "the first header"
    for line in block.split(b"\r\n"):
        continued = line[:1] in (b" ", b"\t")
        field, colon, _rest = line.partition(b":")
        if not continued and colon and _FIELD_NAME.fullmatch(field):
            current = field.decode("ascii")
        elif not continued:
            raise HeaderInjectionError(f"{current}: followed by a line that is not a header")
        elif not names:
            raise HeaderInjectionError("the message starts with a folded line")
        if b"\r" in line or b"\n" in line:
            raise HeaderInjectionError(f"{current}: a line break that is not CRLF inside the header")
        if not line.isascii():
            raise HeaderInjectionError(f"{current}: characters that are not ASCII in the header")
        if not continued:
            names[current.lower()] += 1
    return names


def check_serialised(raw: bytes, expected: Iterable[str]) -> bytes:
    """`raw` when its header names and their counts are exactly `expected`; otherwise
    HeaderInjectionError naming the first header that differs."""
    check_fields(header_fields(raw), expected)
    return raw


def check_fields(fields: list[tuple[bytes, bytes]], expected: Iterable[str]) -> None:
    """`check_names` for the fields `header_fields` read: the names compared sorted against
    `expected` (kept per tuple of names: a campaign checks the same set for every message), the
    Counters built only to name the header that differs."""
    names = sorted([name.lower() for name, _value in fields])
    if names != _sorted_names(expected if isinstance(expected, tuple) else tuple(expected)):
        check_names(Counter(name.decode("ascii").lower() for name, _value in fields), expected)


@functools.lru_cache(maxsize=64)
def _sorted_names(expected: tuple[str, ...]) -> list[bytes]:
    return sorted(name.lower().encode("ascii", "replace") for name in expected)


def check_names(found: Counter[str], expected: Iterable[str]) -> None:
    """HeaderInjectionError naming the first header whose count in `found` (`header_names`)
    differs from `expected`."""
    wanted = Counter(name.lower() for name in expected)
    if found != wanted:
        name = next(iter((found - wanted) or (wanted - found)))
        raise HeaderInjectionError(
            f"{name.title()}: the message as written has {found[name]} such header(s), "
            f"{wanted[name]} set; not sent"
        )
