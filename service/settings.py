"""Settings: read once from the environment (and an optional `.env` file), then frozen.

Nothing else in Tidings reads `os.environ`. A bad value raises `SettingsError` whose message
is one line naming the variable and what was expected; the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from starlette.config import Config

from service.bounces.mailboxurl import MailboxConfig, MailboxUrlError, parse_mailbox_url
from service.i18n import N_, shipped_languages
from service.validation import safe_http_url

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./tidings.db"
DEFAULT_TOPICS = ("depression", "anxiety", "PTSD", "chronic pain", "OCD", "other")
PLACEHOLDER_SECRETS = {"secret", "changeme", "change-me", "change_me", "please-change-me", "dev", "test"}
MIN_SECRET_LENGTH = 32
DEFAULT_SNS_CERT_HOST_PATTERN = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class RateLimit:
    """`count` requests per `seconds`, per client IP."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}s"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str = ""
    secret_key_fallbacks: tuple[str, ...] = ()
    base_url: str = "http://localhost:8000"
    base_url_set: bool = False  # BASE_URL was given; if not, `tidings serve` on SQLite uses the address it binds
    smtp_url: str | None = None
    mail_from: str = "Tidings <tidings@localhost>"
    staff_inbox: str = "staff@localhost"
    allowed_origins: tuple[str, ...] = ()
    feed_url: str | None = None
    feed_poll_seconds: int = 900
    feed_fetch_deadline: float = 30.0
    send_rate: float = 20.0
    send_concurrency: int = 4
    send_yield: float = 0.5  # share of its speed campaign sending gives up while the web is busy (0 = none)
    worker_nice: int = 0  # `tidings worker` lowers its CPU priority by this much (os.nice; 0 = not; docs/digests.md)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    org_name: str = "Tidings"
    list_id: str = "newsletter.tidings.localhost"
    topics: tuple[str, ...] = DEFAULT_TOPICS
    # The defaults are in the catalogue (templates show them with `| catalogue`); a value set in
    # the environment is shown as written.
    contact_heading: str = N_("Let's get your project started!")
    contact_intro: str = N_(
        "Tell us a little about what you are looking for and we will get back to you within one "
        "working day."
    )
    max_body_bytes: int = 64 * 1024
    max_header_bytes: int = 16 * 1024
    form_min_seconds: float = 3.0
    form_max_age_seconds: int = 2 * 60 * 60
    form_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(10, 600))
    api_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(600, 60))  # per API token
    held_retention_days: int = 30
    held_warn_count: int = 200
    log_level: str = "info"
    dkim_private_key_file: str | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    reply_to: str | None = None  # None: STAFF_INBOX (see `reply_address`)
    outbox_max_age: int = 5 * 24 * 3600  # seconds a message keeps being retried through 4xx/outages
    # The envelope sender pattern with "{token}" (from RETURN_PATH or BOUNCE_DOMAIN); None: MAIL_FROM.
    return_path: str | None = None
    soft_bounce_limit: int = 3
    soft_bounce_days: int = 30
    smtp_helo_name: str | None = None  # None: the host of BASE_URL (see `helo_name`)
    allow_http_base_url: bool = False  # campaigns over SMTP need an https BASE_URL unless this is set
    org_postal_address: str = ""  # the default of the stored postal address (newsletter footers)
    # BOUNCE_MAILBOX_URL (+ BOUNCE_MAILBOX_DONE) read; None: no mailbox is polled. Its repr hides the password.
    bounce_mailbox: MailboxConfig | None = None
    bounce_mailbox_interval: int = 60

    # Provider webhooks (service/bounces/webhooks): each is off (404) until its credential is set.
    sns_topic_arns: tuple[str, ...] = ()  # SES through SNS: on when set; only these topics count
    sns_cert_host_pattern: str = DEFAULT_SNS_CERT_HOST_PATTERN
    sns_ca_file: str | None = None  # a PEM bundle trusted for the certificate and SubscribeURL fetches
    postmark_webhook_credentials: str | None = None  # "user:password" of the webhook URL's Basic auth
    mailgun_webhook_signing_key: str | None = None
    sendgrid_webhook_public_key: str | None = None  # base64 DER (as SendGrid shows it) or PEM
    webhook_secret: str | None = None  # the generic JSON webhook's HMAC key

    blog_url: str | None = None  # the blog's home page: the public end pages link back to it
    language: str = "en"  # the install's language (service/i18n.py): pages, and emails of who chose none
    # Defaults of the brand staff set under Settings (service.admin.brand holds the values in force).
    brand_accent_color: str = "#0b5d5b"
    brand_footer_text: str = ""
    brand_logo_url: str | None = None  # an https image shown until staff upload a logo
    # Insight (service/insight): digest links through /r/ counted in aggregate; utm tags on article links.
    click_counting: bool = True
    utm_tagging: bool = True
    # Outbound webhooks (service/webhooks): what endpoints may be, and how deliveries go.
    webhook_allow_http: bool = False  # plain http:// endpoints (else https only)
    webhook_allow_private: bool = False  # loopback, private, link-local, multicast... addresses
    webhook_timeout: float = 10.0  # seconds for one delivery: connect, send, answer
    webhook_concurrency: int = 16  # deliveries in flight (keep-alive connections) per endpoint

    @property
    def helo_name(self) -> str:
        """The name given in EHLO/LHLO: SMTP_HELO_NAME, else the host of BASE_URL (an IP address
        as an address literal, RFC 5321 4.1.3)."""
        return self.smtp_helo_name or helo_for_host(urlsplit(self.base_url).hostname or "localhost")

    @property
    def reply_address(self) -> str:
        """Where replies to mail that invites one go: REPLY_TO, else STAFF_INBOX."""
        return self.reply_to or self.staff_inbox
    # closed and spam inquiries are deleted this many days after their last change
    inquiry_retention_days: int = 365

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_local_outbox(self) -> bool:
        return self.smtp_url is None

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None for PostgreSQL or an in-memory database."""
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        path = path.split("?", 1)[0]
        if not path or path == ":memory:":
            return None
        return Path(path)

    def in_topic_order(self, topics: Iterable[str]) -> list[str]:
        """`topics` in the order TOPICS lists them (how every page and email shows them), any
        topic not configured (an article's own category) after them, alphabetically."""
        rank = {t: i for i, t in enumerate(self.topics)}
        return sorted(set(topics), key=lambda t: (rank.get(t, len(rank)), t.casefold()))

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and the CLI use it)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
        """Read every setting; raise SettingsError naming the first bad variable."""
        env = dict(os.environ if environ is None else environ)
        config = Config(env_file if env_file and Path(env_file).is_file() else None, environ=env)
        return _parse(config)


def _get(config: Config, name: str, default: str | None = None) -> str | None:
    value = config.get(name, default=default)
    if value is None:
        return None
    value = str(value).strip()
    return value or default


def _parse(config: Config) -> Settings:
    d = Settings()
    database_url = _database_url(_get(config, "DATABASE_URL", DEFAULT_DATABASE_URL) or DEFAULT_DATABASE_URL)
    base_url = _get(config, "BASE_URL", d.base_url) or d.base_url
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(f"BASE_URL: expected an http(s) URL such as https://news.example.org, got {base_url!r}")
    base_url = base_url.rstrip("/")

    smtp_url = _get(config, "SMTP_URL")
    if smtp_url is not None:
        _check_smtp_url(smtp_url)

    settings = Settings(
        database_url=database_url,
        base_url=base_url,
        base_url_set=_get(config, "BASE_URL") is not None,
        smtp_url=smtp_url,
        mail_from=_address("MAIL_FROM", _get(config, "MAIL_FROM", d.mail_from)),
        staff_inbox=_address("STAFF_INBOX", _get(config, "STAFF_INBOX", d.staff_inbox)),
        allowed_origins=_origins(_get(config, "ALLOWED_ORIGINS", "") or ""),
        feed_url=_feed_url(_get(config, "FEED_URL")),
        feed_poll_seconds=_int(config, "FEED_POLL_SECONDS", d.feed_poll_seconds, minimum=60),
        feed_fetch_deadline=_int(config, "FEED_FETCH_DEADLINE", int(d.feed_fetch_deadline), minimum=1, maximum=600),
        send_rate=_float(config, "SEND_RATE", d.send_rate, minimum=0.0),
        send_concurrency=_int(config, "SEND_CONCURRENCY", d.send_concurrency, minimum=1, maximum=64),
        send_yield=_share("SEND_YIELD", _get(config, "SEND_YIELD"), d.send_yield),
        worker_nice=_int(config, "WORKER_NICE", d.worker_nice, minimum=0, maximum=19),
        trusted_proxies=_networks(_get(config, "TRUSTED_PROXIES", "") or ""),
        org_name=_one_line("ORG_NAME", _get(config, "ORG_NAME", d.org_name) or d.org_name),
        list_id=_one_line("LIST_ID", _get(config, "LIST_ID", d.list_id) or d.list_id),
        topics=_topics(_get(config, "TOPICS")),
        contact_heading=_get(config, "CONTACT_HEADING", d.contact_heading) or d.contact_heading,
        contact_intro=_get(config, "CONTACT_INTRO", d.contact_intro) or d.contact_intro,
        max_body_bytes=_int(config, "MAX_BODY_BYTES", d.max_body_bytes, minimum=1024),
        max_header_bytes=_int(config, "MAX_HEADER_BYTES", d.max_header_bytes, minimum=4096, maximum=1024 * 1024),
        form_min_seconds=_float(config, "FORM_MIN_SECONDS", d.form_min_seconds, minimum=0.0),
        form_max_age_seconds=_int(config, "FORM_MAX_AGE_SECONDS", d.form_max_age_seconds, minimum=60),
        form_rate_limit=_rate_limit(_get(config, "FORM_RATE_LIMIT", "10/600") or "10/600"),
        api_rate_limit=_rate_limit(_get(config, "API_RATE_LIMIT", "600/60") or "600/60", "API_RATE_LIMIT"),
        inquiry_retention_days=_int(config, "INQUIRY_RETENTION_DAYS", d.inquiry_retention_days, minimum=1),
        held_retention_days=_int(config, "HELD_RETENTION_DAYS", d.held_retention_days, minimum=1, maximum=3650),
        held_warn_count=_int(config, "HELD_WARN_COUNT", d.held_warn_count, minimum=1),
        log_level=_choice("LOG_LEVEL", (_get(config, "LOG_LEVEL", "info") or "info").lower(),
                          ("debug", "info", "warning", "error")),
    )
    settings = replace(settings, **_dkim(config, settings.mail_from))
    reply_to = _get(config, "REPLY_TO")
    settings = replace(
        settings, reply_to=_address("REPLY_TO", reply_to) if reply_to is not None else None,
        outbox_max_age=_duration("OUTBOX_MAX_AGE", _get(config, "OUTBOX_MAX_AGE", "5d") or "5d", minimum=60),
        return_path=_return_path(_get(config, "RETURN_PATH"), _get(config, "BOUNCE_DOMAIN")),
        soft_bounce_limit=_int(config, "SOFT_BOUNCE_LIMIT", d.soft_bounce_limit, minimum=1, maximum=100),
        soft_bounce_days=_int(config, "SOFT_BOUNCE_DAYS", d.soft_bounce_days, minimum=1, maximum=3650),
        smtp_helo_name=_helo_name(_get(config, "SMTP_HELO_NAME")),
        allow_http_base_url=_bool("ALLOW_HTTP_BASE_URL", _get(config, "ALLOW_HTTP_BASE_URL", "false") or "false"),
        org_postal_address=_postal_address(_get(config, "ORG_POSTAL_ADDRESS", "") or ""),
        bounce_mailbox=_bounce_mailbox(config),
        bounce_mailbox_interval=_int(config, "BOUNCE_MAILBOX_INTERVAL", d.bounce_mailbox_interval, minimum=10,
                                     maximum=86400),
        blog_url=_blog_url(_get(config, "BLOG_URL")),
        language=_language(_get(config, "LANGUAGE", "en") or "en"),
        **_brand(config),
        click_counting=_bool("CLICK_COUNTING", _get(config, "CLICK_COUNTING", "on") or "on"),
        utm_tagging=_bool("UTM_TAGGING", _get(config, "UTM_TAGGING", "on") or "on"),
        webhook_allow_http=_bool("WEBHOOK_ALLOW_HTTP", _get(config, "WEBHOOK_ALLOW_HTTP", "false") or "false"),
        webhook_allow_private=_bool("WEBHOOK_ALLOW_PRIVATE",
                                    _get(config, "WEBHOOK_ALLOW_PRIVATE", "false") or "false"),
        webhook_timeout=_float(config, "WEBHOOK_TIMEOUT", d.webhook_timeout, minimum=1.0),
        webhook_concurrency=_int(config, "WEBHOOK_CONCURRENCY", d.webhook_concurrency, minimum=1, maximum=256),
    )
    settings = replace(settings, **_webhooks(config))
    secret_key = _get(config, "SECRET_KEY")
    fallbacks = tuple(k.strip() for k in (_get(config, "SECRET_KEY_FALLBACKS", "") or "").split(",") if k.strip())
    for key in fallbacks:
        _check_secret("SECRET_KEY_FALLBACKS", key)
    if secret_key is None:
        path = settings.sqlite_path
        if path is None:
            raise SettingsError(
                "SECRET_KEY: required when DATABASE_URL is not a SQLite file; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        secret_key = embedded_secret_key(path)
    else:
        _check_secret("SECRET_KEY", secret_key)
    return replace(settings, secret_key=secret_key, secret_key_fallbacks=fallbacks)


def embedded_secret_key(database_path: Path) -> str:
    """The secret kept beside the SQLite database: created once (mode 0600), never printed."""
    key_path = database_path.with_name(database_path.name + ".secret")
    if key_path.exists():
        key = key_path.read_text().strip()
        if len(key) >= MIN_SECRET_LENGTH:
            return key
        raise SettingsError(f"SECRET_KEY: the key file {key_path} is damaged; delete it to make a new one")
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def _check_secret(name: str, value: str) -> None:
    if value.lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_LENGTH:
        raise SettingsError(
            f"{name}: expected a random secret of at least {MIN_SECRET_LENGTH} characters, not a placeholder"
        )


def _database_url(url: str) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    raise SettingsError(
        "DATABASE_URL: expected sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB, "
        f"got a URL with scheme {scheme or 'none'!r}"
    )


def _check_smtp_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SettingsError("SMTP_URL: expected smtp://user:pass@host:587 or smtps://user:pass@host:465")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SettingsError("SMTP_URL: the port is not a number between 1 and 65535") from exc


def _address(name: str, value: str | None) -> str:
    from email.headerregistry import Address
    from email.utils import parseaddr

    if not value or "\r" in value or "\n" in value:
        raise SettingsError(f"{name}: expected an email address such as 'Clinic <hello@example.org>'")
    display, addr = parseaddr(value)
    if "@" not in addr or addr.startswith("@") or addr.endswith("@"):
        raise SettingsError(f"{name}: expected an email address such as 'Clinic <hello@example.org>', got {value!r}")
    return str(Address(display_name=display, addr_spec=addr)) if display else addr


# The VERP token is 24 characters of lower-case base32 (service.bounces.returnpath).
TOKEN_LENGTH = 24
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]", re.I)
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`|~.-]*")


def _return_path(pattern: str | None, domain: str | None) -> str | None:
    """The envelope sender pattern: RETURN_PATH (one "{token}" in its local part) or
    `bounces+{token}@BOUNCE_DOMAIN`; None when neither is set."""
    if pattern is None and domain is None:
        return None
    if pattern is None:
        assert domain is not None
        if not _HOSTNAME.fullmatch(domain):
            raise SettingsError(f"BOUNCE_DOMAIN: expected a domain name such as bounces.example.org, got {domain!r}")
        return f"bounces+{{token}}@{domain.lower()}"
    local, at, host = pattern.rpartition("@")
    example = "such as bounces+{token}@example.org"
    if not at or local.count("{token}") != 1 or "{token}" in host or not _HOSTNAME.fullmatch(host):
        raise SettingsError(f"RETURN_PATH: expected an address with {{token}} in its local part, {example}, "
                            f"got {pattern!r}")
    rest = local.replace("{token}", "")
    if not _LOCAL_PART.fullmatch(rest) or "{" in rest or "}" in rest or local.startswith(".") or ".." in local:
        raise SettingsError(f"RETURN_PATH: the local part may hold only letters, digits and !#$%&'*+/=?^_`|~.- "
                            f"around {{token}}, got {pattern!r}")
    if len(rest) + TOKEN_LENGTH > 64:
        raise SettingsError(f"RETURN_PATH: the local part would be longer than 64 characters (RFC 5321) "
                            f"with the {TOKEN_LENGTH}-character token; shorten {rest!r}")
    return f"{local}@{host.lower()}"


def _bounce_mailbox(config: Config) -> MailboxConfig | None:
    """BOUNCE_MAILBOX_URL with BOUNCE_MAILBOX_DONE; errors never quote the URL (it holds a password)."""
    url = _get(config, "BOUNCE_MAILBOX_URL")
    done = _get(config, "BOUNCE_MAILBOX_DONE", "delete") or "delete"
    if url is None:
        if _get(config, "BOUNCE_MAILBOX_DONE") is not None:
            raise SettingsError("BOUNCE_MAILBOX_DONE: set BOUNCE_MAILBOX_URL too (the mailbox it applies to)")
        return None
    try:
        return parse_mailbox_url(url, done=done)
    except MailboxUrlError as exc:
        name = "" if str(exc).startswith("BOUNCE_MAILBOX_DONE:") else "BOUNCE_MAILBOX_URL: "
        raise SettingsError(f"{name}{exc}") from None
_SNS_TOPIC_ARN = re.compile(r"arn:aws(-cn|-us-gov)?:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}")
MIN_WEBHOOK_KEY_LENGTH = 16


def _webhooks(config: Config) -> dict[str, Any]:
    """The provider webhooks' settings (README "Bounce webhooks"); each checked here, so a
    webhook that is on can verify what it receives."""
    arns = tuple(a.strip() for a in (_get(config, "SNS_TOPIC_ARNS", "") or "").split(",") if a.strip())
    for arn in arns:
        if not _SNS_TOPIC_ARN.fullmatch(arn):
            raise SettingsError(f"SNS_TOPIC_ARNS: expected comma-separated topic ARNs such as "
                                f"arn:aws:sns:us-east-1:123456789012:ses-bounces, got {arn!r}")
    pattern = _get(config, "SNS_CERT_HOST_PATTERN", DEFAULT_SNS_CERT_HOST_PATTERN) or DEFAULT_SNS_CERT_HOST_PATTERN
    try:
        re.compile(pattern)
    except re.error as exc:
        raise SettingsError(f"SNS_CERT_HOST_PATTERN: expected a regular expression for host names: {exc}") from None
    ca_file = _get(config, "SNS_CA_FILE")
    if ca_file is not None and not Path(ca_file).is_file():
        raise SettingsError(f"SNS_CA_FILE: expected the path of a PEM file of CA certificates, no file at {ca_file!r}")
    postmark = _get(config, "POSTMARK_WEBHOOK_CREDENTIALS")
    if postmark is not None:
        user, colon, password = postmark.partition(":")
        if not user or not colon or len(password) < MIN_WEBHOOK_KEY_LENGTH:
            raise SettingsError(f"POSTMARK_WEBHOOK_CREDENTIALS: expected user:password with a password of at least "
                                f"{MIN_WEBHOOK_KEY_LENGTH} characters (the Basic auth of the webhook URL)")
    mailgun = _get(config, "MAILGUN_WEBHOOK_SIGNING_KEY")
    if mailgun is not None and len(mailgun) < MIN_WEBHOOK_KEY_LENGTH:
        raise SettingsError("MAILGUN_WEBHOOK_SIGNING_KEY: expected the HTTP webhook signing key from Mailgun's "
                            "dashboard (at least 16 characters)")
    sendgrid = _get(config, "SENDGRID_WEBHOOK_PUBLIC_KEY")
    if sendgrid is not None:
        from service.bounces.webhooks.keys import load_public_key

        try:
            load_public_key(sendgrid)
        except ValueError as exc:
            raise SettingsError(f"SENDGRID_WEBHOOK_PUBLIC_KEY: {exc}") from None
    secret = _get(config, "WEBHOOK_SECRET")
    if secret is not None:
        _check_secret("WEBHOOK_SECRET", secret)
    return {"sns_topic_arns": arns, "sns_cert_host_pattern": pattern, "sns_ca_file": ca_file,
            "postmark_webhook_credentials": postmark, "mailgun_webhook_signing_key": mailgun,
            "sendgrid_webhook_public_key": sendgrid, "webhook_secret": secret}


def _origins(value: str) -> tuple[str, ...]:
    origins = []
    for origin in (o.strip().rstrip("/") for o in value.split(",")):
        if not origin:
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise SettingsError(
                f"ALLOWED_ORIGINS: expected comma-separated origins like https://blog.example.org, got {origin!r}"
            )
        origins.append(origin)
    return tuple(origins)


def _feed_url(value: str | None) -> str | None:
    if value is None:
        return None
    if urlsplit(value).scheme not in ("http", "https", "file") and not Path(value).exists():
        raise SettingsError(f"FEED_URL: expected an http(s) URL of an RSS or Atom feed, got {value!r}")
    return value


def _blog_url(value: str | None) -> str | None:
    """An absolute http(s) URL (it becomes a link on the public pages), or None."""
    if value is None:
        return None
    if safe_http_url(value) is None:
        raise SettingsError(f"BLOG_URL: expected an http(s) URL such as https://blog.example.org, got {value!r}")
    return value


def _language(value: str) -> str:
    shipped = shipped_languages()
    if value not in shipped:
        raise SettingsError(f"LANGUAGE: expected one of the shipped languages {', '.join(shipped)}, got {value!r}")
    return value


def _brand(config: Config) -> dict[str, Any]:
    """BRAND_ACCENT_COLOR, BRAND_FOOTER_TEXT and BRAND_LOGO_URL, checked by the Settings page's own rules."""
    from service.admin.brand_values import BrandValueError, clean_accent, clean_blog_url, clean_footer

    values: dict[str, Any] = {}
    for name, key, clean in (("BRAND_ACCENT_COLOR", "brand_accent_color", clean_accent),
                             ("BRAND_FOOTER_TEXT", "brand_footer_text", clean_footer),
                             ("BRAND_LOGO_URL", "brand_logo_url", clean_blog_url)):
        value = _get(config, name)
        if value:
            try:
                values[key] = clean(value.replace("\\n", "\n") if key == "brand_footer_text" else value)
            except BrandValueError as exc:
                raise SettingsError(f"{name}: {exc}") from None
    return values


class _DkimSettings(TypedDict, total=False):
    dkim_private_key_file: str
    dkim_selector: str
    dkim_domain: str


def _dkim(config: Config, mail_from: str) -> _DkimSettings:
    """DKIM_PRIVATE_KEY_FILE + DKIM_SELECTOR (+ DKIM_DOMAIN, default MAIL_FROM's domain), all or none."""
    from email.utils import parseaddr

    key_file = _get(config, "DKIM_PRIVATE_KEY_FILE")
    selector = _get(config, "DKIM_SELECTOR")
    domain = _get(config, "DKIM_DOMAIN")
    if key_file is None and selector is None and domain is None:
        return {}
    if key_file is None:
        raise SettingsError("DKIM_PRIVATE_KEY_FILE: expected the path of a PEM private key when DKIM_SELECTOR is set")
    if not Path(key_file).is_file():
        raise SettingsError(f"DKIM_PRIVATE_KEY_FILE: expected the path of a PEM private key, no file at {key_file!r}")
    if selector is None or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", selector):
        raise SettingsError("DKIM_SELECTOR: expected a DNS label such as 'tidings2026' (the selector of the key)")
    domain = domain or parseaddr(mail_from)[1].rpartition("@")[2]
    if not re.fullmatch(r"(?=.{1,253}$)([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}", domain):
        raise SettingsError(f"DKIM_DOMAIN: expected a domain name such as example.org, got {domain!r}")
    return {"dkim_private_key_file": key_file, "dkim_selector": selector, "dkim_domain": domain.lower()}


def _networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise SettingsError(
                f"TRUSTED_PROXIES: expected comma-separated IP addresses or networks, got {item!r}"
            ) from exc
    return tuple(networks)


def _topics(value: str | None) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_TOPICS
    topics = tuple(t.strip() for t in value.split(",") if t.strip())
    if not topics or any(len(t) > 40 for t in topics):
        raise SettingsError("TOPICS: expected a comma-separated list of topic names of at most 40 characters")
    return topics


def _rate_limit(value: str, name: str = "FORM_RATE_LIMIT") -> RateLimit:
    try:
        count, seconds = (int(v) for v in value.split("/"))
        if count < 1 or seconds < 1:
            raise ValueError
    except ValueError as exc:
        raise SettingsError(
            f"{name}: expected COUNT/SECONDS such as 10/600, got {value!r}"
        ) from exc
    return RateLimit(count, seconds)


_DURATION = re.compile(r"(\d+)\s*([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(name: str, value: str, *, minimum: int) -> int:
    """Seconds from '5d', '12h', '30m', '3600s' or plain seconds."""
    match = _DURATION.fullmatch(value.strip().lower())
    if not match:
        raise SettingsError(f"{name}: expected a duration such as 5d, 12h, 30m, 3600s or 3600, got {value!r}")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < minimum:
        raise SettingsError(f"{name}: expected at least {minimum} seconds, got {value!r}")
    return seconds


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")


def helo_for_host(host: str) -> str:
    """A host as EHLO takes it: a name as it is, an IP address as an address literal."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.lower()
    return f"[IPv6:{address}]" if address.version == 6 else f"[{address}]"


def _helo_name(value: str | None) -> str | None:
    """SMTP_HELO_NAME: a fully qualified host name (RFC 5321 4.1.1.1), or an address literal."""
    if value is None:
        return None
    if value.startswith("[") and value.endswith("]"):
        try:
            return helo_for_host(str(ipaddress.ip_address(value[1:-1].removeprefix("IPv6:"))))
        except ValueError:
            pass
    elif _HOSTNAME.fullmatch(value) and not value.replace(".", "").isdigit():
        return value.lower()
    raise SettingsError(f"SMTP_HELO_NAME: expected a host name such as mail.example.org, got {value!r}")


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: expected true or false, got {value!r}")


def _postal_address(value: str) -> str:
    """ORG_POSTAL_ADDRESS: lines separated by '\\n' (a literal backslash-n), or real line breaks."""
    value = value.replace("\\n", "\n")
    if len(value) > 500 or any(ord(c) < 32 and c != "\n" for c in value):
        raise SettingsError("ORG_POSTAL_ADDRESS: expected a postal address of at most 500 characters, "
                            "lines separated by \\n")
    return "\n".join(line.strip() for line in value.split("\n") if line.strip())


def _one_line(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise SettingsError(f"{name}: must be a single line")
    return value


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SettingsError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _int(config: Config, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = _get(config, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise SettingsError(f"{name}: expected a whole number {bounds}, got {value}")
    return value


def _share(name: str, raw: str | None, default: float) -> float:
    """A share from 0 to 0.9 (as 0.5 or 50%)."""
    if raw is None:
        return default
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a share from 0 to 0.9 such as 0.5 or 50%, got {raw!r}") from None
    if not 0 <= value <= 0.9:
        raise SettingsError(f"{name}: expected a share from 0 to 0.9 such as 0.5 or 50%, got {raw!r}")
    return value


def _float(config: Config, name: str, default: float, *, minimum: float) -> float:
    raw = _get(config, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if value != value or value < minimum or value == float("inf"):
        raise SettingsError(f"{name}: expected a number of at least {minimum:g}, got {raw!r}")
    return value
