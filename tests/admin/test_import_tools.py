"""The admin's import page with other tools' exports (one code path with the CLI): the check
(dry run) then apply of a Mailchimp zip, a listmonk file with the consent checkbox, a Ghost file
through the "From" select, a Substack zip; a zip bomb refused changing nothing."""

from __future__ import annotations

import httpx

from service.newsletter.archive import MAX_UNPACKED_BYTES
from service.newsletter.models import Subscriber
from tests.conftest import Database
from tests.factories import count, csrf, subscriber
from tests.newsletter import exports


async def _post(client: httpx.AsyncClient, name: str, data: bytes, **fields: str) -> httpx.Response:
    form = {"csrf_token": await csrf(client), **fields}
    return await client.post("/admin/subscribers/import", data=form,
                             files={"file": (name, data, "application/octet-stream")})


async def _check_then_apply(client: httpx.AsyncClient, name: str, data: bytes, **fields: str) -> httpx.Response:
    check = await _post(client, name, data, step="check", **fields)
    assert check.status_code == 200, check.text[:800]
    assert "Dry run: nothing was changed yet." in check.text
    token = check.text.split('name="token" value="')[1].split('"')[0]
    applied = await _post(client, name, data, step="apply", token=token)
    assert applied.status_code == 200, applied.text[:800]
    return applied


async def test_mailchimp_zip_through_the_admin_page(admin_client: httpx.AsyncClient, db: Database) -> None:
    page = await admin_client.get("/admin/subscribers/import")
    assert '<option value="mailchimp">Mailchimp</option>' in page.text and 'name="consented"' in page.text
    r = await _check_then_apply(admin_client, "mailchimp.zip", exports.mailchimp_zip())
    assert "5 rows read: 5 were added" in r.text and "as a Mailchimp export" in r.text
    assert "topics not configured here, not imported: VIP (1)" in r.text
    ana = await subscriber(db, "ana@example.org")
    assert ana is not None and (ana.status, ana.name, ana.signup_ip) == ("confirmed", "Ana Lima", "198.51.100.7")
    assert ana.signup_source == "admin import: Mailchimp export" and set(ana.topics) == {"anxiety", "PTSD"}
    assert (await subscriber(db, "ed@example.org")).status == "bounced"  # type: ignore[union-attr]
    again = await _check_then_apply(admin_client, "mailchimp.zip", exports.mailchimp_zip())
    assert "0 were added" in again.text and await count(db, Subscriber) == 5


async def test_listmonk_with_the_consent_checkbox(admin_client: httpx.AsyncClient, db: Database) -> None:
    r = await _check_then_apply(admin_client, "subscribers.csv", exports.listmonk(), consented="1")
    assert "as a listmonk export" in r.text
    fay = await subscriber(db, "fay@example.org")
    assert fay is not None and (fay.status, fay.topics) == ("confirmed", ["OCD"])
    assert fay.signup_source is not None and "consent records held by the operator" in fay.signup_source
    assert (await subscriber(db, "gus@example.org")).status == "complained"  # type: ignore[union-attr]


async def test_ghost_through_the_from_select_and_substack_zip(admin_client: httpx.AsyncClient,
                                                            db: Database) -> None:
    await _check_then_apply(admin_client, "members.csv", exports.ghost(), **{"from": "ghost"})
    ivy = await subscriber(db, "ivy@example.org")
    assert ivy is not None and (ivy.status, ivy.name, ivy.topics) == ("pending", "Ivy Ng", ["anxiety"])
    assert (await subscriber(db, "jo@example.org")).status == "unsubscribed"  # type: ignore[union-attr]
    wrong = await _post(admin_client, "members.csv", exports.ghost(), step="check", **{"from": "listmonk"})
    assert wrong.status_code == 422 and "not a listmonk export" in wrong.text
    bad = await _post(admin_client, "members.csv", exports.ghost(), step="check", **{"from": "myspace"})
    assert bad.status_code == 422 and "From: expected one of" in bad.text
    r = await _check_then_apply(admin_client, "substack.zip", exports.substack_zip())
    assert "posts.csv, posts/1.opens.csv" in r.text
    assert (await subscriber(db, "kim@example.org")).status == "pending"  # type: ignore[union-attr]
    assert await count(db, Subscriber) == 4


async def test_a_zip_bomb_upload_is_refused(admin_client: httpx.AsyncClient, db: Database) -> None:
    r = await _post(admin_client, "bomb.zip", exports.zip_bomb(MAX_UNPACKED_BYTES), step="check")
    assert r.status_code == 422 and "unpacks to more than 256 MB" in r.text and "Nothing was imported" in r.text
    assert await count(db, Subscriber) == 0
