"""Campaign messages built straight to bytes: the headers that never change within a campaign
are encoded once, the bodies are quoted-printable (binascii, in C), and nothing per recipient
goes through `email.message`, which costs more than the rest of the send path together.

Every message carries the list headers of `service.mail.message.list_headers` (List-Unsubscribe,
List-Unsubscribe-Post for RFC 8058 one-click, List-Id), a Message-ID fixed by the delivery id
and this install's random id (a resend after a crash is the same message to the receiver, and
no other install ever makes the same one), a Date with a numeric zone, Feedback-ID with the campaign id,
and Precedence: bulk; DKIM-signed when a key is configured (`service.mail.dkim`). The subject and the recipient's
name go through `service.mail.headers` (made safe and encoded there), and every message's header
block is checked after it is built (and signed).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr

from service.bounces.returnpath import return_path
from service.campaigns.render import qp
from service.mail.dkim import DkimSigner, body_hash
from service.mail.headers import (
    check_header_value,
    check_serialised,
    fold_addresses,
    fold_list_id,
    fold_text,
    header_text,
)
from service.mail.message import domain_of, list_headers, list_unsubscribe, mail_date
from service.settings import Settings

HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Unsubscribe",
           "List-Unsubscribe-Post", "List-Id", "Feedback-ID", "Precedence", "Auto-Submitted", "Content-Type")


@functools.lru_cache(maxsize=64)
def _subject_line(subject: str) -> str:
    return fold_text("Subject", subject)


@functools.lru_cache(maxsize=8)
def _list_id_line(value: str) -> str:
    return fold_list_id(value)


@dataclass(frozen=True)
class MessageFactory:
    """Builds one campaign's messages; create it once per campaign."""

    campaign_id: int
    sender: str  # the From line(s), folded
    envelope_from: str
    subject: str
    settings: Settings
    domain: str
    install_id: str  # `service.admin.brand`: random per install, so Message-IDs never repeat across installs
    signer: DkimSigner | None = None
    org_name: str | None = None  # the brand's name in List-Id (None: ORG_NAME)

    @classmethod
    def for_campaign(cls, settings: Settings, *, campaign_id: int, subject: str, install_id: str,
                     signer: DkimSigner | None = None, org_name: str | None = None) -> MessageFactory:
        if not install_id:
            raise ValueError("install_id: required, so that Message-IDs differ between installs")
        return cls(
            campaign_id=campaign_id,
            sender=fold_addresses("From", getaddresses([settings.mail_from])),
            envelope_from=parseaddr(settings.mail_from)[1],
            subject=header_text(subject),  # staff's text: made safe here, encoded by fold_text
            settings=settings,
            domain=domain_of(settings.mail_from),
            install_id=install_id,
            signer=signer,
            org_name=org_name,
        )

    def envelope_for(self, delivery_id: int) -> str:
        """MAIL FROM for one delivery: its signed VERP return path when RETURN_PATH or
        BOUNCE_DOMAIN is set (a bounce then names the delivery), else MAIL_FROM's address."""
        return return_path(self.settings, "delivery", delivery_id) or self.envelope_from

    def message_id(self, delivery_id: int) -> str:
        return f"<digest.{self.campaign_id}.{delivery_id}.{self.install_id}@{self.domain}>"

    @functools.cached_property
    def _fixed(self) -> _Fixed:
        """What every message of the campaign shares, written once: the From line, the header
        lines after List-Unsubscribe, the MIME boundary and the part headers around the bodies.
        One random boundary per campaign is as safe as one per message: it starts with "=_",
        which quoted-printable, the only encoding of the bodies, can never contain."""
        boundary = f"=_tidings_{uuid.uuid4().hex}"
        listing = list_headers(self.settings, "", self.org_name)  # List-Unsubscribe: per recipient
        tail = (
            f"List-Unsubscribe-Post: {listing['List-Unsubscribe-Post']}\r\n"
            f"{_list_id_line(listing['List-Id'])}"
            f"Feedback-ID: {self.campaign_id}:digest:tidings\r\n"
            "Precedence: bulk\r\n"
            "Auto-Submitted: auto-generated\r\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
            "\r\n"
        )
        return _Fixed(
            tail=tail,
            part=(f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode(),
            part_html=(f"\r\n--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
                       "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode(),
            end=f"\r\n--{boundary}--\r\n".encode(),
        )

    def build(
        self, *, delivery_id: int | None, to_email: str, to_name: str, unsubscribe_url: str,
        html: str | None = None, text: str | None = None, html_qp: bytes | None = None, text_qp: bytes | None = None,
        subject: str | None = None, html_relaxed: bytes | None = None, text_relaxed: bytes | None = None,
    ) -> tuple[str, bytes]:
        """(Message-ID, raw message with CRLF line ends) for one recipient; the bodies as text,
        or already quoted-printable (`html_qp`, `text_qp`), with their DKIM relaxed forms when
        the caller has them (`DigestTemplate.encode_signed_for`: then the signer hashes those
        instead of canonicalising the whole body)."""
        html_body = html_qp if html_qp is not None else qp(html or "")
        text_body = text_qp if text_qp is not None else qp(text or "")
        message_id = self.message_id(delivery_id) if delivery_id is not None else (
            f"<digest.{self.campaign_id}.test.{uuid.uuid4().hex}@{self.domain}>"
        )
        check_header_value("To", to_email)
        fixed = self._fixed
        head = (
            f"{self.sender}"
            f"{fold_addresses('To', [(to_name, to_email)])}"
            f"{_subject_line(header_text(subject) if subject else self.subject)}"
            f"Date: {mail_date()}\r\n"
            f"Message-ID: {message_id}\r\n"
            "MIME-Version: 1.0\r\n"
            f"List-Unsubscribe: {list_unsubscribe(unsubscribe_url)}\r\n"
            f"{fixed.tail}"
        ).encode()
        raw = b"".join([head, fixed.part, text_body, fixed.part_html, html_body, fixed.end])
        if self.signer is not None:  # it checks the headers too, on the same single reading of them
            bh = None
            if html_relaxed is not None and text_relaxed is not None and html_qp is not None and text_qp is not None:
                # the MIME lines are canonical as written (no runs of spaces, none at a line's end)
                bh = body_hash(b"".join([fixed.part, text_relaxed, fixed.part_html, html_relaxed, fixed.end]))
            return message_id, self.signer.sign(raw, expected=HEADERS, bh=bh)
        return message_id, check_serialised(raw, HEADERS)


@dataclass(frozen=True)
class _Fixed:
    tail: str  # the header lines after List-Unsubscribe, and the empty line
    part: bytes  # the boundary and headers of the text part
    part_html: bytes  # the end of the text part, the boundary and headers of the HTML part
    end: bytes  # the end of the HTML part and the closing boundary
