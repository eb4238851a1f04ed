"""Input cleaning shared by every form and JSON endpoint. Each cleaner returns the clean value
or raises `FieldError` with a message fit to show next to the field, in the language of the
request (`service.i18n.gettext`); a `label` is given in English, marked with `N_`, and translated
here."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from service.i18n import N_, gettext


class FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Errors(dict[str, str]):
    """field -> message; `collect` runs a cleaner and records its error instead of raising."""

    def collect(self, field: str, cleaner: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return cleaner(*args, **kwargs)
        except FieldError as exc:
            self.setdefault(exc.field, exc.message)
            return None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x85]")


def small_int(value: object, *, digits: int = 9) -> int | None:
    """`value` as a whole number when it is 1 to `digits` plain ASCII digits, else None. For ids,
    page cursors and numbers read from a URL, a form or another server: str.isdigit also takes
    "²" and other digits that int() refuses (a 500), and more than nine digits can overflow a
    32-bit integer column on PostgreSQL (a 500 again)."""
    if isinstance(value, str) and 0 < len(value) <= digits and value.isascii() and value.isdigit():
        return int(value)
    return None


def raw_value(data: Mapping[str, Any], field: str) -> str:
    """A submitted value as a string ('' when absent); lists and objects are refused."""
    value = data.get(field)
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return str(value)
    if not isinstance(value, str):
        raise FieldError(field, gettext("must be text"))
    return value


def clean_text(
    data: Mapping[str, Any], field: str, *, label: str, max_length: int, required: bool = False,
    multiline: bool = False,
) -> str:
    """Trimmed, NFC-normalised text; no control characters, no line breaks unless `multiline`."""
    value = unicodedata.normalize("NFC", raw_value(data, field)).strip()
    if "\ufffd" in value:
        raise FieldError(field, gettext("%(label)s contains characters that are not valid UTF-8", label=gettext(label)))
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        if _CONTROL.search(value.replace("\t", "")):
            raise FieldError(field, gettext("%(label)s contains control characters", label=gettext(label)))
    elif _LINE_BREAKS.search(value) or _CONTROL.search(value):
        raise FieldError(field, gettext("%(label)s must be a single line", label=gettext(label)))
    else:
        value = value.replace("\t", " ")
    if required and not value:
        raise FieldError(field, gettext("Please enter %(label)s", label=_in_sentence(label)))
    if len(value) > max_length:
        raise FieldError(field, gettext("%(label)s is too long (%(length)s characters; at most %(max)s)",
                                        label=gettext(label), length=len(value), max=max_length))
    return value


def _in_sentence(label: str) -> str:
    """A label inside a sentence: English lower-cases it ("Please enter your name"); a
    translation is used as written (German nouns keep their capitals)."""
    translated = gettext(label)
    return label.lower() if translated == label else translated


def clean_email(data: Mapping[str, Any], field: str = "email", *, required: bool = True) -> str:
    """A syntactically valid address (email-validator, no DNS lookup), domain lower-cased."""
    value = raw_value(data, field).strip()
    if "\ufffd" in value:
        raise FieldError(field, gettext("Email address contains characters that are not valid UTF-8"))
    if not value:
        if required:
            raise FieldError(field, gettext("Please enter your email address"))
        return ""
    if _LINE_BREAKS.search(value) or _CONTROL.search(value):
        raise FieldError(field, gettext("Email address must be a single line"))
    if len(value) > 254:
        raise FieldError(field, gettext("Email address is too long"))
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldError(field, gettext("This email address is not valid: %(reason)s", reason=exc)) from None
    return str(result.normalized)


def mail_address(address: str) -> str | None:
    """The address as it may travel in a mail header or an SMTP command: an internationalised
    domain in its ASCII (IDNA) form; None when the local part itself is not ASCII (that needs
    SMTPUTF8, which Tidings does not speak) or the address is not valid."""
    if address.isascii():
        return address
    try:
        return validate_email(address, check_deliverability=False).ascii_email or None
    except EmailNotValidError:
        return None


NOT_MAILABLE = N_("We cannot send email to an address with letters beyond plain A-Z before the @; "
                  "please use another address")


def clean_mailable_email(data: Mapping[str, Any], field: str = "email", *, required: bool = True) -> str:
    """`clean_email` for an address we are going to write to (newsletter, test sends): its local
    part must be ASCII (see `mail_address`); an internationalised domain is fine."""
    email = clean_email(data, field, required=required)
    if email and mail_address(email) is None:
        raise FieldError(field, gettext(NOT_MAILABLE))
    return email


def email_key(address: str) -> str:
    """The case-insensitive identity of an address (unique key, suppression hash input)."""
    return address.strip().lower()


def clean_choice(data: Mapping[str, Any], field: str, *, label: str, choices: tuple[str, ...],
                 required: bool = True, default: str = "") -> str:
    value = raw_value(data, field).strip()
    if not value:
        if required and not default:
            raise FieldError(field, gettext("Please choose %(label)s", label=_in_sentence(label)))
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise FieldError(field, gettext("Please choose %(label)s from the list", label=_in_sentence(label)))


def clean_bool(data: Mapping[str, Any], field: str) -> bool:
    value = data.get(field)
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "on", "yes", "true")


_PHONE_ALLOWED = re.compile(r"^[0-9+()\-. /]*$")
_SPACES = re.compile(r"[ \u00a0\u202f\t]+")


def clean_phone(data: Mapping[str, Any], field: str = "phone", *, required: bool = False) -> str:
    """A phone number as the person typed it (trimmed, each run of spaces made one space), so
    that staff read "+49 170 1234567" and not "+491701234567"; checked for 6 to 15 digits."""
    value = _SPACES.sub(" ", raw_value(data, field)).strip()
    if not value:
        if required:
            raise FieldError(field, gettext("Please enter your phone number"))
        return ""
    if not _PHONE_ALLOWED.match(value):
        raise FieldError(field, gettext("Phone number may contain only digits, spaces and + ( ) - ."))
    if value.count("+") > 1 or "+" in value[1:]:
        raise FieldError(field, gettext("Phone number may have a + only at its start"))
    digits = re.sub(r"\D", "", value)
    if value.startswith("00"):
        digits = digits[2:]
    if not 6 <= len(digits) <= 15:
        raise FieldError(field, gettext("Phone number should have between 6 and 15 digits"))
    return value


def phone_digits(phone: str) -> str:
    """The digits of a stored phone number, with '+' for an international one (a tel: link)."""
    international = phone.startswith("+") or phone.startswith("00")
    digits = re.sub(r"\D", "", phone)
    return ("+" + digits[2:] if phone.startswith("00") else "+" + digits) if international else digits


_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\"'<>\\`]")


def safe_http_url(value: object) -> str | None:
    """`value` when it is an absolute http(s) URL with a host, else None.

    The one rule for what may become an `href` or `src`, used when articles are read (feeds and
    front matter) and again when anything is rendered, so a row stored before the rule existed
    cannot become a `javascript:` link either. Whitespace and control characters anywhere are
    refused rather than stripped, because browsers drop them inside schemes (`java\\tscript:`).
    """
    if not isinstance(value, str) or not value or len(value) > 2000 or _URL_FORBIDDEN.search(value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return value
