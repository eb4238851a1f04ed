"""Numbers in the admin's query strings and forms are plain ASCII digits: "²" passes
str.isdigit but not int(), and a huge id is more than the database's integer (found by the
admin API's fuzzing of the same kind of parameter): such values are ignored, never a 500."""

from __future__ import annotations

from typing import Any

import httpx

from service.campaigns.models import DigestRule
from tests.factories import count, csrf


async def test_odd_digits_in_campaign_and_bulk_parameters_are_ignored(admin_client: httpx.AsyncClient,
                                                                       db: Any) -> None:
    for path in ["/admin/campaigns?before=%C2%B2", "/admin/campaigns?before=9999999999",
                 "/admin/campaigns/audience?article=%C2%B2&article=99999999999999"]:
        r = await admin_client.get(path)
        assert r.status_code == 200, (path, r.status_code)
    r = await admin_client.post("/admin/inquiries/bulk", data={"csrf_token": await csrf(admin_client),
                                                                "ids": ["²", "99999999999999"], "status": "closed"})
    assert r.status_code == 422 and "Nothing was changed" in r.text


async def test_odd_digits_in_outbox_report_and_digest_rule_parameters_are_ignored_or_refused(
        admin_client: httpx.AsyncClient, db: Any) -> None:
    for path in ["/admin/outbox?before=%C2%B2", "/admin/outbox?before=99999999999999",
                 "/admin/reports/leads?months=%C2%B2", "/admin/reports/audience?months=99999999999999"]:
        r = await admin_client.get(path)
        assert r.status_code in (200, 400), (path, r.status_code)  # ignored, or refused by name: never a 500
    r = await admin_client.post("/admin/digest-rules/new", data={
        "csrf_token": await csrf(admin_client), "name": "Weekly", "subject": "This week", "weekday": "²",
        "at_time": "²:00", "timezone": "UTC", "audience": "all"})
    assert r.status_code == 422, r.status_code
    assert "pick a day of the week" in r.text and "expected a time of day such as 09:00" in r.text
    assert await count(db, DigestRule) == 0
