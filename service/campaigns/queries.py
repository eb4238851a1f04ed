"""Campaign SQL: composing digests, queueing one delivery per recipient in ONE statement,
leased batch claims (FOR UPDATE SKIP LOCKED on PostgreSQL), fenced result updates, stats, and
the staff's lists (campaigns, those awaiting approval, a subscriber's deliveries)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, false, func, literal, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from service.articles.models import Article, ArticleTopic
from service.campaigns.models import Campaign, CampaignArticle, Delivery
from service.db import UTCDateTime, insert_for, list_param, once_per_dialect, rowcount, without_jit
from service.newsletter.audience import campaign_audience, mailable, wants_topics
from service.newsletter.models import Subscriber, SubscriberTopic

_D = Delivery.__table__


class CampaignError(Exception):
    """A campaign operation that does not apply (unknown id, wrong status); one line."""


def make_slug(subject: str, now: dt.datetime) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")[:60].rstrip("-") or "digest"
    return f"{now:%Y-%m-%d}-{words}-{secrets.token_hex(3)}"


async def create_campaign(
    session: AsyncSession, *, subject: str, article_ids: Sequence[int], now: dt.datetime,
    preheader: str = "", intro: str = "", body: str = "", audience_topics: Sequence[str] = (), status: str = "draft",
    scheduled_at: dt.datetime | None = None, rule_id: int | None = None, requires_approval: bool = False,
) -> Campaign:
    """A campaign with its body (Markdown, may be empty) and its articles in the given order."""
    campaign = Campaign(
        slug=make_slug(subject, now), subject=subject, preheader=preheader, intro=intro, body=body,
        audience_topics=list(audience_topics), status=status, scheduled_at=scheduled_at, rule_id=rule_id,
        requires_approval=requires_approval, created_at=now, updated_at=now,
    )
    campaign.article_rows = [CampaignArticle(article_id=a, position=i) for i, a in enumerate(article_ids)]
    session.add(campaign)
    await session.flush()
    return campaign


async def get_campaign(session: AsyncSession, *, campaign_id: int, lock: bool = False) -> Campaign:
    """The campaign; with `lock`, its row locked until the transaction ends and re-read (PostgreSQL;
    SQLite's writers already run one at a time)."""
    campaign = await session.get(Campaign, campaign_id, with_for_update=lock or None, populate_existing=lock)
    if campaign is None:
        raise CampaignError(f"no campaign {campaign_id}")
    return campaign


async def campaign_articles(session: AsyncSession, *, campaign_id: int) -> list[Article]:
    rows = await session.scalars(
        select(Article).join(CampaignArticle, CampaignArticle.article_id == Article.id)
        .where(CampaignArticle.campaign_id == campaign_id).order_by(CampaignArticle.position)
    )
    return list(rows.all())


async def campaign_article_titles(session: AsyncSession, *, campaign_id: int) -> dict[int, str]:
    """A campaign's article ids and titles, in its order (no article rows loaded: reports)."""
    rows = await session.execute(
        select(Article.id, Article.title).join(CampaignArticle, CampaignArticle.article_id == Article.id)
        .where(CampaignArticle.campaign_id == campaign_id).order_by(CampaignArticle.position))
    return {int(article_id): title for article_id, title in rows.all()}


async def articles_since_last_digest(session: AsyncSession) -> list[Article]:
    """Articles published after the last digest went out and not in any digest sent so far
    (every article when there was none), newest first."""
    went_out = Campaign.status.in_(("sending", "paused", "sent"))
    last = await session.scalar(select(func.max(Campaign.started_at)).where(went_out))
    already = select(CampaignArticle.article_id).join(Campaign, Campaign.id == CampaignArticle.campaign_id).where(
        went_out
    )
    query = select(Article).where(Article.id.not_in(already))
    if last is not None:
        query = query.where(Article.published_at > last)
    return list((await session.scalars(query.order_by(Article.published_at.desc(), Article.id.desc()))).all())


# -- queueing --------------------------------------------------------------------------------


async def _gets_something(session: AsyncSession, *, has_body: bool, article_ids: Sequence[int]
                          ) -> ColumnElement[bool]:
    """Who of the audience gets a message: everyone when the campaign has its own body,
    otherwise those who want one of its articles."""
    if has_body:
        return true()
    return await _wants_an_article(session, article_ids)


async def _wants_an_article(session: AsyncSession, article_ids: Sequence[int]) -> ColumnElement[bool]:
    """`topics_match` against some article of the campaign, for the subscriber row of the
    enclosing query. By that rule someone wants some article exactly when they want the union
    of the articles' topics, unless an article has no topic (then everyone does): one literal
    list for the queueing statement instead of a subquery per subscriber and article."""
    rows = (await session.execute(
        select(Article.id, ArticleTopic.topic)
        .outerjoin(ArticleTopic, ArticleTopic.article_id == Article.id)
        .where(Article.id.in_(list(article_ids)))
    )).all()
    topics: dict[int, set[str]] = {}
    for article_id, topic in rows:
        topics.setdefault(article_id, set()).update([topic] if topic is not None else [])
    if not topics:
        return false()
    if not all(topics.values()):
        return true()
    return wants_topics(sorted(set().union(*topics.values())))


async def queue_deliveries(session: AsyncSession, *, campaign: Campaign, now: dt.datetime) -> int:
    """One delivery row per subscriber in the campaign's audience (`campaign_audience`: confirmed
    and wanting one of its topics), in a single INSERT … SELECT. A subscriber whose topics match
    none of the articles (and there is no body for everyone) is recorded as 'skipped'. Safe to run twice."""
    await get_campaign(session, campaign_id=campaign.id, lock=True)  # one queueing of a campaign at a time
    at = literal(now, UTCDateTime())
    article_ids = [row.article_id for row in campaign.article_rows]
    gets = await _gets_something(session, has_body=bool(campaign.body.strip()), article_ids=article_ids)
    # `gets` once per subscriber (OFFSET 0 keeps PostgreSQL from folding the subquery into the
    # INSERT, which would evaluate its topic lookups once for the status and again for the reason)
    audience = select(Subscriber.id, Subscriber.email, gets.label("gets")).where(
        campaign_audience(campaign.audience_topics)).offset(0).subquery()
    status = case((audience.c.gets, "queued"), else_="skipped")
    skip_reason = case((audience.c.gets, None), else_="no_article")  # service.campaigns.skips
    rows = select(
        literal(campaign.id), audience.c.id, audience.c.email, status, skip_reason, literal(0), at, literal(False), at,
    ).order_by(audience.c.id)  # ids in signup order
    statement = insert_for(session)(Delivery).from_select(
        ["campaign_id", "subscriber_id", "email", "status", "skip_reason", "attempts", "next_attempt_at", "bounced",
         "created_at"],
        rows,
    )
    # Under the campaign's row lock, a campaign without deliveries gets none from anyone else
    # meanwhile: a plain INSERT then (ON CONFLICT's speculative insertion costs about a third
    # more per row); the unique key still refuses a second row for anyone.
    if await session.scalar(select(Delivery.id).where(Delivery.campaign_id == campaign.id).limit(1)) is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["campaign_id", "subscriber_id"])
    await without_jit(session)  # JIT compilation costs more (~0.1 s) than it saves on this one-off statement
    result = await session.execute(statement)
    return rowcount(result)


@dataclass(frozen=True)
class AudienceFigures:
    """A campaign's audience as it stands now (before sending): how many it would be queued
    for (`campaign_audience`), how many of those get a message, and the audience per topic."""

    audience: int
    receiving: int
    by_topic: dict[str, int]  # topic -> confirmed subscribers of the audience who chose it
    any_topic: int  # of the audience, those who chose no topic (they want everything)


async def audience_figures(session: AsyncSession, *, topics: Sequence[str], has_body: bool,
                           article_ids: Sequence[int]) -> AudienceFigures:
    """For a campaign (saved or still in the composer) to `topics`, with or without a body, with
    `article_ids`: counted from the same predicates the queueing statement uses, never cached."""
    who = campaign_audience(topics)
    audience = await session.scalar(select(func.count()).select_from(Subscriber).where(who)) or 0
    gets = await _gets_something(session, has_body=has_body, article_ids=article_ids)
    receiving = await session.scalar(select(func.count()).select_from(Subscriber).where(who, gets)) or 0
    chosen = aliased(SubscriberTopic)  # not the table the audience predicate looks into
    rows = (await session.execute(
        select(chosen.topic, func.count()).join(Subscriber, Subscriber.id == chosen.subscriber_id)
        .where(who).group_by(chosen.topic)
    )).all()
    chose = select(SubscriberTopic.subscriber_id).where(SubscriberTopic.subscriber_id == Subscriber.id)
    any_topic = await session.scalar(select(func.count()).select_from(Subscriber).where(who, ~chose.exists())) or 0
    wanted = set(topics)
    by_topic = {topic: count for topic, count in sorted(rows) if not wanted or topic in wanted}
    return AudienceFigures(audience, receiving, by_topic, any_topic)


# -- status changes --------------------------------------------------------------------------


async def start_campaign(session: AsyncSession, *, campaign_id: int, now: dt.datetime) -> int:
    """Queue the deliveries (once) and set the campaign sending; resumes a paused one.
    Returns how many deliveries were queued now."""
    campaign = await get_campaign(session, campaign_id=campaign_id, lock=True)  # two Sends at once queue once
    if campaign.status in ("sent", "cancelled"):
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}; it cannot be sent again")
    if campaign.requires_approval and campaign.approved_at is None:
        raise CampaignError(f"campaign {campaign_id} awaits a staff approval")
    if not campaign.article_rows and not campaign.body.strip():
        raise CampaignError(f"campaign {campaign_id} has neither a body nor articles")
    queued = 0
    if campaign.started_at is None:
        queued = await queue_deliveries(session, campaign=campaign, now=now)
        campaign.started_at = now
    campaign.status = "sending"
    campaign.updated_at = now
    await session.flush()
    return queued


async def set_campaign_status(session: AsyncSession, *, campaign_id: int, status: str, now: dt.datetime) -> None:
    """Pause (sending -> paused), resume (paused -> sending) or cancel (not yet sent)."""
    allowed = {"paused": ("sending",), "sending": ("paused",),
               "cancelled": ("draft", "scheduled", "sending", "paused")}
    campaign = await get_campaign(session, campaign_id=campaign_id)
    if campaign.status not in allowed[status]:
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}; it cannot become {status}")
    campaign.status = status
    campaign.updated_at = now
    await session.flush()


async def schedule_campaign(session: AsyncSession, *, campaign_id: int, at: dt.datetime, now: dt.datetime) -> None:
    """Have the worker start a draft (or re-time a scheduled campaign) at `at`."""
    campaign = await get_campaign(session, campaign_id=campaign_id)
    if campaign.status not in ("draft", "scheduled"):
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}; only a draft can be scheduled")
    campaign.status = "scheduled"
    campaign.scheduled_at = at
    campaign.updated_at = now
    await session.flush()


async def approve_campaign(session: AsyncSession, *, campaign_id: int, now: dt.datetime) -> None:
    campaign = await get_campaign(session, campaign_id=campaign_id)
    campaign.approved_at = now
    campaign.updated_at = now
    await session.flush()


async def campaign_status(session: AsyncSession, *, campaign_id: int) -> str | None:
    return await session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))


async def finish_campaign_if_done(session: AsyncSession, *, campaign_id: int, now: dt.datetime) -> bool:
    """Mark a sending campaign 'sent' once no delivery is queued or being sent."""
    open_rows = select(Delivery.id).where(Delivery.campaign_id == campaign_id,
                                          Delivery.status.in_(("queued", "sending")))
    result = await session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.status == "sending", ~open_rows.exists())
        .values(status="sent", sent_at=now, updated_at=now)
    )
    if not rowcount(result):
        return False
    await _queue_campaign_sent(session, campaign_id=campaign_id, now=now)
    return True


async def _queue_campaign_sent(session: AsyncSession, *, campaign_id: int, now: dt.datetime) -> None:
    """The `campaign.sent` webhook event: the campaign and how its deliveries ended."""
    from service.webhooks.events import is_wanted, iso, queue_event

    if not await is_wanted(session, event="campaign.sent"):
        return  # no endpoint: spare the count of a big campaign's deliveries
    subject = await session.scalar(select(Campaign.subject).where(Campaign.id == campaign_id))
    from service.campaigns.counts import delivery_counts

    counts = (await delivery_counts(session, [campaign_id]))[campaign_id].by_status
    await queue_event(session, event="campaign.sent", now=now, data={
        "id": campaign_id, "subject": subject, "sent_at": iso(now),
        "deliveries": {k: int(counts.get(k, 0)) for k in ("sent", "failed", "skipped")}})


async def due_scheduled_campaigns(session: AsyncSession, *, now: dt.datetime) -> list[int]:
    rows = await session.scalars(
        select(Campaign.id).where(
            Campaign.status == "scheduled", Campaign.scheduled_at <= now,
            (Campaign.requires_approval.is_(False)) | (Campaign.approved_at.is_not(None)),
        ).order_by(Campaign.scheduled_at)
    )
    return list(rows.all())


async def sending_campaign_ids(session: AsyncSession) -> list[int]:
    return list((await session.scalars(select(Campaign.id).where(Campaign.status == "sending")
                                        .order_by(Campaign.id))).all())


# -- claims and results ----------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: int
    subscriber_id: int
    email: str
    attempts: int
    created_at: dt.datetime  # when it was queued: 4xx are retried until OUTBOX_MAX_AGE after this


async def claim_delivery_batch(
    session: AsyncSession, *, campaign_id: int, owner: str, limit: int, lease: dt.timedelta, now: dt.datetime
) -> list[Claimed]:
    """Lease up to `limit` due deliveries: first those whose lease ran out (a dead worker's),
    then queued ones, each in queue order (which is signup order), so a campaign goes out in
    the same order every time and a dead worker's recipients are served before newer ones.
    SKIP LOCKED lets many workers claim side by side without waiting."""
    expired = and_(_D.c.campaign_id == campaign_id, _D.c.status == "sending", _D.c.lease_expires_at < now)
    queued = and_(_D.c.campaign_id == campaign_id, _D.c.status == "queued", _D.c.next_attempt_at <= now)
    ids = list((await session.scalars(
        select(_D.c.id).where(expired).order_by(_D.c.id).limit(limit).with_for_update(skip_locked=True)
    )).all())
    if len(ids) < limit:
        ids += (await session.scalars(
            select(_D.c.id).where(queued).order_by(_D.c.next_attempt_at, _D.c.id).limit(limit - len(ids))
            .with_for_update(skip_locked=True)
        )).all()
    if not ids:
        return []
    result = await session.execute(
        update(_D).where(_D.c.id.in_(ids), expired | queued)
        .values(status="sending", lease_owner=owner, lease_expires_at=now + lease, attempts=_D.c.attempts + 1)
        .returning(_D.c.id, _D.c.subscriber_id, _D.c.email, _D.c.attempts, _D.c.created_at)
    )
    return sorted((Claimed(*row) for row in result.all()), key=lambda c: c.id)


@dataclass(frozen=True)
class Recipient:
    name: str
    status: str
    mailable: bool  # `service.newsletter.audience.mailable()` now, just before sending
    topics: tuple[str, ...]
    language: str | None = None  # the one they signed up in (None: the install's)


async def load_recipients(session: AsyncSession, *, subscriber_ids: Sequence[int]) -> dict[int, Recipient]:
    """Current name, status, mailability and topics of a batch's subscribers (two queries per
    batch): a subscriber who unsubscribed after the campaign was queued is no longer mailable."""
    rows = (await session.execute(
        select(Subscriber.id, Subscriber.name, Subscriber.status, mailable(), Subscriber.language)
        .where(Subscriber.id.in_(subscriber_ids))
    )).all()
    topics: dict[int, list[str]] = {}
    for sid, topic in (await session.execute(
        select(SubscriberTopic.subscriber_id, SubscriberTopic.topic)
        .where(SubscriberTopic.subscriber_id.in_(subscriber_ids))
    )).all():
        topics.setdefault(sid, []).append(topic)
    return {sid: Recipient(name or "", status, bool(ok), tuple(topics.get(sid, ())), lang)
            for sid, name, status, ok, lang in rows}


_FENCE = and_(_D.c.id == bindparam("b_id"), _D.c.lease_owner == bindparam("b_owner"), _D.c.status == "sending")


async def mark_deliveries_sent(session: AsyncSession, *, owner: str, rows: Sequence[dict[str, Any]]) -> None:
    """rows: {id, message_id, response, sent_at}; fenced on the lease owner (one executemany)."""
    if rows:
        await session.execute(
            update(_D).where(_FENCE).values(
                status="sent", message_id=bindparam("b_mid"), smtp_response=bindparam("b_resp"),
                sent_at=bindparam("b_at"), lease_owner=None, lease_expires_at=None,
            ),
            [{"b_id": r["id"], "b_owner": owner, "b_mid": r["message_id"], "b_resp": r["response"][:1000],
              "b_at": r["sent_at"]} for r in rows],
        )


async def mark_deliveries_retry(session: AsyncSession, *, owner: str, rows: Sequence[dict[str, Any]]) -> None:
    """rows: {id, error, retry_at}: back to the queue for a later attempt."""
    if rows:
        await session.execute(
            update(_D).where(_FENCE).values(
                status="queued", next_attempt_at=bindparam("b_at"), smtp_response=bindparam("b_resp"),
                lease_owner=None, lease_expires_at=None,
            ),
            [{"b_id": r["id"], "b_owner": owner, "b_at": r["retry_at"], "b_resp": r["error"][:1000]} for r in rows],
        )


async def mark_deliveries_done(
    session: AsyncSession, *, owner: str, status: str, rows: Sequence[dict[str, Any]]
) -> None:
    """rows: {id, response, message_id, bounced, skip_reason}: final 'failed' or 'skipped'."""
    if rows:
        await session.execute(
            update(_D).where(_FENCE).values(
                status=status, smtp_response=bindparam("b_resp"), message_id=bindparam("b_mid"),
                bounced=bindparam("b_bounced"), skip_reason=bindparam("b_skip"), lease_owner=None,
                lease_expires_at=None,
            ),
            [{"b_id": r["id"], "b_owner": owner, "b_resp": r.get("response"), "b_mid": r.get("message_id"),
              "b_bounced": bool(r.get("bounced")), "b_skip": r.get("skip_reason")} for r in rows],
        )


async def release_deliveries(session: AsyncSession, *, owner: str, ids: Sequence[int]) -> None:
    """Give back claimed, unsent rows (pause/cancel/stop) without counting the attempt."""
    if ids:
        await session.execute(
            update(_D).where(_FENCE).values(status="queued", attempts=_D.c.attempts - 1, lease_owner=None,
                                            lease_expires_at=None),
            [{"b_id": i, "b_owner": owner} for i in ids],
        )


async def suppress_bounced(session: AsyncSession, *, subscriber_id: int, reason: str, now: dt.datetime) -> None:
    """A 5xx on the recipient: the address is suppressed as bounced, by the newsletter domain,
    which owns subscriber state."""
    from service.newsletter.flows import mark_bounced

    await mark_bounced(session, subscriber_id=subscriber_id, reason=reason)


async def update_draft(
    session: AsyncSession, *, campaign_id: int, subject: str, preheader: str, intro: str,
    audience_topics: Sequence[str], article_ids: Sequence[int], now: dt.datetime, body: str = "",
) -> Campaign:
    """Change a draft's text, audience and articles (in the given order); only drafts change."""
    campaign = await get_campaign(session, campaign_id=campaign_id)
    if campaign.status != "draft":
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}; only a draft can be edited")
    campaign.subject, campaign.preheader, campaign.intro, campaign.body = subject, preheader, intro, body
    campaign.audience_topics = list(audience_topics)
    campaign.article_rows.clear()
    await session.flush()
    campaign.article_rows.extend(CampaignArticle(article_id=a, position=i) for i, a in enumerate(article_ids))
    campaign.updated_at = now
    await session.flush()
    return campaign


async def delete_draft(session: AsyncSession, *, campaign_id: int) -> Campaign:
    """Delete a draft (its article list goes with it); anything past a draft stays on record."""
    campaign = await get_campaign(session, campaign_id=campaign_id)
    if campaign.status != "draft":
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}; only a draft can be deleted")
    await session.delete(campaign)
    await session.flush()
    return campaign


async def duplicate_campaign(session: AsyncSession, *, campaign_id: int, now: dt.datetime) -> Campaign:
    """A new draft with the subject, texts, body, articles (in order) and audience of any campaign."""
    source = await get_campaign(session, campaign_id=campaign_id)
    return await create_campaign(
        session, subject=source.subject, preheader=source.preheader, intro=source.intro, body=source.body,
        article_ids=[row.article_id for row in source.article_rows], audience_topics=source.audience_topics, now=now,
    )


async def campaigns_sent_to(session: AsyncSession, *, subscriber_id: int) -> list[dict[str, Any]]:
    """The campaigns delivered to one subscriber (for their access request), oldest first."""
    rows = (await session.execute(
        select(Campaign.subject, Campaign.slug, Delivery.sent_at)
        .join(Delivery, Delivery.campaign_id == Campaign.id)
        .where(Delivery.subscriber_id == subscriber_id, Delivery.status == "sent")
        .order_by(Delivery.sent_at, Delivery.id)
    )).all()
    return [{"subject": subject, "slug": slug, "sent_at": sent_at} for subject, slug, sent_at in rows]


# -- the staff's lists ---------------------------------------------------------------------------


async def list_campaigns(session: AsyncSession, *, before_id: int | None = None, limit: int = 25
                         ) -> Sequence[Campaign]:
    """Newest first, before the campaign `before_id` (a page of the admin's list)."""
    query = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Campaign.id < before_id)
    return (await session.scalars(query)).all()


async def count_campaigns(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Campaign)) or 0)


async def awaiting_approval(session: AsyncSession) -> Sequence[Campaign]:
    return (await session.scalars(
        select(Campaign).where(Campaign.status == "scheduled", Campaign.requires_approval.is_(True),
                               Campaign.approved_at.is_(None)).order_by(Campaign.id)
    )).all()


@dataclass(frozen=True)
class DeliveryRow:
    campaign_id: int
    subject: str
    status: str
    bounced: bool
    message_id: str | None
    sent_at: dt.datetime | None
    created_at: dt.datetime
    smtp_response: str | None


async def subscriber_deliveries(session: AsyncSession, *, subscriber_id: int, limit: int = 200
                                ) -> list[DeliveryRow]:
    """Every campaign delivery of one subscriber, newest first."""
    rows = await session.execute(
        select(Delivery.campaign_id, Campaign.subject, Delivery.status, Delivery.bounced, Delivery.message_id,
               Delivery.sent_at, Delivery.created_at, Delivery.smtp_response)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.subscriber_id == subscriber_id).order_by(Delivery.id.desc()).limit(limit)
    )
    return [DeliveryRow(*r) for r in rows.all()]


@dataclass(frozen=True)
class DeliveryRef:
    """What a bounce needs to know of the delivery it is about."""

    id: int
    campaign_id: int
    subscriber_id: int
    email: str


async def find_delivery(session: AsyncSession, *, delivery_id: int | None = None, message_id: str | None = None
                        ) -> DeliveryRef | None:
    """The delivery with this id, or else the one sent with this Message-ID; None when neither."""
    if delivery_id is not None:
        where = Delivery.id == delivery_id
    elif message_id:
        where = Delivery.message_id == message_id
    else:
        return None
    stmt = select(Delivery.id, Delivery.campaign_id, Delivery.subscriber_id, Delivery.email).where(where).limit(1)
    row = (await session.execute(stmt)).first()
    return DeliveryRef(*row) if row else None


async def mark_delivery_bounced(session: AsyncSession, *, delivery_id: int) -> None:
    """A bounce reported after the send (by a DSN or a provider): it counts in the campaign's bounces."""
    await session.execute(update(Delivery).where(Delivery.id == delivery_id).values(bounced=True))


async def find_deliveries(session: AsyncSession, *, ids: Collection[int], message_ids: Collection[str]
                          ) -> list[tuple[DeliveryRef, str | None, Any]]:
    """The deliveries with these ids or these Message-IDs, by id, each with its Message-ID and
    its subscriber's (id, email_key, status, confirmed_at) (None when gone): what a batch of
    bounces reads first, in one statement."""
    if not ids and not message_ids:
        return []
    rows = (await (await session.connection()).execute(  # Core: no ORM work for plain columns
        _find_deliveries(session), {"ids": list(ids), "mids": list(message_ids)})).all()
    return [(DeliveryRef(*row[:4]), row[4], row[5:] if row[5] is not None else None) for row in rows]


@once_per_dialect
def _find_deliveries(postgresql: bool) -> Any:
    return (select(Delivery.id, Delivery.campaign_id, Delivery.subscriber_id, Delivery.email, Delivery.message_id,
                   Subscriber.id, Subscriber.email_key, Subscriber.status, Subscriber.confirmed_at)
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(or_(list_param(postgresql, Delivery.id, "ids"), list_param(postgresql, Delivery.message_id, "mids")))
            .order_by(Delivery.id))


async def mark_deliveries_bounced(session: AsyncSession, delivery_ids: Collection[int]) -> None:
    """`mark_delivery_bounced` for many."""
    if delivery_ids:
        await (await session.connection()).execute(_mark_bounced(session), {"ids": sorted(delivery_ids)})


@once_per_dialect
def _mark_bounced(postgresql: bool) -> Any:
    table = Delivery.__table__
    return update(table).where(list_param(postgresql, table.c.id, "ids")).values(bounced=True)
