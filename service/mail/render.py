"""Rendering emails from `templates/email/NAME.html` and `NAME.txt` with Jinja2.

HTML is autoescaped and its CSS inlined (css-inline), because most mail clients ignore
<style> blocks; the text part is rendered without escaping, since it is never shown as HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import css_inline
import jinja2

from service.paths import TEMPLATES_DIR


@dataclass(frozen=True)
class RenderedEmail:
    html: str
    text: str


@lru_cache(maxsize=1)
def html_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR / "email"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache(maxsize=1)
def text_env() -> jinja2.Environment:
    # Plain-text bodies are never rendered as HTML, so nothing is escaped in them.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR / "email"),
        autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# Media queries (dark mode, narrow screens) stay in a <style> block; everything else is inlined.
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def inline_css(html: str) -> str:
    return _INLINER.inline(html)


def render_email(name: str, ctx: dict[str, Any]) -> RenderedEmail:
    """Render the HTML (CSS inlined) and text parts of email template `name`."""
    html = html_env().get_template(f"{name}.html").render(ctx)
    text = text_env().get_template(f"{name}.txt").render(ctx)
    return RenderedEmail(html=inline_css(html), text=text)
