"""The privacy loop of the worker: inquiry retention."""

from __future__ import annotations

from service.loops import Loop
from service.privacy.retention import expire_inquiries_job
from service.settings import Settings


def loops(settings: Settings | None) -> list[Loop]:
    return [Loop("inquiry-retention", expire_inquiries_job, 3600.0)]
