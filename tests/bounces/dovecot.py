"""A private Debian dovecot (IMAP and POP3) on loopback ports for the bounce mailbox tests: its own
configuration, base_dir and maildir in a temporary directory, one user with a static password, so
nothing of the machine's own mail set-up is used. TLS with a self-signed certificate made for the
run (openssl): imaps and pop3s on their own ports, STARTTLS offered on the plain ones."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "bounces"
PASSWORD = "mailbox-pass-9f3k"  # noqa: S105 - the test mailbox's own password


@dataclass
class Dovecot:
    root: Path
    ports: dict[str, int]  # scheme -> port
    pid: int

    @property
    def imap_port(self) -> int:
        return self.ports["imap"]

    def url(self, scheme: str, path: str = "/INBOX", *, password: str = PASSWORD, query: str = "verify=false") -> str:
        """The mailbox URL; by default certificates are not checked (ours is self-signed)."""
        where = path if scheme.startswith("imap") else ""
        return f"{scheme}://{USER}:{password}@127.0.0.1:{self.ports[scheme]}{where}" + (f"?{query}" if query else "")

    def imap(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=10)
        client.login(USER, PASSWORD)
        return client

    def deliver(self, *messages: bytes, folder: str = "INBOX") -> None:
        with self.imap() as client:
            for raw in messages:
                client.append(folder, raw)

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        """The messages in a folder (not deleted), oldest first; [] when the folder does not exist."""
        with self.imap() as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search(["UNDELETED"])
            data = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [bytes(data[uid][b"BODY[]"]) for uid in sorted(data)]

    def empty(self) -> None:
        """Remove every message and every folder but INBOX."""
        with self.imap() as client:
            for _flags, _delim, name in client.list_folders():
                if name != "INBOX":
                    client.delete_folder(name)
            client.select_folder("INBOX")
            uids = client.search(["ALL"])
            if uids:
                client.delete_messages(uids)
                client.expunge()

    def stop(self) -> None:
        os.kill(self.pid, signal.SIGTERM)
        _wait(lambda: not _answers(self.imap_port), what="dovecot to stop")

    def restart(self) -> None:
        self.pid = _start(self.root, tuple(self.ports.values()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait(condition: object, *, what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _users() -> tuple[str, str, int, int]:
    """(internal user, login user, mail uid, mail gid): dovecot's own users when we are root, else ourselves."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        return "dovecot", "dovenull", nobody.pw_uid, nobody.pw_gid
    me = pwd.getpwuid(os.geteuid())
    return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid


def _config(root: Path, ports: dict[str, int]) -> str:
    internal, login, uid, gid = _users()
    return f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = tidings-test-{ports["imap"]}
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
log_path = {root}/dovecot.log
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ports["imaps"]}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {ports["pop3"]}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {ports["pop3s"]}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
"""


def _start(root: Path, ports: tuple[int, ...]) -> int:
    # Output to files: the daemon keeps whatever it inherits, so a pipe here would never end.
    with open(root / "start.log", "ab") as out:
        subprocess.run([DOVECOT, "-c", str(root / "dovecot.conf")], check=True, stdin=subprocess.DEVNULL,
                       stdout=out, stderr=out, timeout=30)
    pid_file = root / "run" / "master.pid"
    _wait(lambda: pid_file.exists() and pid_file.read_text().strip() and all(_answers(p) for p in ports),
          what="dovecot to listen")
    return int(pid_file.read_text().strip())


def start_dovecot() -> Dovecot:
    root = Path(tempfile.mkdtemp(prefix="tidings-dovecot-"))
    root.chmod(0o755)  # the mail user (not us when we are root) must reach its maildir
    (root / "mail").mkdir()
    _internal, _login, uid, gid = _users()
    os.chown(root / "mail", uid, gid)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=mail.clinic.test", "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    ports = {scheme: _free_port() for scheme in ("imap", "imaps", "pop3", "pop3s")}
    (root / "dovecot.conf").write_text(_config(root, ports))
    return Dovecot(root, ports, _start(root, tuple(ports.values())))


def stop_dovecot(server: Dovecot) -> None:
    if _answers(server.imap_port):
        server.stop()
    shutil.rmtree(server.root, ignore_errors=True)
