"""What a domain needs to contribute worker loops (`service.registry`): the Loop, the Job
signature and the WorkerContext a job runs with. `service.worker` runs them."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from service.db import Sessions
    from service.mail.transport import Mailer
    from service.settings import Settings

T = TypeVar("T")
Job = Callable[["WorkerContext"], Awaitable[int]]


@dataclass
class WorkerContext:
    """One worker: its settings, database, mailer, lease owner name, and what its jobs keep for
    as long as it runs (`kept`, e.g. the campaign sender with its SMTP pool)."""

    settings: Settings
    sessions: Sessions
    mailer: Mailer
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    _kept: dict[str, Any] = field(default_factory=dict, repr=False)

    def kept(self, key: str, make: Callable[[], T]) -> T:
        """The object stored under `key` for this worker, made by `make()` the first time."""
        if key not in self._kept:
            self._kept[key] = make()
        value: T = self._kept[key]
        return value


@dataclass(frozen=True)
class Loop:
    """A job run again and again: at once while it finds work, every `interval` seconds otherwise."""

    name: str
    job: Job
    interval: float
