"""The media server as a real process (`python -m engine.media`): kill -9, memory, throughput."""

from __future__ import annotations

import datetime as _dt
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xxhash
from test_media_kit import (
    REPO,
    digest_tables,
    make_db,
    objects,
    start_media_process,
    stripe_stream,
    temp_files,
    wait_until,
)

from engine.archive import MediaClient, object_name
from engine.backupserver import dump_database, load_database
from engine.jobs.status import MEDIA_WRITE_ERROR, RESTORE_ERROR, StatusError
from engine.media import read_media_secret

WHEN = _dt.datetime(2026, 11, 25, 14, 5, 25)


def name(i: int = 0, pid: int = 24312) -> str:
    return object_name("SYBAR", "salesdb", "D", i, pid, WHEN)


@pytest.fixture
def proc(tmp_path):
    home = tmp_path / "home"
    mp = start_media_process(home, {"disk1": tmp_path / "disk1"})
    yield mp
    mp.stop()


def client_for(mp, **kw) -> MediaClient:
    return MediaClient.for_home(mp.home, mp.host, mp.port, **kw)


def test_starts_prints_its_address_and_makes_the_secret(proc):
    assert proc.line.startswith(f"sybar media server listening on 127.0.0.1:{proc.port} ")
    assert "disk1=" in proc.line
    path = proc.home / "media.secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert client_for(proc).stat(name()) is None
    # the secret is nowhere in its command line
    cmdline = Path(f"/proc/{proc.proc.pid}/cmdline").read_bytes()
    assert path.read_bytes() not in cmdline


def test_dump_4_stripes_to_the_process_and_load_back(tmp_path, proc):
    db = make_db(tmp_path / "sales.db", mb=8)
    c = client_for(proc)
    names = [name(i) for i in range(4)]
    result = dump_database(
        server="SYBAR",
        database="salesdb",
        db_path=db,
        sinks=c.store_all(names, "disk1", job_id=7),
        compression=101,
    )
    assert objects(tmp_path / "disk1") == sorted(names)
    out = tmp_path / "out.db"
    loaded = load_database(sources=[c.fetch(n) for n in names], target_tmp=out)
    assert loaded.digest == result.digest
    assert digest_tables(out) == digest_tables(db)
    assert proc.stop() == 0  # SIGTERM: a clean exit
    assert "stored object " + names[0] in proc.stderr()


def test_kill_9_mid_store_then_restart(tmp_path):
    home, unit_path = tmp_path / "home", tmp_path / "disk1"
    mp = start_media_process(home, {"disk1": unit_path})
    c = client_for(mp, timeout=20)
    # one object stored before the crash must survive it
    first = c.store(name(0, pid=1), "disk1")
    for part in stripe_stream(2):
        first.write(part)
    kept = first.commit()

    stream = stripe_stream(50)
    sink = c.store(name(0), "disk1")
    for _ in range(10):
        sink.write(next(stream))
    wait_until(lambda: len(temp_files(unit_path)) == 1, what="temporary on disk")
    mp.kill9()
    with pytest.raises(StatusError) as ei:
        for part in stream:
            sink.write(part)
        sink.commit()
    e = ei.value
    assert e.status == MEDIA_WRITE_ERROR
    assert name(0) in str(e) and f"media server at 127.0.0.1:{mp.port}" in str(e)
    sink.abort()  # what the dump does next; must not raise
    # no object, only the temporary of the dead store
    assert objects(unit_path) == [name(0, pid=1)]
    assert len(temp_files(unit_path)) == 1

    # a fetch when nobody listens
    with pytest.raises(StatusError) as ei:
        c.fetch(kept.name)
    assert ei.value.status == 58

    mp2 = start_media_process(home, {"disk1": unit_path})
    try:
        c2 = client_for(mp2, timeout=20)
        temps = c2.temporaries()
        assert [(t.name, t.in_use) for t in temps] == [(name(0), False)]
        assert c2.remove_temporary(temps[0]) is True
        assert temp_files(unit_path) == []
        # the earlier object is intact, and storing again works
        assert c2.verify(kept.name)["checksum"] == kept.checksum
        again = c2.store(name(0), "disk1")
        data = b"".join(stripe_stream(5))
        again.write(data)
        r = again.commit()
        assert r.checksum == xxhash.xxh3_128_hexdigest(data)
        assert objects(unit_path) == sorted([name(0), name(0, pid=1)])
    finally:
        mp2.stop()


def test_kill_9_mid_fetch(tmp_path):
    home, unit_path = tmp_path / "home", tmp_path / "disk1"
    mp = start_media_process(home, {"disk1": unit_path})
    c = client_for(mp, timeout=20)
    sink = c.store(name(), "disk1")
    for part in stripe_stream(30):
        sink.write(part)
    sink.commit()
    src = c.fetch(name())
    src.read(1 << 20)
    mp.kill9()
    with pytest.raises(StatusError) as ei:
        while src.read(1 << 20):
            pass
    assert ei.value.status == RESTORE_ERROR and name() in str(ei.value)
    assert objects(unit_path) == [name()]


def test_sigterm_mid_store_removes_the_temporary(tmp_path):
    mp = start_media_process(tmp_path / "home", {"disk1": tmp_path / "disk1"})
    c = client_for(mp, timeout=20)
    stream = stripe_stream(20)
    sink = c.store(name(), "disk1")
    for _ in range(5):
        sink.write(next(stream))
    wait_until(lambda: len(temp_files(tmp_path / "disk1")) == 1, what="temporary on disk")
    assert mp.stop() == 0
    assert temp_files(tmp_path / "disk1") == [] and objects(tmp_path / "disk1") == []
    with pytest.raises(StatusError) as ei:
        for part in stream:
            sink.write(part)
        sink.commit()
    assert ei.value.status == MEDIA_WRITE_ERROR


def run_main(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine.media", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
    )


def test_bad_command_lines(tmp_path):
    r = run_main("--home", str(tmp_path), "--listen", "127.0.0.1:0")
    assert r.returncode == 2 and "give at least one storage unit" in r.stderr
    r = run_main("--home", str(tmp_path), "--unit", "../x=/tmp/y")
    assert r.returncode == 2 and "storage unit name" in r.stderr
    r = run_main("--home", str(tmp_path), "--listen", "nowhere", "--unit", f"d={tmp_path}/d")
    assert r.returncode == 2 and "HOST:PORT" in r.stderr
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        r = run_main(
            "--home",
            str(tmp_path),
            "--listen",
            f"127.0.0.1:{busy.getsockname()[1]}",
            "--unit",
            f"d={tmp_path}/d",
        )
        assert r.returncode == 1 and "can't listen on 127.0.0.1:" in r.stderr
    finally:
        busy.close()


def test_300mb_stream_memory_stays_flat_and_throughput(tmp_path, capsys):
    """Store and fetch a 300 MB stripe; the media process's peak RSS stays well under 100 MB."""
    home, unit_path = tmp_path / "home", tmp_path / "disk1"
    mp = start_media_process(home, {"disk1": unit_path})
    try:
        c = client_for(mp, timeout=120)
        # warm up: a small store and fetch so that thread pools and buffers exist
        warm = c.store(name(9), "disk1")
        for part in stripe_stream(4):
            warm.write(part)
        warm.commit()
        src = c.fetch(name(9))
        while src.read(1 << 20):
            pass
        base = mp.status("VmRSS")

        size = 300e6
        sink = c.store(name(0), "disk1", expected_bytes=int(size))
        h = xxhash.xxh3_128()
        t0 = time.monotonic()
        peak = 0
        for k, part in enumerate(stripe_stream(size / 1e6)):
            h.update(part)
            sink.write(part)
            if k % 20 == 0:
                peak = max(peak, mp.status("VmRSS"))
        r = sink.commit()
        store_s = time.monotonic() - t0
        assert r.bytes > 300e6 and r.checksum == h.hexdigest()
        hwm_store = mp.status("VmHWM")

        src = c.fetch(name(0))
        t0 = time.monotonic()
        h2 = xxhash.xxh3_128()
        got = 0
        while chunk := src.read(1 << 20):
            h2.update(chunk)
            got += len(chunk)
            if got % (20 << 20) < (1 << 20):
                peak = max(peak, mp.status("VmRSS"))
        fetch_s = time.monotonic() - t0
        assert got == r.bytes and h2.hexdigest() == r.checksum
        hwm = mp.status("VmHWM")
    finally:
        mp.stop()
    with capsys.disabled():
        print(
            f"\nmedia server, {r.bytes / 1e6:.0f} MB stripe over loopback: store {r.bytes / 1e6 / store_s:.0f} MB/s "
            f"({store_s:.2f} s incl. fsync), fetch+verify {got / 1e6 / fetch_s:.0f} MB/s ({fetch_s:.2f} s); "
            f"RSS base {base / 1024:.0f} MB, peak seen {peak / 1024:.0f} MB, "
            f"VmHWM after store {hwm_store / 1024:.0f} MB, after fetch {hwm / 1024:.0f} MB"
        )
    assert hwm < 100 * 1024, f"the media server's peak RSS was {hwm / 1024:.0f} MB"
    assert hwm - base < 64 * 1024


def test_the_home_secret_is_what_clients_use(tmp_path, proc):
    secret = read_media_secret(proc.home)
    assert MediaClient(proc.host, proc.port, secret).stat(name()) is None
    with pytest.raises(StatusError) as ei:
        MediaClient(proc.host, proc.port, bytes(32)).stat(name())
    assert ei.value.status == 57
    assert "authentication failed" in proc.stderr()


def test_unit_directories_are_made_at_start_or_refused(tmp_path):
    mp = start_media_process(tmp_path / "home", {"disk1": tmp_path / "units" / "disk1"})
    try:
        assert stat.S_IMODE(os.stat(tmp_path / "units" / "disk1").st_mode) == 0o700
        assert (tmp_path / "units" / "disk1" / ".incoming").is_dir()
    finally:
        mp.stop()
    (tmp_path / "file").write_text("x")
    r = run_main("--home", str(tmp_path / "home"), "--unit", f"d={tmp_path}/file/d")
    assert r.returncode == 1 and "storage unit d" in r.stderr and "ENOTDIR" in r.stderr
