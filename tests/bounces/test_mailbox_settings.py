"""BOUNCE_MAILBOX_URL, BOUNCE_MAILBOX_DONE and BOUNCE_MAILBOX_INTERVAL: what they mean, and a bad
value stops start-up with one line naming what is wrong, never quoting the password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import Settings, SettingsError

SECRET = "a-good-secret-key-0123456789-abcdefghijklmnop"
PASSWORD = "pa%24%24-w0rd-unique"  # "pa$$-w0rd-unique", URL-encoded


def _settings(**env: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": SECRET, **env}, env_file=None)


def test_imaps_url_with_a_folder_to_move_to() -> None:
    settings = _settings(BOUNCE_MAILBOX_URL=f"imaps://bounce%40clinic.test:{PASSWORD}@mail.clinic.test/Bounces",
                         BOUNCE_MAILBOX_DONE="Bounces/Done", BOUNCE_MAILBOX_INTERVAL="120")
    box = settings.bounce_mailbox
    assert box is not None
    assert (box.protocol, box.host, box.port, box.implicit_tls) == ("imap", "mail.clinic.test", 993, True)
    assert (box.username, box.password, box.folder, box.done) == ("bounce@clinic.test", "pa$$-w0rd-unique",
                                                                  "Bounces", "Bounces/Done")
    assert settings.bounce_mailbox_interval == 120
    assert "pa$$" not in repr(settings) and "pa$$" not in box.display
    assert box.display == "imaps://bounce%40clinic.test@mail.clinic.test:993/Bounces"


def test_pop3_and_plain_imap_defaults() -> None:
    pop = _settings(BOUNCE_MAILBOX_URL="pop3s://u:p@pop.clinic.test").bounce_mailbox
    assert pop is not None and (pop.protocol, pop.port, pop.done, pop.implicit_tls) == ("pop3", 995, "delete", True)
    imap = _settings(BOUNCE_MAILBOX_URL="imap://u:p@127.0.0.1:1143?starttls=never").bounce_mailbox
    assert imap is not None and (imap.port, imap.folder, imap.implicit_tls, imap.starttls) == (1143, "INBOX", False,
                                                                                             False)
    assert _settings(BOUNCE_MAILBOX_URL="pop3://u:p@h").bounce_mailbox.starttls is None  # type: ignore[union-attr]
    assert _settings().bounce_mailbox is None and _settings().bounce_mailbox_interval == 60


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BOUNCE_MAILBOX_URL": f"https://u:{PASSWORD}@mail.clinic.test"}, "BOUNCE_MAILBOX_URL: expected a URL"),
        ({"BOUNCE_MAILBOX_URL": "imaps://mail.clinic.test/INBOX"}, "BOUNCE_MAILBOX_URL: expected a user name and"),
        ({"BOUNCE_MAILBOX_URL": "imaps://bounce@mail.clinic.test"}, "BOUNCE_MAILBOX_URL: expected a user name and"),
        ({"BOUNCE_MAILBOX_URL": f"imaps://u:{PASSWORD}@mail.clinic.test:100000"}, "BOUNCE_MAILBOX_URL: the port"),
        ({"BOUNCE_MAILBOX_URL": f"pop3s://u:{PASSWORD}@pop.clinic.test/INBOX"},
         "BOUNCE_MAILBOX_URL: POP3 has one mailbox only"),
        ({"BOUNCE_MAILBOX_URL": f"imap://u:{PASSWORD}@h?starttls=sometimes"},
         "BOUNCE_MAILBOX_URL: ?starttls= expects require or never"),
        ({"BOUNCE_MAILBOX_URL": f"imaps://u:{PASSWORD}@h?starttls=require"},
         "BOUNCE_MAILBOX_URL: ?starttls has no meaning with imaps://"),
        ({"BOUNCE_MAILBOX_URL": f"imaps://u:{PASSWORD}@h?folder=x"}, "BOUNCE_MAILBOX_URL: unknown option ?folder="),
        ({"BOUNCE_MAILBOX_URL": f"imaps://u:{PASSWORD}@h/IN%2ABOX"}, "BOUNCE_MAILBOX_URL: the folder"),
        ({"BOUNCE_MAILBOX_URL": f"pop3s://u:{PASSWORD}@h", "BOUNCE_MAILBOX_DONE": "Done"},
         "BOUNCE_MAILBOX_DONE: POP3 can only delete"),
        ({"BOUNCE_MAILBOX_URL": f"imaps://u:{PASSWORD}@h", "BOUNCE_MAILBOX_DONE": "Done\x07"},
         "BOUNCE_MAILBOX_DONE: expected delete or an IMAP folder name"),
        ({"BOUNCE_MAILBOX_DONE": "Done"}, "BOUNCE_MAILBOX_DONE: set BOUNCE_MAILBOX_URL too"),
        ({"BOUNCE_MAILBOX_URL": f"imaps://u:{PASSWORD}@h", "BOUNCE_MAILBOX_INTERVAL": "5"},
         "BOUNCE_MAILBOX_INTERVAL: expected a whole number between 10 and 86400"),
        ({"BOUNCE_MAILBOX_URL": f"imaps://u:{PASSWORD}@h", "BOUNCE_MAILBOX_INTERVAL": "often"},
         "BOUNCE_MAILBOX_INTERVAL: expected a whole number"),
    ],
)
def test_bad_mailbox_settings_name_what_is_wrong_without_the_password(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        _settings(**env)
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text
    assert "w0rd" not in text


@pytest.mark.slow  # real `tidings` processes
def test_cli_refuses_a_bad_mailbox_url_in_one_line_without_the_password(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": SECRET,
           "BOUNCE_MAILBOX_URL": f"imaps://u:{PASSWORD}@h:notaport/INBOX"}
    done = subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert done.stderr.strip() == "error: BOUNCE_MAILBOX_URL: the port is not a number between 1 and 65535"
    assert "w0rd" not in done.stdout + done.stderr
