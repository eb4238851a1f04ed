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


@pytest.mark.slow  # runs `tidings` as a process
def test_every_command_has_help(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m service.cli --help` as a process (the entry point works), then each command's
    help in-process through the same `main` (a process per command cost 15 s)."""
    from service.cli import build_parser, main

    top = _tidings(tmp_path, "--help")
    assert top.returncode == 0 and top.stdout.startswith("usage: tidings"), top.stderr
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = list(sub.choices)  # type: ignore[union-attr]
    assert {"serve", "worker", "migrate"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exited:
            main([name, "--help"])
        assert exited.value.code == 0, name
        assert capsys.readouterr().out.startswith(f"usage: tidings {name}")


@pytest.mark.slow
def test_worker_waits_for_an_unreachable_database_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], cwd=tmp_path, text=True,
                            env=_env(tmp_path, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/none",
                                     SECRET_KEY="s" * 40, WORKER_NICE="10"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # blocks until the first attempt failed (or the process ended)
        assert "database not reachable (ConnectionRefusedError" in line and line.rstrip().endswith("retrying in 1 s")
        assert proc.poll() is None
        # WORKER_NICE 10: the worker runs at a lower CPU priority than the app processes
        nice = int(Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        assert nice == min(19, os.nice(0) + 10)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "s" * 40 not in line + err


@pytest.mark.slow
def test_sqlite_database_wal_shm_and_secret_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    from tests.live import LiveServer

    database = tmp_path / "data" / "tidings.db"
    env = _env(tmp_path, DATABASE_URL=f"sqlite:///{database}", LOG_LEVEL="warning")
    old_umask = os.umask(0o022)  # the usual umask: files 0644 unless created otherwise
    server = LiveServer(env, tmp_path / "serve.log")
    try:
        server.start()
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200  # the pool holds the WAL open
        files = [database, tmp_path / "data" / "tidings.db-wal", tmp_path / "data" / "tidings.db-shm",
                 tmp_path / "data" / "tidings.db.secret"]
        assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == dict.fromkeys((f.name for f in files), "0o600")
    finally:
        os.umask(old_umask)
        server.stop()


@pytest.mark.slow  # runs `tidings` as a process
def test_an_existing_world_readable_sqlite_database_is_made_private(tmp_path: Path) -> None:
    database = tmp_path / "cli.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    result = _tidings(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert oct(database.stat().st_mode & 0o777) == "0o600"


@pytest.mark.slow
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


@pytest.mark.slow
def test_serve_and_worker_check_the_dkim_setup_as_they_start(tmp_path: Path, key_pair: tuple[Path, bytes]) -> None:
    """A key that is not a PEM private key stops both with one line; a DKIM_DOMAIN that is not
    aligned with MAIL_FROM is a warning, and the worker goes on starting."""
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    dkim_env = {"SECRET_KEY": "s" * 40, "DKIM_SELECTOR": "t2026", "MAIL_FROM": "hello@clinic.example"}
    for command in (["worker"], ["serve", "--port", str(free_port())]):
        done = _tidings(tmp_path, *command, DKIM_PRIVATE_KEY_FILE=str(broken), **dkim_env)
        assert done.returncode != 0, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "DKIM_PRIVATE_KEY_FILE" in lines[0] and "Traceback" not in done.stderr, lines

    private, _ = key_pair
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], cwd=tmp_path, text=True,
                            env=_env(tmp_path, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/none",
                                     DKIM_PRIVATE_KEY_FILE=str(private), DKIM_DOMAIN="esp.example", **dkim_env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        warning = proc.stderr.readline()
        assert "DKIM_DOMAIN esp.example is not aligned with the domain of MAIL_FROM" in warning, warning
        assert "database not reachable" in proc.stderr.readline()  # the worker went on starting
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
