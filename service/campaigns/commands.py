"""`tidings digest …` and `tidings campaign …` commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import uuid
from typing import TYPE_CHECKING, Any

from service.campaigns.queries import CampaignError
from service.campaigns.rules import RuleError
from service.command import Body, CommandError, Handler, cli_name, database_command
from service.db import Sessions, transaction, utcnow
from service.settings import Settings

if TYPE_CHECKING:  # for annotations only: mail/dkim.py (and cryptography) is loaded where signers are made
    from service.mail.dkim import DkimSigner


def _command(body: Body) -> Handler:
    return database_command(body, errors=(CampaignError, RuleError))


# -- digests -------------------------------------------------------------------------------


def _topics(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


async def _digest_create(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    from service.campaigns.flows import create_digest

    async with transaction(sessions) as session:
        campaign = await create_digest(session, settings, now=utcnow(), subject=args.subject, intro=args.intro,
                                       audience_topics=_topics(args.topics))
        count = len(campaign.article_rows)
    print(f"campaign {campaign.id}: draft \"{campaign.subject}\" with {count} article(s); "
          f"preview: {cli_name()} campaign preview {campaign.id}; send: {cli_name()} campaign send {campaign.id}")


async def _digest_rule(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    from service.admin.audit import Actor
    from service.campaigns.actions import save_digest_rule

    unknown = sorted(set(_topics(args.topics)) - set(settings.topics))
    if unknown:
        raise CommandError(f"--topics: unknown topic(s) {', '.join(unknown)}")
    async with transaction(sessions) as session:
        rule = await save_digest_rule(session, None, actor=Actor.cli(), spec=args.spec, now=utcnow(),
                                      subject=args.subject or "", audience_topics=_topics(args.topics),
                                      requires_approval=args.approval)
    print(f"digest rule {rule.id}: {rule.name}{' (needs approval)' if rule.requires_approval else ''}; "
          f"next run {rule.next_run_at:%Y-%m-%d %H:%M} UTC")


# -- campaigns -----------------------------------------------------------------------------


async def _campaign_preview(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    from service.campaigns.flows import render_preview

    async with sessions() as session:
        subject, html, text = await render_preview(session, settings=settings, campaign_id=args.id,
                                                   email=args.as_email)
    sys.stdout.write(f"Subject: {subject}\n\n{text}" if args.text else html)


async def _campaign_status(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    from service.admin.audit import Actor
    from service.campaigns import actions

    async with transaction(sessions) as session:
        if args.action == "approve":
            await actions.approve_campaign(session, settings=settings, campaign_id=args.id, actor=Actor.cli(),
                                           now=utcnow())
        else:
            await actions.change_campaign_status(session, campaign_id=args.id, action=args.action,
                                                 actor=Actor.cli(), now=utcnow())
    print(f"campaign {args.id}: {args.action} done")


async def _campaign_schedule(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    import datetime as dt

    from service.admin.audit import Actor
    from service.campaigns.actions import ScheduleError, schedule_campaign

    try:
        at = dt.datetime.fromisoformat(args.when)
    except ValueError:
        raise CommandError(f"WHEN: expected an ISO date and time such as 2026-12-01T09:00+00:00, got {args.when!r}"
                           ) from None
    if at.tzinfo is None:
        raise CommandError("WHEN: give a UTC offset, e.g. 2026-12-01T09:00+00:00")
    try:
        async with transaction(sessions) as session:
            await schedule_campaign(session, settings=settings, campaign_id=args.id, at=at, actor=Actor.cli(),
                                    now=utcnow())
    except ScheduleError as exc:
        raise CommandError(f"WHEN: {exc}") from None
    print(f"campaign {args.id}: scheduled for {at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC")


async def _digest_rules(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from service.campaigns.models import DigestRule

    async with sessions() as session:
        rules = (await session.scalars(select(DigestRule).order_by(DigestRule.id))).all()
    for rule in rules:
        print(f"{rule.id}: {rule.name}{' (needs approval)' if rule.requires_approval else ''}"
              f"{'' if rule.active else ' (inactive)'}; next {rule.next_run_at:%Y-%m-%d %H:%M} UTC; "
              f"last: {rule.last_result or '-'}")
    if not rules:
        print("no digest rules")


async def _campaign_stats(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    from service.campaigns.stats import campaign_stats

    async with sessions() as session:
        s = await campaign_stats(session, campaign_id=args.id, now=utcnow())
    rate = f"  rate {s.rate:.1f}/s  eta {s.eta_seconds or 0:.0f}s" if s.rate is not None else ""
    print(f"campaign {args.id}: {s.status}  recipients {s.total}  queued {s.queued}  sent {s.sent}  "
          f"failed {s.failed}  bounced {s.bounced}  skipped {s.skipped}  unsubscribed after {s.unsubscribed_after}"
          f"{rate}")


async def _campaign_send(settings: Settings, sessions: Sessions, args: argparse.Namespace) -> None:
    from service.mail.bulk import bulk_transport_for
    from service.mail.dkim import signer_from_settings
    from service.mail.transport import mailer_for

    mailer = mailer_for(settings, sessions)
    transport = bulk_transport_for(mailer, concurrency=settings.send_concurrency)
    try:
        if args.test:
            from service.admin.audit import Actor
            from service.campaigns.actions import record_test_send
            from service.campaigns.flows import send_test

            answer = await send_test(sessions, transport, settings=settings, campaign_id=args.id, address=args.test)
            async with transaction(sessions) as session:
                await record_test_send(session, campaign_id=args.id, address=args.test, answer=answer,
                                       actor=Actor.cli())
            print(f"test message sent to {args.test}: {answer}")
            return
        await _send_campaign(settings, sessions, transport, args.id, signer_from_settings(settings))
    finally:
        await transport.close()
        await mailer.close()


async def _send_campaign(settings: Settings, sessions: Sessions, transport: Any, campaign_id: int,
                         signer: DkimSigner | None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from service.admin.audit import Actor
    from service.campaigns.actions import send_campaign_now
    from service.campaigns.sender import CampaignSender, ChunkResult
    from service.campaigns.stats import campaign_stats

    async with transaction(sessions) as session:
        queued = await send_campaign_now(session, settings=settings, campaign_id=campaign_id, actor=Actor.cli(),
                                         now=utcnow())
    async with sessions() as session:
        stats = await campaign_stats(session, campaign_id=campaign_id, now=utcnow())
    if queued:
        print(f"campaign {campaign_id}: queued {queued} deliveries", file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}:send"
    columns = [TextColumn("[bold]campaign {task.fields[cid]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} msg/s"), TextColumn("ETA"), TimeRemainingColumn(),
               TextColumn("failed {task.fields[failed]}")]
    with Progress(*columns, transient=False, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("send", total=stats.total, completed=stats.done, cid=campaign_id, rate="-",
                                 failed=stats.failed)
        failed = stats.failed

        def on_progress(result: ChunkResult) -> None:
            nonlocal failed
            failed += result.failed
            progress.advance(task, result.sent + result.failed + result.skipped)
            speed = progress.tasks[0].speed
            progress.update(task, failed=failed, rate=f"{speed:.0f}" if speed else "-")

        sender = CampaignSender(sessions, settings, transport, owner=owner, signer=signer, on_progress=on_progress)
        status = await sender.run_campaign(campaign_id, stop)
    async with sessions() as session:
        stats = await campaign_stats(session, campaign_id=campaign_id, now=utcnow())
    summary = f"sent {stats.sent}, failed {stats.failed} ({stats.bounced} bounced), skipped {stats.skipped}"
    if stop.is_set() and status == "sending":
        print(f"campaign {campaign_id}: stopped with {stats.queued} left; run the same command again to resume "
              f"({summary})", file=sys.stderr)
        raise CommandError("interrupted")
    print(f"campaign {campaign_id}: {status}; {summary}")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Register the digest and campaign commands on the `tidings` parser."""
    p = sub.add_parser("digest", help="compose digests and recurring digest rules")
    dsub = p.add_subparsers(dest="digest_command", metavar="ACTION", required=True)
    d = dsub.add_parser("create", help="a draft campaign of every article since the last digest")
    d.add_argument("--subject")
    d.add_argument("--intro")
    d.add_argument("--topics", help="comma-separated topics of the audience (default: every subscriber)")
    d.set_defaults(handler=_command(_digest_create))
    d = dsub.add_parser("rule", help="a recurring digest, e.g. 'weekly on Monday 09:00 Europe/London'")
    d.add_argument("spec")
    d.add_argument("--subject")
    d.add_argument("--topics")
    d.add_argument("--approval", action="store_true", help="wait for `tidings campaign approve ID` before sending")
    d.set_defaults(handler=_command(_digest_rule))
    d = dsub.add_parser("rules", help="list the recurring digest rules")
    d.set_defaults(handler=_command(_digest_rules))

    p = sub.add_parser("campaign", help="create, edit, send, preview, pause, resume, cancel, duplicate, delete")
    csub = p.add_subparsers(dest="campaign_command", metavar="ACTION", required=True)
    c = csub.add_parser("send", help="queue (once) and send in the foreground; Ctrl-C stops, run again to resume")
    c.add_argument("id", type=int)
    c.add_argument("--test", metavar="ADDRESS", help="send one [TEST] copy to ADDRESS instead")
    c.set_defaults(handler=_command(_campaign_send))
    c = csub.add_parser("preview", help="print the HTML (or --text) as a subscriber would get it")
    c.add_argument("id", type=int)
    c.add_argument("--as", dest="as_email", metavar="EMAIL")
    c.add_argument("--text", action="store_true")
    c.set_defaults(handler=_command(_campaign_preview))
    c = csub.add_parser("stats", help="delivery counts, bounces, unsubscribes, rate and ETA")
    c.add_argument("id", type=int)
    c.set_defaults(handler=_command(_campaign_stats))
    c = csub.add_parser("schedule", help="start a draft at a given time (ISO 8601 with offset)")
    c.add_argument("id", type=int)
    c.add_argument("when")
    c.set_defaults(handler=_command(_campaign_schedule))
    from service.campaigns.commands_compose import register as register_compose

    register_compose(csub, _command)
    for action in ("pause", "resume", "cancel", "approve"):
        c = csub.add_parser(action, help=f"{action} a campaign")
        c.add_argument("id", type=int)
        c.set_defaults(handler=_command(_campaign_status), action=action)
