"""The written-down rules that count a click as a scanner's, each on its own
(service/insight/scanners.py), and the graceful stop that writes every counted click once."""

from __future__ import annotations

import datetime as dt

from service.app import create_app
from service.insight.counter import ClickCounter
from service.insight.links import Link, click_token
from service.insight.scanners import BURST_LINKS, BURST_SECONDS, request_rule, scanner_agents
from service.settings import Settings
from service.tokens import Tokens
from tests.conftest import Database
from tests.factories import click_counts, new_client

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15"
NOON = dt.datetime(2026, 12, 2, 12, 30, tzinfo=dt.UTC)


class Clock:
    """Seconds as the test sets them (the counter's monotonic clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rule_1_a_head_request_is_a_scanners() -> None:
    assert request_rule("HEAD", BROWSER) == "head"
    assert request_rule("GET", BROWSER) is None


def test_rule_2_a_listed_or_missing_user_agent_is_a_scanners() -> None:
    assert "safelinks" in scanner_agents() and "barracuda" in scanner_agents()
    for agent in ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "curl/8.5.0", "python-requests/2.32",
                  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "", "   "):
        assert request_rule("GET", agent) == "agent", agent
    # a phone whose model name merely contains "bot" is a person
    assert request_rule("GET", "Mozilla/5.0 (Linux; Android 9; CUBOT X19) Chrome/120.0 Mobile Safari/537.36") is None


async def test_rule_3_one_client_following_many_links_at_once_is_a_scanner(db: Database) -> None:
    clock = Clock()
    counter = ClickCounter(db.sessions, clock=clock)
    kinds = []
    for n in range(1, BURST_LINKS + 2):  # one link more than allowed, within the window
        kinds.append(await counter.record(Link(7, n, "https://blog.example.com/"), method="GET", ip="192.0.2.1",
                                          user_agent=BROWSER, now=NOON))
        clock.now += 0.2
    assert kinds[-1] == "burst"
    # a person who reads the same number of links slowly stays a person
    for n in range(1, BURST_LINKS + 2):
        kinds.append(await counter.record(Link(7, n, "https://blog.example.com/"), method="GET", ip="192.0.2.2",
                                          user_agent=BROWSER, now=NOON))
        clock.now += BURST_SECONDS + 1
    await counter.flush()
    counts = await click_counts(db)
    # the burst's earlier clicks moved to the scanners too (they were still on probation)
    assert sum(n for (_c, _l, k), n in counts.items() if k == "burst") == BURST_LINKS + 1
    assert sum(n for (_c, _l, k), n in counts.items() if k == "person") == BURST_LINKS + 1


async def test_a_graceful_stop_writes_every_counted_click_once(db: Database, settings: Settings) -> None:
    app = create_app(settings, sessions=db.sessions)
    token = click_token(Tokens(settings), Link(3, 5, "https://blog.example.com/a/"))
    async with app.router.lifespan_context(app):
        async with new_client(app) as client:
            for _ in range(25):
                r = await client.get(f"/r/{token}", headers={"user-agent": BROWSER})
                assert r.status_code == 302
    assert await click_counts(db) == {(3, 5, "person"): 25}
