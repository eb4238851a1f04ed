"""The campaign loops of `tidings worker` (and of the in-process worker of `tidings serve`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.campaigns.dkim import signer_from_settings
from service.campaigns.flows import run_due_rules, start_due_campaigns
from service.campaigns.sender import CampaignSender
from service.db import transaction, utcnow
from service.mail.bulk import bulk_transport_for

if TYPE_CHECKING:
    from service.worker import WorkerContext

_SENDERS: dict[int, tuple[WorkerContext, CampaignSender]] = {}


def sender_for(ctx: WorkerContext) -> CampaignSender:
    """This worker's sender: its SMTP pool and rendered digests live as long as the worker."""
    known = _SENDERS.get(id(ctx))
    if known is not None and known[0] is ctx:
        return known[1]
    transport = bulk_transport_for(ctx.mailer, concurrency=ctx.settings.send_concurrency)
    sender = CampaignSender(ctx.sessions, ctx.settings, transport, owner=ctx.owner,
                            signer=signer_from_settings(ctx.settings))
    _SENDERS[id(ctx)] = (ctx, sender)
    return sender


async def campaign_send_job(ctx: WorkerContext) -> int:
    """Send one leased batch of any sending campaign."""
    return await sender_for(ctx).run_once()


async def campaign_schedule_job(ctx: WorkerContext) -> int:
    """Start due scheduled campaigns and evaluate due digest rules."""
    async with transaction(ctx.sessions) as session:
        now = utcnow()
        await run_due_rules(session, ctx.settings, now=now)
        await start_due_campaigns(session, now=now)
    return 0
