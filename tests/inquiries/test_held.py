"""Nothing a person sends is dropped: a submission that looks automated (too fast, honeypot
filled, token missing, tampered or replayed) is stored *held*, mails nothing and is answered like
any other; a double click is stored once; a token stores one submission; every answer carries a
fresh receipt; held ones are purged after HELD_RETENTION_DAYS; bad JSON is a 400."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from service.db import utcnow
from service.settings import RateLimit
from service.worker import WorkerContext, default_loops
from tests.conftest import Database, make_settings
from tests.factories import (
    RECEIPT,
    add_inquiries,
    client_with,
    count_rows,
    deliver,
    form_token,
    inquiry_row,
    old_form_token,
    post_form,
    post_json,
    stored_inquiries,
    valid_fields,
)
from tests.smtp import SmtpServer


def _held(inquiries: list) -> list[tuple[str, str | None]]:  # type: ignore[type-arg]
    return [(i.status, i.held_reason) for i in inquiries]


async def test_a_form_sent_sooner_than_the_minimum_time_after_its_token_is_held_and_mails_nothing(
        db: Database, smtp: SmtpServer) -> None:
    # A minimum no test run can outlast (a 3 s one made the test depend on how busy the machine was).
    async with client_with(db, form_min_seconds=3600.0) as c:
        token = await form_token(c)
        page = await c.post("/contact", data=valid_fields(form_token=token))
        api = await post_json(c, message="Autofill and a quick finger, through the blog's script.")
    assert page.status_code == 303 and page.headers["location"] == "/contact/thanks"
    assert api.status_code == 201 and RECEIPT.match(api.json()["id"])
    stored = await stored_inquiries(db)
    assert _held(stored) == [("held", "too fast"), ("held", "too fast")]
    assert stored[1].receipt == api.json()["id"]
    assert await deliver(db, smtp) == 0 and smtp.received == []


async def test_honeypot_submission_is_held_with_an_ordinary_answer(client: httpx.AsyncClient, db: Database,
                                                                   smtp: SmtpServer) -> None:
    person = await post_json(client, message="A person's question.")
    bot = await post_json(client, website="https://cheap-pills.test")
    page = await post_form(client, website="https://cheap-pills.test", message="Buy now")
    assert person.status_code == bot.status_code == 201 and RECEIPT.match(bot.json()["id"])
    assert page.status_code == 303 and page.headers["location"] == "/contact/thanks"
    assert _held(await stored_inquiries(db)) == [("new", None), ("held", "honeypot filled"),
                                                  ("held", "honeypot filled")]
    assert await deliver(db, smtp) == 2  # the person's two emails only
    assert all("Buy now" not in m.message.as_string() for m in smtp.received)


async def test_tampered_foreign_or_missing_tokens_are_held(client: httpx.AsyncClient, db: Database,
                                                           smtp: SmtpServer) -> None:
    token = await form_token(client)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for n, bad in enumerate((tampered, "not-a-token", old_form_token(60, form="newsletter"))):
        assert (await post_form(client, form_token=bad, message=f"page {n}")).status_code == 303
        assert (await post_json(client, form_token=bad, message=f"api {n}")).status_code == 201
    r = await client.post("/api/inquiries", json=valid_fields(message="no token at all"))
    assert r.status_code == 201 and RECEIPT.match(r.json()["id"])
    assert _held(await stored_inquiries(db)) == [("held", "tampered token")] * 6 + [("held", "missing token")]
    assert await deliver(db, smtp) == 0


async def test_a_token_stores_one_submission_and_a_replay_with_other_words_is_held(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    token = await form_token(client)
    first = await client.post("/api/inquiries", json=valid_fields(form_token=token))
    replay = await client.post("/api/inquiries", json=valid_fields(form_token=token, email="other@example.org",
                                                                    message="Someone else's words."))
    page = await client.post("/contact", data=valid_fields(form_token=token, message="And a third text."))
    assert first.status_code == replay.status_code == 201
    assert RECEIPT.match(replay.json()["id"]) and replay.json() != first.json()
    assert page.status_code == 303 and page.headers["location"] == "/contact/thanks"
    assert _held(await stored_inquiries(db)) == [("new", None), ("held", "replayed token"),
                                                  ("held", "replayed token")]
    assert await deliver(db, smtp) == 2


async def test_one_token_sent_at_once_with_different_words_stores_one_and_holds_the_rest(
        client: httpx.AsyncClient, db: Database) -> None:
    token = await form_token(client)
    answers = await asyncio.gather(*(client.post("/api/inquiries", json=valid_fields(
        form_token=token, message=f"Version {n} of the message.")) for n in range(4)))
    assert [r.status_code for r in answers] == [201] * 4
    assert sorted(_held(await stored_inquiries(db))) == [("held", "replayed token")] * 3 + [("new", None)]


async def test_a_double_click_is_stored_once_and_both_answers_look_like_success(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    token = await form_token(client)
    first = await client.post("/contact", data=valid_fields(form_token=token))
    second = await client.post("/contact", data=valid_fields(form_token=token))
    assert (first.status_code, first.headers["location"]) == (second.status_code, second.headers["location"])
    assert first.headers["location"] == "/contact/thanks"
    token = await form_token(client)
    both = await asyncio.gather(*(client.post("/api/inquiries", json=valid_fields(
        form_token=token, message="A second question, sent with a double click.")) for _ in range(4)))
    assert [r.status_code for r in both] == [201] * 4 and all(RECEIPT.match(r.json()["id"]) for r in both)
    assert _held(await stored_inquiries(db)) == [("new", None), ("new", None)]
    assert await deliver(db, smtp) == 4  # two inquiries, two emails each


async def test_a_double_click_on_a_held_submission_is_held_once(db: Database) -> None:
    async with client_with(db, form_min_seconds=3.0) as c:
        token = await form_token(c)
        answers = [await c.post("/api/inquiries", json=valid_fields(form_token=token)) for _ in range(2)]
    assert [r.status_code for r in answers] == [201, 201]
    assert _held(await stored_inquiries(db)) == [("held", "too fast")]


async def test_a_duplicate_gets_a_fresh_receipt_that_reveals_nothing(client: httpx.AsyncClient, db: Database) -> None:
    mine = await post_json(client)
    theirs = await post_json(client)  # someone sends the same address and message again
    assert mine.status_code == theirs.status_code == 201
    assert RECEIPT.match(mine.json()["id"]) and RECEIPT.match(theirs.json()["id"])
    assert theirs.json() != mine.json()
    (stored,) = await stored_inquiries(db)
    assert stored.receipt == mine.json()["id"]  # the duplicate's receipt names no stored inquiry
    assert await count_rows(db) == (1, 2)


async def test_the_per_ip_limit_caps_held_submissions_with_the_visible_notice(db: Database) -> None:
    async with client_with(db, form_min_seconds=3.0, form_rate_limit=RateLimit(2, 600)) as c:
        assert (await post_form(c, message="one")).status_code == 303
        assert (await post_json(c, message="two")).status_code == 201
        page = await post_form(c, message="three, kept")
        api = await post_json(c, message="four")
    assert page.status_code == 429 and "Please wait a few minutes" in page.text
    assert ">three, kept</textarea>" in page.text
    assert api.status_code == 429 and "Please wait a few minutes" in api.json()["error"]
    assert _held(await stored_inquiries(db)) == [("held", "too fast")] * 2


async def test_held_inquiries_are_purged_after_the_retention_days(db: Database) -> None:
    now = utcnow()
    old, recent, old_new = await add_inquiries(db, [
        inquiry_row(1, status="held", held_reason="too fast", created_at=now - dt.timedelta(days=11)),
        inquiry_row(2, status="held", held_reason="too fast", created_at=now - dt.timedelta(days=9)),
        inquiry_row(3, status="new", held_reason=None, created_at=now - dt.timedelta(days=400)),
    ])
    settings = make_settings(db, held_retention_days=10)
    (loop,) = [lp for lp in default_loops(settings) if lp.name == "held-purge"]
    await loop.job(WorkerContext(settings=settings, sessions=db.sessions, mailer=None))  # type: ignore[arg-type]
    assert [i.id for i in await stored_inquiries(db)] == [recent, old_new]
    assert old not in [i.id for i in await stored_inquiries(db)]


@pytest.mark.parametrize("path", ["/api/inquiries", "/api/subscriptions"])
async def test_deeply_nested_or_non_object_json_is_a_400_json_error(client: httpx.AsyncClient, db: Database,
                                                                    path: str) -> None:
    nested = b"[" * 1500 + b"]" * 1500  # 3 KB
    for body in (nested, b'{"email": ' + nested + b"}", b"[1, 2]", b'"text"', b"null"):
        r = await client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (body[:20], r.status_code)
        assert isinstance(r.json()["error"], str) and "JSON" in r.json()["error"]
    assert await count_rows(db) == (0, 0)
