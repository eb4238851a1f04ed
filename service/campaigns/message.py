"""Campaign messages built straight to bytes: the headers that never change within a campaign
are encoded once, the bodies are quoted-printable (binascii, in C), and nothing per recipient
goes through `email.message`, which costs more than the rest of the send path together.

Every message carries List-Unsubscribe (+ List-Unsubscribe-Post for RFC 8058 one-click),
List-Id, a Message-ID fixed by the delivery id (a resend after a crash is the same message to
the receiver), Feedback-ID with the campaign id, and Precedence: bulk; DKIM-signed when a key is
configured.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr

from service.campaigns.render import qp
from service.mail.message import check_header_value, domain_of
from service.settings import Settings


def _encode_header(value: str) -> str:
    check_header_value("header", value)
    try:
        value.encode("ascii")
    except UnicodeEncodeError:
        return Header(value, "utf-8", maxlinelen=900).encode()
    return value


@dataclass(frozen=True)
class MessageFactory:
    """Builds one campaign's messages; create it once per campaign."""

    campaign_id: int
    sender: str
    envelope_from: str
    subject: str
    list_id: str
    domain: str
    signer: object | None = None

    @classmethod
    def for_campaign(cls, settings: Settings, *, campaign_id: int, subject: str, signer: object | None = None
                     ) -> MessageFactory:
        return cls(
            campaign_id=campaign_id,
            sender=formataddr(parseaddr(settings.mail_from), charset="utf-8"),
            envelope_from=parseaddr(settings.mail_from)[1],
            subject=subject,
            list_id=settings.list_id,
            domain=domain_of(settings.mail_from),
            signer=signer,
        )

    def message_id(self, delivery_id: int) -> str:
        return f"<digest.{self.campaign_id}.{delivery_id}@{self.domain}>"

    def build(
        self, *, delivery_id: int | None, to_email: str, to_name: str, unsubscribe_url: str,
        html: str | None = None, text: str | None = None, html_qp: bytes | None = None, text_qp: bytes | None = None,
        subject: str | None = None,
    ) -> tuple[str, bytes]:
        """(Message-ID, raw message with CRLF line ends) for one recipient; the bodies as text,
        or already quoted-printable (`html_qp`, `text_qp`)."""
        html_body = html_qp if html_qp is not None else qp(html or "")
        text_body = text_qp if text_qp is not None else qp(text or "")
        message_id = self.message_id(delivery_id) if delivery_id is not None else (
            f"<digest.{self.campaign_id}.test.{uuid.uuid4().hex}@{self.domain}>"
        )
        check_header_value("To", to_email)
        to = formataddr((" ".join(to_name.split()), to_email), charset="utf-8") if to_name.strip() else to_email
        check_header_value("List-Unsubscribe", unsubscribe_url)
        boundary = f"=_tidings_{uuid.uuid4().hex}"
        head = (
            f"From: {self.sender}\r\n"
            f"To: {to}\r\n"
            f"Subject: {_encode_header(subject or self.subject)}\r\n"
            f"Date: {formatdate(usegmt=True)}\r\n"
            f"Message-ID: {message_id}\r\n"
            "MIME-Version: 1.0\r\n"
            f"List-Unsubscribe: <{unsubscribe_url}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            f"List-Id: <{self.list_id}>\r\n"
            f"Feedback-ID: {self.campaign_id}:digest:tidings\r\n"
            "Precedence: bulk\r\n"
            "Auto-Submitted: auto-generated\r\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
            "\r\n"
        ).encode()
        part = (
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        part_html = (
            f"\r\n--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        raw = b"".join([head, part, text_body, part_html, html_body, f"\r\n--{boundary}--\r\n".encode()])
        if self.signer is not None:
            raw = self.signer.sign(raw)  # type: ignore[attr-defined]
        return message_id, raw
