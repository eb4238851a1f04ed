"""The message catalogues cannot drift from the code: every text the templates and the Python code
mark for translation is in messages.pot and translated (not fuzzy, not empty) in every shipped
language, and no translation names a placeholder its English text does not fill.
(Run `./dev i18n update` and translate the new entries when this fails.)"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from service.i18n import po_path, shipped_languages, translations_for

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


@functools.lru_cache(maxsize=1)
def _extracted() -> frozenset[str]:
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(str(ROOT), method_map, options_map):
        found.add(message if isinstance(message, str) else message[0])
    return frozenset(found)


def _ids(messages) -> set[str]:  # type: ignore[no-untyped-def]
    return {m.id if isinstance(m.id, str) else m.id[0] for m in messages if m.id}


def test_messages_pot_holds_exactly_what_the_code_marks() -> None:
    extracted = _extracted()
    assert "Send my inquiry" in extracted and "Please enter %(label)s" in extracted  # templates and Python
    with (ROOT / "translations" / "messages.pot").open("rb") as f:
        pot = _ids(read_po(f))
    assert sorted(extracted - pot) == [], "texts missing from messages.pot: run ./dev i18n update"
    assert sorted(pot - extracted) == [], "messages.pot holds texts no longer used: run ./dev i18n update"


@pytest.mark.parametrize("lang", [lang for lang in shipped_languages() if lang != "en"])
def test_every_marked_text_is_translated(lang: str) -> None:
    assert lang == "de" or po_path(lang).is_file()
    with po_path(lang).open("rb") as f:
        catalog = read_po(f, locale=lang)
    untranslated = sorted(
        (m.id if isinstance(m.id, str) else m.id[0]) for m in catalog
        if m.id and (m.fuzzy or not (m.string if isinstance(m.string, str) else all(m.string)))
    )
    assert untranslated == [], f"untranslated or fuzzy in {lang}"
    missing = sorted(_extracted() - _ids(catalog))
    assert missing == [], f"texts missing from the {lang} catalogue: run ./dev i18n update, then translate"
    for m in catalog:
        if not m.id:
            continue
        ids = [m.id] if isinstance(m.id, str) else list(m.id)
        strings = [m.string] if isinstance(m.string, str) else list(m.string)
        allowed = {name for i in ids for name in PLACEHOLDER.findall(i)} | {"num"}
        for s in strings:
            assert set(PLACEHOLDER.findall(s)) <= allowed, f"{lang}: {s!r} names a placeholder {ids[0]!r} lacks"
    assert translations_for(lang).gettext("Send my inquiry") != "Send my inquiry"  # the catalogue compiles
