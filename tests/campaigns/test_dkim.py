"""DKIM: settings are all-or-nothing with clear errors; campaign messages verify against the key."""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
from pathlib import Path

import dkim
import pytest

from service.campaigns.message import MessageFactory
from service.mail.dkim import signer_from_settings
from service.settings import Settings, SettingsError

BASE = {"DATABASE_URL": "postgresql://u@h/db", "SECRET_KEY": "k" * 40, "MAIL_FROM": "Clinic <hello@clinic.example>"}


def test_dkim_settings_are_validated(key_pair: tuple[Path, bytes]) -> None:
    private, _ = key_pair
    settings = Settings.from_env({**BASE, "DKIM_PRIVATE_KEY_FILE": str(private), "DKIM_SELECTOR": "t2026"},
                                 env_file=None)
    assert (settings.dkim_selector, settings.dkim_domain) == ("t2026", "clinic.example")
    for env, message in (
        ({"DKIM_SELECTOR": "t2026"}, "DKIM_PRIVATE_KEY_FILE: expected the path of a PEM private key when"),
        ({"DKIM_PRIVATE_KEY_FILE": "/nonexistent.pem", "DKIM_SELECTOR": "s"}, "DKIM_PRIVATE_KEY_FILE: expected"),
        ({"DKIM_PRIVATE_KEY_FILE": str(private)}, "DKIM_SELECTOR: expected a DNS label"),
        ({"DKIM_PRIVATE_KEY_FILE": str(private), "DKIM_SELECTOR": "s", "DKIM_DOMAIN": "not a domain"},
         "DKIM_DOMAIN: expected a domain name"),
    ):
        with pytest.raises(SettingsError, match=message):
            Settings.from_env({**BASE, **env}, env_file=None)


def test_campaign_messages_are_signed_and_verify(key_pair: tuple[Path, bytes]) -> None:
    private, public = key_pair
    settings = Settings.from_env({**BASE, "DKIM_PRIVATE_KEY_FILE": str(private), "DKIM_SELECTOR": "t2026"},
                                 env_file=None)
    signer = signer_from_settings(settings)
    assert signer is not None
    factory = MessageFactory.for_campaign(settings, campaign_id=7, subject="Digest", install_id="i1", signer=signer)
    _mid, raw = factory.build(delivery_id=1, to_email="ana@example.org", to_name="Ana", html="<p>Hi</p>",
                              text="Hi", unsubscribe_url="https://news.clinic.example/unsubscribe/x")
    assert raw.startswith(b"DKIM-Signature:")
    header = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert re.search(r"h=[^;]*list-unsubscribe", header, re.IGNORECASE)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"t2026._domainkey.clinic.example."
        return b"v=DKIM1; k=rsa; p=" + public

    assert dkim.verify(raw, dnsfunc=dns)
    tampered = raw.replace(b"unsubscribe/x", b"unsubscribe/y")
    assert not dkim.verify(tampered, dnsfunc=dns)



def test_every_message_of_a_campaign_verifies_and_reads_as_its_own(key_pair: tuple[Path, bytes]) -> None:
    """The signer remembers the canonical form of the header fields a campaign repeats, and a
    campaign writes its MIME boundary once: each recipient's message still verifies with
    dkimpy, carries its own To, Message-ID and unsubscribe link, and reads as text and HTML."""
    private, public = key_pair
    settings = Settings.from_env({**BASE, "DKIM_PRIVATE_KEY_FILE": str(private), "DKIM_SELECTOR": "t2026"},
                                 env_file=None)
    signer = signer_from_settings(settings)
    factory = MessageFactory.for_campaign(settings, campaign_id=8, subject="Spring  news", install_id="i1",
                                          signer=signer)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return b"v=DKIM1; k=rsa; p=" + public

    for n, name in enumerate(["Ana", "Bo  Ek", "Zoë", "Ana"], start=1):
        _mid, raw = factory.build(delivery_id=n, to_email=f"r{n}@example.org", to_name=name, html=f"<p>Hi {n}</p>",
                                  text=f"Hi {n}", unsubscribe_url=f"https://news.clinic.example/unsubscribe/{n}")
        assert dkim.verify(raw, dnsfunc=dns), n
        assert not dkim.verify(raw.replace(f"r{n}@example.org".encode(), b"x@example.org"), dnsfunc=dns)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["Message-ID"] == f"<digest.8.{n}.i1@clinic.example>"
        assert message["List-Unsubscribe"] == f"<https://news.clinic.example/unsubscribe/{n}>"
        assert message["To"].addresses[0].addr_spec == f"r{n}@example.org"
        parts = [p.get_content() for p in message.iter_parts()]
        assert parts == [f"Hi {n}", f"<p>Hi {n}</p>"]

def test_dkim_domain_alignment_with_mail_from_is_checked_by_organisational_domain(
    key_pair: tuple[Path, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    from service.cli import warn_mail_setup
    from service.mail.dkim import alignment_problem

    private, _ = key_pair
    env = {**BASE, "DKIM_PRIVATE_KEY_FILE": str(private), "DKIM_SELECTOR": "t2026"}
    for domain, mail_from in (("clinic.example", "hello@clinic.example"), ("mail.clinic.example", "hi@clinic.example"),
                              ("clinic.example", "news@letters.clinic.example"),
                              ("clinic.co.uk", "hello@news.clinic.co.uk")):
        settings = Settings.from_env({**env, "DKIM_DOMAIN": domain, "MAIL_FROM": mail_from}, env_file=None)
        assert alignment_problem(settings) is None, (domain, mail_from)
    for domain, mail_from in (("esp.example", "hello@clinic.example"), ("other.co.uk", "hello@clinic.co.uk")):
        settings = Settings.from_env({**env, "DKIM_DOMAIN": domain, "MAIL_FROM": mail_from}, env_file=None)
        problem = alignment_problem(settings)
        assert problem is not None and problem.startswith(f"DKIM_DOMAIN {domain} is not aligned")
    assert alignment_problem(Settings.from_env(BASE, env_file=None)) is None  # DKIM off: nothing to align
    with caplog.at_level("WARNING", logger="tidings"):
        warn_mail_setup(settings)
    assert any("is not aligned with the domain of MAIL_FROM" in r.getMessage() for r in caplog.records)


def test_a_damaged_encrypted_short_or_non_rsa_key_is_refused_naming_the_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    pem = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    keys = {
        "damaged.pem": b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
        "encrypted.pem": rsa.generate_private_key(65537, 2048).private_bytes(
            *pem, serialization.BestAvailableEncryption(b"secret")),
        "short.pem": subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"],
                                    capture_output=True, check=True).stdout,  # too short for cryptography to make
        "ed25519.pem": ed25519.Ed25519PrivateKey.generate().private_bytes(*pem, serialization.NoEncryption()),
    }
    for name, content in keys.items():
        path = tmp_path / name
        path.write_bytes(content)
        settings = Settings.from_env({**BASE, "DKIM_PRIVATE_KEY_FILE": str(path), "DKIM_SELECTOR": "t2026"},
                                     env_file=None)
        with pytest.raises(SettingsError, match=f"DKIM_PRIVATE_KEY_FILE: {path}") as refused:
            signer_from_settings(settings)
        assert "not a key" not in str(refused.value), name
