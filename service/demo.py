"""`tidings demo`: a newcomer's first look at Tidings.

Into an EMPTY database it loads, in one transaction and through the domains' own functions:
the sample blog's five articles (the articles importer), a few hundred example subscribers
(the newsletter's CSV importer, consent evidence marked as demo data), a few example inquiries
(the inquiries domain's insert, with a status history), one draft digest of the articles (the
campaigns domain) and one admin account (the admin domain). Nothing is mailed.

Demo subscribers carry `signup_source = "demo"`: that is how a second run recognises a loaded
demo and changes nothing. A database holding any other data is refused.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.command import cli_name
from service.db import Sessions, transaction, utcnow
from service.settings import Settings

if TYPE_CHECKING:
    from service.admin.models import StaffUser

DEMO_SOURCE = "demo"
DEMO_CONSENT = ("Demo data loaded by `tidings demo`: an invented person, not a real signup; "
                "no consent was given and none is needed.")
SAMPLE_POSTS = Path(__file__).parent / "demo_data" / "sample-blog" / "posts"
SUBSCRIBERS = {"confirmed": 276, "pending": 14, "unsubscribed": 10}
DEFAULT_ADMIN_EMAIL = "admin@example.org"

_FIRST = ("Ava", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemal", "Lena",
          "Mateo", "Nora", "Oliver", "Priya", "Quinn", "Rosa", "Samir", "Tessa", "Umar", "Vera", "Wen", "Ximena",
          "Yusuf", "Zoe", "Amara", "Bruno", "Carla", "Dmitri")
_LAST = ("Andersen", "Baker", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen", "Khan",
         "Lopez", "Müller", "Nowak", "Okafor", "Petrov", "Quinlan", "Rossi", "Silva", "Tanaka", "Ueda", "Varga",
         "Walsh", "Xu", "Yilmaz", "Zimmermann", "Novak", "Moreau", "Haddad", "O'Brien")
_DOMAINS = ("example.org", "example.com", "example.net")

# (name, email, phone, topic index or None for the last topic, contact method, message, days ago,
#  source page, utm_source, status history, note). Invented people, practical questions, no health details.
_INQUIRIES = (
    ("Maya Fischer", "maya.fischer@example.org", "", 0, "email",
     "Hello, I read your article on how ketamine therapy works. Could you tell me how the first consultation "
     "works and whether you have appointments after 5 pm? Thank you.",
     0.2, "/posts/science-of-ketamine-therapy/", "", (), ""),
    ("Tom Okafor", "tom.okafor@example.com", "+44 20 7946 0958", 1, "phone",
     "My GP mentioned your clinic. I would like to know what a first appointment involves and how long it "
     "takes. A call on a weekday morning suits me best.",
     1.1, "/posts/therapeutic-benefits-of-ketamine/", "newsletter", ("contacted",),
     "Called back, left a voicemail. Try again on Thursday morning."),
    ("Sofia Rossi", "sofia.rossi@example.net", "", 2, "either",
     "Do you offer an information evening for family members? My partner and I would like to come together "
     "and ask a few questions before deciding anything.",
     2.4, "/posts/the-high-misconception/", "", ("contacted", "qualified"),
     "Invited both to the information evening on the first Monday of the month."),
    ("Jonas Berg", "jonas.berg@example.org", "", None, "email",
     "Is there a waiting list at the moment, and can my own therapist refer me? Email is best for me.",
     3.0, "/posts/does-ketamine-therapy-get-you-high/", "search", (), ""),
    ("Amira Haddad", "amira.haddad@example.com", "", 3, "email",
     "Could you send me an overview of the costs, and do you know whether insurers usually cover part of it?",
     4.6, "/posts/can-ketamine-therapy-induce-a-high/", "", ("contacted", "closed"),
     "Sent the price list and the insurance information sheet. She will get back to us."),
    ("Lucas Moreau", "lucas.moreau@example.net", "+33 1 23 45 67 89", None, "either",
     "Where exactly is the clinic, and is there parking nearby? I would like to visit before booking.",
     5.8, "/contact", "", (), ""),
)


class DemoRefused(Exception):
    """The database holds data that is not the demo's (one line)."""


@dataclass
class DemoResult:
    loaded: bool  # False: the demo was already loaded and nothing changed
    admin_email: str = ""
    password: str | None = None  # generated here (print it once); None when the caller chose it
    articles: int = 0
    subscribers: dict[str, int] = field(default_factory=dict)
    inquiries: int = 0
    campaign_id: int | None = None


async def existing_data(session: AsyncSession) -> dict[str, int]:
    """How many rows of each kind of user data the database holds (zero counts left out)."""
    from service.admin.models import StaffUser
    from service.articles.models import Article
    from service.campaigns.models import Campaign
    from service.inquiries.models import Inquiry
    from service.newsletter.models import Subscriber

    kinds = {"subscribers": Subscriber, "inquiries": Inquiry, "articles": Article, "campaigns": Campaign,
             "staff accounts": StaffUser}
    counts = {name: int(await session.scalar(select(func.count()).select_from(model)) or 0)
              for name, model in kinds.items()}
    return {name: n for name, n in counts.items() if n}


async def demo_admin_email(session: AsyncSession) -> str | None:
    """The admin account of a loaded demo, or None when no demo was loaded."""
    from service.admin.models import StaffUser
    from service.newsletter.models import Subscriber

    if await session.scalar(select(Subscriber.id).where(Subscriber.signup_source == DEMO_SOURCE).limit(1)) is None:
        return None
    email = await session.scalar(select(StaffUser.email).where(StaffUser.role == "admin").order_by(StaffUser.id))
    return email or ""


async def load_demo(sessions: Sessions, settings: Settings, *, admin_email: str = DEFAULT_ADMIN_EMAIL,
                    password: str | None = None, now: dt.datetime | None = None) -> DemoResult:
    """Load the demo into an empty database; change nothing when it is already loaded; DemoRefused
    when the database holds other data. ValueError (one line) for a bad admin email or password."""
    now = now or utcnow()
    async with transaction(sessions) as session:
        loaded_admin = await demo_admin_email(session)
        if loaded_admin is not None:
            return DemoResult(loaded=False, admin_email=loaded_admin)
        found = await existing_data(session)
        if found:
            what = ", ".join(f"{name}: {n}" for name, n in found.items())
            raise DemoRefused(f"the database already holds data ({what}): `tidings demo` loads only into an "
                              "empty database; set DATABASE_URL to a new one")
        result = DemoResult(loaded=True)
        admin_id = (await _create_admin(session, admin_email, password, result)).id  # before expire_all()
        result.articles = await _load_articles(session, settings)
        result.subscribers = await _load_subscribers(session, settings, now)
        result.inquiries = await _load_inquiries(session, settings, now, admin_id)
        result.campaign_id = await _create_digest(session, settings, now)
        return result


async def _create_admin(session: AsyncSession, email: str, password: str | None, result: DemoResult) -> StaffUser:
    from service.admin.audit import record_audit
    from service.admin.auth import create_staff_user

    if password is None:
        password = result.password = secrets.token_urlsafe(15)
    user = await create_staff_user(session, email=email, role="admin", name="Demo admin", password=password)
    await record_audit(session, action="user_invite", target_type="staff_user", target_id=user.id, ip="cli",
                       detail={"email": user.email, "role": user.role, "via": "demo"})
    result.admin_email = user.email
    return user


async def _load_articles(session: AsyncSession, settings: Settings) -> int:
    from service.articles.ingest import load_sources
    from service.articles.queries import save_articles

    parsed = await load_sources([str(SAMPLE_POSTS)])
    saved = await save_articles(session, articles=parsed, topics=settings.topics)
    return saved.created


def subscribers_csv(settings: Settings, now: dt.datetime) -> bytes:
    """The demo subscribers as a CSV file for the newsletter importer (same content every run,
    dates relative to `now`: signups spread over the last 90 days, more of them lately)."""
    from service.csvfile import CsvWriter

    rng = random.Random(20240702)  # noqa: S311 - sample data, not security
    people = [(f, la) for f in _FIRST for la in _LAST]
    rng.shuffle(people)
    statuses = [s for s, n in SUBSCRIBERS.items() for _ in range(n)]
    rng.shuffle(statuses)
    out = io.StringIO()
    writer = CsvWriter(out)
    writer.writerow(["email", "name", "topics", "status", "signup_at", "signup_ip", "signup_user_agent",
                     "signup_source", "consent_text", "confirmed_at", "confirm_ip", "created_at",
                     "status_changed_at", "unsubscribed_at"])
    for i, ((first, last), status) in enumerate(zip(people, statuses, strict=False)):
        local = f"{first}.{last}".lower().replace("'", "").replace("ü", "ue")
        email = f"{local}@{_DOMAINS[i % len(_DOMAINS)]}"
        topics = [] if rng.random() < 0.3 else rng.sample(list(settings.topics), rng.randint(1, 3))
        signup = now - dt.timedelta(days=90 * rng.random() ** 1.5, minutes=rng.randint(1, 600))
        confirmed = min(now, signup + dt.timedelta(minutes=rng.randint(2, 180))) if status != "pending" else None
        left = confirmed + (now - confirmed) * rng.uniform(0.3, 0.9) if status == "unsubscribed" and confirmed else None
        ip = f"192.0.2.{rng.randint(1, 254)}"  # TEST-NET-1: documentation addresses
        writer.writerow([
            email, f"{first} {last}", ";".join(topics), status, _iso(signup), ip, "Mozilla/5.0 (demo data)",
            DEMO_SOURCE, DEMO_CONSENT, _iso(confirmed), ip if confirmed else "", _iso(signup),
            _iso(left or confirmed or signup), _iso(left),
        ])
    return out.getvalue().encode()


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat() if value else ""


async def _load_subscribers(session: AsyncSession, settings: Settings, now: dt.datetime) -> dict[str, int]:
    from service.newsletter.importer import import_subscribers
    from service.tokens import Tokens

    report = await import_subscribers(session, io.BytesIO(subscribers_csv(settings, now)), settings=settings,
                                      tokens=Tokens(settings), source=DEMO_SOURCE)
    if report.error_count or report.added != sum(SUBSCRIBERS.values()):
        raise RuntimeError("demo subscribers did not import: " + "; ".join(report.summary_lines()))
    return dict(SUBSCRIBERS)


async def _load_inquiries(session: AsyncSession, settings: Settings, now: dt.datetime, staff_id: int) -> int:
    from dataclasses import asdict

    from service.inquiries.flows import Attribution, InquiryInput, dedupe_key
    from service.inquiries.queries import add_inquiry_note, change_inquiry_status, insert_inquiry

    topics = settings.topics
    for name, email, phone, topic, method, message, days, page, utm, history, note in _INQUIRIES:
        created = now - dt.timedelta(days=days)
        inquiry = InquiryInput(name=name, email=email, phone=phone, topic=topics[-1 if topic is None else topic],
                               contact_method=method, message=message, consent=True, newsletter_optin=False)
        attribution = Attribution(source_page=f"https://blog.example.com{page}", utm_source=utm,
                                  utm_medium="email" if utm == "newsletter" else "", ip="192.0.2.10",
                                  user_agent="Mozilla/5.0 (demo data)")
        values = {**asdict(inquiry), **asdict(attribution), "dedupe_key": dedupe_key(email, message),
                  "created_at": created}
        stored = await insert_inquiry(session, values=values)
        assert stored is not None  # no form token, no twin check: always stored
        inquiry_id = stored.id
        for step, status in enumerate(history, start=1):
            await change_inquiry_status(session, inquiry_id=inquiry_id, to_status=status, staff_id=staff_id,
                                        now=created + dt.timedelta(hours=3 * step))
        if note:
            await add_inquiry_note(session, inquiry_id=inquiry_id, note=note, staff_id=staff_id,
                                   now=created + dt.timedelta(hours=3 * len(history), minutes=5))
    return len(_INQUIRIES)


async def _create_digest(session: AsyncSession, settings: Settings, now: dt.datetime) -> int:
    from service.campaigns.flows import create_digest

    campaign = await create_digest(
        session, settings, now=now,
        intro="Welcome to our digest: the articles from our blog, in one email. (A Tidings demo draft.)",
    )
    return campaign.id


def summary_lines(settings: Settings, result: DemoResult, *, serve_options: str = "") -> list[str]:
    """What `tidings demo` prints: what was loaded (or that nothing changed), where to look, the login.
    `settings.base_url` is BASE_URL, or (unset, on SQLite) the address `serve` with
    `serve_options` (its --host/--port, as given to `demo`) will derive and use."""
    base = settings.base_url
    if result.loaded:
        subs = ", ".join(f"{n} {status}" for status, n in result.subscribers.items())
        lines = [f"Demo loaded: {result.articles} articles, {sum(result.subscribers.values())} subscribers ({subs}), "
                 f"{result.inquiries} inquiries, 1 draft digest (campaign {result.campaign_id}), 1 admin account."]
    else:
        lines = ["The demo is already loaded: nothing changed."]
    run = cli_name()
    serve = ("./dev serve" if run == "./dev tidings" else "tidings serve") + serve_options
    where = ("" if settings.base_url_set or not settings.is_sqlite
             else f" (BASE_URL is not set, so these are where `{serve}` listens; for another port, run "
                  f"`{run} demo --port N` or set BASE_URL)")
    lines += [
        "",
        f"Start Tidings with `{serve}`, then open{where}:",
        f"  start page         {base}/",
        f"  contact form       {base}/contact",
        f"  newsletter signup  {base}/subscribe",
        f"  admin sign-in      {base}/admin/login",
        f"  mail outbox        {base}/admin/outbox"
        + ("   (mail stays here while SMTP_URL is unset)" if settings.uses_local_outbox else ""),
    ]
    if result.campaign_id is not None:
        lines.append(f"Preview the draft digest with `{run} campaign preview {result.campaign_id}`, "
                     f"send it with `{run} campaign send {result.campaign_id}`.")
    lines.append("")
    if result.password is not None:
        lines += [f"Sign in as {result.admin_email} with this password (shown only this once):",
                  f"  {result.password}"]
    elif result.loaded:
        lines.append(f"Sign in as {result.admin_email} with the password you gave.")
    else:
        lines.append(f"Sign in as {result.admin_email or 'the demo admin'} with the password printed when the "
                     "demo was loaded.")
    return lines
