"""Articles of the blog, imported from its RSS/Atom feed or from Markdown files, with the topics
their tags map to (no topic rows = an article for everyone)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, UTCDateTime, utcnow


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The feed's guid, or the link when the feed gives none: the key re-imports update by.
    guid: Mapped[str] = mapped_column(String(1000), unique=True)
    link: Mapped[str] = mapped_column(String(2000), index=True)
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text, default="")  # plain text
    content_html: Mapped[str] = mapped_column(Text, default="")  # sanitized with nh3
    image_url: Mapped[str | None] = mapped_column(String(2000))
    image_alt: Mapped[str] = mapped_column(String(500), default="")
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    topic_rows: Mapped[list[ArticleTopic]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ArticleTopic.topic"
    )

    @property
    def topics(self) -> list[str]:
        """The settings.topics this article is about; empty means it is for everyone."""
        return [row.topic for row in self.topic_rows]


class ArticleTopic(Base):
    __tablename__ = "article_topics"

    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
