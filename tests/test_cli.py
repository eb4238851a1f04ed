"""The `tidings` command: help for every subcommand, one-line errors, a real `serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.smtp import SmtpServer, free_port


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL", "SMTP_URL")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env.update(extra)
    return env


def _tidings(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=_env(tmp_path, **env),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_every_command_has_help(tmp_path: Path) -> None:
    from service.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = list(sub.choices)  # type: ignore[union-attr]
    assert {"serve", "worker", "migrate"} <= set(names)
    for name in names:
        result = _tidings(tmp_path, name, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: tidings {name}")


def test_worker_refuses_an_unmigrated_postgres_schema_in_one_line(tmp_path: Path) -> None:
    result = _tidings(tmp_path, "worker", DATABASE_URL="postgresql://postgres@127.0.0.1:1/none",
                      SECRET_KEY="s" * 40)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the database")
    assert "Traceback" not in result.stderr


def test_mail_test_sends_through_smtp_and_reports_failures(tmp_path: Path, smtp: SmtpServer) -> None:
    result = _tidings(tmp_path, "mail-test", "ops@example.org", SMTP_URL=smtp.url,
                      MAIL_FROM="Clinic <hello@clinic.test>")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sent to the SMTP server: 2.0.0 queued")
    assert smtp.received[0].recipients == ["ops@example.org"]
    smtp.handler.behaviour.refuse_recipients = {"gone@example.org": "550 5.1.1 no such user"}
    failed = _tidings(tmp_path, "mail-test", "gone@example.org", SMTP_URL=smtp.url)
    assert failed.returncode == 1
    assert failed.stderr.strip() == "error: sending failed: 550 5.1.1 no such user"
    bad = _tidings(tmp_path, "mail-test", "not-an-address", SMTP_URL=smtp.url)
    assert bad.returncode == 1 and bad.stderr.startswith("error: This email address is not valid")


@pytest.mark.slow
def test_serve_on_embedded_default_answers_healthz(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
                            env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        assert (tmp_path / "cli.db").exists() and (tmp_path / "cli.db.secret").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM), err  # uvicorn re-raises the signal after a clean shutdown
    assert "Application shutdown complete" in err
    assert "worker" in err and "started" in err
