"""Rendering emails from `templates/email/NAME.html` and `NAME.txt` with Jinja2.

HTML is autoescaped and its CSS inlined (css-inline), because most mail clients ignore
<style> blocks; the text part is rendered without escaping, since it is never shown as HTML.

Each language has its own pair of environments with its catalogue installed (`_()` in the
templates; see service/i18n.py); an email is rendered in the language named by its context's
`lang` (the recipient's), English when it names none (mail queued before languages existed).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import css_inline
import jinja2

from service.admin.brand_values import DEFAULT_ACCENT, dark_accent
from service.i18n import SOURCE_LANGUAGE, format_date, pick_language, translations_for
from service.paths import TEMPLATES_DIR


@dataclass(frozen=True)
class RenderedEmail:
    html: str
    text: str


def _localise(env: jinja2.Environment, lang: str) -> jinja2.Environment:
    env.install_gettext_translations(translations_for(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["date"] = functools.partial(format_date, lang=lang)
    return env


@lru_cache(maxsize=8)
def html_env(lang: str = SOURCE_LANGUAGE) -> jinja2.Environment:
    return _localise(jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR / "email"),
        extensions=["jinja2.ext.i18n"],
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    ), lang)


@lru_cache(maxsize=8)
def text_env(lang: str = SOURCE_LANGUAGE) -> jinja2.Environment:
    # Plain-text bodies are never rendered as HTML, so nothing is escaped in them.
    return _localise(jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR / "email"),
        extensions=["jinja2.ext.i18n"],
        autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    ), lang)


# Media queries (dark mode, narrow screens) stay in a <style> block; everything else is inlined.
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def inline_css(html: str) -> str:
    return _INLINER.inline(html)


def _plain_brand(ctx: dict[str, Any]) -> dict[str, Any]:
    """The look of a message queued without a brand (before brands existed, or by a command
    without a database): the default colours, no logo, no footer text."""
    return {"name": ctx.get("org_name", ""), "accent": DEFAULT_ACCENT, "accent_dark": dark_accent(DEFAULT_ACCENT),
            "logo_url": None, "logo_width": None, "logo_height": None, "footer_lines": [], "blog_url": None}


def render_email(name: str, ctx: dict[str, Any]) -> RenderedEmail:
    """Render the HTML (CSS inlined) and text parts of email template `name`, in `ctx["lang"]`;
    `ctx["brand"]` is `service.admin.brand.brand_context`'s."""
    lang = pick_language(ctx.get("lang"), SOURCE_LANGUAGE)
    ctx = {**ctx, "lang": lang}
    if "brand" not in ctx:
        ctx["brand"] = _plain_brand(ctx)
    html = html_env(lang).get_template(f"{name}.html").render(ctx)
    text = text_env(lang).get_template(f"{name}.txt").render(ctx)
    return RenderedEmail(html=inline_css(html), text=text)
