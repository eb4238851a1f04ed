"""Real processes for tests that need them: `tidings serve` / `tidings worker` started as
subprocesses against the test database and SMTP server, stopped or killed on demand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.smtp import free_port

ROOT = Path(__file__).resolve().parent.parent


def tidings_env(database_url: str, secret: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMTP_", "DATABASE_", "SECRET_", "BASE_", "FORM_", "SEND_", "ALLOW_", "ORG_"))}
    env.update({"DATABASE_URL": database_url, "SECRET_KEY": secret, "LOG_LEVEL": "warning",
                "PYTHONUNBUFFERED": "1", "ALLOW_HTTP_BASE_URL": "true",  # test servers are plain http
                "ORG_POSTAL_ADDRESS": "Clinic Street 1\\n12345 Testtown"})
    env.update(extra)
    return env


class Process:
    """A `tidings` subprocess; output goes to a log file so a failing test can show it."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", *self.args], env=self.env,
                                     cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


class LiveServer(Process):
    """`tidings serve` on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path, *, worker: bool = True, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {"BASE_URL": self.url, **env}
        args = ["serve", "--port", str(self.port)] + ([] if worker else ["--no-worker"])
        super().__init__(args, env, log_path)

    def start(self, timeout: float = 120.0) -> None:
        super().start()
        deadline = time.monotonic() + timeout
        # One client for the polls: httpx.get() builds a client, and its SSL context, every time
        # (~40 ms of CPU, as much as the 50 ms between polls while the server starts).
        with httpx.Client(timeout=1) as client:
            while True:
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert self.proc is not None
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()  # a server that missed its deadline would otherwise outlive the test
                    raise RuntimeError(f"tidings serve did not start:\n{self.log()}")
                time.sleep(0.05)
