"""A throw-away Postfix instance for end-to-end bounce tests: Debian's Postfix with its own
configuration, queue and data directories in a fresh directory, listening on one loopback port,
never looking anything up in DNS (a transport map sends each test domain to a loopback port),
with a host name unlike any other in the test, logging to a file in that directory.

Postfix's daemons drop to the `postfix` user, so this needs root (to start the master) and a
directory that user can enter (not pytest's tmp_path, which is private to root)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"
HOSTNAME = "mta.tidings-test.invalid"

_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
lmtp      unix  - - n -    - lmtp
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def unavailable() -> str | None:
    """Why a test instance cannot run here, or None."""
    if not Path(POSTFIX).exists():
        return f"{POSTFIX} is missing (apt-get install postfix)"
    if os.geteuid() != 0:
        return "Postfix's master must be started as root (its daemons then run as the postfix user)"
    return None


class PostfixInstance:
    """`start()` it with a transport map {domain: "smtp:[127.0.0.1]:PORT" | "lmtp:inet:127.0.0.1:PORT"}."""

    def __init__(self, port: int, transports: dict[str, str]) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="tidings-postfix-", dir="/tmp"))
        self.root.chmod(0o755)
        self.conf = self.root / "conf"
        self.transports = transports
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def _write_config(self) -> None:
        for name in ("conf", "queue", "data"):
            (self.root / name).mkdir()
        shutil.chown(self.root / "data", user="postfix")
        (self.conf / "transport").write_text("".join(f"{d} {t}\n" for d, t in self.transports.items()))
        (self.conf / "master.cf").write_text(_MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        (self.conf / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {self.root}/queue
data_directory = {self.root}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = {HOSTNAME}
mydomain = tidings-test.invalid
myorigin = $myhostname
mydestination =
relay_domains =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
transport_maps = texthash:{self.conf}/transport
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtputf8_enable = no
delay_warning_time = 0
smtp_tls_security_level = none
smtpd_tls_security_level = none
lmtp_tls_security_level = none
maillog_file_prefixes = {self.root}
maillog_file = {self.root}/maillog
""")

    def start(self, timeout: float = 60.0) -> None:
        """Start the master in the foreground (`start-fg`) and wait until the port answers."""
        self._write_config()
        self.process = subprocess.Popen([POSTFIX, "-c", str(self.conf), "start-fg"], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Postfix exited at start ({self.process.returncode}):\n{self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Postfix did not listen on 127.0.0.1:{self.port} within {timeout} s:\n{self.log}")

    def stop(self) -> None:
        """Stop the master and every daemon, then delete the directory (queue included)."""
        try:
            if self.process is not None and self.process.poll() is None:
                subprocess.run([POSTFIX, "-c", str(self.conf), "stop"], capture_output=True, timeout=60, check=False)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
