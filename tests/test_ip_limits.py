"""Every per-IP limit (the inquiry form, the newsletter signup, the admin sign-in lock) counts an
IPv6 client by its /64 network, and an IPv4-mapped IPv6 address as its IPv4 address."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from service.admin.auth import IP_LIMIT, LOGIN_FAILED
from service.ratelimit import ip_limit_key
from service.settings import RateLimit
from tests.conftest import Database
from tests.factories import client_with, make_staff, new_client, post_form, post_json, sign_in, signup, stored_inquiries

ONE = RateLimit(1, 600)


@pytest.mark.parametrize(("ip", "key"), [
    ("2001:db8:0:0:1:2:3:4", "2001:db8::/64"), ("2001:DB8::ffff", "2001:db8::/64"),
    ("2001:db8:0:1::1", "2001:db8:0:1::/64"), ("::ffff:203.0.113.9", "203.0.113.9"),
    ("203.0.113.9", "203.0.113.9"), ("testclient", "testclient"),
])
def test_ip_limit_key(ip: str, key: str) -> None:
    assert ip_limit_key(ip) == key


async def test_one_ipv6_64_shares_the_inquiry_form_limit(db: Database) -> None:
    async with client_with(db, ip="2001:db8::1", form_rate_limit=ONE) as c:
        assert (await post_form(c, message="first")).status_code == 303
    async with client_with(db, ip="2001:db8::2:3", form_rate_limit=ONE) as c:
        r = await post_json(c, message="from the same /64")
        assert r.status_code == 429 and "Please wait a few minutes" in r.json()["error"]
    async with client_with(db, ip="2001:db8:0:1::1", form_rate_limit=ONE) as c:  # the next /64
        assert (await post_json(c, message="a neighbour")).status_code == 201
    assert [i.message for i in await stored_inquiries(db)] == ["first", "a neighbour"]


async def test_an_ipv4_mapped_address_shares_the_ipv4_limit(db: Database) -> None:
    async with client_with(db, ip="203.0.113.9", form_rate_limit=ONE) as c:
        assert (await post_form(c, message="first")).status_code == 303
    async with client_with(db, ip="::ffff:203.0.113.9", form_rate_limit=ONE) as c:
        assert (await post_form(c, message="second")).status_code == 429


async def test_the_64_is_counted_behind_a_trusted_proxy_too(db: Database) -> None:
    proxy = (ipaddress.ip_network("10.0.0.0/8"),)
    async with client_with(db, ip="10.0.0.2", trusted_proxies=proxy, form_rate_limit=ONE) as c:
        c.headers["x-forwarded-for"] = "2001:db8:aa::1"
        assert (await post_form(c, message="first")).status_code == 303
        c.headers["x-forwarded-for"] = "2001:db8:aa::ffff"
        assert (await post_form(c, message="second")).status_code == 429


async def test_one_ipv6_64_shares_the_newsletter_limit(db: Database) -> None:
    async with client_with(db, ip="2001:db8::1", form_rate_limit=ONE) as c:
        assert (await signup(c, "first@example.org")).status_code == 303
    async with client_with(db, ip="2001:db8::99", form_rate_limit=ONE) as c:
        r = await signup(c, "second@example.org")
        assert r.status_code == 429 and "Please wait a few minutes" in r.text


async def test_one_ipv6_64_shares_the_sign_in_lock(app: Any, db: Database) -> None:
    await make_staff(db)
    for i in range(IP_LIMIT.count):  # each guess from another address of the same /64
        async with new_client(app, ip=f"2001:db8::{i + 1:x}") as c:
            assert (await sign_in(c, email=f"guess{i}@clinic.test", password="guess guess guess")).status_code == 401
    async with new_client(app, ip="2001:db8::abcd") as c:
        blocked = await sign_in(c)  # right credentials, from the locked /64
        assert blocked.status_code == 401 and LOGIN_FAILED in blocked.text
    async with new_client(app, ip="2001:db8:0:1::1") as c:
        assert (await sign_in(c)).status_code == 303
