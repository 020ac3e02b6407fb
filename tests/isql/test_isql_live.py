"""End to end: isql over a real socket to engine.tds.server.serve_tds with a tiny handler.

In-process runs use the real client (engine.tds.client); subprocess runs start
`python -m engine.isql.main` as a script would, with SQL on a heredoc, the
password from a keyring backend (never argv), and one run on a pseudo-terminal
to see the Password: and 1> prompts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import pty
import select
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from engine.isql.main import Isql
from engine.isql.options import parse_args
from engine.tds.replies import DatabaseChanged, Done, Error, Info, ResultFormat, ResultRow
from engine.tds.server import LoginFailed, serve_tds
from engine.tds.tokens import Column

REPO = Path(__file__).resolve().parents[2]
SECRET = "live-Secret-Pw-7"


class TinySession:
    def __init__(self, flag_dir: Path):
        self.database = "master"
        self.flag_dir = flag_dir
        self.batches: list[str] = []

    async def execute(self, sql):
        self.batches.append(sql)
        s = sql.strip().lower()
        if s.startswith("select"):
            yield ResultFormat([Column("name", "varchar", 10), Column("dbid", "int"),
                                Column("crdate", "datetime")])
            yield ResultRow(("master", 1, dt.datetime(2026, 11, 25, 12, 34, 56)))
            yield ResultRow(("salesdb", None, None))
            yield Done(count=2)
        elif s.startswith("use "):
            new = sql.split()[1]
            yield DatabaseChanged(new, self.database)
            self.database = new
            yield Done()
        elif s.startswith("boom"):
            yield Error(156, 15, "Incorrect syntax near 'boom'.")
            yield Done(error=True)
        elif s.startswith("dump"):
            yield Info("Backup Server: 4.41.1.1: Creating new disk file /tmp/x.dmp.", 4141)
            flag = self.flag_dir / "continue"
            for _ in range(200):  # a test creates the flag once it has seen the line above
                if flag.exists() or not s.endswith("wait"):
                    break
                await asyncio.sleep(0.05)
            yield Info("Backup Server: 3.42.1.1: DUMP is complete (database salesdb).", 4141)
            yield Done()
        elif s.startswith("slow"):
            await asyncio.sleep(30)
            yield Done()
        elif s.startswith("insert"):
            yield Done(count=1)
        else:
            yield Done()

    async def close(self):
        pass


class TinyHandler:
    def __init__(self, flag_dir: Path):
        self.flag_dir = flag_dir
        self.sessions: list[TinySession] = []

    async def login(self, record, peer):
        if record.user != "sa" or record.password != SECRET:
            raise LoginFailed("Login failed.")
        s = TinySession(self.flag_dir)
        self.sessions.append(s)
        return s


@pytest.fixture
def server(tmp_path):
    """A TDS server on a free loopback port, in its own thread; yields (handler, home)."""
    handler = TinyHandler(tmp_path)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box = {}

    async def start():
        box["server"] = await serve_tds(handler, "127.0.0.1", 0, server_name="SYBAR")
        box["port"] = box["server"].sockets[0].getsockname()[1]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()),
                              daemon=True)
    thread.start()
    assert started.wait(10), "the test TDS server did not start"
    home = tmp_path / "home"
    home.mkdir()
    (home / "interfaces").write_text(f"SYBAR\n\tmaster tcp ether 127.0.0.1 {box['port']}\n"
                                     f"\tquery tcp ether 127.0.0.1 {box['port']}\n")
    yield handler, home, box["port"]

    async def stop():
        box["server"].close()
        await box["server"].wait_closed()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def isql(argv, stdin_text, home, *, password=SECRET):
    out, err = io.StringIO(), io.StringIO()
    code = Isql(parse_args([*argv, "--home", str(home)]), stdin=io.StringIO(stdin_text), stdout=out,
                stderr=err, env={}, get_password=lambda s, u: password).run()
    return code, out.getvalue(), err.getvalue()


def test_select_dml_messages_over_the_wire(server):
    handler, home, _ = server
    code, out, err = isql(["-Usa", "-SSYBAR"],
                          "select name, dbid, crdate from sysdatabases\ngo\ninsert t values (1)\ngo\n"
                          "boom\ngo\ndump database salesdb to '/tmp/x.dmp'\ngo\n", home)
    assert code == 0, err
    assert out.splitlines() == [
        " name       dbid        crdate                     ",
        " ---------- ----------- -------------------------- ",
        " master               1 Nov 25 2026 12:34PM        ",
        " salesdb           NULL NULL                       ",
        "",
        "(2 rows affected)",
        "(1 row affected)",
        "Msg 156, Level 15, State 1:",
        "Server 'SYBAR', Line 1:",
        "Incorrect syntax near 'boom'.",
        "Backup Server: 4.41.1.1: Creating new disk file /tmp/x.dmp.",
        "Backup Server: 3.42.1.1: DUMP is complete (database salesdb).",
    ]
    assert handler.sessions[0].batches[0] == "select name, dbid, crdate from sysdatabases\n"


def test_database_option_and_retserverror(server):
    handler, home, _ = server
    code, out, err = isql(["-Usa", "-Dsalesdb", "--retserverror"], "boom\ngo\nselect 1\ngo\n", home)
    assert code == 2
    assert handler.sessions[0].batches == ["use salesdb\n", "boom\n"]
    assert handler.sessions[0].database == "salesdb"


def test_login_failed(server):
    _, home, _ = server
    code, out, err = isql(["-Usa"], "select 1\ngo\n", home, password="wrong")
    assert code == 1
    # the server's EED, printed as SAP isql prints it (scripts grep the output for ^Msg)
    assert out.splitlines() == ["Msg 4002, Level 14, State 1:", "Server 'SYBAR', Line 1:", "Login failed."]
    assert "login to server SYBAR" in err
    assert "wrong" not in out + err


def test_connection_refused(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    (tmp_path / "interfaces").write_text(f"SYBAR\n\tquery tcp ether 127.0.0.1 {port}\n")
    code, out, err = isql(["-Usa"], "select 1\ngo\n", tmp_path)
    assert code == 1
    assert f"127.0.0.1:{port}" in err and "connection refused" in err and "sybar serve" in err


def test_command_timeout(server):
    _, home, _ = server
    started = time.monotonic()
    code, out, err = isql(["-Usa", "-t", "1"], "slow\ngo\nselect 1\ngo\n", home)
    assert code == 1 and "-t" in err
    assert time.monotonic() - started < 10


# -- as a separate process, the way Sybase scripts run isql ---------------------------------------

KEYRING_MODULE = '''
import os
from keyring.backend import KeyringBackend

class FileKeyring(KeyringBackend):
    """Test keyring for subprocesses: one entry per line in a 0600 file."""
    priority = 1
    path = os.environ["ISQL_TEST_KEYRING_FILE"]

    def _load(self):
        entries = {}
        try:
            with open(self.path) as f:
                for line in f:
                    service, user, password = line.rstrip("\\n").split("\\t", 2)
                    entries[(service, user)] = password
        except FileNotFoundError:
            pass
        return entries

    def get_password(self, service, username):
        return self._load().get((service, username))

    def set_password(self, service, username, password):
        raise NotImplementedError

    def delete_password(self, service, username):
        raise NotImplementedError
'''


def subprocess_env(tmp_path: Path, home: Path, entries: dict[tuple[str, str], str]) -> dict[str, str]:
    kr = tmp_path / "kr"
    kr.mkdir(exist_ok=True)
    (kr / "isqltestkeyring.py").write_text(textwrap.dedent(KEYRING_MODULE))
    store = kr / "entries"
    fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for (service, user), pw in entries.items():
            f.write(f"{service}\t{user}\t{pw}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("SYBASE", "FREETDSCONF", "DSQUERY")}
    env.update(PYTHONPATH=f"{REPO}{os.pathsep}{kr}", SYBAR_HOME=str(home),
               PYTHON_KEYRING_BACKEND="isqltestkeyring.FileKeyring", ISQL_TEST_KEYRING_FILE=str(store))
    return env


def test_script_style_heredoc_with_keyring_password(server, tmp_path):
    _, home, _ = server
    env = subprocess_env(tmp_path, home, {("sybar:SYBAR", "sa"): SECRET})
    proc = subprocess.run(
        [sys.executable, "-m", "engine.isql.main", "-Usa", "-SSYBAR", "-w", "250"],
        input="use master\ngo\nselect 1\ngo   \ndump database salesdb to '/tmp/x.dmp'\ngo\n",
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "DUMP is complete (database salesdb)" in proc.stdout
    assert "Msg" not in proc.stdout and proc.stderr == ""


def test_no_password_anywhere_with_heredoc(server, tmp_path):
    _, home, _ = server
    env = subprocess_env(tmp_path, home, {})
    proc = subprocess.run([sys.executable, "-m", "engine.isql.main", "-Usa", "-SSYBAR"],
                          input="select 1\ngo\n", capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "no password for sa on SYBAR: set one with `sybar password set SYBAR sa` or pass -P" in proc.stderr


def test_progress_reaches_the_output_file_while_the_dump_runs(server, tmp_path):
    _, home, _ = server
    env = subprocess_env(tmp_path, home, {("sybar:SYBAR", "sa"): SECRET})
    sql = tmp_path / "dump.sql"
    sql.write_text("dump database salesdb to '/tmp/x.dmp' wait\ngo\n")
    out = tmp_path / "dump.out"
    proc = subprocess.Popen([sys.executable, "-m", "engine.isql.main", "-Usa", "-SSYBAR", "-e", "-i", str(sql),
                             "-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if out.exists() and "Creating new disk file" in out.read_text():
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        else:
            pytest.fail("the first progress line never reached the -o file while the dump ran")
        assert "DUMP is complete" not in out.read_text()
        (tmp_path / "continue").touch()
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    text = out.read_text()
    assert text.startswith("1> dump database salesdb")
    assert text.index("Creating new disk file") < text.index("DUMP is complete")


def _read_until(fd: int, needle: bytes, seen: bytearray, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {needle!r}; got {bytes(seen)!r}"
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            assert chunk, f"isql closed the terminal before {needle!r}; got {bytes(seen)!r}"
            seen.extend(chunk)


def test_terminal_session_prompts_for_password_and_lines(server, tmp_path):
    import fcntl
    import termios

    _, home, _ = server
    env = subprocess_env(tmp_path, home, {})  # nothing in the keyring: isql asks
    master, slave = pty.openpty()

    def take_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-m", "engine.isql.main", "-Usa", "-SSYBAR"], env=env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=take_terminal, close_fds=True)
    os.close(slave)
    seen = bytearray()
    try:
        _read_until(master, b"Password: ", seen)
        os.write(master, SECRET.encode() + b"\n")
        _read_until(master, b"1> ", seen)
        os.write(master, b"insert t values (1)\n")
        _read_until(master, b"2> ", seen)
        os.write(master, b"go\n")
        _read_until(master, b"(1 row affected)", seen)
        os.write(master, b"quit\n")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert SECRET.encode() not in seen  # typed without echo
