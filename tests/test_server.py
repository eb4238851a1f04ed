"""`tidings serve`'s HTTP server refuses oversized request headers as they arrive (a real uvicorn
process, a raw socket): a 20 MB header is answered 431 (or the connection is closed) long before
it is all sent, and the server goes on serving; headers under MAX_HEADER_BYTES and a body that
arrives with them are not affected."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.live import LiveServer, tidings_env

TWENTY_MB = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("serve")
    live = LiveServer(tidings_env(f"sqlite:///{tmp / 'tidings.db'}", TEST_SECRET, FORM_MIN_SECONDS="0"),
                      tmp / "serve.log", worker=False)
    live.start()
    yield live
    live.stop()


def _send_big_header(port: int, size: int) -> tuple[int, bytes]:
    """Send a GET with one `size`-byte header; returns (bytes sent before the server stopped
    taking them, what came back)."""
    chunk = b"a" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: what it answered may still be readable
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    return sent, answer


@pytest.mark.slow
def test_a_twenty_megabyte_header_is_refused_before_it_is_read_and_the_server_stays_up(
    server: LiveServer,
) -> None:
    sent, answer = _send_big_header(server.port, TWENTY_MB)
    assert sent < TWENTY_MB, "the server read the whole 20 MB header"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert "request headers larger than MAX_HEADER_BYTES (16384 bytes)" in server.log()
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200  # still serving


@pytest.mark.slow
def test_headers_just_over_the_limit_get_431_and_under_it_are_served(server: LiveServer) -> None:
    sent, answer = _send_big_header(server.port, 20 * 1024)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer[:200]
    assert b"connection: close" in answer.lower()
    cookie = "c" * 12 * 1024
    with httpx.Client(base_url=server.url, headers={"Cookie": f"big={cookie}"}, timeout=5) as client:
        for _ in range(3):  # one connection: each request's head is counted on its own
            assert client.get("/healthz").status_code == 200


@pytest.mark.slow
def test_a_body_sent_with_the_headers_is_not_counted_as_headers(server: LiveServer) -> None:
    body = b'{"message": "' + b"x" * 40_000 + b'"}'  # over MAX_HEADER_BYTES, under MAX_BODY_BYTES
    request = (b"POST /api/inquiries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request)  # one write: the server reads headers and body together
        answer = b""
        while data := sock.recv(65536):
            answer += data
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line != b"HTTP/1.1 431 Request Header Fields Too Large" and b"x-request-id:" in answer, answer[:300]


def test_tidings_serve_uses_the_header_limit_of_its_settings(tmp_path: Path) -> None:
    from service.app import create_app
    from service.server import server_config
    from service.settings import Settings

    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 't.db'}", secret_key=TEST_SECRET,
                        max_header_bytes=32768)
    config = server_config(create_app(settings), settings, host="127.0.0.1", port=0)
    assert config.h11_max_incomplete_event_size == 32768
    assert getattr(config.http, "max_header_bytes", None) == 32768
