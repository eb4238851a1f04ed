"""Campaign flows: make a digest from new articles, preview it as a subscriber, send a test,
and the worker jobs (start scheduled campaigns, evaluate recurring digest rules)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.brand import Brand, load_brand
from service.campaigns import queries as q
from service.campaigns.message import MessageFactory
from service.campaigns.models import Campaign
from service.campaigns.preflight import check_ready_to_send
from service.campaigns.render import build_digest
from service.campaigns.rules import next_run
from service.db import Sessions
from service.mail.bulk import BulkTransport, Outgoing, send_many
from service.mail.dkim import signer_from_settings
from service.newsletter.flows import subscriber_language
from service.newsletter.models import Subscriber
from service.newsletter.tokens import preview_token, preview_unsubscribe_url, unsubscribe_url
from service.settings import Settings
from service.tokens import Tokens

log = logging.getLogger("tidings.campaigns")


def default_subject(brand: Brand, now: dt.datetime) -> str:
    return f"{brand.name} digest, {now:%-d %B %Y}"


async def create_digest(
    session: AsyncSession, settings: Settings, *, now: dt.datetime, subject: str | None = None,
    intro: str | None = None, audience_topics: Sequence[str] = (), rule_id: int | None = None,
    status: str = "draft", requires_approval: bool = False,
) -> Campaign:
    """A digest of every article since the last digest went out (all, if none did), newest first."""
    articles = await q.articles_since_last_digest(session)
    if not articles:
        raise q.CampaignError("no new articles since the last digest")
    unknown = sorted(set(audience_topics) - set(settings.topics))
    if unknown:
        raise q.CampaignError(f"topics: unknown topic(s) {', '.join(unknown)}; known: {', '.join(settings.topics)}")
    subject = subject or default_subject(await load_brand(session, settings), now)
    return await q.create_campaign(
        session, subject=subject, article_ids=[a.id for a in articles], now=now,
        preheader=" · ".join(a.title for a in articles[:3])[:300],
        intro=intro if intro is not None else "Here is what we published since our last digest.",
        audience_topics=audience_topics, rule_id=rule_id, status=status, requires_approval=requires_approval,
        scheduled_at=now if status == "scheduled" else None,
    )


async def render_preview(
    session: AsyncSession, *, settings: Settings, campaign_id: int, subscriber_id: int | None = None,
    email: str | None = None,
) -> tuple[str, str, str]:
    """(subject, html, text) of the campaign as a given subscriber (by id or email) would get it;
    as a subscriber of every topic without a name when neither is given."""
    campaign = await q.get_campaign(session, campaign_id=campaign_id)
    articles = await q.campaign_articles(session, campaign_id=campaign_id)
    topics: tuple[str, ...]
    tokens = Tokens(settings)
    # Without a subscriber the links are a test send's: signed, and they work but change nothing.
    name, topics, url = "", (), preview_unsubscribe_url(settings, tokens, campaign_id)
    lang = settings.language
    archive_url = None
    if campaign.slug and campaign.status not in ("sending", "sent"):
        archive_url = f"{settings.base_url}/archive/{campaign.slug}?preview={preview_token(tokens, campaign_id)}"
    if subscriber_id is not None or email is not None:
        query = select(Subscriber).where(
            Subscriber.id == subscriber_id if subscriber_id is not None
            else Subscriber.email_key == (email or "").strip().lower()
        )
        person = (await session.scalars(query)).first()
        if person is None:
            raise q.CampaignError(f"no subscriber {email or subscriber_id}")
        name, topics = person.name, tuple(person.topics)
        lang = subscriber_language(settings, person)
        url = unsubscribe_url(settings, tokens, person.id)
    brand = await load_brand(session, settings)
    template = build_digest(settings, subject=campaign.subject, preheader=campaign.preheader, intro=campaign.intro,
                            articles=articles, slug=campaign.slug, brand=brand,
                            archive_url=archive_url, body=campaign.body, lang=lang)
    personal = template.personalise(name=name, topics=topics, unsubscribe_url=url)
    if personal is None:
        raise q.CampaignError("none of this campaign's articles match that subscriber's topics: they get nothing")
    return campaign.subject, personal.html, personal.text


async def send_test(
    sessions: Sessions, transport: BulkTransport, *, settings: Settings, campaign_id: int, address: str,
) -> str:
    """Send one copy marked [TEST] to `address` (not recorded as a delivery); the server's answer."""
    from service.validation import FieldError, clean_mailable_email

    try:
        address = clean_mailable_email({"address": address}, "address")
    except FieldError as exc:
        raise q.CampaignError(f"--test: {exc.message}") from None
    async with sessions.begin() as session:  # ended before sending: the local mailbox writes to the database
        subject, html, text = await render_preview(session, settings=settings, campaign_id=campaign_id)
        brand = await load_brand(session, settings)
    factory = MessageFactory.for_campaign(settings, campaign_id=campaign_id, subject=f"[TEST] {subject}",
                                          install_id=brand.install_id, signer=signer_from_settings(settings),
                                          org_name=brand.name)
    url = preview_unsubscribe_url(settings, Tokens(settings), campaign_id)
    message_id, raw = factory.build(delivery_id=None, to_email=address, to_name="", html=html, text=text,
                                    unsubscribe_url=url)
    (outcome,) = await send_many(transport, [Outgoing(factory.envelope_from, address, factory.subject, message_id,
                                                      raw)], _no_wait)
    if isinstance(outcome, Exception):
        raise TestNotSent(outcome)
    return outcome


TEST_FAILURES = {
    "address": "The mail server refused this address. Check it for typos, or try another one.",
    "refused": "The mail server refused the message, so nothing was sent. Ask whoever runs the mail server.",
    "unreachable": ("The mail server could not be reached or asked us to try later, so nothing was sent. "
                    "Try again in a minute; if it keeps happening, check SMTP_URL."),
}


class TestNotSent(q.CampaignError):
    """The mail server did not take the test. `reason` keys TEST_FAILURES (what it means for
    staff); the message keeps the server's own words (for the command line and the log)."""

    def __init__(self, outcome: Exception) -> None:
        from service.mail.smtp import PermanentFailure

        super().__init__(f"the test message was not accepted: {outcome}")
        if isinstance(outcome, PermanentFailure):
            self.reason = "address" if outcome.recipient_refused else "refused"
        else:
            self.reason = "unreachable"


async def _no_wait() -> None:
    return None


# -- worker jobs -----------------------------------------------------------------------------


async def start_due_campaigns(session: AsyncSession, settings: Settings, *, now: dt.datetime) -> int:
    """Start scheduled campaigns whose time has come (and that are approved, if they must be); one
    that may not start now (`check_ready_to_send`) stays scheduled, with the reason logged."""
    due = await q.due_scheduled_campaigns(session, now=now)
    if due:
        try:
            await check_ready_to_send(session, settings)
        except q.CampaignError as exc:
            log.warning("scheduled campaign(s) %s not started: %s", ", ".join(map(str, due)), exc)
            return 0
    for campaign_id in due:
        await q.start_campaign(session, campaign_id=campaign_id, now=now)
    return len(due)


async def run_due_rules(session: AsyncSession, settings: Settings, *, now: dt.datetime) -> int:
    """Evaluate recurring digest rules that are due: a digest when there are new articles
    (started at once, or left 'scheduled' until approved), a skip when there are none."""
    from service.campaigns.models import DigestRule

    rules = (await session.scalars(
        select(DigestRule).where(DigestRule.active.is_(True), DigestRule.next_run_at <= now)
        .order_by(DigestRule.id).with_for_update(skip_locked=True)
    )).all()
    for rule in rules:
        try:
            async with session.begin_nested():
                campaign = await create_digest(
                    session, settings, now=now, subject=rule.subject or None, audience_topics=rule.audience_topics,
                    rule_id=rule.id, status="scheduled", requires_approval=rule.requires_approval,
                )
                if not rule.requires_approval:
                    await check_ready_to_send(session, settings)
                if rule.requires_approval:
                    rule.last_result = f"campaign {campaign.id} awaits approval"
                else:
                    await q.start_campaign(session, campaign_id=campaign.id, now=now)
                    rule.last_result = f"campaign {campaign.id} sending"
        except q.CampaignError as exc:
            rule.last_result = f"skipped: {exc}"
        log.info("digest rule %s (%s): %s", rule.id, rule.name, rule.last_result)
        rule.last_run_at = now
        rule.next_run_at = next_run(rule.weekday, rule.at_time, rule.timezone, after=now)
    await session.flush()
    return len(rules)
