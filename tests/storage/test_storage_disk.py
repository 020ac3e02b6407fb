"""The disk storage unit: atomic commit, nothing left by abort, strict names, errors a DBA can read."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.jobs.status import BACKUP_FAILED, MEDIA_WRITE_ERROR, RESTORE_ERROR, StatusError
from engine.storage import DiskObjectWriter, DiskStorageUnit, ObjectInfo, StorageUnit, validate_object_name

REPO = Path(__file__).resolve().parents[2]
NAME = "SYBAR.mydb.D.0.24312.25-11-2026.14:05:25"


def run(coro):
    return asyncio.run(coro)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def store(unit, name: str, data: bytes, piece: int = 1 << 20) -> ObjectInfo:
    w = await unit.create(name)
    for i in range(0, len(data), piece):
        await w.write(data[i : i + piece])
    return await w.commit()


async def collect(unit, prefix: str = "") -> list[ObjectInfo]:
    return sorted([o async for o in unit.list(prefix)], key=lambda o: o.name)


def test_is_a_storage_unit(tmp_path):
    assert isinstance(DiskStorageUnit("disk1", tmp_path / "u"), StorageUnit)


def test_commit_makes_the_object_visible_atomically(tmp_path):
    unit = DiskStorageUnit("disk1", tmp_path / "u")
    data = os.urandom(3 * (1 << 20) + 12345)

    async def go():
        w = await unit.create(NAME)
        await w.write(data[:100])  # small writes are gathered
        await w.write(data[100 : 1 << 20])
        await w.write(data[1 << 20 :])
        # not visible before commit: only a temporary in .incoming, held by the writer
        assert await unit.stat(NAME) is None
        assert await collect(unit) == []
        temps = await unit.temporaries()
        assert [(t.name, t.in_use) for t in temps] == [(NAME, True)]
        assert await unit.remove_temporary(temps[0]) is False  # a live writer's temporary is left alone
        assert (unit.incoming / temps[0].id).exists()
        info = await w.commit()
        assert await w.commit() == info  # idempotent
        return info, await unit.stat(NAME), await collect(unit), await unit.temporaries()

    info, st, listed, temps = run(go())
    assert info.name == NAME and info.size == len(data) and info.unit == "disk1"
    assert st == info
    assert listed == [info]
    assert temps == []
    path = tmp_path / "u" / NAME
    assert path.read_bytes() == data
    assert mode(path) == 0o600
    assert mode(tmp_path / "u") == 0o700
    assert mode(tmp_path / "u" / ".incoming") == 0o700
    assert os.listdir(tmp_path / "u" / ".incoming") == []


def test_read_back_and_remove(tmp_path):
    unit = DiskStorageUnit("disk1", tmp_path / "u")
    data = os.urandom(2_500_000)

    async def go():
        await store(unit, NAME, data)
        r = await unit.open(NAME)
        assert r.size == len(data)
        parts = []
        while chunk := await r.read(300_000):
            parts.append(chunk)
        await r.close()
        assert b"".join(parts) == data
        assert await unit.remove(NAME) is True
        assert await unit.remove(NAME) is False
        assert await unit.stat(NAME) is None
        with pytest.raises(StatusError) as ei:
            await unit.open(NAME)
        return ei.value

    err = run(go())
    assert err.status == RESTORE_ERROR
    assert "holds no object named " + NAME in str(err)


def test_abort_leaves_nothing(tmp_path):
    unit = DiskStorageUnit("disk1", tmp_path / "u")

    async def go():
        w = await unit.create(NAME)
        await w.write(os.urandom(3 << 20))
        await w.abort()
        await w.abort()  # twice is fine
        with pytest.raises(StatusError):
            await w.write(b"more")
        with pytest.raises(StatusError):
            await w.commit()
        return await collect(unit), await unit.temporaries()

    assert run(go()) == ([], [])
    assert os.listdir(tmp_path / "u") == [".incoming"]
    assert os.listdir(tmp_path / "u" / ".incoming") == []


def test_abort_after_commit_keeps_the_object(tmp_path):
    unit = DiskStorageUnit("disk1", tmp_path / "u")

    async def go():
        w = await unit.create(NAME)
        await w.write(b"x" * 10)
        await w.commit()
        await w.abort()
        return await unit.stat(NAME)

    assert run(go()).size == 10


def test_objects_are_never_overwritten(tmp_path):
    unit = DiskStorageUnit("disk1", tmp_path / "u")

    async def go():
        await store(unit, NAME, b"first")
        with pytest.raises(StatusError) as e1:
            await unit.create(NAME)
        # a racing writer that got its temporary before the first commit still cannot replace it
        w = await unit.create(NAME + "x")
        w.final = unit.path / NAME
        await w.write(b"second")
        with pytest.raises(StatusError) as e2:
            await w.commit()
        return e1.value, e2.value, await unit.temporaries()

    e1, e2, temps = run(go())
    for e in (e1, e2):
        assert e.status == MEDIA_WRITE_ERROR
        assert f"already holds an object named {NAME}" in str(e)
    assert (tmp_path / "u" / NAME).read_bytes() == b"first"
    assert temps == []


BAD_NAMES = [
    "",
    "../x",
    "..",
    ".",
    "../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "x\0y",
    ".hidden",
    ".incoming",
    "a b",
    "name\n",
    "caf\u00e9",
    "a" * 201,
    "SYBAR.db.D.0.1.01-01-2026.10:00:00/../../x",
]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_names_are_refused_everywhere(tmp_path, bad):
    unit = DiskStorageUnit("disk1", tmp_path / "u")

    async def go():
        errors = []
        for call in (unit.create, unit.open, unit.remove, unit.stat):
            with pytest.raises(StatusError) as ei:
                await call(bad)
            errors.append(ei.value)
        with pytest.raises(StatusError) as ei:
            async for _ in unit.list(bad if bad else "/"):
                pass
        errors.append(ei.value)
        return errors

    for e in run(go()):
        assert e.status == BACKUP_FAILED
        msg = str(e)
        assert msg.startswith("the ") and len(msg) > 30, msg
        assert "\0" not in msg
    # names are checked before anything is touched: nothing was created, inside or outside the unit
    assert os.listdir(tmp_path) == []


def test_name_rules():
    assert validate_object_name(NAME) == NAME
    assert validate_object_name("a" * 200)
    assert validate_object_name("x_y-z:1.2")
    with pytest.raises(StatusError, match="starts with '.'"):
        validate_object_name(".x")
    with pytest.raises(StatusError, match="only letters, digits"):
        validate_object_name("a/b")
    with pytest.raises(StatusError, match="201 characters"):
        validate_object_name("a" * 201)
    with pytest.raises(StatusError, match="must be a string"):
        validate_object_name(None)


def test_bad_unit_names_and_temporary_ids(tmp_path):
    for bad in ("", "../u", "a/b", ".u", "x" * 65):
        with pytest.raises(StatusError):
            DiskStorageUnit(bad, tmp_path / "u")
    unit = DiskStorageUnit("disk1", tmp_path / "u")
    (tmp_path / "victim").write_text("keep me")
    for bad in ("../../victim", "../victim.0123456789ab.part", "/etc/passwd", "x.part", f"{NAME}.0123.part"):
        with pytest.raises(StatusError, match="is not the id of a temporary"):
            run(unit.remove_temporary(bad))
    assert (tmp_path / "victim").read_text() == "keep me"


def test_symlinks_are_not_objects(tmp_path):
    unit = DiskStorageUnit("disk1", tmp_path / "u")
    run(store(unit, "real", b"data"))
    (tmp_path / "secret").write_text("not a backup")
    os.symlink(tmp_path / "secret", tmp_path / "u" / "link")
    assert run(unit.stat("link")) is None
    assert [o.name for o in run(collect(unit))] == ["real"]
    with pytest.raises(StatusError):
        run(unit.open("link"))
    assert run(unit.remove("link")) is False
    assert (tmp_path / "secret").exists()


def test_list_by_prefix(tmp_path):
    unit = DiskStorageUnit("disk1", tmp_path / "u")

    async def go():
        names = [f"SYBAR.db{k}.D.{i}.1.01-01-2026.10:00:00" for k in range(3) for i in range(300)]
        for n in names:
            await store(unit, n, n.encode())
        (unit.path / "junk file").write_text("not an object")
        return names, await collect(unit), await collect(unit, "SYBAR.db1."), await collect(unit, "nothing")

    names, everything, one, none = run(go())
    assert [o.name for o in everything] == sorted(names)
    assert [o.name for o in one] == sorted(n for n in names if n.startswith("SYBAR.db1."))
    assert none == []
    assert all(o.size == len(o.name) for o in everything)


# -- write errors through the hook ----------------------------------------------------------


class FailingWriter(DiskObjectWriter):
    fail_errno = errno.ENOSPC
    fail_after = 2 << 20

    def _write_some(self, fd, data):
        if self.written + len(data) > self.fail_after:
            raise OSError(self.fail_errno, os.strerror(self.fail_errno))
        return super()._write_some(fd, data)


def failing_unit(path: Path, code: int) -> DiskStorageUnit:
    writer = type("W", (FailingWriter,), {"fail_errno": code})
    unit_cls = type("U", (DiskStorageUnit,), {"writer_class": writer})
    return unit_cls("disk1", path)


@pytest.mark.parametrize(
    "code,reason,advice",
    [
        (errno.ENOSPC, "No space left on device (ENOSPC)", "free space"),
        (errno.EROFS, "Read-only file system (EROFS)", "read-only"),
        (errno.EACCES, "Permission denied (EACCES)", "write permission"),
    ],
)
def test_write_errors_are_media_write_errors_and_remove_the_temporary(tmp_path, code, reason, advice):
    unit = failing_unit(tmp_path / "u", code)

    async def go():
        w = await unit.create(NAME)
        with pytest.raises(StatusError) as ei:
            for _ in range(8):
                await w.write(os.urandom(1 << 20))
        with pytest.raises(StatusError):  # the writer is finished
            await w.write(b"x")
        await w.abort()
        return ei.value, await unit.temporaries(), await collect(unit)

    err, temps, listed = run(go())
    msg = str(err)
    assert err.status == MEDIA_WRITE_ERROR
    assert "storage unit disk1" in msg and str(tmp_path / "u") in msg and NAME in msg
    assert reason in msg and advice in msg
    assert temps == [] and listed == []
    assert os.listdir(tmp_path / "u" / ".incoming") == []


def test_error_at_commit_flush(tmp_path):
    unit = failing_unit(tmp_path / "u", errno.ENOSPC)

    async def go():
        w = await unit.create(NAME)
        await w.write(os.urandom((2 << 20) - 10))
        await w.write(b"y" * 20)  # buffered; the flush at commit runs out of space
        with pytest.raises(StatusError) as ei:
            await w.commit()
        return ei.value

    err = run(go())
    assert err.status == MEDIA_WRITE_ERROR and "ENOSPC" in str(err)
    assert os.listdir(tmp_path / "u" / ".incoming") == []
    assert not (tmp_path / "u" / NAME).exists()


def test_unit_directory_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("x")
    unit = DiskStorageUnit("disk1", tmp_path / "file" / "u")
    with pytest.raises(StatusError) as ei:
        run(unit.create(NAME))
    assert ei.value.status == MEDIA_WRITE_ERROR
    assert "storage unit disk1" in str(ei.value) and "ENOTDIR" in str(ei.value)


# -- the loop never waits for the disk ------------------------------------------------------


class SlowWriter(DiskObjectWriter):
    def _write_some(self, fd, data):
        time.sleep(0.3)
        return super()._write_some(fd, data)


def test_disk_writes_do_not_block_the_event_loop(tmp_path):
    unit = type("U", (DiskStorageUnit,), {"writer_class": SlowWriter})("disk1", tmp_path / "u")

    async def go():
        ticks = 0
        stop = False

        async def heartbeat():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.01)

        hb = asyncio.create_task(heartbeat())
        await asyncio.sleep(0)
        await store(unit, NAME, os.urandom(3 << 20))  # three slow writes, 0.9 s
        stop = True
        await hb
        return ticks

    assert run(go()) > 30


def test_cancelled_store_leaves_no_stray_descriptor_write(tmp_path):
    unit = type("U", (DiskStorageUnit,), {"writer_class": SlowWriter})("disk1", tmp_path / "u")

    async def go():
        w = await unit.create(NAME)
        t = asyncio.create_task(w.write(os.urandom(2 << 20)))
        await asyncio.sleep(0.05)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await w.abort()  # waits for the write still on the pool before closing
        return await unit.temporaries()

    assert run(go()) == []


# -- leftovers of a writer that died --------------------------------------------------------

CRASH = r"""
import asyncio, os, sys
from engine.storage import DiskStorageUnit
async def go():
    unit = DiskStorageUnit("disk1", sys.argv[1])
    w = await unit.create(sys.argv[2])
    await w.write(b"z" * (3 << 20))
    print("written", flush=True)
    os.kill(os.getpid(), 9)
asyncio.run(go())
"""


def test_temporaries_of_a_killed_writer_are_found_and_removed(tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", CRASH, str(tmp_path / "u"), NAME],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == -9 and "written" in r.stdout, r.stderr
    unit = DiskStorageUnit("disk1", tmp_path / "u")

    async def go():
        temps = await unit.temporaries()
        assert await unit.stat(NAME) is None
        assert await collect(unit) == []
        removed = [await unit.remove_temporary(t) for t in temps]
        return temps, removed, await unit.temporaries()

    temps, removed, after = run(go())
    assert len(temps) == 1
    t = temps[0]
    assert t.name == NAME and not t.in_use and t.size == 3 << 20 and t.unit == "disk1"
    assert removed == [True] and after == []


def test_a_commit_that_fails_after_linking_leaves_no_object(tmp_path, monkeypatch):
    import engine.storage.disk as disk

    unit = DiskStorageUnit("disk1", tmp_path / "u")

    async def go():
        w = await unit.create(NAME)
        await w.write(b"data")
        real = disk._fsync_dir

        def failing(path):
            real(path)
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        monkeypatch.setattr(disk, "_fsync_dir", failing)
        with pytest.raises(StatusError) as ei:
            await w.commit()
        monkeypatch.setattr(disk, "_fsync_dir", real)
        return ei.value, await unit.stat(NAME), await unit.temporaries()

    err, st, temps = run(go())
    assert err.status == MEDIA_WRITE_ERROR and "EIO" in str(err) and "committing object" in str(err)
    assert st is None and temps == []
