"""The first five minutes with `tidings serve` on the embedded default, as real processes: links
in emails use the address the server binds when BASE_URL is not set (never a request's Host),
the hints name the command that works where the user is (`./dev tidings` in a checkout), a port
in use is one line and a non-zero exit before anything starts, and `/` is a start page."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.newsletter.routes import THANKS
from tests.conftest import Database
from tests.factories import client_with
from tests.live import ROOT, Process
from tests.smtp import SmtpServer, free_port

STARTED = re.compile(r"Tidings on http://127\.0\.0\.1:(\d+) ")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The embedded default: a SQLite file, no BASE_URL, no SECRET_KEY (kept beside the file)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMTP_", "DATABASE_", "SECRET_", "BASE_", "FORM_", "TIDINGS_"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'tidings.db'}", PYTHONUNBUFFERED="1", FORM_MIN_SECONDS="0")
    env.update(extra)
    return env


def _wait_for(check, what: str, proc: Process, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert proc.proc is not None
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen; tidings serve said:\n{proc.log()}")
        time.sleep(0.1)


@pytest.fixture
def served(tmp_path: Path, smtp: SmtpServer) -> Iterator[tuple[Process, str]]:
    """`tidings serve --port 0` (an ephemeral port the OS picks) with SMTP to the test server,
    started as ./dev starts it; yields the process and the address it printed."""
    proc = Process(["serve", "--port", "0"], _env(tmp_path, SMTP_URL=smtp.url, TIDINGS_LAUNCHER="./dev tidings"),
                   tmp_path / "serve.log")
    proc.start()
    try:
        port = _wait_for(lambda: STARTED.search(proc.log()), "the start line", proc).group(1)
        url = f"http://127.0.0.1:{port}"
        _wait_for(lambda: _answers(url), "/healthz", proc)
        yield proc, url
    finally:
        proc.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_without_base_url_a_confirmation_email_links_to_the_port_the_server_binds(
        served: tuple[Process, str], smtp: SmtpServer) -> None:
    proc, url = served
    log = proc.log()
    assert f"BASE_URL is not set: links in emails use {url}, the address served" in log
    assert "./dev tidings create-admin you@example.org" in log and f"sign in at {url}/admin/login" in log
    with httpx.Client(base_url=url, timeout=10, headers={"Host": "attacker.example"}) as client:
        page = client.get("/subscribe")
        token = re.search(r'name="form_token" value="([^"]+)"', page.text)
        assert token, page.text
        r = client.post("/subscribe", data={"form_token": token.group(1), "website": "", "email": "new@example.org"})
        assert r.status_code == 303 and r.headers["location"] == THANKS, r.headers
    _wait_for(lambda: smtp.received, "the confirmation email", proc)
    text = smtp.received[0].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert re.search(re.escape(url) + r"/confirm/\S+", text), text
    assert "localhost:8000" not in text and "attacker.example" not in text


@pytest.mark.slow
def test_the_start_page_links_to_the_form_the_signup_the_archive_and_the_admin(
        served: tuple[Process, str]) -> None:
    _proc, url = served
    r = httpx.get(f"{url}/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for href, words in (("/contact", "Send us a message"), ("/subscribe", "Subscribe to the newsletter"),
                        ("/archive", "Read past newsletters"), ("/admin/", "Staff sign-in")):
        assert f'<a href="{href}">{words}</a>' in r.text
        assert httpx.get(f"{url}{href}", timeout=10, follow_redirects=True).status_code == 200


@pytest.mark.slow
def test_a_port_in_use_is_one_line_and_a_non_zero_exit_before_the_worker_starts(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
                           env=_env(tmp_path, LOG_LEVEL="info"), cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    assert r.returncode == 1
    assert r.stderr == f"error: port {port} on 127.0.0.1 is in use: stop the other program or pass --port\n"
    assert r.stdout == "" and not (tmp_path / "tidings.db").exists()  # nothing started, nothing migrated


@pytest.mark.slow
@pytest.mark.parametrize(("launcher", "serve", "run"), [("./dev tidings", "./dev serve", "./dev tidings"),
                                                       (None, "tidings serve", "tidings")])
def test_the_demo_names_the_commands_that_work_where_the_user_is(tmp_path: Path, launcher: str | None, serve: str,
                                                                  run: str) -> None:
    env = _env(tmp_path, **({"TIDINGS_LAUNCHER": launcher} if launcher else {}))
    r = subprocess.run([sys.executable, "-m", "service.cli", "demo"], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (f"Start Tidings with `{serve}`, then open (BASE_URL is not set, so these are where `{serve}` "
            f"listens; for another port, run `{run} demo --port N` or set BASE_URL):") in r.stdout
    # what `serve` on its defaults (127.0.0.1:8000) derives and prints, not a guessed localhost
    assert "  admin sign-in      http://127.0.0.1:8000/admin/login\n" in r.stdout
    assert "localhost" not in r.stdout
    assert (f"Preview the draft digest with `{run} campaign preview 1`, "
            f"send it with `{run} campaign send 1`.") in r.stdout


@pytest.mark.slow
def test_the_demo_for_another_port_prints_the_urls_that_server_answers(tmp_path: Path) -> None:
    """`demo --port N` then `serve --port N`, as the output says: every URL it printed answers."""
    port = free_port()
    env = _env(tmp_path, TIDINGS_LAUNCHER="./dev tidings")
    r = subprocess.run([sys.executable, "-m", "service.cli", "demo", "--port", str(port)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"Start Tidings with `./dev serve --port {port}`, then open" in r.stdout
    urls = re.findall(r"^  [a-z -]+ (http://\S+)", r.stdout, re.M)
    assert len(urls) == 5 and all(u.startswith(f"http://127.0.0.1:{port}/") for u in urls), r.stdout
    again = subprocess.run([sys.executable, "-m", "service.cli", "demo", "--port", str(port)], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert "The demo is already loaded: nothing changed." in again.stdout
    assert re.findall(r"^  [a-z -]+ (http://\S+)", again.stdout, re.M) == urls
    proc = Process(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    proc.start()
    try:
        _wait_for(lambda: _answers(urls[0].rstrip("/")), "/healthz", proc)
        for url in urls:
            assert httpx.get(url, timeout=10, follow_redirects=True).status_code == 200, url
    finally:
        proc.stop()


async def test_the_start_page_escapes_the_organisation_name(db: Database) -> None:
    async with client_with(db, org_name='Praxis <script>alert("x")</script> & Co') as client:
        r = await client.get("/")
        head = await client.head("/")
    assert r.status_code == head.status_code == 200
    assert "<script>" not in r.text
    assert "<h1>Praxis &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co</h1>" in r.text
    assert '<nav aria-label="Pages of Praxis &lt;script&gt;' in r.text


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_that_is_not_a_port_number_is_refused_by_name(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    from service.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--port", port])
    assert exit_.value.code == 2
    assert f"argument --port: expected a port number from 0 to 65535, got '{port}'" in capsys.readouterr().err
