"""A loopback HTTPS server standing in for Amazon SNS in tests: it serves the signing
certificate and answers SubscribeURL, with a certificate from a test CA the app is told to
trust (SNS_CA_FILE). Keys and certificates are made here, per test session."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-bounces"
# The fields AWS documents as signed, in order, per message type.
SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}


def _cert(subject: str, key: rsa.RSAPrivateKey, issuer: tuple[str, rsa.RSAPrivateKey] | None = None, *,
          ca: bool = False, ip: str | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeSns:
    """What the server served: `hits` lists the paths fetched, in order."""

    directory: Path
    signing_key: rsa.RSAPrivateKey = field(default_factory=new_key)
    hits: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        ca_key, tls_key = new_key(), new_key()
        ca = _cert("Tidings test CA", ca_key, ca=True)
        tls = _cert("127.0.0.1", tls_key, ("Tidings test CA", ca_key), ip="127.0.0.1")
        (self.directory / "ca.pem").write_bytes(_pem(ca))
        (self.directory / "tls.pem").write_bytes(_pem(tls) + tls_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.signing_pem = _pem(_cert("sns.us-east-1.amazonaws.com", self.signing_key))
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                fake.hits.append(self.path)
                body = fake.signing_pem if self.path.startswith("/cert") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.directory / "tls.pem")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def ca_file(self) -> str:
        return str(self.directory / "ca.pem")

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def sign(self, message: dict[str, Any], *, version: str = "1", key: rsa.RSAPrivateKey | None = None
             ) -> dict[str, Any]:
        """The message with SignatureVersion, SigningCertURL and Signature as SNS adds them."""
        text = "".join(f"{name}\n{message[name]}\n" for name in SIGNED[message["Type"]] if name in message)
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS SignatureVersion 1
        signature = (key or self.signing_key).sign(text.encode(), padding.PKCS1v15(), digest)
        return {"SigningCertURL": f"{self.url}/cert-{version}.pem", **message, "SignatureVersion": version,
                "Signature": base64.b64encode(signature).decode()}
