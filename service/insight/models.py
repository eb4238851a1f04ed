"""Insight tables. Nothing here names a person: a click is a count per campaign, link, hour and
kind; a reader is a daily-salted hash of a client's address and user agent (the salt is deleted
once its day is over, so yesterday's hashes can no longer be matched to anyone).

No foreign keys: counters are aggregates written in batches, and a batch must never fail because
a campaign was deleted in between (a deleted campaign's counters are simply never shown)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime

# How a click was judged (service.insight.scanners): a person, or a scanner by which rule.
CLICK_KINDS = ("person", "head", "agent", "burst")
# The link number of "view in browser"; article links use the article's id.
ARCHIVE_LINK = 0
# The link number of a campaign's readers of any of its links, in ClickReaderCount.
ANY_LINK = -1


class ClickCount(Base):
    """Clicks of one link of one campaign in one hour, of one kind."""

    __tablename__ = "click_counts"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link: Mapped[int] = mapped_column(Integer, primary_key=True)  # article id, or ARCHIVE_LINK
    hour: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    clicks: Mapped[int] = mapped_column(Integer, default=0)


class ClickReader(Base):
    """One distinct reader (a daily-salted hash, per campaign) of one link on one day; kept only
    until the day is over, then counted into ClickReaderCount."""

    __tablename__ = "click_readers"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    reader: Mapped[str] = mapped_column(String(16), primary_key=True)


class ClickReaderCount(Base):
    """Distinct readers of one link (or ANY_LINK) of a campaign on one past day: the day's hashes,
    counted and deleted once the day is over (service.insight.queries.roll_up_readers)."""

    __tablename__ = "click_reader_counts"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    readers: Mapped[int] = mapped_column(Integer, default=0)


class ClickSalt(Base):
    """Today's salt of the reader hashes, shared by every app process; older ones are deleted."""

    __tablename__ = "click_salts"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    salt: Mapped[str] = mapped_column(String(64))


class LeadSourceMonth(Base):
    """Inquiries of one calendar month (UTC) and status from one source (page, referrer, utm
    source and campaign, topic; `source_key` is their md5), as rows to be summed: PostgreSQL
    triggers on `inquiries` append each statement's changes (+n, -n), whatever wrote them, and
    the worker folds them into one row per counter (migration 0012a_leadmonths,
    `service.insight.queries.compact_lead_source_months`). Empty on SQLite, whose reports group
    the inquiries themselves (`service.db.keeps_lead_source_months`)."""

    __tablename__ = "lead_source_months"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[dt.date] = mapped_column(Date)  # its first day
    status: Mapped[str] = mapped_column(String(16))
    source_key: Mapped[str] = mapped_column(String(32))
    source_page: Mapped[str] = mapped_column(String(2000))
    referrer: Mapped[str] = mapped_column(String(2000))
    utm_source: Mapped[str] = mapped_column(String(200))
    utm_campaign: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(40))
    inquiries: Mapped[int] = mapped_column(Integer)
