"""No email address reaches the logs. SMTP servers quote the address they refuse
(`550 5.1.1 <pat@example.org> rejected`) and exceptions may carry one; `redact` keeps the
domain, which is what an operator needs to see a pattern (`550 5.1.1 <…@example.org> rejected`),
and drops the person. Every log call that can carry an SMTP answer or an address passes its text
through `redact`; `RedactingFilter`, installed on the process's log handlers, is the net under
the rest (a worker loop's error, a library's message). The failure reasons stored for staff (the
outbox page, campaign deliveries) keep the server's answer as it was.
"""

from __future__ import annotations

import logging
import re

# a local part (dot-atom, any non-ASCII letters too, or a quoted string), "@" and a domain
_ADDRESS = re.compile(r"""(?:"[^"\r\n]*"|[^\s<>()\[\]\\,;:"'@]+)@((?:[\w-]+\.)*[\w-]+)""")


def redact(text: object) -> str:
    """`text` with every email address reduced to its domain: `<…@example.org>`."""
    return _ADDRESS.sub(lambda m: f"…@{m.group(1)}", str(text))


class RedactingFilter(logging.Filter):
    """Rewrites each record's message through `redact` before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def redact_handlers(logger: logging.Logger) -> None:
    """Install `RedactingFilter` on every handler of `logger` (the root logger, at start-up)."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
