"""Numbers in the admin's query strings and forms are plain ASCII digits: "²" passes
str.isdigit but not int(), and a huge id is more than the database's integer (found by the
admin API's fuzzing of the same kind of parameter): such values are ignored, never a 500."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import csrf


async def test_odd_digits_in_campaign_and_bulk_parameters_are_ignored(admin_client: httpx.AsyncClient,
                                                                       db: Any) -> None:
    for path in ["/admin/campaigns?before=%C2%B2", "/admin/campaigns?before=9999999999",
                 "/admin/campaigns/audience?article=%C2%B2&article=99999999999999"]:
        r = await admin_client.get(path)
        assert r.status_code == 200, (path, r.status_code)
    r = await admin_client.post("/admin/inquiries/bulk", data={"csrf_token": await csrf(admin_client),
                                                                "ids": ["²", "99999999999999"], "status": "closed"})
    assert r.status_code == 422 and "Nothing was changed" in r.text
