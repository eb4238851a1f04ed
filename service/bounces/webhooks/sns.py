"""Amazon SES notifications through Amazon SNS.

SNS signs every message with the key of a certificate it publishes at `SigningCertURL`.
Checked, in order: the topic is one of SNS_TOPIC_ARNS (any AWS account can make a topic and
subscribe our URL, so only our topics count); the certificate URL is https on a host matching
SNS_CERT_HOST_PATTERN (default: Amazon's SNS hosts) - we never fetch from anywhere else; the
signature (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) over the string to sign built as
AWS documents it for that message type. Certificates are cached by URL.

A SubscriptionConfirmation is confirmed by fetching its SubscribeURL (same host check). A
Notification carries an SES notification: Bounce (Permanent is hard; Transient and Undetermined
are soft), Complaint (a complaint, except feedback type not-spam), Delivery (ignored).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from service.bounces.events import MailEvent
from service.bounces.webhooks.common import (
    Received,
    Refused,
    diagnostic,
    event_key,
    iso_time,
    message_id,
    obj,
    optional_obj,
    parse_json,
    recipient,
    return_token,
    status_of,
)
from service.settings import Settings

_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
_CACHE_SIZE = 32
FETCH_TIMEOUT = 10.0
BOUNCE_KINDS = {"Permanent": "hard", "Transient": "soft", "Undetermined": "soft"}


def string_to_sign(message: dict[str, Any]) -> bytes:
    """Each signed field present, in order, as "name\\nvalue\\n" (Subject only when present)."""
    out = []
    for name in _SIGNED_FIELDS[message["Type"]]:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise Refused(403, f"{name}: missing, so the signature cannot be checked")
        out.append(f"{name}\n{value}\n")
    return "".join(out).encode()


def allowed_url(settings: Settings, url: Any, what: str) -> str:
    """`url` when it is https on an allowed host; else refused (we never fetch it)."""
    parts = urlsplit(url) if isinstance(url, str) else None
    host = parts.hostname if parts else None
    if parts is None or parts.scheme != "https" or not host or parts.username or parts.password:
        raise Refused(403, f"{what}: expected an https URL of Amazon SNS")
    if not re.fullmatch(settings.sns_cert_host_pattern, host):
        raise Refused(403, f"{what}: the host {host!r} does not match SNS_CERT_HOST_PATTERN; not fetched")
    assert isinstance(url, str)
    return url


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The client for certificate and SubscribeURL fetches: certificates verified, against
    SNS_CA_FILE when set (a private CA), else the default trust store; no redirects."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=settings.sns_ca_file) \
        if settings.sns_ca_file else True
    return httpx.AsyncClient(verify=verify, timeout=FETCH_TIMEOUT, follow_redirects=False)


async def _public_key(received: Received, url: str) -> rsa.RSAPublicKey:
    cache: dict[str, rsa.RSAPublicKey] | None = getattr(received.state, "sns_certificates", None)
    if cache is None:
        cache = received.state.sns_certificates = {}
    if url in cache:
        return cache[url]
    try:
        async with http_client(received.settings) as client:
            answer = await client.get(url)
        answer.raise_for_status()
        cert = x509.load_pem_x509_certificate(answer.content)
    except (httpx.HTTPError, ValueError) as exc:
        raise Refused(502, f"SigningCertURL: the certificate could not be fetched or read ({type(exc).__name__})"
                      ) from None
    now = dt.datetime.now(dt.UTC)
    key = cert.public_key()
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc or not isinstance(key, rsa.RSAPublicKey):
        raise Refused(403, "SigningCertURL: the certificate is expired or holds no RSA key")
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[url] = key
    return key


async def verify(received: Received, message: dict[str, Any]) -> None:
    settings = received.settings
    if message.get("Type") not in _SIGNED_FIELDS:
        raise Refused(400, "Type: expected Notification, SubscriptionConfirmation or UnsubscribeConfirmation")
    if message.get("TopicArn") not in settings.sns_topic_arns:
        raise Refused(403, "TopicArn: not one of SNS_TOPIC_ARNS")
    algorithm = _HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise Refused(401, "SignatureVersion: expected 1 or 2 (a signed SNS message)")
    try:
        signature = base64.b64decode(str(message.get("Signature") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise Refused(403, "Signature: not base64") from None
    if not signature:
        raise Refused(401, "Signature: missing")
    url = allowed_url(settings, message.get("SigningCertURL"), "SigningCertURL")
    signed = string_to_sign(message)
    key = await _public_key(received, url)
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Refused(403, "Signature: does not verify with the SNS certificate") from None


async def confirm(received: Received, message: dict[str, Any]) -> None:
    """Confirm a subscription to one of our topics: fetch its SubscribeURL."""
    url = allowed_url(received.settings, message.get("SubscribeURL"), "SubscribeURL")
    try:
        async with http_client(received.settings) as client:
            (await client.get(url)).raise_for_status()
    except httpx.HTTPError as exc:
        raise Refused(502, f"SubscribeURL: confirming the subscription failed ({type(exc).__name__})") from None


async def receive(received: Received) -> list[MailEvent]:
    message = parse_json(received.body)
    if not isinstance(message, dict):
        raise Refused(400, "the body: expected an SNS message (a JSON object)")
    await verify(received, message)
    if message["Type"] == "SubscriptionConfirmation":
        await confirm(received, message)
        return []
    if message["Type"] == "UnsubscribeConfirmation":
        return []
    try:
        notification = obj(json.loads(message["Message"]), "Message")
    except ValueError:
        raise Refused(400, "Message: expected an SES notification (JSON)") from None
    return ses_events(received, notification)


def ses_events(received: Received, notification: dict[str, Any]) -> list[MailEvent]:
    """The events of one SES notification: one per bounced or complaining recipient."""
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = optional_obj(notification.get("mail"))
    headers = optional_obj(mail.get("commonHeaders"))
    common: dict[str, Any] = {"source": "ses", "message_id": message_id(headers.get("messageId")),
              "return_token": return_token(received.settings, mail.get("source"))}
    if kind == "Bounce":
        bounce = obj(notification.get("bounce"), "Message.bounce")
        what = BOUNCE_KINDS.get(str(bounce.get("bounceType")), "soft")
        people = bounce.get("bouncedRecipients")
    elif kind == "Complaint":
        bounce = obj(notification.get("complaint"), "Message.complaint")
        if bounce.get("complaintFeedbackType") == "not-spam":
            return []
        what, people = "complaint", bounce.get("complainedRecipients")
    else:
        return []  # Delivery, Send, Open...: nothing about the address
    feedback = bounce.get("feedbackId")
    if not isinstance(feedback, str) or not feedback or not isinstance(people, list):
        raise Refused(400, f"Message.{kind.lower()}: expected feedbackId and the recipients")
    at = iso_time(bounce.get("timestamp"), received.now)
    events = []
    label = "complaint:" if what == "complaint" else f"{bounce.get('bounceType')} {bounce.get('bounceSubType') or ''}:"
    for n, person in enumerate(people):
        person = obj(person, f"Message recipients[{n}]")
        address = recipient(person.get("emailAddress"), f"Message recipients[{n}].emailAddress")
        code = person.get("diagnosticCode")
        events.append(MailEvent(
            kind=what, recipient=address, event_key=event_key(
                "ses", feedback, hashlib.sha256(address.lower().encode()).hexdigest()[:16]),
            occurred_at=at, status=status_of(person.get("status"), code),
            diagnostic=diagnostic(label, code or bounce.get("complaintFeedbackType")),
            **common))
    return events
