"""Spam defence: people who are refused (expired form, too many forms) are told why and keep what
they typed; duplicates are stored once. (What looks automated is held: see test_held.py.)"""

from __future__ import annotations

import asyncio

import httpx

from service.settings import RateLimit
from tests.conftest import Database
from tests.factories import (
    RECEIPT,
    client_with,
    count_rows,
    form_token,
    old_form_token,
    post_form,
    post_json,
    stored_inquiries,
    token_in,
    valid_fields,
)


async def test_expired_form_tells_the_person_and_keeps_their_answers(client: httpx.AsyncClient, db: Database) -> None:
    expired = old_form_token(3 * 3600)
    r = await post_form(client, form_token=expired, message="My long, carefully written message")
    assert r.status_code == 422
    assert "has expired for your security" in r.text
    assert ">My long, carefully written message</textarea>" in r.text and 'value="Ana Souza"' in r.text
    fresh = token_in(r.text)
    assert fresh != expired
    r = await post_json(client, form_token=expired)
    assert r.status_code == 422 and "has expired" in r.json()["errors"]["form_token"]
    assert await count_rows(db) == (0, 0)
    r = await post_form(client, form_token=fresh)  # sending again works
    assert r.status_code == 303 and len(await stored_inquiries(db)) == 1


async def test_rate_limit_per_ip_answers_429_and_keeps_answers(db: Database) -> None:
    async with client_with(db, form_rate_limit=RateLimit(2, 600)) as c:
        assert (await post_form(c, message="first")).status_code == 303
        assert (await post_json(c, message="second")).status_code == 201
        r = await post_form(c, message="third, kept")
        assert r.status_code == 429 and r.headers["retry-after"] == "600"
        assert "Please wait a few minutes" in r.text and ">third, kept</textarea>" in r.text
        r = await post_json(c, message="fourth")
        assert r.status_code == 429 and "Please wait a few minutes" in r.json()["error"]
    async with client_with(db, ip="198.51.100.9", form_rate_limit=RateLimit(2, 600)) as other:
        assert (await post_form(other, message="another person")).status_code == 303
    assert [i.message for i in await stored_inquiries(db)] == ["first", "second", "another person"]


async def test_refused_submissions_count_towards_the_limit(db: Database) -> None:
    """The hit is counted in the request's transaction: a 422 (invalid) and a 429 are answered
    after the commit, so they count as much as a stored inquiry."""
    async with client_with(db, form_rate_limit=RateLimit(2, 600)) as c:
        assert (await post_json(c, email="not an address")).status_code == 422
        assert (await post_form(c, message="")).status_code == 422
        r = await post_json(c, message="a valid one, third of two")
        assert r.status_code == 429
    assert await count_rows(db) == (0, 0)


async def test_rate_limit_counts_the_client_behind_a_trusted_proxy(db: Database) -> None:
    import ipaddress

    proxy = (ipaddress.ip_network("10.0.0.0/8"),)
    async with client_with(db, ip="10.0.0.2", trusted_proxies=proxy, form_rate_limit=RateLimit(1, 600)) as c:
        first = await c.post("/contact", data=valid_fields(form_token=await form_token(c)),
                             headers={"X-Forwarded-For": "192.0.2.1"})
        other = await c.post("/contact", data=valid_fields(form_token=await form_token(c), message="other"),
                             headers={"X-Forwarded-For": "192.0.2.2"})
        again = await c.post("/contact", data=valid_fields(form_token=await form_token(c), message="again"),
                             headers={"X-Forwarded-For": "192.0.2.1"})
    assert (first.status_code, other.status_code, again.status_code) == (303, 303, 429)
    assert sorted(i.ip for i in await stored_inquiries(db)) == ["192.0.2.1", "192.0.2.2"]


async def test_oversized_body_is_413_and_nothing_is_stored(db: Database) -> None:
    async with client_with(db, max_body_bytes=4096) as c:
        r = await post_form(c, message="x" * 5000)
        assert r.status_code == 413
        r = await post_json(c, message="x" * 5000)
        assert r.status_code == 413

        async def chunks():  # no Content-Length: cut off while streaming
            yield b'{"message": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}'

        r = await c.post("/api/inquiries", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
    assert await count_rows(db) == (0, 0)


async def test_duplicate_submission_is_stored_once_and_mailed_once(client: httpx.AsyncClient, db: Database) -> None:
    first = await post_json(client)
    again = await post_json(client, message="  I would like to know whether KETAMINE-assisted therapy\ncould "
                                            "help me.  ", email="ANA@example.org")
    form = await post_form(client)
    assert first.status_code == again.status_code == 201
    assert RECEIPT.match(again.json()["id"]) and again.json() != first.json()  # a fresh receipt, same shape
    assert form.status_code == 303 and form.headers["location"] == "/contact/thanks"
    assert await count_rows(db) == (1, 2)
    # another message from the same person is a new inquiry
    assert (await post_json(client, message="One more question")).status_code == 201
    assert await count_rows(db) == (2, 4)


async def test_double_click_sending_twice_at_once_stores_one(client: httpx.AsyncClient, db: Database) -> None:
    token = await form_token(client)
    results = await asyncio.gather(*(
        client.post("/api/inquiries", json=valid_fields(form_token=token)) for _ in range(4)))
    assert {r.status_code for r in results} == {201}
    assert all(RECEIPT.match(r.json()["id"]) for r in results)
    assert await count_rows(db) == (1, 2)


async def test_plain_html_form_without_token_gets_a_confirm_step(client: httpx.AsyncClient, db: Database) -> None:
    """The copy-paste snippet on the blog cannot carry our token: the visitor lands on our form,
    filled in, presses Send once more, and only then is anything stored."""
    fields = valid_fields()
    r = await client.post("/contact", data=fields)
    assert r.status_code == 200
    assert "Almost done" in r.text and 'value="Ana Souza"' in r.text
    assert 'name="utm_campaign" value="spring"' in r.text
    assert await count_rows(db) == (0, 0)
    r = await client.post("/contact", data={**fields, "form_token": token_in(r.text)})
    assert r.status_code == 303 and len(await stored_inquiries(db)) == 1
