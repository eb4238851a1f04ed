"""Settings are read once from the environment; a bad value stops start-up naming the variable."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import Settings, SettingsError

GOOD_SECRET = "k" * 20 + "0123456789abcdef"


def test_embedded_default_generates_secret_once_beside_database(tmp_path: Path) -> None:
    db = tmp_path / "data" / "tidings.db"
    env = {"DATABASE_URL": f"sqlite:///{db}"}
    first = Settings.from_env(env, env_file=None)
    key_file = tmp_path / "data" / "tidings.db.secret"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first.secret_key) >= 32
    assert Settings.from_env(env, env_file=None).secret_key == first.secret_key
    assert first.database_url.startswith("sqlite+aiosqlite:///")
    assert first.smtp_url is None and first.uses_local_outbox


def test_postgres_without_secret_key_is_an_error() -> None:
    with pytest.raises(SettingsError, match=r"^SECRET_KEY: required"):
        Settings.from_env({"DATABASE_URL": "postgresql://u@db/tidings"}, env_file=None)


@pytest.mark.parametrize("secret", ["changeme", "secret", "short-but-not-placeholder"])
def test_placeholder_or_short_secret_refused(secret: str) -> None:
    with pytest.raises(SettingsError, match=r"^SECRET_KEY: expected a random secret"):
        Settings.from_env({"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": secret}, env_file=None)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://root@localhost/x", "DATABASE_URL: expected"),
        ("BASE_URL", "ftp://example.org", "BASE_URL: expected an http(s) URL"),
        ("SMTP_URL", "http://mail.example.org", "SMTP_URL: expected"),
        ("SMTP_URL", "smtp://mail.example.org:99999", "SMTP_URL: the port"),
        ("MAIL_FROM", "not an address", "MAIL_FROM: expected an email address"),
        ("STAFF_INBOX", "staff@clinic.test\r\nBcc: x@evil.test", "STAFF_INBOX: expected an email address"),
        ("ALLOWED_ORIGINS", "https://blog.example.org/path", "ALLOWED_ORIGINS: expected"),
        ("SEND_RATE", "fast", "SEND_RATE: expected a number"),
        ("SEND_RATE", "-1", "SEND_RATE: expected a number of at least 0"),
        ("SEND_CONCURRENCY", "0", "SEND_CONCURRENCY: expected a whole number between 1 and 64"),
        ("SEND_CONCURRENCY", "two", "SEND_CONCURRENCY: expected a whole number"),
        ("SEND_YIELD", "1", "SEND_YIELD: expected a share from 0 to 0.9"),
        ("SEND_YIELD", "half", "SEND_YIELD: expected a share from 0 to 0.9"),
        ("SEND_YIELD", "nan", "SEND_YIELD: expected a share from 0 to 0.9"),
        ("WORKER_NICE", "20", "WORKER_NICE: expected a whole number between 0 and 19"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip", "TRUSTED_PROXIES: expected"),
        ("FORM_RATE_LIMIT", "ten per minute", "FORM_RATE_LIMIT: expected COUNT/SECONDS"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL: expected one of"),
        ("SECRET_KEY_FALLBACKS", "old", "SECRET_KEY_FALLBACKS: expected a random secret"),
        ("FEED_URL", "gopher://feed", "FEED_URL: expected"),
        ("FEED_FETCH_DEADLINE", "0", "FEED_FETCH_DEADLINE: expected a whole number between 1 and 600"),
        ("FEED_FETCH_DEADLINE", "forever", "FEED_FETCH_DEADLINE: expected a whole number"),
        ("INQUIRY_RETENTION_DAYS", "0", "INQUIRY_RETENTION_DAYS: expected a whole number at least 1"),
        ("INQUIRY_RETENTION_DAYS", "a year", "INQUIRY_RETENTION_DAYS: expected a whole number"),
        ("MAX_HEADER_BYTES", "16k", "MAX_HEADER_BYTES: expected a whole number"),
        ("MAX_HEADER_BYTES", "100", "MAX_HEADER_BYTES: expected a whole number between 4096 and 1048576"),
        ("SMTP_HELO_NAME", "mail server", "SMTP_HELO_NAME: expected a host name"),
        ("SMTP_HELO_NAME", "-mail.example.org", "SMTP_HELO_NAME: expected a host name"),
        ("SMTP_HELO_NAME", "mail.example.org\r\nMAIL FROM:<x@evil.test>", "SMTP_HELO_NAME: expected a host name"),
        ("SMTP_HELO_NAME", "[not-an-ip]", "SMTP_HELO_NAME: expected a host name"),
        ("ALLOW_HTTP_BASE_URL", "perhaps", "ALLOW_HTTP_BASE_URL: expected true or false"),
        ("ORG_POSTAL_ADDRESS", "x" * 501, "ORG_POSTAL_ADDRESS: expected a postal address of at most 500"),
        ("BRAND_ACCENT_COLOR", "teal", "BRAND_ACCENT_COLOR: enter a hex colour such as #0b5d5b"),
        ("BRAND_ACCENT_COLOR", "#ffff00", "BRAND_ACCENT_COLOR: #ffff00 is too light for links and buttons on white"),
        ("BRAND_LOGO_URL", "javascript:alert(1)", "BRAND_LOGO_URL: enter an address starting with https://"),
        ("BRAND_FOOTER_TEXT", "x" * 501, "BRAND_FOOTER_TEXT: at most 500 characters"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str, message: str) -> None:
    env = {"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": GOOD_SECRET, name: value}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env, env_file=None)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_all_settings_parsed() -> None:
    env = {
        "DATABASE_URL": "postgres://u:p@db:5432/tidings",
        "SECRET_KEY": GOOD_SECRET,
        "SECRET_KEY_FALLBACKS": "o" * 40 + "," + "p" * 40,
        "BASE_URL": "https://news.clinic.test/",
        "SMTP_URL": "smtps://user:pa%40ss@mail.clinic.test:465",
        "MAIL_FROM": "Clinic <hello@clinic.test>",
        "STAFF_INBOX": "team@clinic.test",
        "ALLOWED_ORIGINS": "https://blog.clinic.test, https://www.clinic.test",
        "FEED_URL": "https://blog.clinic.test/feed.xml",
        "SEND_RATE": "0",
        "SEND_CONCURRENCY": "8",
        "SEND_YIELD": "75%",
        "WORKER_NICE": "5",
        "TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
        "TOPICS": "depression, anxiety",
        "INQUIRY_RETENTION_DAYS": "90",
        "MAX_HEADER_BYTES": "32768",
        "SMTP_HELO_NAME": "Out.Clinic.test",
        "ALLOW_HTTP_BASE_URL": "true",
        "ORG_POSTAL_ADDRESS": "Clinic Street 1\\n12345 Testtown",
    }
    s = Settings.from_env(env, env_file=None)
    assert s.helo_name == "out.clinic.test" and s.allow_http_base_url
    assert s.org_postal_address == "Clinic Street 1\n12345 Testtown"
    defaults = Settings.from_env({"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": GOOD_SECRET,
                                  "BASE_URL": "https://News.Clinic.test:8443/x"}, env_file=None)
    assert defaults.helo_name == "news.clinic.test"  # the host of BASE_URL
    assert not defaults.allow_http_base_url and defaults.org_postal_address == ""
    assert Settings(base_url="http://127.0.0.1:8000").helo_name == "[127.0.0.1]"
    assert Settings(smtp_helo_name="[192.0.2.1]").helo_name == "[192.0.2.1]"
    assert s.database_url == "postgresql+asyncpg://u:p@db:5432/tidings"
    assert s.secret_key_fallbacks == ("o" * 40, "p" * 40)
    assert s.base_url == "https://news.clinic.test" and s.https
    assert s.allowed_origins == ("https://blog.clinic.test", "https://www.clinic.test")
    assert s.send_rate == 0 and s.send_concurrency == 8
    assert s.send_yield == 0.75 and s.worker_nice == 5
    assert defaults.send_yield == 0.5 and defaults.worker_nice == 0
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "127.0.0.1/32"]
    assert s.topics == ("depression", "anxiety")
    assert s.max_header_bytes == 32768
    assert s.mail_from == "Clinic <hello@clinic.test>"
    assert s.inquiry_retention_days == 90 and Settings().inquiry_retention_days == 365


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"SECRET_KEY={GOOD_SECRET}\nDATABASE_URL=postgresql://u@db/t\nORG_NAME=From file\n")
    s = Settings.from_env({"ORG_NAME": "From env"}, env_file=env_file)
    assert s.secret_key == GOOD_SECRET
    assert s.org_name == "From env"


@pytest.mark.slow  # runs `tidings` as a process
def test_cli_reports_bad_setting_as_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": "", "SEND_RATE": "x"}
    env.pop("SECRET_KEY")
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: SEND_RATE: expected a number")


def test_brand_defaults_are_read_and_normalised() -> None:
    env = {"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": GOOD_SECRET, "BRAND_ACCENT_COLOR": "#A1B",
           "BRAND_FOOTER_TEXT": "Clinic GmbH\\nHRB 4711", "BRAND_LOGO_URL": "https://cdn.clinic.test/logo.png"}
    settings = Settings.from_env(env, env_file=None)
    assert settings.brand_accent_color == "#aa11bb"
    assert settings.brand_footer_text == "Clinic GmbH\nHRB 4711"
    assert settings.brand_logo_url == "https://cdn.clinic.test/logo.png"
