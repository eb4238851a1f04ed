"""The pages that end a visitor's journey (inquiry sent, signup sent, subscribed, unsubscribed)
lead back to the blog when BLOG_URL is set, and show no such link when it is not."""

from __future__ import annotations

import httpx
import pytest

from service.settings import Settings, SettingsError
from tests.conftest import Database
from tests.factories import client_with, deliver, link_in, post_form, signup
from tests.smtp import SmtpServer

BLOG = "https://blog.clinic.test/"
LINK = f'<a href="{BLOG}">Back to the Tidings blog</a>'


async def _end_pages(client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> dict[str, str]:
    pages = {}
    sent = await post_form(client)
    assert sent.status_code == 303
    pages["inquiry thanks"] = (await client.get(sent.headers["location"])).text
    r = await signup(client, "end@example.org")
    assert r.status_code == 303
    pages["signup thanks"] = (await client.get(r.headers["location"])).text
    await deliver(db, smtp)
    confirm = link_in(smtp.last_to("end@example.org"), "/confirm/")
    pages["subscribed"] = (await client.post(confirm)).text
    assert "You are subscribed" in pages["subscribed"]
    await deliver(db, smtp)
    unsubscribe = link_in(smtp.last_to("end@example.org"), "/unsubscribe/")
    pages["unsubscribed"] = (await client.post(unsubscribe, data={"from_page": "1"})).text
    return pages


async def test_end_pages_link_back_to_the_blog(db: Database, smtp: SmtpServer) -> None:
    async with client_with(db, blog_url=BLOG) as client:
        pages = await _end_pages(client, db, smtp)
    for name, html in pages.items():
        assert LINK in html, name


async def test_without_blog_url_the_end_pages_have_no_blog_link(db: Database, smtp: SmtpServer) -> None:
    async with client_with(db) as client:
        pages = await _end_pages(client, db, smtp)
    for name, html in pages.items():
        assert "Back to the" not in html and "back-to-blog" not in html, name


async def test_embedded_signup_thanks_has_no_blog_link(db: Database) -> None:
    async with client_with(db, blog_url=BLOG) as client:
        html = (await client.get("/subscribe/thanks?embed=1")).text
    assert "Please check your inbox" in html and "Back to the" not in html


@pytest.mark.parametrize("value", ["javascript:alert(1)", "blog.clinic.test", "ftp://blog.clinic.test/",
                                   "https://blog clinic.test/", "https://"])
def test_blog_url_must_be_an_http_url(value: str) -> None:
    env = {"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": "k" * 40, "BLOG_URL": value}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env, env_file=None)
    assert str(info.value).startswith("BLOG_URL: expected an http(s) URL")


def test_blog_url_is_read_and_unset_by_default() -> None:
    env = {"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": "k" * 40}
    assert Settings.from_env(env, env_file=None).blog_url is None
    assert Settings.from_env({**env, "BLOG_URL": BLOG}, env_file=None).blog_url == BLOG
