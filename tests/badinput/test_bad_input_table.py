"""The bad-input table (issue 8, part 3): every way a user, a script or a stray peer can hand sybar
something wrong, each answered with a clear sentence and the right status code.

One real `sybar serve` (module fixture) takes them all: script rows through `sybar backup` (the exit
status is the NetBackup status, the sentence is on stderr), SQL rows through FreeTDS fisql (the
dataserver answers with Sybase Msg numbers; a `sybackup::` refusal carries its NetBackup status in
the text), and raw bytes on the dataserver's TDS port, the media port and the control port: the
peer is cut off or told why, the daemon survives and keeps serving others (a fisql query right
after each network row must work).

ROWS at the end of this module is the table: row name -> the function that provokes it -> the kind
of answer (status = sybar's exit status, Msg = the dataserver's message number, media = the status
in the media server's error frame, http = the control API's HTTP status, closed = the peer is cut off
and the log says why) -> the code -> a key phrase of the sentence. Related checks elsewhere:
tests/test_pipeline.py (wrong control token, wrong media HMAC), tests/test_load_failures.py (damaged
file stripes, 33 stripes to files), tests/tds/ (codec-level malformed packets), tests/badinput/
test_corruption.py (damaged backup objects) and tests/fuzz/ (property-based decoders).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sybar_testkit import _bin, served_home, sybar

from engine.media.protocol import AUTH, CHALLENGE, ERROR, JSON, auth_proof, frame, parse_frame_header
from engine.tds.client import Connection
from engine.tds.login import LoginRecord, build_login
from engine.tds.packets import HEADER, STATUS_EOM, PacketType


@pytest.fixture(scope="module")
def bi(tmp_path_factory, sa_in_keyring):
    home = tmp_path_factory.mktemp("badinput")
    with served_home(home, {"bidb": 2}) as s:
        work = tmp_path_factory.mktemp("bi-work")
        stripes = [work / "bidb.s0", work / "bidb.s1"]
        r = s.fisql(f'dump database bidb to "{stripes[0]}" stripe on "{stripes[1]}"\ngo\n'
                    "create database bitgt\ngo\nuse bitgt\ngo\ncreate table mine(x int)\ngo\n"
                    "insert into mine values (7)\ngo\n")
        assert "DUMP is complete" in r.stdout and "Msg" not in r.stdout, r.stdout
        r = s.fisql('dump database bidb to "sybackup::-POLICY Sybase_ASE"\ngo\n')
        assert "DUMP is complete" in r.stdout and "Msg" not in r.stdout, r.stdout
        s.image = json.loads(sybar(home, "list", "--json").stdout)[0]["backup_id"]
        s.work = work
        s.stripes = stripes
        s.state = json.loads((home / "control.json").read_text())
        yield s


# -- how a row is provoked: each returns (kind, code, text) ----------------------------------------


def _cli(s, *args) -> tuple[str, int, str]:
    r = sybar(s.home, *args, timeout=120)
    out = r.stdout + r.stderr
    if r.returncode == 252:  # a status above 255 is printed, as NetBackup's commands do
        return "status", int(re.findall(r"status (\d+)", out)[-1]), out
    return "status", r.returncode, out


def _msg(out: str) -> tuple[str, int | None, str]:
    m = re.search(r"Msg (\d+)", out)
    return "Msg", int(m.group(1)) if m else None, out


def _fisql(s, sql: str, **kw) -> tuple[str, int | None, str]:
    r = s.fisql(sql, timeout=120, **kw)
    return _msg(r.stdout + r.stderr)


def _script(s, name: str, body: str, mode: int) -> Path:
    p = s.work / name
    p.write_text(body)
    p.chmod(mode)
    return p


def missing_script(s):
    return _cli(s, "backup", str(s.work / "sybase_nowhere_backup"))


def script_not_executable(s):
    return _cli(s, "backup", str(_script(s, "sybase_noexec_backup", "#!/bin/sh\nexit 0\n", 0o600)))


def script_world_writable(s):
    return _cli(s, "backup", str(_script(s, "sybase_ww_backup", "#!/bin/sh\nexit 0\n", 0o777)))


def sql_file_missing(s):
    body = ('#!/bin/sh\nHERE=`dirname "$0"`\n'
            'fisql -Usa -SSYBAR -i "$HERE/sybase_gone_backup.sql"\n')
    return _cli(s, "backup", str(_script(s, "sybase_gone_backup", body, 0o700)))


def relative_script_path(s):
    """A relative path is the caller's, not the daemon's: the check names the absolute path."""
    _script(s, "sybase_rel_backup", "#!/bin/sh\nexit 0\n", 0o666 | 0o001)
    r = subprocess.run([_bin("sybar"), "backup", "sybase_rel_backup", "--home", str(s.home)],
                       capture_output=True, text=True, cwd=s.work, timeout=120,
                       env={k: v for k, v in os.environ.items() if k != "SYBAR_SA_PASSWORD"})
    return "status", r.returncode, r.stdout + r.stderr


def unknown_policy(s):
    return _cli(s, "backup", str(s.home / "scripts" / "sybase_mydb_backup"), "--policy", "No_Such_Policy")


def unknown_schedule(s):
    return _cli(s, "backup", str(s.home / "scripts" / "sybase_mydb_backup"), "--schedule", "No_Such_Sched")


def verify_of_an_unknown_image(s):
    return _cli(s, "verify", "nohost_1234567890")


def restore_into_a_path(s):
    before = sorted(p.name for p in s.home.parent.iterdir())
    out = _cli(s, "restore", "--image", s.image, "--database", "../../etc/x")
    assert sorted(p.name for p in s.home.parent.iterdir()) == before
    return out


def unknown_database(s):
    return _fisql(s, 'dump database no_such_db to "sybackup::-POL Sybase_ASE"\ngo\n')


def wrong_password(s):
    return _fisql(s, "select 1\ngo\n", password="not-the-password")


def stripes_33(s):
    devs = " ".join(f'stripe on "{s.work}/s33.{i}"' for i in range(1, 33))
    kind, code, out = _fisql(s, f'dump database bidb to "{s.work}/s33.0" {devs}\ngo\n')
    assert not list(s.work.glob("s33.*")), "a refused dump created stripe files"
    return kind, code, out


def sybackup_stripes_33(s):
    before = sybar(s.home, "list", "--json").stdout
    devs = " ".join(['stripe on "sybackup::-POLICY Sybase_ASE"'] * 32)
    out = _fisql(s, f'dump database bidb to "sybackup::-POLICY Sybase_ASE" {devs}\ngo\n')
    assert sybar(s.home, "list", "--json").stdout == before, "a refused dump left an image"
    return out


def load_into_a_database_that_does_not_exist(s):
    return _fisql(s, f'load database no_such_target from "{s.stripes[0]}" stripe on "{s.stripes[1]}"\ngo\n')


def sybackup_unknown_option(s):
    return _fisql(s, 'dump database bidb to "sybackup::-POLICY Sybase_ASE -COLOUR blue"\ngo\n')


def sybackup_option_without_value(s):
    return _fisql(s, 'dump database bidb to "sybackup::-POLICY"\ngo\n')


def sybackup_unknown_policy(s):
    return _fisql(s, 'dump database bidb to "sybackup::-POLICY No_Such_Policy"\ngo\n')


def sybackup_unknown_schedule(s):
    return _fisql(s, 'dump database bidb to "sybackup::-POLICY Sybase_ASE -SCHED No_Such_Sched"\ngo\n')


def load_of_a_dump_that_does_not_exist(s):
    return _fisql(s, 'load database bitgt from "sybackup::SYBAR.bidb.D.0.1.01-01-2001.00:00:00"\ngo\n')


def load_into_a_database_in_use(s):
    target = s.db_file("bitgt")
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    holder = Connection.connect(s.host, s.port, user="sa", password=s.password, timeout=30)
    try:
        list(holder.execute("use bitgt"))
        out = _fisql(s, f'load database bitgt from "{s.stripes[0]}" stripe on "{s.stripes[1]}"\ngo\n')
    finally:
        holder.close()
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before, "the target changed"
    return out


def object_name_path_traversal(s):
    return _fisql(s, 'load database bitgt from "sybackup::../../../etc/passwd"\ngo\n')


def sybackup_option_path_traversal(s):
    before = sorted(p.name for p in s.home.rglob("*"))
    out = _fisql(s, 'dump database bidb to "sybackup::-POLICY Sybase_ASE -CLIENT ../../outside"\ngo\n')
    assert not (s.home.parent / "outside").exists()
    assert sorted(p.name for p in s.home.rglob("*") if "outside" in p.name) == [n for n in before if "outside" in n]
    return out


# -- raw bytes on the ports --------------------------------------------------------------------------


def _log(s) -> str:
    return (s.home / "logs" / "serve.log").read_text(errors="replace")


def _still_serving(s) -> None:
    r = s.fisql("select 40 + 2\ngo\n")
    assert "42" in r.stdout and "Msg" not in r.stdout, r.stdout + r.stderr


def _raw(addr: tuple[str, int], data: bytes, *, shut: bool = True, timeout: float = 20) -> tuple[bytes, bool]:
    """Send data; read until the peer closes. (what came back, whether the peer closed)."""
    got = b""
    with socket.create_connection(addr, timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if shut:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return got, True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return got, True
            except TimeoutError:
                return got, False
            if not chunk:
                return got, True
            got += chunk
    return got, False


def _tds_raw(s, data: bytes, log_phrase: str | None, **kw):
    mark = len(_log(s))
    _got, closed = _raw((s.host, s.port), data, **kw)
    assert closed, "the dataserver kept a garbage connection open"
    _still_serving(s)
    if log_phrase is None:
        return "closed", None, "connection closed"
    new = _log(s)[mark:]
    return "closed", None, new


def _packet(ptype: int, body: bytes, *, eom: bool = True, length: int | None = None) -> bytes:
    return HEADER.pack(ptype, STATUS_EOM if eom else 0, length if length is not None else 8 + len(body),
                       0, 0, 0) + body


def tds_wrong_packet_type(s):
    return _tds_raw(s, _packet(0x55, b"hello"), "unknown packet type 0x55")


def tds_truncated_header(s):
    return _tds_raw(s, b"\x02\x01\x02", None)


def tds_packet_shorter_than_its_header(s):
    return _tds_raw(s, _packet(PacketType.LOGIN, b"", length=3), "shorter than the 8-byte header")


def _rss(s) -> int:
    status = (Path("/proc") / str(s.proc.pid) / "status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def tds_huge_message_before_login(s):
    """Non-final login packets of the largest size: refused after 64 KiB, not buffered to 16 MiB.

    (A TDS length field holds at most 65535, so "huge" is a message that never ends.)"""
    one = _packet(PacketType.LOGIN, b"\xaa" * (65535 - 8), eom=False)
    rss_before = _rss(s)
    sent = 0
    closed = False
    mark = len(_log(s))
    with socket.create_connection((s.host, s.port), timeout=20) as sock:
        try:
            for _ in range(320):  # 20 MiB if nobody stops us (a message may hold 16 MiB after a login)
                sock.sendall(one)
                sent += len(one)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if not closed:
            sock.settimeout(20)
            try:
                closed = sock.recv(1) == b""
            except ConnectionResetError:
                closed = True
    # the socket buffers on both sides absorb a few MiB after the server's 64 KiB cut-off
    assert closed and sent < 16 << 20, f"the dataserver took {sent} bytes of a never-ending login"
    rss_cut = _rss(s)
    _still_serving(s)
    print(f"huge login message: cut off after {sent} bytes sent; daemon RSS {rss_before} -> {rss_cut} kB, "
          f"{_rss(s)} kB after a query")
    return "closed", None, _log(s)[mark:]


def tds_login_record_garbage(s):
    return _tds_raw(s, _packet(PacketType.LOGIN, os.urandom(40)), "login")


def tds_login_record_random(s):
    """A login packet of the right size full of noise: its length bytes overrun their fields."""
    return _tds_raw(s, _packet(PacketType.LOGIN, bytes(range(256)) * 3), "login record")


def tds_garbage_after_login(s):
    """A logged-in peer that sends a packet type no client sends: Msg 7778, then the connection ends."""
    rec = LoginRecord(host="bi", user="sa", password=s.password, host_process="1", app="bi", server="SYBAR",
                      library="bi", language="us_english", charset="utf8")
    login = _packet(PacketType.LOGIN, build_login(rec))
    got, closed = _raw((s.host, s.port), login + _packet(0x04, b"\x00" * 16), shut=False)
    assert closed
    _still_serving(s)
    text = got.decode("latin-1")
    m = re.search(r"TDS protocol error[^\x00]*", text)
    return "Msg", 7778 if "TDS protocol error" in text else None, m.group(0) if m else text


def _media_addr(s) -> tuple[str, int]:
    host, port = s.state["media"].rsplit(":", 1)
    return host, int(port)


def _media_error(got: bytes) -> tuple[str, int | None, str]:
    pos = 0
    while pos + 5 <= len(got):
        kind, length = parse_frame_header(got[pos:pos + 5])
        payload = got[pos + 5:pos + 5 + length]
        pos += 5 + length
        if kind == ERROR:
            e = json.loads(payload)
            return "media", e["status"], e["message"]
    return "media", None, got[:200].decode("latin-1")


def media_garbage(s):
    got, closed = _raw(_media_addr(s), b"GET / HTTP/1.0\r\n\r\n" + os.urandom(64))
    assert closed
    _still_serving(s)
    return _media_error(got)


def media_huge_frame(s):
    got, closed = _raw(_media_addr(s), struct.pack(">BI", AUTH, 0xFFFFFFF0) + b"x" * 100)
    assert closed
    return _media_error(got)


def _log_after(s, mark: int, phrase: str) -> str:
    """The serve log written since mark, once it holds phrase (the media server's lines arrive late)."""
    deadline = time.monotonic() + 10
    while True:
        new = _log(s)[mark:]
        if phrase in new or time.monotonic() > deadline:
            return new
        time.sleep(0.05)


def media_truncated_header(s):
    mark = len(_log(s))
    got, closed = _raw(_media_addr(s), b"A\x00")
    assert closed
    _still_serving(s)
    assert _media_error(got)[1] is None  # nothing but the challenge came back
    return "closed", None, _log_after(s, mark, "2 bytes of a frame read")


def media_object_name_traversal(s):
    """Authenticated (the home's secret) but asks to store ../../x: refused, nothing written anywhere."""
    secret = (s.home / "media.secret").read_bytes()
    with socket.create_connection(_media_addr(s), timeout=20) as sock:
        f = sock.makefile("rb")
        kind, n = parse_frame_header(f.read(5))
        assert kind == CHALLENGE
        nonce = f.read(n)[-32:]
        sock.sendall(frame(AUTH, auth_proof(secret, nonce)))
        kind, n = parse_frame_header(f.read(5))
        assert kind == JSON, f.read(n)
        f.read(n)
        req = json.dumps({"op": "store", "name": "../../escaped.D", "unit": None}).encode()
        sock.sendall(frame(JSON, req))
        rest = f.read()
    assert not (s.home / "escaped.D").exists() and not (s.home.parent / "escaped.D").exists()
    assert not list(s.home.rglob("*escaped*"))
    return _media_error(rest)


def _control(s, data: bytes | None, *, token: bool, path: str = "/api/v1/backups", method="POST"):
    req = urllib.request.Request(s.state["url"] + path, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + (s.home / "control.token").read_text().strip())
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return "http", resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        return "http", e.code, body


def control_no_token(s):
    return _control(s, b"{}", token=False)


def control_not_json(s):
    kind, code, body = _control(s, b"\x00\xffnot json at all{", token=True)
    return kind, code, body


def control_json_not_an_object(s):
    return _control(s, b"[1, 2, 3]", token=True)


def control_raw_garbage(s):
    host, port = s.state["url"].split("//", 1)[1].rsplit(":", 1)
    got, closed = _raw((host, int(port)), b"\x16\x03\x01\x00\xa5garbage\r\n\r\n", shut=False)
    _still_serving(s)
    line = got.split(b"\r\n", 1)[0].decode("latin-1")
    m = re.match(r"HTTP/1\.[01] (\d+)", line)
    return "http", int(m.group(1)) if m else None, got.decode("latin-1")


@dataclass(frozen=True)
class Row:
    name: str
    provoke: Callable
    kind: str          # status (exit code of sybar), Msg (dataserver), media (error frame), http, closed
    code: int | None   # the NetBackup status / Msg number / HTTP status; None: the connection is just cut
    phrase: str        # a key phrase of the sentence (or of the log line for a cut connection)


ROWS = [
    Row("missing script", missing_script, "status", 71, "does not exist"),
    Row("script not executable", script_not_executable, "status", 69, "is not executable"),
    Row("world-writable script", script_world_writable, "status", 69, "world-writable"),
    Row("relative path of a bad script", relative_script_path, "status", 69, "world-writable"),
    Row("SQL file missing", sql_file_missing, "status", 71, "sybase_gone_backup.sql"),
    Row("unknown policy (sybar backup)", unknown_policy, "status", 230, "No_Such_Policy"),
    Row("unknown schedule (sybar backup)", unknown_schedule, "status", 240, "No_Such_Sched"),
    Row("verify of an image not in the catalog", verify_of_an_unknown_image, "status", 227, "nohost_1234567890"),
    Row("restore into a database name with a path", restore_into_a_path, "status", 2850,
        "'../../etc/x' is not a valid database name"),
    Row("unknown database", unknown_database, "Msg", 911, "no_such_db"),
    Row("wrong password", wrong_password, "Msg", 4002, "Login failed"),
    Row("33 stripes", stripes_33, "Msg", 8009, "at most 32"),
    Row("33 sybackup:: stripes", sybackup_stripes_33, "Msg", 8009, "at most 32"),
    Row("LOAD into a database that does not exist", load_into_a_database_that_does_not_exist, "Msg", 911,
        "no_such_target"),
    Row("sybackup:: unknown option", sybackup_unknown_option, "Msg", 8009, "Unknown option -COLOUR"),
    Row("sybackup:: option without value", sybackup_option_without_value, "Msg", 8009, "needs a value"),
    Row("sybackup:: unknown policy", sybackup_unknown_policy, "Msg", 8009, "(status 230)"),
    Row("sybackup:: unknown schedule", sybackup_unknown_schedule, "Msg", 8009, "(status 240)"),
    Row("LOAD of a dump that does not exist", load_of_a_dump_that_does_not_exist, "Msg", 8009, "(status 227)"),
    Row("target database in use", load_into_a_database_in_use, "Msg", 3101, "must have exclusive use"),
    Row("path traversal in an object name", object_name_path_traversal, "Msg", 8009, "(status 20)"),
    Row("path traversal in a sybackup:: option", sybackup_option_path_traversal, "Msg", 8009, "holds a path"),
    Row("TDS: wrong packet type", tds_wrong_packet_type, "closed", None, "unknown packet type 0x55"),
    Row("TDS: truncated header", tds_truncated_header, "closed", None, "connection closed"),
    Row("TDS: packet length below its header", tds_packet_shorter_than_its_header, "closed", None,
        "shorter than the 8-byte header"),
    Row("TDS: huge message before login", tds_huge_message_before_login, "closed", None, "larger than 65536"),
    Row("TDS: login record too short", tds_login_record_garbage, "closed", None, "login record is 40 bytes"),
    Row("TDS: login record of random bytes", tds_login_record_random, "closed", None,
        "user name length 61 exceeds its 30-byte field"),
    Row("TDS: garbage after login", tds_garbage_after_login, "Msg", 7778, "TDS protocol error"),
    Row("media: garbage", media_garbage, "media", 57, "not the sybar media protocol"),
    Row("media: huge frame length", media_huge_frame, "media", 57, "the limit here is 32 bytes"),
    Row("media: truncated frame header", media_truncated_header, "closed", None, "2 bytes of a frame read"),
    Row("media: path traversal in an object name", media_object_name_traversal, "media", 6, "escaped"),
    Row("control: no token", control_no_token, "http", 401, "not authenticated"),
    Row("control: body not JSON", control_not_json, "http", 400, "not JSON"),
    Row("control: JSON but not an object", control_json_not_an_object, "http", 400, "must be a JSON object"),
    Row("control: raw garbage", control_raw_garbage, "http", 400, "Bad Request"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_bad_input(bi, row):
    kind, code, text = row.provoke(bi)
    assert (kind, code) == (row.kind, row.code), f"{row.name}: got {kind} {code}: {text}"
    assert row.phrase in text, f"{row.name}: {row.phrase!r} not in: {text}"
    assert "Traceback" not in text

