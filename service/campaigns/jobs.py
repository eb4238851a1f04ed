"""The campaign loops of `tidings worker` (and of the in-process worker of `tidings serve`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.campaigns.dkim import signer_from_settings
from service.campaigns.flows import run_due_rules, start_due_campaigns
from service.campaigns.sender import CampaignSender
from service.campaigns.transport import bulk_transport_for
from service.db import transaction, utcnow

if TYPE_CHECKING:
    from service.worker import WorkerContext

_SENDERS: dict[str, CampaignSender] = {}


def sender_for(ctx: WorkerContext) -> CampaignSender:
    """This worker's sender: its SMTP pool and rendered digests live as long as the worker."""
    sender = _SENDERS.get(ctx.owner)
    if sender is None:
        transport = bulk_transport_for(ctx.mailer, concurrency=ctx.settings.send_concurrency)
        sender = _SENDERS[ctx.owner] = CampaignSender(
            ctx.sessions, ctx.settings, transport, owner=ctx.owner, signer=signer_from_settings(ctx.settings)
        )
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
