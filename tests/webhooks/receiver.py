"""A real HTTP(S) receiver of webhooks for the tests and the benchmark: a plain asyncio server on
loopback (HTTP/1.1, keep-alive) that checks every request with the `standardwebhooks` library
and answers as told (`plan`: a status code, "hang" to time out, "hold" to answer 200 once `release`
is set, or ("redirect", URL))."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    msg_id: str
    timestamp: str
    body: bytes
    verified: bool
    headers: dict[str, str]
    sni: str | None = None
    local_address: str = ""

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    plan: list[Any] = field(default_factory=list)  # what to answer next, first come first served
    ssl_context: ssl.SSLContext | None = None
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _sni: dict[int, str | None] = field(default_factory=dict)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets "hold" answers go

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}/hooks"

    async def start(self) -> Receiver:
        if self.ssl_context is not None:
            self.ssl_context.sni_callback = self._remember_sni
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _remember_sni(self, sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self._sni[id(sslobj)] = name

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            return True
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        sslobj = writer.get_extra_info("ssl_object")
        sni = self._sni.get(id(sslobj)) if sslobj is not None else None
        local = writer.get_extra_info("sockname")[0]
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                ok = self.verify(body, headers)
                self.received.append(Received(headers.get("webhook-id", ""), headers.get("webhook-timestamp", ""),
                                              body, ok, headers, sni, local))
                answer = self.plan.pop(0) if self.plan else (200 if ok else 401)
                if answer == "hang":
                    await asyncio.sleep(3600)
                if answer == "hold":
                    await self.release.wait()
                    answer = 200
                if isinstance(answer, tuple):
                    head = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {answer[1]}\r\nContent-Length: 0\r\n\r\n"
                    writer.write(head.encode())
                else:
                    text = b"ok" if answer < 300 else b"no"
                    writer.write(f"HTTP/1.1 {answer} X\r\nContent-Length: {len(text)}\r\n\r\n".encode() + text)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


@dataclass(frozen=True)
class TestCertificates:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self, tmp: Any) -> ssl.SSLContext:
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        return ctx


def make_certificates(names: Sequence[str]) -> TestCertificates:
    """A test CA and a server certificate for DNS `names` only (no IP address in it)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tidings test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return TestCertificates(
        ca.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()))
