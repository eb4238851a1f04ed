"""Each domain's `tidings` subcommands and worker loops, collected in one place: `service.cli`
reads `add_domain_commands`, `service.worker` reads `domain_loops`. A domain contributes a
`commands` module with `register(subparsers)` and/or a `jobs` module with `loops(settings)`;
neither imports the entry points back."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from service.admin import commands as admin_commands
from service.articles import commands as articles_commands
from service.articles import jobs as articles_jobs
from service.bounces import commands as bounces_commands
from service.bounces import jobs as bounces_jobs
from service.campaigns import commands as campaigns_commands
from service.campaigns import jobs as campaigns_jobs
from service.inquiries import jobs as inquiries_jobs
from service.insight import jobs as insight_jobs
from service.loops import Loop
from service.mail import jobs as mail_jobs
from service.newsletter import commands as newsletter_commands
from service.newsletter import jobs as newsletter_jobs
from service.privacy import commands as privacy_commands
from service.privacy import jobs as privacy_jobs
from service.settings import Settings
from service.webhooks import jobs as webhooks_jobs

Register = Callable[["argparse._SubParsersAction[Any]"], None]

COMMANDS: tuple[Register, ...] = (newsletter_commands.register, articles_commands.register,
                                  campaigns_commands.register, privacy_commands.register,
                                  bounces_commands.register, admin_commands.register)
LOOPS: tuple[Callable[[Settings | None], list[Loop]], ...] = (
    mail_jobs.loops, inquiries_jobs.loops, newsletter_jobs.loops, campaigns_jobs.loops, privacy_jobs.loops,
    articles_jobs.loops, bounces_jobs.loops, insight_jobs.loops, webhooks_jobs.loops)


def add_domain_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register every domain's subcommands on the `tidings` parser."""
    for register in COMMANDS:
        register(sub)


def domain_loops(settings: Settings | None) -> list[Loop]:
    """Every domain's worker loops for these settings."""
    return [loop for loops in LOOPS for loop in loops(settings)]
