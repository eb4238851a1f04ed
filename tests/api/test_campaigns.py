"""/api/v1/campaigns and /api/v1/articles: create a draft (the composer's rules), preview it,
schedule, send, pause and read its figures, list and import articles; each change audits
exactly as the admin's button does; lists page by cursor; bad input is a 422 naming the field
and creates or changes nothing."""

from __future__ import annotations

from typing import Any

from service.admin.models import AuditEvent
from service.app import create_app
from service.articles.models import Article
from service.campaigns.models import Campaign
from service.settings import Settings
from tests.api.conftest import api_client, audit_rows, make_token, same_but_target
from tests.conftest import Database, make_settings
from tests.factories import SAMPLE, add_subscriber, count, csrf, make_staff, sample_articles, signed_in_client


async def _campaign(db: Database, campaign_id: int) -> Campaign:
    async with db.sessions() as session:
        found = await session.get(Campaign, campaign_id)
        assert found is not None
        return found


async def test_create_schedule_send_pause_audit_exactly_as_the_admin(app: Any, db: Database,
                                                                      settings: Settings) -> None:
    admin = await make_staff(db)
    raw = await make_token(db, admin)
    articles = await sample_articles(db, settings)
    await add_subscriber(db, "reader@example.org")
    ids = [articles[0].id, articles[1].id]
    form = {"subject": "December digest", "preheader": "Two posts", "intro": "Hello", "body": "",
            "audience": "all", "article": [str(i) for i in ids], "order": [str(i) for i in ids]}
    before = len(await audit_rows(db))
    async with signed_in_client(app, admin) as browser:
        token = await csrf(browser)
        r = await browser.post("/admin/campaigns/new", data={"csrf_token": token, **form})
        assert r.status_code == 303, r.text
        page_id = int(r.headers["location"].split("/")[3].split("?")[0])
        for path, data in [("schedule", {"when": "2030-01-01T09:00"}), ("send", {}), ("pause", {})]:
            r = await browser.post(f"/admin/campaigns/{page_id}/{path}", data={"csrf_token": token, **data})
            assert r.status_code == 303, (path, r.text)
    page_rows = (await audit_rows(db))[before:]
    async with api_client(app, raw) as api:
        r = await api.post("/api/v1/campaigns", json={"subject": "December digest", "preheader": "Two posts",
                                                       "intro": "Hello", "article_ids": ids})
        assert r.status_code == 201, r.text
        api_id = r.json()["id"]
        assert r.json()["status"] == "draft" and r.json()["article_ids"] == ids
        preview = await api.get(f"/api/v1/campaigns/{api_id}/preview", params={"email": "reader@example.org"})
        assert preview.status_code == 200 and "December digest" == preview.json()["subject"]
        assert articles[0].title in preview.json()["text"]
        r = await api.post(f"/api/v1/campaigns/{api_id}/schedule", json={"at": "2030-01-01T09:00+00:00"})
        assert r.status_code == 200 and r.json()["status"] == "scheduled", r.text
        r = await api.post(f"/api/v1/campaigns/{api_id}/send")
        assert r.status_code == 200 and r.json()["queued"] == 1, r.text
        r = await api.post(f"/api/v1/campaigns/{api_id}/pause")
        assert r.status_code == 200 and r.json()["status"] == "paused"
        again = await api.post(f"/api/v1/campaigns/{api_id}/pause")
        assert again.status_code == 409
        stats = await api.get(f"/api/v1/campaigns/{api_id}/stats")
        assert stats.status_code == 200 and stats.json()["total"] == 1 and stats.json()["status"] == "paused"
    api_rows = (await audit_rows(db))[before + len(page_rows):]
    assert [r["action"] for r in page_rows] == ["campaign_create", "campaign_schedule", "campaign_send",
                                                "campaign_pause"]
    assert len(api_rows) == 4
    for a, b in zip(page_rows, api_rows, strict=True):
        assert same_but_target(a, b), (a, b)
    assert (await _campaign(db, api_id)).status == "paused"


async def test_bad_campaign_input_names_the_field_and_changes_nothing(app: Any, db: Database,
                                                                      settings: Settings) -> None:
    admin = await make_staff(db)
    raw = await make_token(db, admin)
    articles = await sample_articles(db, settings)
    before = await audit_rows(db)
    async with api_client(app, raw) as api:
        for body, field in [({"body": "Hi"}, "subject"), ({"subject": "x" * 301, "body": "Hi"}, "subject"),
                            ({"subject": "Empty"}, "article_ids"), ({"subject": "S", "article_ids": [999999]},
                                                                    "article_ids"),
                            ({"subject": "S", "article_ids": ["1"]}, "article_ids"),
                            ({"subject": "S", "body": "Hi", "audience_topics": ["astrology"]}, "audience_topics"),
                            ({"subject": 5, "body": "Hi"}, "subject")]:
            r = await api.post("/api/v1/campaigns", json=body)
            assert r.status_code == 422 and r.json()["error"]["field"] == field, (body, r.text)
        assert await count(db, Campaign) == 0
        r = await api.post("/api/v1/campaigns", json={"subject": "S", "article_ids": [articles[0].id]})
        cid = r.json()["id"]
        for at in ["tomorrow", "2030-01-01T09:00", "2001-01-01T09:00+00:00", ""]:
            r = await api.post(f"/api/v1/campaigns/{cid}/schedule", json={"at": at})
            assert r.status_code == 422 and r.json()["error"]["field"] == "at", (at, r.text)
        r = await api.get(f"/api/v1/campaigns/{cid}/preview", params={"email": "nobody@example.org"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "email"
        r = await api.post(f"/api/v1/campaigns/{cid}/pause")
        assert r.status_code == 409
    assert (await _campaign(db, cid)).status == "draft"
    assert [r["action"] for r in (await audit_rows(db))[len(before):]] == ["campaign_create"]


async def test_articles_page_by_cursor_and_import_now_audits_as_the_admin(db: Database) -> None:
    app = create_app(make_settings(db, feed_url=str(SAMPLE / "feed.xml")), sessions=db.sessions)
    admin = await make_staff(db)
    raw = await make_token(db, admin, ["campaigns:write"])
    async with signed_in_client(app, admin) as browser:
        r = await browser.post("/admin/articles/import", data={"csrf_token": await csrf(browser)})
        assert r.status_code == 200
    async with api_client(app, raw) as api:
        r = await api.post("/api/v1/articles/import")
        assert r.status_code == 200 and r.json() == {"new": 0, "updated": 0, "unchanged": 5}
        seen, cursor = [], None
        while True:
            r = await api.get("/api/v1/articles", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200, r.text
            seen += [a["id"] for a in r.json()["data"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 5 == await count(db, Article)
        r = await api.get("/api/v1/articles", params={"cursor": "abc"})
        assert r.status_code == 400 and r.json()["error"]["field"] == "cursor"
    rows = [r for r in await audit_rows(db) if r["action"] == "articles_import"]
    assert len(rows) == 2 and rows[0]["actor"] == rows[1]["actor"] == admin.email
    assert rows[0]["detail"] == {"new": 5, "updated": 0} and rows[1]["detail"] == {"new": 0, "updated": 0}
    assert await count(db, AuditEvent) >= 3
    no_feed = create_app(make_settings(db), sessions=db.sessions)
    async with api_client(no_feed, raw) as api:
        r = await api.post("/api/v1/articles/import")
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


async def test_the_campaign_list_pages_by_cursor(app: Any, db: Database) -> None:
    admin = await make_staff(db)
    raw = await make_token(db, admin, ["campaigns:write"])
    async with api_client(app, raw) as api:
        made = [(await api.post("/api/v1/campaigns", json={"subject": f"Note {i}", "body": "Hello"})).json()["id"]
                for i in range(5)]
        seen, cursor = [], None
        while True:
            r = await api.get("/api/v1/campaigns", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200 and len(r.json()["data"]) <= 2, r.text
            seen += [c["id"] for c in r.json()["data"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(made, reverse=True)
        for cursor in ["x", "²", "99999999999"]:
            r = await api.get("/api/v1/campaigns", params={"cursor": cursor})
            assert r.status_code == 400 and r.json()["error"]["field"] == "cursor"
