"""The NetBackup sequence end to end: bphdb -> script -> isql -> dataserver -> Backup Server
-> sybackup:: stripes -> media server -> storage unit -> catalog, and back for restores."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import time

import pytest
from sybar_testkit import integrity, served_home, start_serve, stop_serve, sybar, sybar_json, table_digest

from engine.control.client import ControlClient
from engine.dataserver.demo_data import fill_demo_database
from engine.demo import install_sample_scripts
from engine.home import Home

OBJECT_NAME = re.compile(r"^SYBAR\.mydb\.D\.([0-3])\.\d+\.\d\d-\d\d-\d{4}\.\d\d:\d\d:\d\d$")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory, sa_in_keyring):
    with served_home(tmp_path_factory.mktemp("pipehome"), {"mydb": 24}) as s:
        yield s


def control(s) -> ControlClient:
    state = json.loads((s.home / "control.json").read_text())
    return ControlClient(state["url"], (s.home / "control.token").read_text().strip())


def images(s) -> list[dict]:
    return sybar_json(s.home, "list")


def test_backup_list_verify_restore(pipe, tmp_path):
    s = pipe
    before = len(images(s))
    r = sybar(s.home, "backup", str(s.home / "scripts" / "sybase_mydb_backup"), "--keyword", "nightly")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "status 0" in r.stdout
    listed = images(s)
    assert len(listed) == before + 1
    image = listed[0]
    assert image["database"] == "mydb" and image["type"] == "D" and image["keyword"] == "nightly"
    assert image["policy"] == "Sybase_ASE" and image["schedule"] == "Default-Application-Backup"
    assert re.match(r"^\S+_\d{10}$", image["backup_id"])
    stripes = image["stripes"]
    assert len(stripes) == 4
    assert sorted(int(OBJECT_NAME.match(o["name"]).group(1)) for o in stripes) == [0, 1, 2, 3]
    assert all(o["bytes"] > 0 and o["checksum"] for o in stripes)
    assert image["expiration"] > image["backup_time"]

    v = sybar(s.home, "verify", image["backup_id"])
    assert v.returncode == 0, v.stdout + v.stderr

    r = sybar(s.home, "restore", "--image", image["backup_id"], "--database", "mydb_copy")
    assert r.returncode == 0, r.stdout + r.stderr
    for table in ("customer", "orders"):
        assert table_digest(s.db_file("mydb_copy"), table) == table_digest(s.db_file("mydb"), table)
    assert integrity(s.db_file("mydb_copy")) == "ok"
    assert "no options set" in s.sybar_isql("sp_helpdb mydb_copy\ngo\n").stdout  # online

    # the restore script path: load by the dump's prefix, then online
    assert "Msg" not in s.sybar_isql("create database mydb_restore for load\ngo\n").stdout
    r = sybar(s.home, "restore", str(s.home / "scripts" / "sybase_mydb_restore"))
    assert r.returncode == 0, r.stdout + r.stderr
    for table in ("customer", "orders"):
        assert table_digest(s.db_file("mydb_restore"), table) == table_digest(s.db_file("mydb"), table)


def test_backup_with_fisql_as_the_scripts_isql(pipe, tmp_path):
    s = pipe
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    text = (s.home / "scripts" / "sybase_mydb_backup").read_text()
    script = scripts / "sybase_mydb_backup"
    script.write_text(text.replace("SYBSERVER=${SYBSERVER:-SYBAR}", "SYBSERVER=${SYBSERVER:-SYBAR}\nISQL=fisql"))
    script.chmod(0o700)
    shutil.copy(s.home / "scripts" / "sybase_mydb_backup.sql", scripts)
    before = len(images(s))
    r = sybar(s.home, "backup", str(script))
    assert r.returncode == 0, r.stdout + r.stderr
    listed = images(s)
    assert len(listed) == before + 1 and len(listed[0]["stripes"]) == 4
    job = sybar_json(s.home, "jobs", str(listed[0]["job_id"]), "--log")
    assert any("fisql" in line["line"] or "DUMP is complete" in line["line"] for line in job["log"])


def _run(coro):
    return asyncio.run(coro)


async def _backup_with_events(s, script, on_event=None):
    client = control(s)
    events = []
    try:
        stream = client.events()
        first = await stream.__anext__()
        assert first["event"] == "connected"
        jobs = await client.backup([str(script)])
        parent = jobs[0]
        async for e in stream:
            events.append(e)
            if on_event is not None:
                await on_event(e, parent, client)
            if e["event"] == "job_ended" and e["job_id"] == parent:
                break
        return parent, events
    finally:
        await client.close()


def test_job_events_show_stripes_rising_to_the_dump_size(pipe):
    s = pipe
    parent, events = _run(_backup_with_events(s, s.home / "scripts" / "sybase_mydb_backup"))
    started = [e["job"] for e in events if e["event"] == "job_started" and e["job"].get("parent_id") == parent]
    stripe_jobs = {j["job_id"]: j for j in started if j["type"] == "stripe"}
    assert len(stripe_jobs) == 4
    for job_id in stripe_jobs:
        progress = [e for e in events if e["event"] == "job_progress" and e["job_id"] == job_id]
        assert progress, f"no progress for stripe job {job_id}"
        done = [p["bytes_done"] for p in progress]
        assert done == sorted(done)
        assert progress[-1]["bytes_done"] == progress[-1]["bytes_expected"] > 0
        ended = [e for e in events if e["event"] == "job_ended" and e["job_id"] == job_id]
        assert ended and ended[0]["status"] == 0
    total = sum(p["bytes_expected"] for p in (
        [e for e in events if e["event"] == "job_progress" and e["job_id"] == j][-1] for j in stripe_jobs))
    # the stripes together carry the whole database: every page of the snapshot
    assert total == s.db_file("mydb").stat().st_size
    final = [e for e in events if e["event"] == "job_ended" and e["job_id"] == parent][0]
    assert final["status"] == 0


def test_cancelled_backup_ends_150_and_leaves_no_image(pipe, tmp_path):
    s = pipe
    before = {i["backup_id"] for i in images(s)}
    slow = _slow_backup_script(s, tmp_path)

    async def cancel_at_first_progress(e, parent, client):
        if e["event"] == "job_progress" and not getattr(cancel_at_first_progress, "done", False):
            cancel_at_first_progress.done = True
            assert await client.cancel(parent)

    parent, events = _run(_backup_with_events(s, slow, cancel_at_first_progress))
    final = [e for e in events if e["event"] == "job_ended" and e["job_id"] == parent][0]
    assert final["status"] == 150, final
    assert {i["backup_id"] for i in images(s)} == before
    cleaned = sybar_json(s.home, "cleanup")
    assert isinstance(cleaned, dict)
    _assert_no_orphans(s)


def _slow_backup_script(s, tmp_path):
    """The sample script on a bigger database with heavy compression: seconds of stripe traffic."""
    r = s.sybar_isql("create database bigdb\ngo\n")
    if "already exists" not in r.stdout:
        fill_demo_database(s.db_file("bigdb"), 96)
    scripts = tmp_path / "slow"
    scripts.mkdir()
    script = scripts / "sybase_bigdb_backup"
    script.write_text((s.home / "scripts" / "sybase_mydb_backup").read_text().replace("sybase_mydb_backup",
                                                                                       "sybase_bigdb_backup"))
    script.chmod(0o700)
    (scripts / "sybase_bigdb_backup.sql").write_text(
        (s.home / "scripts" / "sybase_mydb_backup.sql").read_text()
        .replace("dump database mydb", "dump database bigdb").replace("compression = 101", "compression = 9"))
    return script


def _assert_no_orphans(s):
    catalog_names = {o["name"] for i in images(s) for o in i["stripes"]}
    unit = s.home / "storage" / "disk1"
    stored = {p.name for p in unit.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert stored == catalog_names, (stored - catalog_names, catalog_names - stored)
    incoming = unit / ".incoming"
    assert not incoming.exists() or not any(incoming.iterdir())


def test_killing_the_media_server_mid_stripe(pipe, tmp_path):
    s = pipe
    earlier = images(s)
    assert earlier, "an earlier image is needed"
    before = {i["backup_id"] for i in earlier}
    slow = _slow_backup_script(s, tmp_path)
    status = _run(_status(s))
    media_pid = status["media_pid"]

    async def kill_at_first_progress(e, parent, client):
        if e["event"] == "job_progress" and not getattr(kill_at_first_progress, "done", False):
            kill_at_first_progress.done = True
            os.kill(media_pid, signal.SIGKILL)

    parent, events = _run(_backup_with_events(s, slow, kill_at_first_progress))
    final = [e for e in events if e["event"] == "job_ended" and e["job_id"] == parent][0]
    assert final["status"] != 0, final
    assert {i["backup_id"] for i in images(s)} == before
    # earlier images still restore
    r = sybar(s.home, "restore", "--image", earlier[0]["backup_id"], "--database", "mydb_after_kill")
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_digest(s.db_file("mydb_after_kill"), "orders") == table_digest(s.db_file("mydb"), "orders")
    # and the next backup succeeds, with a new media server
    r = sybar(s.home, "backup", str(s.home / "scripts" / "sybase_mydb_backup"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert _run(_status(s))["media_pid"] != media_pid
    sybar_json(s.home, "cleanup")
    _assert_no_orphans(s)


async def _status(s):
    client = control(s)
    try:
        return await client.status()
    finally:
        await client.close()


def test_unauthenticated_connections_are_refused(pipe):
    s = pipe
    state = json.loads((s.home / "control.json").read_text())

    async def probe(token):
        client = ControlClient(state["url"], token)
        try:
            return await client.status()
        finally:
            await client.close()

    from engine.jobs.status import StatusError

    with pytest.raises(StatusError) as e:
        _run(probe("not-the-token"))
    assert "not authenticated" in str(e.value)
    # the media server: a peer that cannot answer the challenge is told so and cut off, nothing stored
    import hashlib
    import hmac
    import struct

    host, port = state["media"].rsplit(":", 1)

    def read_frame(sock):
        head = b""
        while len(head) < 5:
            chunk = sock.recv(5 - len(head))
            if not chunk:
                return None, b""
            head += chunk
        kind, length = struct.unpack(">BI", head)
        body = b""
        while len(body) < length:
            chunk = sock.recv(length - len(body))
            if not chunk:
                break
            body += chunk
        return kind, body

    for answer in (lambda nonce: b"\x00" * 32,
                   lambda nonce: hmac.new(b"a guessed secret", nonce + b"sybar-media-1", hashlib.sha256).digest()):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            kind, challenge = read_frame(sock)
            assert kind == ord("C")
            nonce = challenge[-32:]
            sock.sendall(struct.pack(">BI", ord("A"), 32) + answer(nonce))
            sock.sendall(struct.pack(">BI", ord("J"), 40) + b'{"op": "store", "name": "garbage.x.D"}   ')
            kind, body = read_frame(sock)
            assert kind == ord("E"), (kind, body)
            assert json.loads(body)["status"] == 57
            assert read_frame(sock)[0] is None  # and the connection is closed
    assert not any("garbage" in p.name for p in (s.home / "storage" / "disk1").rglob("*"))
    assert _run(_status(s))["media_pid"]  # still up


def test_backup_outside_the_schedule_window_is_refused(tmp_path, sa_in_keyring):
    home = tmp_path / "windowhome"
    home.mkdir(mode=0o700)
    now = time.localtime()
    opens = (now.tm_hour + 2) % 24
    (home / "sybar.toml").write_text(
        '[policies.Sybase_ASE.schedules.Business-Hours]\n'
        'type = "application_backup"\nretention = "1 week"\n'
        f'window = "{opens:02d}:00-{(opens + 1) % 24:02d}:00"\n'
    )
    s = start_serve(home)
    try:
        install_sample_scripts(Home.resolve(home))
        r = sybar(home, "backup", str(home / "scripts" / "sybase_mydb_backup"), "--schedule", "Business-Hours")
        assert r.returncode == 196, r.stdout + r.stderr
        assert "opens at" in r.stderr and f"{opens:02d}:00" in r.stderr
        assert images(s) == []
    finally:
        stop_serve(s)


def test_dump_from_isql_outside_any_script_gets_a_job_of_its_own(pipe):
    s = pipe
    before = len(images(s))
    r = s.sybar_isql('dump database mydb to "sybackup::-POL Sybase_ASE" stripe on "sybackup::-POL Sybase_ASE"\ngo\n')
    assert "DUMP is complete" in r.stdout and "Msg" not in r.stdout, r.stdout
    listed = images(s)
    assert len(listed) == before + 1 and len(listed[0]["stripes"]) == 2
    job = sybar_json(s.home, "jobs", str(listed[0]["job_id"]))
    assert job["type"] == "dump" and job["status"] == 0 and job["parent_id"] is None
    assert [c["type"] for c in job["children"]] == ["stripe", "stripe"]
    assert all(c["status"] == 0 and c["bytes_done"] == c["bytes_expected"] for c in job["children"])


def test_unknown_policy_and_missing_script_are_refused(pipe, tmp_path):
    s = pipe
    r = sybar(s.home, "backup", str(s.home / "scripts" / "sybase_mydb_backup"), "--policy", "No_Such_Policy")
    assert r.returncode == 230, r.stdout + r.stderr
    assert "No_Such_Policy" in r.stderr
    r = sybar(s.home, "backup", str(tmp_path / "nowhere"))
    assert r.returncode == 71 and "does not exist" in r.stderr, r.stderr
    ww = tmp_path / "sybase_ww_backup"
    ww.write_text("#!/bin/sh\nexit 0\n")
    ww.chmod(0o777)
    r = sybar(s.home, "backup", str(ww))
    assert r.returncode == 69 and "world-writable" in r.stderr, r.stderr


def test_script_that_runs_no_dump_is_not_a_success(pipe, tmp_path):
    s = pipe
    script = tmp_path / "sybase_nothing_backup"
    script.write_text("#!/bin/sh\necho backing up nothing\nexit 0\n")
    script.chmod(0o700)
    before = len(images(s))
    r = sybar(s.home, "backup", str(script))
    assert r.returncode == 6, r.stdout + r.stderr
    assert "ran no dump" in r.stdout
    assert len(images(s)) == before


def test_cli_starts_a_daemon_when_none_runs(tmp_path, sa_in_keyring):
    home = tmp_path / "autohome"
    s = start_serve(home)   # first start sets the sa password
    stop_serve(s)
    r = sybar(home, "list")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "started `sybar serve`" in r.stderr
    state = json.loads((home / "control.json").read_text())
    os.kill(state["pid"], signal.SIGTERM)


def test_sample_transaction_log_backup_script(pipe):
    s = pipe
    r = s.sybar_isql("use mydb\ngo\nupdate customer set city = 'moved' where id <= 10\ngo\n")
    assert "Msg" not in r.stdout, r.stdout
    r = sybar(s.home, "backup", str(s.home / "scripts" / "sybase_mydb_tran_backup"))
    assert r.returncode == 0, r.stdout + r.stderr
    logs = sybar_json(s.home, "list", "--type", "T", "--database", "mydb")
    assert logs and len(logs[0]["stripes"]) == 2
    assert logs[0]["follows"] and logs[0]["schedule"] == "Default-Application-Backup"
    assert logs[0]["last_lsn"] >= logs[0]["first_lsn"]
