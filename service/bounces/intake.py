"""One emailed report in, its events recorded: the shared path of `tidings bounces process`
(a pipe alias), `tidings inbound` (LMTP/SMTP) and the bounce mailbox. The caller owns the
transaction; `Processed` says what happened in one line and which exit code / reply fits."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from service.bounces.events import MailEvent
from service.bounces.parse import Report, mail_events, parse_report
from service.bounces.policy import Outcome, record_many
from service.newsletter.flows import mask_email
from service.settings import Settings

MAX_REPORT_BYTES = 10 * 1024 * 1024
log = logging.getLogger("tidings.bounces")


@dataclass(frozen=True)
class Processed:
    report: Report
    outcomes: tuple[Outcome, ...] = ()

    @property
    def counted(self) -> bool:
        """True when at least one event was stored (now or before: a duplicate)."""
        return any(o.stored or o.action == "duplicate" for o in self.outcomes)

    @property
    def rejected(self) -> bool:
        """A bounce or complaint none of whose events could count (forged/unknown return path)."""
        return bool(self.outcomes) and all(o.action == "rejected" for o in self.outcomes)

    def summary(self, *, mask: bool = True) -> str:
        """One line: what the message was and what it did."""
        if not self.report.failures:
            return f"{self.report.kind}: {self.report.detail}; nothing recorded"
        parts = []
        for failure, outcome in zip(self.report.failures, self.outcomes, strict=True):
            who = (mask_email(failure.recipient) if mask else failure.recipient) or "unknown recipient"
            what = f"{failure.kind} {failure.status or ''}".strip()
            parts.append(f"{what} for {who}: {outcome.action}" + (f" ({outcome.reason})" if outcome.reason else ""))
        return f"{self.report.kind} ({self.report.detail}): " + "; ".join(parts)


def read_message(raw: bytes, *, settings: Settings) -> Report:
    """What the message in `raw` is; "unrecognised" when no parser can read it."""
    try:
        return parse_report(raw, settings)
    except Exception as exc:  # no parser reads it: not a report (retrying would never help)
        log.warning("a message could not be read as a report: %s", type(exc).__name__)
        return Report("unrecognised", detail=f"the message could not be read ({type(exc).__name__})")


def read_report(raw: bytes, *, settings: Settings, source: str, return_token: str | None = None
                ) -> tuple[Report, list[MailEvent]]:
    """The report in `raw` and its events (nothing recorded yet)."""
    report = read_message(raw, settings=settings)
    return report, mail_events(report, source=source, raw=raw, return_token=return_token)


async def process_report(session: AsyncSession, raw: bytes, *, settings: Settings, source: str,
                         return_token: str | None = None) -> Processed:
    """Parse `raw` and record its events in the caller's transaction. `return_token`: the token
    of the envelope recipient it was delivered to (LMTP/SMTP), when known."""
    report, events = read_report(raw, settings=settings, source=source, return_token=return_token)
    return Processed(report, tuple(await record_many(session, events, settings=settings)))
