"""VERP return paths: the token names one row, is signed, fits RFC 5321's 64-octet local part,
survives an MTA that changes its case, and a forged or foreign one reads as nothing. The
settings that turn it on are checked at start with one clear line."""

from __future__ import annotations

import pytest

from service.bounces.returnpath import (
    ReturnToken,
    envelope_sender,
    make_token,
    read_address,
    read_token,
    return_path,
    token_of_address,
)
from service.settings import Settings, SettingsError

SECRET = "k" * 20 + "0123456789abcdef"
ON = Settings(secret_key=SECRET, return_path="bounces+{token}@bounces.clinic.test",
              mail_from="Clinic <hello@clinic.test>")


def _env(**values: str) -> dict[str, str]:
    return {"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": SECRET, **values}


def test_token_names_the_row_and_fits_an_address() -> None:
    for kind, row_id in (("delivery", 1), ("outbox", 42), ("delivery", 2**48 - 1)):
        address = return_path(ON, kind, row_id)
        assert address is not None
        local, _, domain = address.partition("@")
        assert domain == "bounces.clinic.test" and len(local.encode()) <= 64
        token = local.removeprefix("bounces+")
        assert token == token.lower() and set(token) <= set("abcdefghijklmnopqrstuvwxyz234567")
        assert read_address(ON, address) == ReturnToken(kind, row_id)
        assert read_address(ON, f"<{address.upper()}>") == ReturnToken(kind, row_id)  # a lower/upper-casing MTA
    assert make_token(ON, "delivery", 1) != make_token(ON, "outbox", 1)


def test_forged_tokens_read_as_nothing() -> None:
    token = make_token(ON, "delivery", 7)
    flipped = token[:-1] + ("a" if token[-1] != "a" else "b")
    assert read_token(ON, flipped) is None
    assert read_token(ON, token[:-1]) is None and read_token(ON, token + "a") is None
    assert read_token(ON, "0" * 24) is None and read_token(ON, "") is None
    other = ON.with_(secret_key="another-secret-key-0123456789-abcdefgh")
    assert read_token(other, token) is None  # signed by another install
    rotated = other.with_(secret_key_fallbacks=(SECRET,))
    assert read_token(rotated, token) == ReturnToken("delivery", 7)  # in flight across a key rotation
    assert token_of_address(ON, "someone@bounces.clinic.test") is None
    assert token_of_address(ON, f"bounces+{token}@elsewhere.test") is None
    assert read_address(ON.with_(return_path=None), f"bounces+{token}@bounces.clinic.test") is None


def test_unset_the_envelope_sender_is_mail_from() -> None:
    off = ON.with_(return_path=None)
    assert return_path(off, "delivery", 1) is None
    assert envelope_sender(off, "outbox", 1) == "hello@clinic.test"
    assert envelope_sender(ON, "outbox", 1).startswith("bounces+")


def test_bounce_domain_and_return_path_settings() -> None:
    assert Settings.from_env(_env(), env_file=None).return_path is None
    assert Settings.from_env(_env(BOUNCE_DOMAIN="Bounces.Clinic.test"), env_file=None).return_path == \
        "bounces+{token}@bounces.clinic.test"
    assert Settings.from_env(_env(RETURN_PATH="rp-{token}@mail.clinic.test", BOUNCE_DOMAIN="x.test"),
                             env_file=None).return_path == "rp-{token}@mail.clinic.test"
    settings = Settings.from_env(_env(SOFT_BOUNCE_LIMIT="5", SOFT_BOUNCE_DAYS="10"), env_file=None)
    assert (settings.soft_bounce_limit, settings.soft_bounce_days) == (5, 10)
    assert (Settings().soft_bounce_limit, Settings().soft_bounce_days) == (3, 30)


@pytest.mark.parametrize(("env", "message"), [
    ({"BOUNCE_DOMAIN": "not a domain"}, r"^BOUNCE_DOMAIN: expected a domain name"),
    ({"BOUNCE_DOMAIN": "bounces@clinic.test"}, r"^BOUNCE_DOMAIN: expected a domain name"),
    ({"RETURN_PATH": "bounces@clinic.test"}, r"^RETURN_PATH: expected an address with \{token\}"),
    ({"RETURN_PATH": "b+{token}{token}@clinic.test"}, r"^RETURN_PATH: expected an address with \{token\}"),
    ({"RETURN_PATH": "b+{token}@{token}.test"}, r"^RETURN_PATH: expected an address with \{token\}"),
    ({"RETURN_PATH": "b<x>+{token}@clinic.test"}, r"^RETURN_PATH: the local part may hold only"),
    ({"RETURN_PATH": "x" * 41 + "{token}@clinic.test"}, r"^RETURN_PATH: the local part would be longer than 64"),
    ({"SOFT_BOUNCE_LIMIT": "0"}, r"^SOFT_BOUNCE_LIMIT"),
    ({"SOFT_BOUNCE_DAYS": "many"}, r"^SOFT_BOUNCE_DAYS"),
])
def test_bad_bounce_settings_stop_start_up_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(_env(**env), env_file=None)
