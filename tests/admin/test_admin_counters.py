"""The dashboard's growth chart (confirmed and unsubscribed per UTC day) and the inquiry figures
(the dashboard's "All inquiries by status", the inquiry list's count) come from counters the
triggers keep (migration 0014k_admincounts); after every real action they must equal what the
rows themselves say. Counts of a search or a filter stop at a cap and say "more than"; a search
for a domain finds the addresses at that domain through an index."""

from __future__ import annotations

import datetime as dt
import re

import httpx
from sqlalchemy import delete, func, select

from service.admin.audit import Actor
from service.db import utcnow
from service.inquiries.actions import record_inquiry_search
from service.inquiries.counts import fold_inquiry_counts
from service.inquiries.models import INQUIRY_STATUSES, Inquiry
from service.inquiries.queries import InquiryFilter, count_inquiries
from service.newsletter.counts import fold_subscriber_days
from service.newsletter.models import Subscriber
from tests.conftest import Database
from tests.factories import (
    add_inquiries,
    add_subscriber,
    client_with,
    confirmed_subscriber,
    csrf,
    inquiry_row,
    link_in,
    post_json,
    set_fields,
    signup,
    stored_inquiries,
    subscriber,
    token_in,
)
from tests.smtp import SmtpServer

DAY_ROW = re.compile(r"<tr><td>(\d{4}-\d\d-\d\d)</td><td>(\d+)</td><td>(\d+)</td></tr>")


async def _growth_shown(admin_client: httpx.AsyncClient) -> dict[str, tuple[int, int]]:
    page = (await admin_client.get("/admin/")).text
    return {day: (int(c), int(u)) for day, c, u in DAY_ROW.findall(page)}


async def _growth_counted(db: Database) -> dict[str, tuple[int, int]]:
    """Per UTC day of the last 90, from the subscribers themselves."""
    start = (utcnow() - dt.timedelta(days=89)).date()
    async with db.sessions() as session:
        rows = (await session.execute(select(Subscriber.confirmed_at, Subscriber.unsubscribed_at))).all()
    days: dict[str, list[int]] = {}
    for confirmed, unsubscribed in rows:
        for n, stamp in enumerate((confirmed, unsubscribed)):
            if stamp is not None and start <= stamp.astimezone(dt.UTC).date() <= utcnow().date():
                days.setdefault(stamp.astimezone(dt.UTC).date().isoformat(), [0, 0])[n] += 1
    return {day: (c, u) for day, (c, u) in days.items()}


async def _check_growth(admin_client: httpx.AsyncClient, db: Database) -> dict[str, tuple[int, int]]:
    shown = await _growth_shown(admin_client)
    assert shown == await _growth_counted(db)
    return shown


async def test_growth_chart_follows_every_real_action(admin_client: httpx.AsyncClient, client: httpx.AsyncClient,
                                                       db: Database, smtp: SmtpServer) -> None:
    today = utcnow().date()
    assert await _check_growth(admin_client, db) == {}
    await signup(client, "pending@example.org")
    assert await _check_growth(admin_client, db) == {}  # pending: neither confirmed nor unsubscribed
    ana = await confirmed_subscriber(client, db, smtp, "ana@example.org")
    await confirmed_subscriber(client, db, smtp, "bo@example.org")
    assert await _check_growth(admin_client, db) == {today.isoformat(): (2, 0)}

    welcome = [m for m in smtp.received if m.recipients == ["ana@example.org"]][-1]
    r = await client.post(link_in(welcome.message, "/unsubscribe/"), data={"List-Unsubscribe": "One-Click"})
    assert r.status_code in (200, 303), r.text
    assert (await _check_growth(admin_client, db))[today.isoformat()][1] == 1

    # A manual fix moves a confirmation to 23:30 UTC ten days ago: it moves to that UTC day.
    ten_days_ago = dt.datetime.combine(today - dt.timedelta(days=10), dt.time(23, 30), dt.UTC)
    await set_fields(db, "bo@example.org", confirmed_at=ten_days_ago)
    shown = await _check_growth(admin_client, db)
    assert shown[(today - dt.timedelta(days=10)).isoformat()] == (1, 0)

    token = await csrf(admin_client)
    recent = (today - dt.timedelta(days=3)).isoformat()
    data = (f"email,name,status,signup_at\nnew1@example.org,New,confirmed,{recent}\n"
            f"new2@example.org,,pending,\nold@example.org,,confirmed,2020-01-01\n").encode()
    check = await admin_client.post("/admin/subscribers/import", data={"csrf_token": token, "step": "check"},
                                    files={"file": ("list.csv", data, "text/csv")})
    apply = check.text.split('name="token" value="')[1].split('"')[0]
    r = await admin_client.post("/admin/subscribers/import",
                                data={"csrf_token": token, "step": "apply", "token": apply},
                                files={"file": ("list.csv", data, "text/csv")})
    assert r.status_code == 200 and "3 were added" in r.text
    await _check_growth(admin_client, db)

    async with db.sessions.begin() as session:  # the worker's fold keeps every sum
        assert await fold_subscriber_days(session) > 0
    await _check_growth(admin_client, db)
    async with db.sessions.begin() as session:
        assert await fold_subscriber_days(session) == 0  # nothing left to fold

    page = await admin_client.get(f"/admin/subscribers/{ana.id}/erase")
    r = await admin_client.post(f"/admin/subscribers/{ana.id}/erase",
                                data={"csrf_token": token_in(page.text), "confirm_email": "ana@example.org"})
    assert r.status_code == 303 and await subscriber(db, "ana@example.org") is None
    assert (await _check_growth(admin_client, db)).get(today.isoformat(), (0, 0))[1] == 0


async def _inquiries_shown(admin_client: httpx.AsyncClient) -> dict[str, int]:
    """Per status, what the dashboard shows, each checked against the inquiry list's own count."""
    page = (await admin_client.get("/admin/")).text
    tile = page.split('id="t-open"')[1].split("</section>")[0]
    shown = {s: int(n) for s, n in re.findall(r'href="/admin/inquiries\?status=(\w+)">\w+</a>: (\d+)', tile)}
    for status, n in shown.items():
        listed = (await admin_client.get(f"/admin/inquiries?status={status}")).text
        assert f'role="status">{n:,} {"inquiry" if n == 1 else "inquiries"}</p>' in listed, (status, n)
    everyone = sum(shown.values())
    listed = (await admin_client.get("/admin/inquiries")).text
    assert f'role="status">{everyone:,} {"inquiry" if everyone == 1 else "inquiries"}</p>' in listed
    return shown


async def _inquiries_counted(db: Database) -> dict[str, int]:
    async with db.sessions() as session:
        found = dict((await session.execute(select(Inquiry.status, func.count()).group_by(Inquiry.status))).all())
    return {s: int(found.get(s, 0)) for s in INQUIRY_STATUSES}


async def _held(admin_client: httpx.AsyncClient) -> int:
    listed = (await admin_client.get("/admin/inquiries?status=held")).text
    return int(re.search(r'role="status">(\d+) inquir', listed).group(1))  # type: ignore[union-attr]


async def test_inquiry_figures_follow_every_real_action(admin_client: httpx.AsyncClient, client: httpx.AsyncClient,
                                                        db: Database) -> None:
    assert await _inquiries_shown(admin_client) == await _inquiries_counted(db) == dict.fromkeys(INQUIRY_STATUSES, 0)
    assert (await post_json(client)).status_code == 201
    await add_inquiries(db, [inquiry_row(i, status=s) for i, s in enumerate(("new", "closed", "spam"), 1)])
    assert await _inquiries_shown(admin_client) == await _inquiries_counted(db)

    first = (await stored_inquiries(db))[0].id
    r = await admin_client.post(f"/admin/inquiries/{first}/status",
                                data={"status": "qualified", "csrf_token": await csrf(admin_client)})
    assert r.status_code == 303
    shown = await _inquiries_shown(admin_client)
    assert shown == await _inquiries_counted(db) and shown["qualified"] == 1

    async with client_with(db, form_min_seconds=3.0) as quick:  # sent too fast: held
        assert (await post_json(quick, name="Quick Finger")).status_code == 201
    assert await _held(admin_client) == 1
    assert await _inquiries_shown(admin_client) == await _inquiries_counted(db)  # held are not in these
    (held,) = [i.id for i in await stored_inquiries(db) if i.status == "held"]
    r = await admin_client.post(f"/admin/inquiries/{held}/release", data={"csrf_token": await csrf(admin_client)})
    assert r.status_code == 303
    assert await _held(admin_client) == 0
    assert (await _inquiries_shown(admin_client))["new"] == (await _inquiries_counted(db))["new"] == 2

    async with db.sessions.begin() as session:  # a manual fix, and the worker's fold
        await session.execute(delete(Inquiry).where(Inquiry.status == "spam"))
        assert await fold_inquiry_counts(session) > 0
    shown = await _inquiries_shown(admin_client)
    assert shown == await _inquiries_counted(db) and shown["spam"] == 0
    async with db.sessions.begin() as session:
        assert await fold_inquiry_counts(session) == 0


async def test_inquiry_search_counts_stop_at_the_cap_and_say_so(admin_client: httpx.AsyncClient,
                                                               db: Database) -> None:
    await add_inquiries(db, [inquiry_row(i, message="ketamine question", topic="PTSD") for i in range(3)])
    async with db.sessions() as session:
        assert await count_inquiries(session, flt=InquiryFilter(q="ketamine"), cap=2) == (2, True)
        assert await count_inquiries(session, flt=InquiryFilter(topic="PTSD"), cap=3) == (3, False)
        assert await count_inquiries(session, flt=InquiryFilter(status="new"), cap=1) == (3, False)  # counters
    r = await admin_client.get("/admin/inquiries?q=ketamine")
    assert 'role="status">3 inquiries</p>' in r.text and "Export 3 as CSV" in r.text

    async with db.sessions.begin() as session:  # what a search over the cap records
        await record_inquiry_search(session, actor=Actor.cli(), flt=InquiryFilter(q="ketamine"),
                                    first_page=True, matched=(1_000, True))
    audit = (await admin_client.get("/admin/audit")).text
    assert "matched: 1000" in audit and "and more than that: yes" in audit


async def test_a_search_for_a_domain_finds_the_addresses_at_that_domain(admin_client: httpx.AsyncClient,
                                                                       db: Database) -> None:
    for email in ("a@example.org", "B@Example.ORG", "c@mail.example.org", "d@example.org.uk", "e@notexample.org",
                  "example.org@other.net", "f@other.net"):
        await add_subscriber(db, email)
    await add_subscriber(db, "g@shop.test", name="Shop at @example.org")
    await add_subscriber(db, "john.doe@other.net")

    async def found(q: str) -> list[str]:
        r = await admin_client.get("/admin/subscribers", params={"q": q})
        emails = sorted(set(re.findall(r"[\w.]+@[\w.]+", r.text)) - {"admin@clinic.test"})
        assert f'role="status">{len(emails)} subscriber{"" if len(emails) == 1 else "s"}</p>' in r.text, q
        return emails

    # "@" first: the addresses at exactly that domain, any case, or a name with the text
    assert await found("@EXAMPLE.org") == ["B@Example.ORG", "a@example.org", "g@shop.test"]
    # without it, a substring of the address or the name, as any other search
    assert await found("example.org") == ["B@Example.ORG", "a@example.org", "c@mail.example.org",
                                          "d@example.org.uk", "e@notexample.org", "example.org@other.net",
                                          "g@shop.test"]
    assert await found("john.doe") == ["john.doe@other.net"]  # a dot in the local part is no domain
