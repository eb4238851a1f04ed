"""The erasure ledger: one row per erased or expired person or inquiry, holding only a keyed hash
(HMAC under the secret key) of what identified it, so that `tidings restore` can apply every
erasure made since a backup again and an erased person never comes back from one."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow

ERASURE_KINDS = ("subscriber", "inquiry")
ERASURE_REASONS = ("erased", "retention")


class Erasure(Base):
    """`subject_hash` is `Tokens.keyed_hash` of the normalised address (subscriber, the same hash
    as the newsletter's suppression list) or of the inquiry's identity (id and dedupe key)."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(16))
    erased_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_erasures_kind_subject_hash", "kind", "subject_hash"),)
