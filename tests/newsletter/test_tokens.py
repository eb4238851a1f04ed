"""Every way a confirmation or unsubscribe link can be wrong gets a clear page and changes
nothing; a link signed with a rotated-out key (in SECRET_KEY_FALLBACKS) still works."""

from __future__ import annotations

import time

import httpx
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from itsdangerous import TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer

from service.app import create_app
from service.newsletter.tokens import confirm_token, unsubscribe_token
from service.settings import Settings
from service.tokens import Tokens
from tests.conftest import TEST_SECRET, Database
from tests.factories import deliver, link_in, signup, subscriber
from tests.smtp import SmtpServer


async def _pending(client: httpx.AsyncClient, db: Database, smtp: SmtpServer, email: str) -> str:
    await signup(client, email)
    await deliver(db, smtp)
    return link_in(smtp.received[-1].message, "/confirm/")


async def test_tampered_confirm_link_is_refused_with_a_way_to_get_a_new_one(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    path = await _pending(client, db, smtp, "tamper@example.org")
    bad = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    for method in ("GET", "POST"):
        r = await client.request(method, bad)
        assert r.status_code == 400 and "not valid" in r.text
        assert 'action="/subscribe/resend"' in r.text
    assert (await subscriber(db, "tamper@example.org")).status == "pending"  # type: ignore[union-attr]


async def test_expired_confirm_link_is_gone_and_confirms_nothing(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    await _pending(client, db, smtp, "late@example.org")
    sub = await subscriber(db, "late@example.org")
    assert sub is not None

    class EightDaysAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 8 * 24 * 3600

    old = URLSafeTimedSerializer(TEST_SECRET, salt="tidings.confirm", signer=EightDaysAgo).dumps(sub.id)
    for method in ("GET", "POST"):
        r = await client.request(method, f"/confirm/{old}")
        assert r.status_code == 410 and "expired" in r.text and 'action="/subscribe/resend"' in r.text
    assert (await subscriber(db, "late@example.org")).status == "pending"  # type: ignore[union-attr]


async def test_token_of_another_purpose_does_not_confirm(client: httpx.AsyncClient, db: Database, smtp: SmtpServer,
                                                         settings: Settings) -> None:
    await _pending(client, db, smtp, "purpose@example.org")
    sub = await subscriber(db, "purpose@example.org")
    assert sub is not None
    tokens = Tokens(settings)
    for token in (unsubscribe_token(tokens, sub.id), tokens.dumps("form", sub.id)):
        r = await client.post(f"/confirm/{token}")
        assert r.status_code == 400
    r = await client.get(f"/unsubscribe/{confirm_token(tokens, sub.id, sub.signup_at)}")
    assert r.status_code == 400 and "not valid" in r.text
    assert (await subscriber(db, "purpose@example.org")).status == "pending"  # type: ignore[union-attr]


async def test_confirm_link_is_single_use(client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    path = await _pending(client, db, smtp, "once@example.org")
    assert (await client.post(path)).status_code == 200
    await deliver(db, smtp)
    before = len(smtp.received)
    for method in ("GET", "POST"):  # a second click: calm, no error, nothing sent again
        r = await client.request(method, path)
        assert r.status_code == 200 and "<h1>You are already subscribed</h1>" in r.text
        assert "already been used" not in r.text and 'role="alert"' not in r.text
        assert "choose your topics or unsubscribe" in r.text
    assert await deliver(db, smtp) == 0 and len(smtp.received) == before  # no second welcome


async def test_confirm_link_of_an_unsubscribed_address_no_longer_counts(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    path = await _pending(client, db, smtp, "left@example.org")
    sub = await subscriber(db, "left@example.org")
    assert sub is not None
    await client.post(f"/unsubscribe/{unsubscribe_token(Tokens(settings), sub.id)}",
                      data={"List-Unsubscribe": "One-Click"})
    r = await client.post(path)
    assert r.status_code == 410
    assert (await subscriber(db, "left@example.org")).status == "unsubscribed"  # type: ignore[union-attr]


async def test_links_signed_with_a_rotated_key_still_work(db: Database, smtp: SmtpServer,
                                                          settings: Settings) -> None:
    old_settings = settings
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(old_settings, sessions=db.sessions),
                                                               client=("203.0.113.7", 1)),
                                 base_url="http://testserver") as old_client:
        path = await _pending(old_client, db, smtp, "rotate@example.org")
    sub = await subscriber(db, "rotate@example.org")
    assert sub is not None
    old_unsubscribe = unsubscribe_token(Tokens(old_settings), sub.id)

    new_key = "a-brand-new-secret-key-0123456789-abcdefghijklmnop"
    rotated = settings.with_(secret_key=new_key, secret_key_fallbacks=(TEST_SECRET,))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rotated, sessions=db.sessions),
                                                               client=("203.0.113.7", 1)),
                                 base_url="http://testserver") as client:
        assert (await client.post(path)).status_code == 200
        assert (await subscriber(db, "rotate@example.org")).status == "confirmed"  # type: ignore[union-attr]
        page = await client.get(f"/unsubscribe/{old_unsubscribe}")
        assert page.status_code == 200 and "r•••e@example.org" in page.text
        # without the fallback, the old links are refused
        bare = settings.with_(secret_key=new_key)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(bare, sessions=db.sessions)),
                                 base_url="http://testserver") as client:
        assert (await client.get(f"/unsubscribe/{old_unsubscribe}")).status_code == 400


async def _unsubscribe(client: httpx.AsyncClient, settings: Settings, subscriber_id: int) -> None:
    r = await client.post(f"/unsubscribe/{unsubscribe_token(Tokens(settings), subscriber_id)}",
                          data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200


async def test_a_used_link_does_not_confirm_a_later_signup_after_unsubscribe(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    first = await _pending(client, db, smtp, "again@example.org")
    assert (await client.post(first)).status_code == 200
    await deliver(db, smtp)  # the welcome, so that the next email received is the new confirmation
    sub = await subscriber(db, "again@example.org")
    assert sub is not None and sub.status == "confirmed"
    await _unsubscribe(client, settings, sub.id)
    second = await _pending(client, db, smtp, "again@example.org")  # a new signup: pending again
    assert second != first
    await deliver(db, smtp)
    before = len(smtp.received)
    for method in ("GET", "POST"):
        r = await client.request(method, first)
        assert r.status_code == 410 and "no longer valid" in r.text and 'action="/subscribe/resend"' in r.text
    row = await subscriber(db, "again@example.org")
    assert row is not None and row.status == "pending" and row.confirm_ip == sub.confirm_ip
    assert await deliver(db, smtp) == 0 and len(smtp.received) == before  # no welcome
    assert (await client.post(second)).status_code == 200  # the new signup's own link works
    assert (await subscriber(db, "again@example.org")).status == "confirmed"  # type: ignore[union-attr]


async def test_an_unused_link_of_an_earlier_signup_confirms_nothing(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    first = await _pending(client, db, smtp, "twice@example.org")
    sub = await subscriber(db, "twice@example.org")
    assert sub is not None
    await _unsubscribe(client, settings, sub.id)
    await signup(client, "twice@example.org")
    r = await client.post(first)
    assert r.status_code == 410 and "no longer valid" in r.text
    assert (await subscriber(db, "twice@example.org")).status == "pending"  # type: ignore[union-attr]


async def test_a_link_bound_to_no_signup_confirms_nothing(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    """A token that names only the subscriber (as links did before they were bound to a signup)."""
    await _pending(client, db, smtp, "bare@example.org")
    sub = await subscriber(db, "bare@example.org")
    assert sub is not None
    for payload in (sub.id, [sub.id, 1], [sub.id, "x"]):
        r = await client.post(f"/confirm/{Tokens(settings).dumps('confirm', payload)}")
        assert r.status_code in (400, 410)
    assert (await subscriber(db, "bare@example.org")).status == "pending"  # type: ignore[union-attr]


async def test_imported_pending_rows_without_a_signup_date_confirm_by_their_link(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    import io

    from service.newsletter.importer import import_subscribers

    async with db.sessions.begin() as session:
        report = await import_subscribers(session, io.BytesIO(b"email\nold@example.org\n"), settings=settings,
                                          tokens=Tokens(settings), send_confirmation=True)
    assert report.confirmations_queued == 1
    await deliver(db, smtp)
    assert (await client.post(link_in(smtp.received[-1].message, "/confirm/"))).status_code == 200
    assert (await subscriber(db, "old@example.org")).status == "confirmed"  # type: ignore[union-attr]


@given(st.integers(min_value=0, max_value=10**12) | st.sampled_from([0, 1, 10**9, 2**31 - 1, 11111111111, 10**11 - 1,
                                                                     10**11, 10**12]))
@examples(max_examples=300)
def test_unsubscribe_tokens_are_itsdangerous_tokens_and_verify(number: int) -> None:
    """The unsubscribe links of a digest are signed without itsdangerous's per-token set-up
    (`service.tokens._IntTokens`): the very strings it makes, so links sent before and after read alike."""
    older = "an-older-secret-key-0123456789-abcdefghij"
    tokens = Tokens(Settings(secret_key=TEST_SECRET, secret_key_fallbacks=[older]))
    reference = URLSafeSerializer([*tokens._keys], salt="tidings.unsubscribe")
    token = unsubscribe_token(tokens, number)
    assert token == reference.dumps(number)
    assert tokens.loads_forever("unsubscribe", token) == number
