"""Which clicks are a link scanner's or a prefetcher's rather than a person's. The rules, each
tested on its own (tests/insight/test_scanners.py), in the order they are applied:

1. **head**: a HEAD request (people's browsers send GET; scanners often ask for the headers only).
2. **agent**: the User-Agent contains an entry of `scanners.txt` (shipped with Tidings; case-
   insensitive substrings such as "safelinks", "barracuda", "bot", "curl/"), or is empty.
3. **burst**: one client (the same daily reader hash: address and user agent) follows more than
   BURST_LINKS different links of one campaign within BURST_SECONDS. A security gateway opens
   every link of a message at once; a person reads one article and perhaps another. Every click
   of that client within the window counts as the burst's, the earlier ones included.

A scanner's click still redirects: nothing is refused, it is only counted apart.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from pathlib import Path

BURST_LINKS = 3
BURST_SECONDS = 5.0
SCANNERS_FILE = Path(__file__).with_name("scanners.txt")


@cache
def scanner_agents() -> tuple[str, ...]:
    """The shipped list of scanner user-agent substrings, lower-cased."""
    lines = SCANNERS_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip().lower() for line in lines if line.strip() and not line.lstrip().startswith("#"))


@cache
def _agents_pattern() -> re.Pattern[str]:
    return re.compile("|".join(re.escape(s) for s in scanner_agents()))


@lru_cache(maxsize=4096)
def is_scanner_agent(user_agent: str) -> bool:
    """Rule 2: an empty user agent, or one containing an entry of scanners.txt (any case)."""
    agent = user_agent.strip().lower()
    return not agent or _agents_pattern().search(agent) is not None


def request_rule(method: str, user_agent: str) -> str | None:
    """The rule (1 or 2) a single request breaks, or None when it may be a person's."""
    if method.upper() == "HEAD":
        return "head"
    if is_scanner_agent(user_agent):
        return "agent"
    return None
