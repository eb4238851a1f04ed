"""`tidings articles import`."""

from __future__ import annotations

import argparse
from typing import Any

from service.admin.audit import Actor
from service.articles.actions import import_articles_as
from service.articles.ingest import IngestError
from service.command import database_command
from service.db import Sessions
from service.settings import Settings


async def _articles_import(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    result = await import_articles_as(sessions, settings, args.sources, actor=Actor.cli())
    print(f"articles: {result.created} new, {result.updated} updated, {result.unchanged} unchanged")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("articles", help="import blog articles")
    asub = p.add_subparsers(dest="articles_command", metavar="ACTION", required=True)
    a = asub.add_parser("import", help="import from FEED_URL, or from feed URLs/files and Markdown files/folders")
    a.add_argument("sources", nargs="*", metavar="FEED_URL|PATH")
    a.set_defaults(handler=database_command(_articles_import, errors=(IngestError,)))
