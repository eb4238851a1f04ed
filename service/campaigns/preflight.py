"""What must hold before a campaign may start, checked by every path that starts one (send now,
schedule, approve, the CLI, the worker's scheduled starts and digest rules):

- RFC 8058 one-click unsubscribe needs an https List-Unsubscribe URI: over SMTP, BASE_URL must
  be https unless ALLOW_HTTP_BASE_URL=true (tests and local trials; the local outbox is not SMTP).
- Every newsletter carries the organisation's postal address (CAN-SPAM): one must be known
  (saved under Settings, or ORG_POSTAL_ADDRESS).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.brand import load_brand
from service.campaigns.queries import CampaignError
from service.settings import Settings


def base_url_problem(settings: Settings) -> str | None:
    if settings.https or settings.uses_local_outbox or settings.allow_http_base_url:
        return None
    return (f"BASE_URL is {settings.base_url}, not https: one-click unsubscribe (RFC 8058) needs an https "
            "link in campaigns sent over SMTP; set BASE_URL to the https address "
            "(or ALLOW_HTTP_BASE_URL=true for tests and local trials)")


NO_POSTAL_ADDRESS = ("no postal address is known: every newsletter must carry the organisation's postal address; "
                     "enter it under Settings (/admin/settings) or set ORG_POSTAL_ADDRESS")


async def check_ready_to_send(session: AsyncSession, settings: Settings) -> None:
    """CampaignError naming what to fix when a campaign may not start."""
    problem = base_url_problem(settings)
    if problem:
        raise CampaignError(problem)
    if not (await load_brand(session, settings)).postal_address:
        raise CampaignError(NO_POSTAL_ADDRESS)
