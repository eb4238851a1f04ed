"""The rules for each brand value staff may set on the Settings page (organisation name, accent
colour, logo, footer text, blog address; the postal address's rule is in `service.admin.brand`):
each `clean_*` returns the value to store or raises BrandValueError saying what is wrong. Also the
colours derived from the accent, so that text on it and links in dark mode keep their contrast.

The logo is an uploaded PNG or JPEG, stored in the database (an operator of a self-hosted service
expects to upload it, not to host it somewhere first). SVG is refused: Gmail and Outlook do not
show it, and an SVG can carry scripts."""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass

from service.validation import safe_http_url

MAX_NAME = 100
MAX_FOOTER = 500
MAX_LOGO_BYTES = 200 * 1024
MAX_LOGO_SIDE = 4000
DEFAULT_ACCENT = "#0b5d5b"
DARK_CARD = "#1c2023"  # the dark-mode card of the email layout (templates/email/_layout.html)
_HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


class BrandValueError(ValueError):
    """A brand value that cannot be used; the message says why and what would do."""


def _no_controls(text: str, *, newlines: bool) -> None:
    if any((ord(c) < 32 and not (newlines and c == "\n")) or 0x7F <= ord(c) <= 0x9F for c in text):
        raise BrandValueError("control characters are not allowed" if newlines else
                              "one line without line breaks or control characters")


def clean_name(value: str) -> str:
    """The organisation's name: one line (it reaches mail subjects), 1-100 characters."""
    text = value.strip()
    if not text:
        raise BrandValueError("enter the organisation's name")
    _no_controls(text, newlines=False)
    if len(text) > MAX_NAME:
        raise BrandValueError(f"at most {MAX_NAME} characters")
    return text


def clean_footer(value: str) -> str:
    """Footer text: lines without surrounding spaces, at most 500 characters; "" for none."""
    text = "\n".join(line.strip() for line in value.replace("\r\n", "\n").split("\n") if line.strip())
    _no_controls(text, newlines=True)
    if len(text) > MAX_FOOTER:
        raise BrandValueError(f"at most {MAX_FOOTER} characters")
    return text


def clean_blog_url(value: str) -> str:
    """The blog's home page: an absolute http(s) address."""
    text = value.strip()
    if safe_http_url(text) is None:
        raise BrandValueError("enter an address starting with https:// or http://, such as https://blog.example.org")
    return text


def clean_accent(value: str) -> str:
    """A hex colour (#rgb or #rrggbb) dark enough for links on white (WCAG AA, 4.5:1), as #rrggbb."""
    match = _HEX.fullmatch(value.strip())
    if not match:
        raise BrandValueError("enter a hex colour such as #0b5d5b")
    digits = match.group(1).lower()
    colour = "#" + (digits if len(digits) == 6 else "".join(d * 2 for d in digits))
    ratio = contrast(colour, "#ffffff")
    if ratio < 4.5:
        raise BrandValueError(f"{colour} is too light for links and buttons on white (contrast {ratio:.1f}:1, "
                              "at least 4.5:1 is needed); choose a darker shade")
    return colour


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two #rrggbb colours."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@functools.lru_cache(maxsize=32)
def dark_accent(colour: str) -> str:
    """The accent lightened (mixed with white) until it reads on the dark-mode card (4.5:1);
    kept per colour (every email's context asks for it; ~50 µs of colour arithmetic)."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    for step in range(0, 101, 5):
        mixed = "#" + "".join(f"{round(c + (255 - c) * step / 100):02x}" for c in rgb)
        if contrast(mixed, DARK_CARD) >= 4.5:
            return mixed
    return "#ffffff"


# -- the logo --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Logo:
    data: bytes
    content_type: str  # image/png or image/jpeg
    width: int
    height: int

    @property
    def extension(self) -> str:
        return "png" if self.content_type == "image/png" else "jpg"


def clean_logo(data: bytes) -> Logo:
    """An uploaded logo: a PNG or JPEG of at most 200 KB and 4000 px a side."""
    if not data:
        raise BrandValueError("choose an image file")
    if len(data) > MAX_LOGO_BYTES:
        raise BrandValueError(f"the file is {len(data) // 1024} KB; at most {MAX_LOGO_BYTES // 1024} KB is "
                              "accepted (a logo a few hundred pixels wide is plenty)")
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg")) or b"<svg" in head:
        raise BrandValueError("SVG cannot be used (Gmail and Outlook do not show it); upload a PNG or JPEG")
    size = _png_size(data) if data.startswith(b"\x89PNG\r\n\x1a\n") else _jpeg_size(data)
    if size is None:
        raise BrandValueError("this is not a PNG or JPEG image; upload a PNG or JPEG")
    width, height = size
    if not (0 < width <= MAX_LOGO_SIDE and 0 < height <= MAX_LOGO_SIDE):
        raise BrandValueError(f"the image is {width}×{height} pixels; at most {MAX_LOGO_SIDE} a side")
    content_type = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    return Logo(data, content_type, width, height)


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first start-of-frame marker of a JPEG."""
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return int(width), int(height)
        i += 2 + length
    return None


def logo_display_size(width: int, height: int, *, max_height: int = 48, max_width: int = 240) -> tuple[int, int]:
    """The size the logo is shown at in emails (Outlook needs a width): 48 px high at most."""
    scale = min(1.0, max_height / height, max_width / width)
    return max(1, round(width * scale)), max(1, round(height * scale))
