"""The campaign loops of `tidings worker` (and of the in-process worker of `tidings serve`)."""

from __future__ import annotations

from service.campaigns.counts import fold_delivery_counts
from service.campaigns.flows import run_due_rules, start_due_campaigns
from service.campaigns.sender import CampaignSender
from service.campaigns.throttle import web_yield_for
from service.db import transaction, utcnow
from service.loops import Loop, WorkerContext
from service.mail.bulk import bulk_transport_for
from service.mail.dkim import signer_from_settings
from service.settings import Settings


def sender_for(ctx: WorkerContext) -> CampaignSender:
    """This worker's sender: its SMTP pool and rendered digests live as long as the worker (kept
    on the WorkerContext)."""

    def make() -> CampaignSender:
        transport = bulk_transport_for(ctx.mailer, concurrency=ctx.settings.send_concurrency)
        return CampaignSender(ctx.sessions, ctx.settings, transport, owner=ctx.owner,
                              signer=signer_from_settings(ctx.settings),
                              web_yield=web_yield_for(ctx.settings.send_yield, ctx.sessions))

    return ctx.kept("campaign-sender", make)


async def campaign_send_job(ctx: WorkerContext) -> int:
    """Send one leased batch of any sending campaign."""
    return await sender_for(ctx).run_once()


async def campaign_schedule_job(ctx: WorkerContext) -> int:
    """Start due scheduled campaigns and evaluate due digest rules."""
    async with transaction(ctx.sessions) as session:
        now = utcnow()
        await run_due_rules(session, ctx.settings, now=now)
        await start_due_campaigns(session, ctx.settings, now=now)
    return 0


async def delivery_counts_job(ctx: WorkerContext) -> int:
    """Fold the delivery counters the triggers append (a sending campaign appends one per result)."""
    async with transaction(ctx.sessions) as session:
        return await fold_delivery_counts(session, now=utcnow())


def loops(settings: Settings | None) -> list[Loop]:
    return [Loop("campaigns", campaign_send_job, 1.0), Loop("campaign-schedule", campaign_schedule_job, 30.0),
            Loop("delivery-counts", delivery_counts_job, 5.0)]
