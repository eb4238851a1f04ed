"""What staff do to a campaign or a digest rule, as action functions shared by the admin pages and the `tidings
campaign …` commands: each changes the campaign in the caller's transaction and writes the audit
row for whoever acted (an `Actor`: a staff user, or `cli:<user>`). A refused action raises
CampaignError, changes nothing and records nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import Actor, record_audit
from service.campaigns import queries as cq
from service.campaigns.models import Campaign, DigestRule
from service.campaigns.preflight import check_ready_to_send
from service.campaigns.queries import CampaignError
from service.campaigns.rules import create_rule, set_rule_active, update_rule
from service.settings import Settings


class ScheduleError(CampaignError):
    """A time the campaign cannot be scheduled for (bad input rather than a campaign's state)."""


STATUS_ACTIONS = {"pause": "paused", "resume": "sending", "cancel": "cancelled"}


async def create_campaign(session: AsyncSession, *, actor: Actor, now: dt.datetime, subject: str,
                          article_ids: Sequence[int], preheader: str = "", intro: str = "", body: str = "",
                          audience_topics: Sequence[str] = ()) -> Campaign:
    """A new draft: a digest (articles), an announcement (a Markdown body), or both."""
    if not article_ids and not body.strip():
        raise CampaignError("a campaign needs a body or at least one article")
    campaign = await cq.create_campaign(session, subject=subject, preheader=preheader, intro=intro, body=body,
                                        article_ids=article_ids, audience_topics=audience_topics, now=now)
    await _audit(session, "campaign_create", campaign.id, actor, {"subject": subject})
    return campaign


async def edit_draft(session: AsyncSession, *, campaign_id: int, actor: Actor, now: dt.datetime, subject: str,
                     article_ids: Sequence[int], preheader: str = "", intro: str = "", body: str = "",
                     audience_topics: Sequence[str] = ()) -> Campaign:
    """Change a draft's texts, body, audience and articles."""
    if not article_ids and not body.strip():
        raise CampaignError("a campaign needs a body or at least one article")
    campaign = await cq.update_draft(session, campaign_id=campaign_id, subject=subject, preheader=preheader,
                                     intro=intro, body=body, audience_topics=audience_topics,
                                     article_ids=article_ids, now=now)
    await _audit(session, "campaign_edit", campaign_id, actor, {"subject": subject})
    return campaign


async def delete_draft(session: AsyncSession, *, campaign_id: int, actor: Actor) -> None:
    """Delete a draft; the audit row keeps its subject."""
    campaign = await cq.delete_draft(session, campaign_id=campaign_id)
    await _audit(session, "campaign_delete", campaign_id, actor, {"subject": campaign.subject})


async def duplicate_campaign(session: AsyncSession, *, campaign_id: int, actor: Actor, now: dt.datetime
                             ) -> Campaign:
    """A new draft copied from any campaign (audited on the new draft, naming its source)."""
    copy = await cq.duplicate_campaign(session, campaign_id=campaign_id, now=now)
    await _audit(session, "campaign_duplicate", copy.id, actor, {"from": campaign_id})
    return copy


async def send_campaign_now(session: AsyncSession, *, settings: Settings, campaign_id: int, actor: Actor,
                            now: dt.datetime) -> int:
    """Queue the deliveries (once) and set the campaign sending; returns how many were queued."""
    before = (await cq.get_campaign(session, campaign_id=campaign_id)).status
    if before != "sending":  # resuming a run that already started needs no new check
        await check_ready_to_send(session, settings)
    queued = await cq.start_campaign(session, campaign_id=campaign_id, now=now)
    await _audit(session, "campaign_send", campaign_id, actor, {"from": before, "queued": queued})
    return queued


async def schedule_campaign(session: AsyncSession, *, settings: Settings, campaign_id: int, at: dt.datetime,
                            actor: Actor, now: dt.datetime, timezone: str = "") -> None:
    """Have the worker start the campaign at `at` (a future time with a UTC offset)."""
    if at.tzinfo is None:
        raise ScheduleError("give the time with a UTC offset, e.g. 2026-12-01T09:00+00:00")
    if at <= now:
        raise ScheduleError("this is in the past; send the campaign now to send it at once")
    await check_ready_to_send(session, settings)
    await cq.schedule_campaign(session, campaign_id=campaign_id, at=at, now=now)
    detail: dict[str, object] = {"at": at.isoformat(), **({"timezone": timezone} if timezone else {})}
    await _audit(session, "campaign_schedule", campaign_id, actor, detail)


async def approve_campaign(session: AsyncSession, *, settings: Settings, campaign_id: int, actor: Actor,
                           now: dt.datetime) -> None:
    """Approve a scheduled campaign that waits for a staff approval (digest rules may ask for one)."""
    campaign = await cq.get_campaign(session, campaign_id=campaign_id)
    if not (campaign.requires_approval and campaign.approved_at is None and campaign.status == "scheduled"):
        raise CampaignError(f"campaign {campaign_id} does not await an approval")
    await check_ready_to_send(session, settings)
    await cq.approve_campaign(session, campaign_id=campaign_id, now=now)
    await _audit(session, "campaign_approve", campaign_id, actor, {})


async def change_campaign_status(session: AsyncSession, *, campaign_id: int, action: str, actor: Actor,
                                 now: dt.datetime) -> None:
    """`action` is pause, resume or cancel."""
    before = (await cq.get_campaign(session, campaign_id=campaign_id)).status
    await cq.set_campaign_status(session, campaign_id=campaign_id, status=STATUS_ACTIONS[action], now=now)
    await _audit(session, f"campaign_{action}", campaign_id, actor, {"from": before})


async def pause_campaign(session: AsyncSession, *, campaign_id: int, actor: Actor, now: dt.datetime) -> None:
    await change_campaign_status(session, campaign_id=campaign_id, action="pause", actor=actor, now=now)


async def resume_campaign(session: AsyncSession, *, campaign_id: int, actor: Actor, now: dt.datetime) -> None:
    await change_campaign_status(session, campaign_id=campaign_id, action="resume", actor=actor, now=now)


async def cancel_campaign(session: AsyncSession, *, campaign_id: int, actor: Actor, now: dt.datetime) -> None:
    await change_campaign_status(session, campaign_id=campaign_id, action="cancel", actor=actor, now=now)


async def record_test_send(session: AsyncSession, *, campaign_id: int, address: str, answer: str,
                           actor: Actor) -> None:
    """Audit a [TEST] copy sent to `address` (sent by `flows.send_test`, outside any transaction)."""
    await _audit(session, "campaign_test_send", campaign_id, actor, {"to": address, "answer": answer[:200]})


async def save_digest_rule(session: AsyncSession, rule: DigestRule | None, *, actor: Actor, spec: str,
                           now: dt.datetime, name: str = "", subject: str = "",
                           audience_topics: Sequence[str] = (), requires_approval: bool = False) -> DigestRule:
    """Create a digest rule (`rule` None) or change one; RuleError for a spec that is not one."""
    if rule is None:
        rule = await create_rule(session, spec=spec, now=now, name=name, subject=subject,
                                 audience_topics=audience_topics, requires_approval=requires_approval)
    else:
        await update_rule(session, rule, spec=spec, now=now, name=name, subject=subject,
                          audience_topics=audience_topics, requires_approval=requires_approval)
    await record_audit(session, by=actor, action="digest_rule_save", target_type="digest_rule", target_id=rule.id,
                       detail={"rule": rule.name})
    return rule


async def set_digest_rule_active(session: AsyncSession, rule: DigestRule, *, active: bool, actor: Actor,
                                 now: dt.datetime) -> None:
    await set_rule_active(session, rule, active=active, now=now)
    await record_audit(session, by=actor, action="digest_rule_activate" if active else "digest_rule_deactivate",
                       target_type="digest_rule", target_id=rule.id)


async def _audit(session: AsyncSession, action: str, campaign_id: int, actor: Actor,
                 detail: dict[str, object]) -> None:
    await record_audit(session, by=actor, action=action, target_type="campaign", target_id=campaign_id,
                       detail=detail or None)
