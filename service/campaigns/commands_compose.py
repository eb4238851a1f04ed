"""`tidings campaign create | edit | duplicate | delete`: compose campaigns at the command line.

The same action functions as the admin's composer (`service.campaigns.actions`), so the rules
(a body or at least one article, only drafts change) and the audit rows are the same; the texts
are checked with the same field rules (`service.validation.clean_text`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.command import Body, CommandError, Handler
from service.db import Sessions, transaction, utcnow
from service.settings import Settings
from service.validation import FieldError, clean_text, small_int

SUBJECT_MAX = PREHEADER_MAX = 300
INTRO_MAX, BODY_MAX = 5000, 50000

def _text(value: str, flag: str, *, max_length: int, multiline: bool = False, required: bool = False) -> str:
    try:
        return clean_text({flag: value}, flag, label=flag, max_length=max_length, multiline=multiline,
                          required=required)
    except FieldError as exc:
        raise CommandError(exc.message) from None

def _body(path: str | None) -> str | None:
    """The body from a Markdown file, or stdin for '-'; None when not given."""
    if path is None:
        return None
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"--body-file: cannot read {path}: {exc}") from None
    return _text(raw, "--body-file", max_length=BODY_MAX, multiline=True)

def _ids(value: str) -> list[int]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    ids = [small_int(p) for p in parts]
    if None in ids:
        raise CommandError(f"--articles: expected article ids such as 3,1,2, got {value!r}")
    return list(dict.fromkeys(i for i in ids if i is not None))

async def _articles(session: Any, value: str | None) -> list[int] | None:
    """Article ids in order ('new' = every article since the last digest); checked to exist."""
    from service.articles.models import Article
    from service.campaigns import queries as cq

    if value is None:
        return None
    if value == "new":
        return [a.id for a in await cq.articles_since_last_digest(session)]
    ids = _ids(value)
    unknown = sorted(set(ids) - {a.id for a in await _existing(session, Article, ids)})
    if unknown:
        raise CommandError(f"--articles: no article {', '.join(map(str, unknown))}")
    return ids

async def _existing(session: Any, model: Any, ids: list[int]) -> list[Any]:
    from sqlalchemy import select

    return list((await session.scalars(select(model).where(model.id.in_(ids)))).all())

def _topics(settings: Settings, value: str | None) -> list[str] | None:
    if value is None:
        return None
    topics = sorted({t.strip() for t in value.split(",") if t.strip()})
    unknown = [t for t in topics if t not in settings.topics]
    if unknown:
        raise CommandError(f"--topics: unknown topic(s) {', '.join(unknown)}; known: {', '.join(settings.topics)}")
    return topics

async def _create(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    from service.admin.audit import Actor
    from service.campaigns.actions import create_campaign

    subject = _text(args.subject, "--subject", max_length=SUBJECT_MAX, required=True)
    body = _body(args.body_file) or ""
    async with transaction(sessions) as session:
        articles = await _articles(session, args.articles) or []
        campaign = await create_campaign(
            session, actor=Actor.cli(), now=utcnow(), subject=subject, body=body, article_ids=articles,
            preheader=_text(args.preheader or "", "--preheader", max_length=PREHEADER_MAX),
            intro=_text(args.intro or "", "--intro", max_length=INTRO_MAX, multiline=True),
            audience_topics=_topics(settings, args.topics) or [])
    print(f"campaign {campaign.id}: draft \"{campaign.subject}\" with {len(articles)} article(s)"
          f"{' and a body' if body else ''}")

async def _edit(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    from service.admin.audit import Actor
    from service.campaigns import queries as cq
    from service.campaigns.actions import edit_draft

    body = _body(args.body_file)
    async with transaction(sessions) as session:
        campaign = await cq.get_campaign(session, campaign_id=args.id)
        articles = await _articles(session, args.articles)
        topics = _topics(settings, args.topics)
        await edit_draft(
            session, campaign_id=args.id, actor=Actor.cli(), now=utcnow(),
            subject=_text(args.subject, "--subject", max_length=SUBJECT_MAX, required=True)
            if args.subject is not None else campaign.subject,
            preheader=_text(args.preheader, "--preheader", max_length=PREHEADER_MAX)
            if args.preheader is not None else campaign.preheader,
            intro=_text(args.intro, "--intro", max_length=INTRO_MAX, multiline=True)
            if args.intro is not None else campaign.intro,
            body=body if body is not None else campaign.body,
            article_ids=articles if articles is not None else [r.article_id for r in campaign.article_rows],
            audience_topics=topics if topics is not None else campaign.audience_topics)
    print(f"campaign {args.id}: draft saved")

async def _duplicate(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    from service.admin.audit import Actor
    from service.campaigns.actions import duplicate_campaign

    async with transaction(sessions) as session:
        copy = await duplicate_campaign(session, campaign_id=args.id, actor=Actor.cli(), now=utcnow())
    print(f"campaign {copy.id}: draft copied from campaign {args.id}")

async def _delete(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    from service.admin.audit import Actor
    from service.campaigns.actions import delete_draft

    async with transaction(sessions) as session:
        await delete_draft(session, campaign_id=args.id, actor=Actor.cli())
    print(f"campaign {args.id}: draft deleted")

def _texts(c: argparse.ArgumentParser) -> None:
    c.add_argument("--preheader")
    c.add_argument("--intro", help="a short plain-text introduction")
    c.add_argument("--body-file", metavar="PATH", help="the campaign's own body, Markdown ('-' reads stdin)")
    c.add_argument("--articles", metavar="IDS", help="article ids in order, e.g. 3,1,2; 'new' = since the last digest")
    c.add_argument("--topics", help="comma-separated topics of the audience (default: every subscriber)")

def register(csub: argparse._SubParsersAction[Any], command: Callable[[Body], Handler]) -> None:
    """Add create, edit, duplicate and delete to `tidings campaign`."""
    c = csub.add_parser("create", help="a draft: an announcement (--body-file), a digest (--articles), or both")
    c.add_argument("--subject", required=True)
    _texts(c)
    c.set_defaults(handler=command(_create))
    c = csub.add_parser("edit", help="change a draft; options not given stay as they are")
    c.add_argument("id", type=int)
    c.add_argument("--subject")
    _texts(c)
    c.set_defaults(handler=command(_edit))
    c = csub.add_parser("duplicate", help="a new draft with the subject, body, articles and audience of a campaign")
    c.add_argument("id", type=int)
    c.set_defaults(handler=command(_duplicate))
    c = csub.add_parser("delete", help="delete a draft (campaigns past a draft stay on record)")
    c.add_argument("id", type=int)
    c.set_defaults(handler=command(_delete))
