"""Where templates, migrations and demo data live: inside the installed package, or beside it in
a source checkout (the layout keeps `templates/` and `alembic/` at the top level, and the wheel
copies them into the package)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_ROOT = PACKAGE_DIR.parent


def _find(name: str) -> Path:
    installed = PACKAGE_DIR / name
    return installed if installed.is_dir() else _SOURCE_ROOT / name


TEMPLATES_DIR = _find("templates")
ALEMBIC_DIR = _find("alembic")
TRANSLATIONS_DIR = _find("translations")  # gettext catalogues (service/i18n.py)
