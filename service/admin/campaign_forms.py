"""The forms of the campaign pages: the digest composer (articles picked and ordered with up/down
buttons that work without JavaScript), scheduling, and recurring digest rules. Each parser returns
clean values and a field -> message dict; nothing is saved while a message remains."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.datastructures import FormData

from service.articles.models import Article
from service.campaigns.models import Campaign, DigestRule
from service.campaigns.rules import WEEKDAYS
from service.validation import Errors, clean_mailable_email, clean_text, small_int

SUBJECT_MAX = 300
PREHEADER_MAX = 300
INTRO_MAX = 5000
BODY_MAX = 50000


def _ids(values: Sequence[Any]) -> list[int]:
    out: list[int] = []
    for value in values:
        number = small_int(str(value))
        if number is not None and number not in out:
            out.append(number)
    return out


def _topics(form: FormData, known: Sequence[str]) -> tuple[list[str], str | None]:
    chosen = [str(t) for t in form.getlist("topics")]
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        return [], f"Unknown topic(s): {', '.join(unknown)}."
    if form.get("audience") == "topics":
        if not chosen:
            return [], "Choose at least one topic, or send to every confirmed subscriber."
        return sorted(set(chosen)), None
    return [], None


@dataclass
class DigestForm:
    subject: str = ""
    preheader: str = ""
    intro: str = ""
    body: str = ""
    audience: str = "all"
    topics: list[str] = field(default_factory=list)
    order: list[int] = field(default_factory=list)  # every listed article, in the order shown
    selected: set[int] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    moved: bool = False  # an up/down button was pressed: show the form again, save nothing

    @classmethod
    def for_new(cls, articles: Sequence[Article], since_last: Sequence[Article], subject: str, intro: str
                ) -> DigestForm:
        picked = [a.id for a in since_last]
        rest = [a.id for a in articles if a.id not in picked]
        return cls(subject=subject, intro=intro, preheader=" · ".join(a.title for a in since_last[:3])[:300],
                   order=picked + rest, selected=set(picked))

    @classmethod
    def for_campaign(cls, campaign: Campaign, articles: Sequence[Article]) -> DigestForm:
        picked = [row.article_id for row in campaign.article_rows]
        rest = [a.id for a in articles if a.id not in picked]
        topics = list(campaign.audience_topics)
        return cls(subject=campaign.subject, preheader=campaign.preheader, intro=campaign.intro, body=campaign.body,
                   audience="topics" if topics else "all", topics=topics, order=picked + rest, selected=set(picked))

    @classmethod
    def parse(cls, form: FormData, *, known_ids: set[int], topics: Sequence[str]) -> DigestForm:
        errors = Errors()
        data = {k: str(form.get(k) or "") for k in ("subject", "preheader", "intro", "body")}
        subject = errors.collect("subject", clean_text, data, "subject", label="Subject", max_length=SUBJECT_MAX,
                                 required=True)
        preheader = errors.collect("preheader", clean_text, data, "preheader", label="Preheader",
                                   max_length=PREHEADER_MAX)
        intro = errors.collect("intro", clean_text, data, "intro", label="Introduction", max_length=INTRO_MAX,
                               multiline=True)
        body = errors.collect("body", clean_text, data, "body", label="Body", max_length=BODY_MAX, multiline=True)
        chosen, topic_error = _topics(form, topics)
        if topic_error:
            errors["topics"] = topic_error
        order = [i for i in _ids(form.getlist("order")) if i in known_ids]
        order += sorted(known_ids - set(order))
        selected = {i for i in _ids(form.getlist("article")) if i in known_ids}
        result = cls(subject=subject if subject is not None else data["subject"],
                     preheader=preheader if preheader is not None else data["preheader"],
                     intro=intro if intro is not None else data["intro"],
                     body=body if body is not None else data["body"],
                     audience="topics" if form.get("audience") == "topics" else "all",
                     topics=[str(t) for t in form.getlist("topics")] if topic_error else chosen,
                     order=order, selected=selected, errors=dict(errors))
        result.moved = result.move(str(form.get("move") or ""))
        if result.moved:
            result.errors = {}
        elif not selected and not result.body.strip():
            result.errors["articles"] = "Write a body, or pick at least one article (or both)."
        return result

    def move(self, action: str) -> bool:
        """'up:ID' or 'down:ID': move that article one place; 'count': count the audience. Either
        way the form is shown again, not saved."""
        if action == "count":
            return True
        direction, _, ident = action.partition(":")
        moved = small_int(ident)
        if direction not in ("up", "down") or moved is None or moved not in self.order:
            return False
        i = self.order.index(moved)
        j = i - 1 if direction == "up" else i + 1
        if 0 <= j < len(self.order):
            self.order[i], self.order[j] = self.order[j], self.order[i]
        return True

    @property
    def article_ids(self) -> list[int]:
        return [i for i in self.order if i in self.selected]

    @property
    def audience_topics(self) -> list[str]:
        return self.topics if self.audience == "topics" else []


def parse_schedule(form: FormData) -> tuple[dt.datetime | None, dict[str, str]]:
    """A local date and time (datetime-local input) in an IANA time zone -> an aware datetime."""
    errors: dict[str, str] = {}
    zone_name = str(form.get("timezone") or "").strip() or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = f"Time zone: {zone_name!r} is not an IANA time zone such as Europe/London."
        zone = None
    raw = str(form.get("when") or "").strip()
    try:
        local = dt.datetime.fromisoformat(raw)
    except ValueError:
        errors["when"] = "Date and time: expected a date and time such as 2026-12-01T09:00."
        return None, errors
    if local.tzinfo is not None:
        errors["when"] = "Date and time: give the local time without an offset, and pick the time zone."
    if errors or zone is None:
        return None, errors
    return local.replace(tzinfo=zone).astimezone(dt.UTC), errors


def parse_test_address(form: FormData) -> tuple[str | None, dict[str, str]]:
    errors = Errors()
    address = errors.collect("address", clean_mailable_email, {"address": str(form.get("address") or "")}, "address")
    return address, dict(errors)


@dataclass
class RuleForm:
    name: str = ""
    weekday: int = 0
    at_time: str = "09:00"
    timezone: str = "UTC"
    subject: str = ""
    audience: str = "all"
    topics: list[str] = field(default_factory=list)
    requires_approval: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_rule(cls, rule: DigestRule) -> RuleForm:
        topics = list(rule.audience_topics)
        return cls(name=rule.name, weekday=rule.weekday, at_time=rule.at_time, timezone=rule.timezone,
                   subject=rule.subject, audience="topics" if topics else "all", topics=topics,
                   requires_approval=rule.requires_approval)

    @property
    def spec(self) -> str:
        return f"{WEEKDAYS[self.weekday]} {self.at_time} {self.timezone}"

    @classmethod
    def parse(cls, form: FormData, *, topics: Sequence[str]) -> RuleForm:
        errors = Errors()
        data = {k: str(form.get(k) or "") for k in ("name", "subject", "weekday", "at_time", "timezone")}
        name = errors.collect("name", clean_text, data, "name", label="Name", max_length=200)
        subject = errors.collect("subject", clean_text, data, "subject", label="Subject", max_length=SUBJECT_MAX)
        day = small_int(data["weekday"], digits=1)
        weekday = day if day is not None and day <= 6 else -1
        if weekday < 0:
            errors["weekday"] = "Day: pick a day of the week."
        at_time = data["at_time"].strip()
        parts = at_time.split(":")
        hour, minute = (small_int(p, digits=2) for p in parts) if len(parts) == 2 else (None, None)
        if hour is None or minute is None or hour > 23 or minute > 59:
            errors["at_time"] = "Time: expected a time of day such as 09:00."
        else:
            at_time = f"{hour:02d}:{minute:02d}"
        zone = data["timezone"].strip() or "UTC"
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = f"Time zone: {zone!r} is not an IANA time zone such as Europe/London."
        chosen, topic_error = _topics(form, topics)
        if topic_error:
            errors["topics"] = topic_error
        return cls(name=name if name is not None else data["name"], weekday=max(weekday, 0), at_time=at_time,
                   timezone=zone, subject=subject if subject is not None else data["subject"],
                   audience="topics" if form.get("audience") == "topics" else "all", topics=chosen,
                   requires_approval=form.get("requires_approval") == "1", errors=dict(errors))
