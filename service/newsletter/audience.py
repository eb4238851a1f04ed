"""Who gets mailed, written once.

- `mailable()`: only confirmed subscribers are ever mailed (pending, unsubscribed, bounced and
  complained never are; erased ones no longer exist). Campaigns queue with it and check it again,
  in SQL, just before sending (someone who unsubscribed after queueing is not mailed).
- The topic rule: a subscriber who chose no topic wants every topic; something without topics
  (an article, a campaign without an audience) is for everyone; otherwise the two must share a
  topic. `topics_match` is the rule in Python (per recipient, to pick the digest's articles) and
  `wants_topics` the same rule in SQL (to queue a campaign); tests/newsletter/test_audience.py
  checks that the two agree on every case.
- `campaign_audience(topics)`: the predicate a campaign queues with, built from the two above.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, select, true

from service.newsletter.models import Subscriber, SubscriberTopic


def mailable() -> ColumnElement[bool]:
    """The subscribers who may be mailed at all."""
    return Subscriber.status == "confirmed"


def topics_match(chosen: Iterable[str], topics: Iterable[str]) -> bool:
    """True when a subscriber who chose `chosen` wants something about `topics`."""
    chosen, topics = frozenset(chosen), frozenset(topics)
    return not chosen or not topics or not chosen.isdisjoint(topics)


def wants_topics(topics: Sequence[str]) -> ColumnElement[bool]:
    """`topics_match(chosen, topics)` for the subscriber row of the enclosing query."""
    if not topics:
        return true()
    chosen = select(SubscriberTopic.subscriber_id).where(SubscriberTopic.subscriber_id == Subscriber.id)
    return ~chosen.exists() | chosen.where(SubscriberTopic.topic.in_(topics)).exists()


def campaign_audience(audience_topics: Sequence[str]) -> ColumnElement[bool]:
    """The subscribers a campaign for `audience_topics` (none = everyone) is queued for."""
    return mailable() & wants_topics(audience_topics)
