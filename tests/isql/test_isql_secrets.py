"""engine.secrets: the keyring contract (in-memory backend as the test double), the
`sybar password set` command, isql's use of it, and one test on a real Secret Service."""

from __future__ import annotations

import io
import os
import subprocess
import uuid

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError

import engine.secrets as secrets
from engine.jobs.status import StatusError

SECRET = "s3cret-Pass-Phrase"


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps entries in a dict: the keyring API, nothing more."""

    # 0: never chosen by keyring's own discovery. Any KeyringBackend subclass that has been imported is a
    # candidate there, and one with a priority would be chained behind the Secret Service in every later
    # lookup of this process (a LockedKeyring answering "locked" for each entry the real keyring lacks).
    priority = 0

    def __init__(self):
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.entries.get((service, username))

    def set_password(self, service, username, password):
        self.entries[(service, username)] = password

    def delete_password(self, service, username):
        if (service, username) not in self.entries:
            raise PasswordDeleteError("not found")
        del self.entries[(service, username)]


class LockedKeyring(MemoryKeyring):
    def get_password(self, service, username):
        raise KeyringLocked("Failed to unlock the collection!")

    def set_password(self, service, username, password):
        raise KeyringLocked("Failed to unlock the collection!")


@pytest.fixture
def use_keyring():
    old = keyring.get_keyring()

    def use(backend):
        keyring.set_keyring(backend)
        return backend

    yield use
    keyring.set_keyring(old)


@pytest.fixture
def memory(use_keyring):
    return use_keyring(MemoryKeyring())


class TTY(io.StringIO):
    def isatty(self):
        return True


def test_round_trip_and_service_name(memory):
    assert secrets.get_password("SYBAR", "sa") is None
    secrets.set_password("SYBAR", "sa", SECRET)
    assert memory.entries == {("sybar:SYBAR", "sa"): SECRET}
    assert secrets.get_password("SYBAR", "sa") == SECRET
    assert secrets.get_password("OTHER", "sa") is None
    assert secrets.delete_password("SYBAR", "sa") is True
    assert secrets.delete_password("SYBAR", "sa") is False
    assert secrets.get_password("SYBAR", "sa") is None


def test_empty_password_and_names_refused(memory):
    with pytest.raises(StatusError):
        secrets.set_password("SYBAR", "sa", "")
    with pytest.raises(StatusError, match="no login name"):
        secrets.get_password("SYBAR", "")
    assert memory.entries == {}


@pytest.mark.parametrize("backend", ["fail", "null"])
def test_no_usable_keyring_is_status_130(use_keyring, backend):
    from keyring.backends import fail, null

    use_keyring(fail.Keyring() if backend == "fail" else null.Keyring())
    for call in (lambda: secrets.get_password("SYBAR", "sa"),
                 lambda: secrets.set_password("SYBAR", "sa", SECRET),
                 lambda: secrets.delete_password("SYBAR", "sa")):
        with pytest.raises(StatusError) as ei:
            call()
        assert ei.value.status == 130
        msg = str(ei.value)
        assert msg.startswith("no OS keyring is available: ")
        assert "gnome-keyring-daemon" in msg and "sybar password set" in msg
        assert SECRET not in msg


def test_backend_errors_become_status_130_without_the_secret(use_keyring):
    use_keyring(LockedKeyring())
    with pytest.raises(StatusError) as ei:
        secrets.set_password("SYBAR", "sa", SECRET)
    assert ei.value.status == 130 and "KeyringLocked" in str(ei.value) and SECRET not in str(ei.value)
    assert ei.value.__cause__ is None and ei.value.__suppress_context__


def test_password_set_from_piped_stdin(memory, capsys):
    assert secrets.password_set_command("SYBAR", "sa", stdin=io.StringIO(SECRET + "\r\nignored\n")) == 0
    assert memory.entries[("sybar:SYBAR", "sa")] == SECRET
    out, err = capsys.readouterr()
    assert "sybar:SYBAR" in out and SECRET not in out + err


def test_password_set_keeps_spaces_inside_the_line(memory):
    assert secrets.password_set_command("SYBAR", "sa", stdin=io.StringIO(" a b \n")) == 0
    assert memory.entries[("sybar:SYBAR", "sa")] == " a b "


@pytest.mark.parametrize("text", ["", "\n"])
def test_password_set_refuses_nothing(memory, capsys, text):
    assert secrets.password_set_command("SYBAR", "sa", stdin=io.StringIO(text)) == 1
    assert memory.entries == {}
    assert "nothing stored" in capsys.readouterr().err


def test_password_set_on_a_terminal_asks_twice(memory, monkeypatch):
    answers = iter([SECRET, SECRET])
    prompts = []
    monkeypatch.setattr(secrets.getpass, "getpass", lambda p: (prompts.append(p), next(answers))[1])
    assert secrets.password_set_command("SYBAR", "sa", stdin=TTY("not this\n")) == 0
    assert memory.entries[("sybar:SYBAR", "sa")] == SECRET
    assert prompts == ["Password for sa on SYBAR: ", "Again: "]


def test_password_set_on_a_terminal_mismatch(memory, monkeypatch, capsys):
    answers = iter([SECRET, "other"])
    monkeypatch.setattr(secrets.getpass, "getpass", lambda p: next(answers))
    assert secrets.password_set_command("SYBAR", "sa", stdin=TTY()) == 1
    assert memory.entries == {} and "differ" in capsys.readouterr().err


def test_password_set_without_keyring_returns_130_before_reading(use_keyring, capsys):
    from keyring.backends import fail

    use_keyring(fail.Keyring())
    stdin = io.StringIO(SECRET + "\n")
    assert secrets.password_set_command("SYBAR", "sa", stdin=stdin) == 130
    assert stdin.tell() == 0  # the password was not even read
    assert "no OS keyring is available" in capsys.readouterr().err


def test_isql_takes_the_password_from_the_keyring(memory, tmp_path):
    from engine.isql.main import Isql
    from engine.isql.options import parse_args

    secrets.set_password("SYBAR", "sa", SECRET)
    ifile = tmp_path / "interfaces"
    ifile.write_text("SYBAR\n\tquery tcp ether 127.0.0.1 5999\n")
    got = []

    class Conn:
        def execute(self, sql):
            return iter(())

        def close(self):
            pass

    def connect(address, opts, user, pw):
        got.append((user, pw))
        return Conn()

    code = Isql(parse_args(["-Usa", "-SSYBAR", "-I", str(ifile)]), stdin=io.StringIO("select 1\ngo\n"),
                stdout=io.StringIO(), stderr=io.StringIO(), env={}, connect=connect).run()
    assert code == 0 and got == [("sa", SECRET)]


@pytest.mark.secret_service
def test_real_secret_service(use_keyring):
    """Set, read and delete through the Secret Service (gnome-keyring under dbus-run-session)."""
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        pytest.fail(
            "DBUS_SESSION_BUS_ADDRESS is unset: this test needs a Secret Service on a session bus. Run it as "
            "`dbus-run-session -- sh -c 'echo -n x | gnome-keyring-daemon --unlock --components=secrets; "
            "pytest -m secret_service tests/isql'` (Debian: gnome-keyring dbus-x11 libsecret-tools).")
    from keyring.backends import SecretService

    backend = SecretService.Keyring()
    use_keyring(backend)
    server = f"SYBARTEST{uuid.uuid4().hex[:8]}"
    try:
        assert secrets.get_password(server, "sa") is None
        assert secrets.password_set_command(server, "sa", stdin=io.StringIO(SECRET + "\n")) == 0
        assert secrets.get_password(server, "sa") == SECRET
        # the same entry, as the desktop sees it (secret-tool: Debian libsecret-tools, installed by tools/setup)
        found = subprocess.run(["secret-tool", "lookup", "service", f"sybar:{server}", "username", "sa"],
                               capture_output=True, text=True, timeout=30)
        assert found.stdout.strip() == SECRET
        secrets.set_password(server, "sa", SECRET + "2")
        assert secrets.get_password(server, "sa") == SECRET + "2"
    finally:
        assert secrets.delete_password(server, "sa") in (True, False)
    assert secrets.get_password(server, "sa") is None
    assert secrets.delete_password(server, "sa") is False


def test_a_transient_init_error_is_retried_not_reported(use_keyring):
    from keyring.errors import InitError

    class FlakyKeyring(MemoryKeyring):
        fails = 2

        def get_password(self, service, username):
            if self.fails:
                self.fails -= 1
                raise InitError("Failed to create the collection: Prompt dismissed")
            return super().get_password(service, username)

    kr = use_keyring(FlakyKeyring())
    kr.set_password(secrets.service_name("SYBAR"), "sa", SECRET)
    assert secrets.get_password("SYBAR", "sa") == SECRET and kr.fails == 0
    kr.fails = 5                                   # a keyring that stays broken is still status 130
    with pytest.raises(StatusError) as ei:
        secrets.get_password("SYBAR", "sa")
    assert ei.value.status == 130 and "InitError" in str(ei.value) and SECRET not in str(ei.value)
