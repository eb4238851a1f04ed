"""The audit log in words: a label per action ("Sent a campaign", not `campaign_send`), the
target as the thing's own name or subject with a link to it ("Spring digest", not `campaign 3`),
and the detail as short phrases (not `event_id=10`). Only the page uses this; the rows keep
their machine-readable form for exports and queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.models import AuditEvent, StaffUser
from service.campaigns.models import Campaign, DigestRule
from service.inquiries.models import Inquiry
from service.mail.models import MailboxMessage, OutboxMessage
from service.newsletter.models import Subscriber
from service.validation import small_int

ACTION_LABELS = {
    "sign_in": "Signed in", "sign_in_failed": "Failed to sign in", "sign_out": "Signed out",
    "password_change": "Changed their password", "password_set": "Set a password",
    "inquiry_view": "Opened an inquiry", "inquiry_search": "Searched the inquiries",
    "inquiry_export": "Exported inquiries", "report_export": "Exported a report",
    "inquiry_status": "Changed an inquiry's status",
    "inquiry_note": "Added a note to an inquiry", "inquiry_release": "Released a held inquiry",
    "inquiry_delete_held": "Deleted a held inquiry", "inquiry_erase": "Erased an inquiry",
    "inquiry_retention": "Deleted old inquiries (retention)", "inquiry_bulk_status": "Changed inquiries' status",
    "outbox_view": "Opened an email", "outbox_list": "Listed emails", "outbox_search": "Searched the outbox",
    "outbox_retry": "Retried an email",
    "user_invite": "Invited a staff member", "user_role": "Changed a staff member's role",
    "user_deactivate": "Deactivated a staff member", "user_reactivate": "Reactivated a staff member",
    "user_password_link": "Made a set-password link",
    "campaign_test_send": "Sent a test email", "campaign_send": "Sent a campaign",
    "campaign_schedule": "Scheduled a campaign", "campaign_approve": "Approved a campaign",
    "campaign_pause": "Paused a campaign", "campaign_resume": "Resumed a campaign",
    "campaign_cancel": "Cancelled a campaign",
    "digest_rule_save": "Saved a recurring digest", "digest_rule_activate": "Turned a recurring digest on",
    "digest_rule_deactivate": "Turned a recurring digest off", "articles_import": "Imported articles",
    "subscriber_unsubscribe": "Unsubscribed a subscriber", "subscriber_suppress": "Suppressed a subscriber",
    "subscriber_erase": "Erased a subscriber", "subscriber_import": "Imported subscribers",
    "subscriber_export": "Exported subscribers",
    "two_factor_enable": "Turned on two-factor sign-in", "two_factor_disable": "Turned off two-factor sign-in",
    "two_factor_reset": "Removed a staff member's second factor",
    "two_factor_recovery_used": "Signed in with a recovery code",
    "two_factor_recovery_regenerate": "Made new recovery codes",
    "two_factor_require": "Changed whether two-factor sign-in is required",
    "brand_change": "Changed the brand settings", "brand_reset": "Reset a brand setting to its default",
    "brand_postal_address": "Saved the postal address",
    "subscriber_create": "Signed up a subscriber (API)",
    "api_token_create": "Created an API token", "api_token_revoke": "Revoked an API token",
}
DETAIL_LABELS = {
    "changed": "changed", "field": "setting",
    "from": "was", "to": "now", "matched": "matched", "more": "and more than that", "first_page": "first page",
    "filter": "filter",
    "search": "with search words", "queued": "queued", "shown": "shown", "inquiry_messages": "inquiry emails",
    "status": "status", "kind": "kind", "part": "part", "role": "role", "count": "how many", "reason": "reason",
    "rows": "rows", "added": "added", "updated": "updated", "skipped": "skipped", "errors": "errors",
    "required": "required of everyone", "left": "recovery codes left", "second_factor": "second factor",
}
# target_type -> (model, the column that names it, the admin URL pattern, what it is called)
_TARGETS: dict[str, tuple[Any, Any, str, str]] = {
    "inquiry": (Inquiry, Inquiry.name, "/admin/inquiries/{}", "inquiry"),
    "subscriber": (Subscriber, Subscriber.email, "/admin/subscribers/{}", "subscriber"),
    "campaign": (Campaign, Campaign.subject, "/admin/campaigns/{}", "campaign"),
    "digest_rule": (DigestRule, DigestRule.name, "/admin/digest-rules/{}", "recurring digest"),
    "staff_user": (StaffUser, StaffUser.email, "/admin/users", "staff member"),
    "outbox_message": (OutboxMessage, OutboxMessage.subject, "/admin/outbox/{}", "email"),
}


@dataclass(frozen=True)
class Target:
    text: str
    url: str | None


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action) or action.replace("_", " ").capitalize()


def detail_phrases(detail: Mapping[str, Any] | None) -> list[str]:
    """`{"from": "new", "to": "closed"}` as ["was: new", "now: closed"]; ids are left out
    (the target names the thing), booleans read yes/no, a filter reads as its fields."""
    phrases = []
    for key, value in (detail or {}).items():
        if key.endswith("_id") or key == "id":
            continue
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, Mapping):
            shown = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items()) or "none"
        elif isinstance(value, list | tuple):
            shown = ", ".join(str(v) for v in value) or "none"
        else:
            shown = str(value)
        phrases.append(f"{DETAIL_LABELS.get(key, key.replace('_', ' '))}: {shown}")
    return phrases


async def describe_targets(session: AsyncSession, events: Sequence[AuditEvent], *,
                           local_outbox: bool) -> dict[tuple[str, str], Target]:
    """Each event's target by name, with a link while it exists; one query per kind of target.
    On the local outbox an email's id is the local mailbox's."""
    targets = dict(_TARGETS)
    if local_outbox:
        targets["outbox_message"] = (MailboxMessage, MailboxMessage.subject, "/admin/outbox/{}", "email")
    wanted: dict[str, set[int]] = {}
    for e in events:
        target_id = small_int(e.target_id)
        if e.target_type in targets and target_id is not None:
            wanted.setdefault(e.target_type, set()).add(target_id)
    found: dict[tuple[str, str], Target] = {}
    for kind, ids in wanted.items():
        model, name_col, url, _what = targets[kind]
        rows = await session.execute(select(model.id, name_col).where(model.id.in_(ids)))
        for row_id, name in rows.all():
            found[(kind, str(row_id))] = Target(str(name or f"#{row_id}"), url.format(row_id))
    for e in events:
        key = (e.target_type, e.target_id)
        if key not in found and e.target_type == "brand":  # one row: the Settings page
            found[key] = Target("the brand settings", "/admin/settings")
        elif key not in found and e.target_type:
            what = _TARGETS[e.target_type][3] if e.target_type in _TARGETS else e.target_type.replace("_", " ")
            gone = " (no longer here)" if e.target_type in _TARGETS and e.target_id else ""
            found[key] = Target(f"{what} {'#' + e.target_id if e.target_id else ''}".strip() + gone, None)
    return found
