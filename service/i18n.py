"""Languages of the public pages and emails: gettext message catalogues (Babel).

English is the language the strings are written in; every other shipped language has a catalogue
in `translations/LANG/LC_MESSAGES/messages.po`. The .po files are compiled in memory the first
time a language is used (no compiled .mo file to commit or forget to rebuild), so a fresh clone,
CI and the wheel all read the same source.

`translations_for(lang)` is the one place that picks the catalogue of a language; the page and
email template environments and the Python messages (`gettext` here) all use it. The language
of the running request (or email being rendered) is a context variable, set per request by
`service.web.LanguageMiddleware` and switched by a handler that knows better (a subscriber's
own language on the pages their links lead to, the `lang` a signup form sent).
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import babel.dates
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from starlette.types import ASGIApp, Receive, Scope, Send

from service.paths import TRANSLATIONS_DIR

SOURCE_LANGUAGE = "en"
DOMAIN = "messages"


def po_path(lang: str, directory: Path = TRANSLATIONS_DIR) -> Path:
    return directory / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.lru_cache(maxsize=1)
def shipped_languages() -> tuple[str, ...]:
    """English and every language with a catalogue, English first."""
    found = sorted(p.name for p in TRANSLATIONS_DIR.iterdir() if po_path(p.name).is_file()) \
        if TRANSLATIONS_DIR.is_dir() else []
    return (SOURCE_LANGUAGE, *(lang for lang in found if lang != SOURCE_LANGUAGE))


@functools.lru_cache(maxsize=16)
def translations_for(lang: str) -> NullTranslations:
    """The catalogue of `lang` (compiled from its .po, fuzzy entries left out); English, or a
    language that is not shipped, gets the strings as written."""
    if lang == SOURCE_LANGUAGE or lang not in shipped_languages():
        return NullTranslations()
    with po_path(lang).open("rb") as f:
        catalog = read_po(f, locale=lang, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def pick_language(requested: object, default: str) -> str:
    """`requested` when it names a shipped language ("de", "de-DE", "DE_at" all mean "de"), else `default`."""
    if isinstance(requested, str) and requested.strip():
        base = requested.strip().replace("_", "-").split("-")[0].lower()
        if base in shipped_languages():
            return base
    return default


# -- the language of what is being rendered now ------------------------------------------------

_current: ContextVar[str] = ContextVar("tidings_language", default=SOURCE_LANGUAGE)


def current_language() -> str:
    return _current.get()


def set_language(lang: str) -> None:
    """Use `lang` for the rest of this request (or task)."""
    _current.set(lang)


@contextmanager
def language(lang: str) -> Iterator[None]:
    """Use `lang` within the block (queueing an email in the subscriber's language)."""
    token = _current.set(lang)
    try:
        yield
    finally:
        _current.reset(token)


def gettext(message: str, **variables: object) -> str:
    """`message` in the current language, with `%(name)s` filled from `variables` (as the
    templates' newstyle gettext does)."""
    text = translations_for(current_language()).gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: object) -> str:
    text = translations_for(current_language()).ngettext(singular, plural, n)
    return text % {"num": n, **variables}


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark `message` for the catalogue; it is translated where it is shown (`gettext(message)`)."""
    return message


def format_date(value: dt.date | dt.datetime, lang: str | None = None, fmt: str = "long") -> str:
    """A date as the language writes it ("2 December 2026", "2. Dezember 2026")."""
    if isinstance(value, dt.datetime):
        value = value.date()
    return babel.dates.format_date(value, format=fmt, locale=_locale(lang or current_language()))


def _locale(lang: str) -> str:
    return "en_GB" if lang == SOURCE_LANGUAGE else lang


class LanguageMiddleware:
    """Each request starts in the install's LANGUAGE; the admin, which is not translated, in
    English (its pages share the error partials with the public ones)."""

    def __init__(self, app: ASGIApp, default: str) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        admin = scope["path"] == "/admin" or scope["path"].startswith("/admin/")
        token = _current.set(SOURCE_LANGUAGE if admin else self.default)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
