"""dump_database / load_database end to end on real SQLite files, and every way they can fail."""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from bs_util import Writer, check_consistent, digest_tables, file_sha, integrity, make_db

from engine.backupserver import (
    MAX_STRIPES,
    DumpFormatError,
    FileSink,
    FileSource,
    dump_database,
    file_sinks,
    list_dump,
    load_database,
    verify_dump,
)
from engine.backupserver.dump import split_pages
from engine.jobs.status import (
    BACKUP_FAILED,
    MEDIA_WRITE_ERROR,
    RESTORE_ERROR,
    SNAPSHOT_ERROR,
    TERMINATED_BY_ADMIN,
    StatusError,
)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return make_db(tmp_path_factory.mktemp("db") / "sales.db", mb=8)


@pytest.fixture(scope="module")
def db_digest(db):
    return digest_tables(db)


def dump_to(db: Path, folder: Path, n: int, compression=None, **kw):
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"sales.D.{i}.dmp" for i in range(n)]
    res = dump_database(
        server="SYBASE1", database="sales", db_path=db, sinks=file_sinks(paths), compression=compression, **kw
    )
    return res, paths


def sources(paths):
    return [FileSource(p) for p in paths]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("compression", [None, 1, 101])
@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_roundtrip_is_byte_identical(db, db_digest, tmp_path, n, compression):
    res, paths = dump_to(db, tmp_path / "dumps", n, compression)
    assert res.stripes == n and len(res.per_stripe) == n
    assert res.raw_bytes == res.page_count * res.page_size == os.path.getsize(db)
    assert sum(s.page_count for s in res.per_stripe) == res.page_count
    assert res.stored_bytes == sum(os.path.getsize(p) for p in paths)
    if compression:
        assert res.stored_bytes < res.raw_bytes * 0.75
    assert leftovers(tmp_path / "dumps") == sorted(p.name for p in paths)  # no temp files
    for p in paths:
        assert (os.stat(p).st_mode & 0o777) == 0o600

    out = tmp_path / "restore" / "sales.db.loading"
    out.parent.mkdir()
    lr = load_database(sources=sources(paths), target_tmp=out, expect_database="sales")
    assert lr.digest == res.digest and lr.dump_id == res.dump_id
    assert lr.page_count == res.page_count and lr.stripes == n
    assert (os.stat(out).st_mode & 0o777) == 0o600
    # byte for byte the snapshot (the database was quiet and checkpointed)
    assert file_sha(out) == file_sha(db, res.raw_bytes)
    assert integrity(out) == "ok"
    assert digest_tables(out) == db_digest


def test_split_pages():
    assert split_pages(10, 4) == [(0, 3), (3, 3), (6, 2), (8, 2)]
    assert split_pages(2, 4) == [(0, 1), (1, 1), (2, 0), (2, 0)]
    assert split_pages(0, 1) == [(0, 0)]


def test_more_stripes_than_pages(tmp_path):
    import sqlite3

    tiny = tmp_path / "tiny.db"
    con = sqlite3.connect(tiny)
    con.execute("pragma journal_mode=wal")
    con.execute("create table t (x)")
    con.execute("insert into t values (42)")
    con.commit()
    con.close()
    res, paths = dump_to(tiny, tmp_path / "d", 8, 1)
    assert res.page_count == 2
    out = tmp_path / "tiny.out"
    load_database(sources=sources(paths), target_tmp=out)
    assert integrity(out) == "ok"
    assert sqlite3.connect(out).execute("select x from t").fetchone() == (42,)


def test_progress_is_reported_per_stripe_and_reaches_100(db, tmp_path):
    seen = []
    threads = set()

    def progress(p):
        seen.append(p)
        threads.add(threading.current_thread().name)

    res, paths = dump_to(db, tmp_path / "d", 4, 1, progress=progress)
    for i in range(4):
        mine = [p for p in seen if p.stripe == i]
        assert mine[-1].bytes_done == mine[-1].bytes_total == res.per_stripe[i].raw_bytes
        assert mine[-1].pages_done == mine[-1].pages_total
        assert [p.bytes_done for p in mine] == sorted(p.bytes_done for p in mine)
        assert all(p.stripes == 4 for p in mine)
        assert len(mine) <= 3 + res.seconds / 0.2 + 1  # rate-limited
    assert threading.current_thread().name not in threads  # called from the stripe threads

    loads = []
    load_database(sources=sources(paths), target_tmp=tmp_path / "out", progress=loads.append)
    for i in range(4):
        mine = [p for p in loads if p.stripe == i]
        assert mine[-1].bytes_done == mine[-1].bytes_total


def test_dump_of_a_50mb_database_while_writing(tmp_path):
    live = make_db(tmp_path / "live.db", mb=40)
    writer = Writer(live, blob=3000).start()
    try:
        writer.wait_commits(100)
        before = len(writer.committed)
        res, paths = dump_to(live, tmp_path / "d", 4, 1)
        after = len(writer.committed)
        assert after > before, "writers must keep committing during the dump"
        writer.wait_commits(after + 50)  # writers were never stopped for long
    finally:
        writer.stop()
    assert res.raw_bytes > 45e6
    out = tmp_path / "live.out"
    load_database(sources=sources(paths), target_tmp=out)
    assert integrity(out) == "ok"
    commits = check_consistent(out)
    assert before <= commits <= after


# -- damaged stripes


def stripe_offsets(path: Path) -> dict[str, int]:
    data = path.read_bytes()
    first_block = data.index(b"SBLK")
    last_block = data.rindex(b"SBLK")
    trailer = data.rindex(b"SYBAREND")
    return {
        "magic": 0,
        "version": 9,
        "header-json": 40,
        "header-check": first_block - 1,
        "block-header": first_block + 20,
        "block-first-page": first_block + 20,
        "block-data": first_block + 48 + 5000,
        "last-block-data": trailer - 100,
        "last-block-header": last_block + 30,
        "trailer-marker": trailer + 2,
        "trailer-json": trailer + 30,
        "trailer-check": len(data) - 1,
    }


@pytest.fixture(scope="module")
def dump3(db, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dump3")
    res, paths = dump_to(db, folder, 3, 1)
    return res, paths


def copy_dump(paths, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        shutil.copy(p, folder / p.name)
        out.append(folder / p.name)
    return out


def assert_load_fails(paths, target: Path, match: str, status: int = RESTORE_ERROR, **kw) -> StatusError:
    with pytest.raises(StatusError) as ei:
        load_database(sources=sources(paths), target_tmp=target, **kw)
    assert ei.value.status == status, str(ei.value)
    assert any(s in str(ei.value) for s in match.split("|")), str(ei.value)
    assert not target.exists(), "target_tmp must be removed after a failed load"
    return ei.value


@pytest.mark.parametrize(
    "where",
    [
        "magic",
        "version",
        "header-json",
        "header-check",
        "block-header",
        "block-data",
        "last-block-data",
        "last-block-header",
        "trailer-marker",
        "trailer-json",
        "trailer-check",
    ],
)
def test_flipped_byte_fails_the_load_naming_the_stripe(dump3, tmp_path, where):
    _res, paths = dump3
    paths = copy_dump(paths, tmp_path / "d")
    bad = paths[1]
    at = stripe_offsets(bad)[where]
    data = bytearray(bad.read_bytes())
    data[at] ^= 0x01
    bad.write_bytes(bytes(data))
    err = assert_load_fails(paths, tmp_path / "out.db", str(bad))
    assert isinstance(err, DumpFormatError)
    if where.startswith("block") or where.startswith("last-block"):
        assert "block" in str(err) and "byte offset" in str(err)
    # verify alone finds it too
    with pytest.raises(DumpFormatError):
        verify_dump(sources(paths))


def test_truncated_stripe(dump3, tmp_path):
    _res, paths = dump3
    paths = copy_dump(paths, tmp_path / "d")
    for cut in (os.path.getsize(paths[2]) // 2, os.path.getsize(paths[2]) - 5, 10, 0):
        data = paths[2].read_bytes()[:cut]
        paths[2].write_bytes(data)
        err = assert_load_fails(paths, tmp_path / "out.db", "truncated|incomplete|empty")
        assert str(paths[2]) in str(err)
        shutil.copy(dump3[1][2], paths[2])


def test_missing_stripe(tmp_path, db):
    _res, paths = dump_to(db, tmp_path / "d", 4)
    err = assert_load_fails([paths[0], paths[1], paths[3]], tmp_path / "out.db", "missing")
    msg = str(err)
    assert "has 4 stripes but 3 devices were given" in msg
    assert "stripe 2 is missing" in msg
    assert str(paths[3]) in msg and "holds stripe 3 of 4" in msg


def test_duplicate_stripe(tmp_path, db):
    _res, paths = dump_to(db, tmp_path / "d", 4)
    err = assert_load_fails([paths[0], paths[1], paths[1], paths[3]], tmp_path / "out.db", "both hold")
    assert f"device '{paths[1]}' and device '{paths[1]}' both hold stripe 1" in str(err)
    assert "missing: stripe 2" in str(err)


def test_stripe_of_another_dump(tmp_path, db):
    _a, pa = dump_to(db, tmp_path / "a", 3)
    b, pb = dump_to(db, tmp_path / "b", 3)
    err = assert_load_fails([pa[0], pb[1], pa[2]], tmp_path / "out.db", "different dumps")
    assert str(pb[1]) in str(err) and b.dump_id in str(err)


def test_wrong_database_and_wrong_type(tmp_path, db):
    _res, paths = dump_to(db, tmp_path / "d", 2)
    assert_load_fails(paths, tmp_path / "out.db", "not pubs2", expect_database="pubs2")
    folder = tmp_path / "t"
    folder.mkdir()
    tpaths = [folder / f"t{i}" for i in range(2)]
    dump_database(
        server="S", database="sales", db_path=db, sinks=file_sinks(tpaths), compression=None, dump_type="T"
    )
    assert_load_fails(tpaths, tmp_path / "out.db", "transaction dump", expect_dump_type="D")


def test_list_dump_and_verify(tmp_path, db):
    res, paths = dump_to(db, tmp_path / "d", 3, 101)
    headers = list_dump(sources(paths))
    assert [h.stripe for h in headers] == [0, 1, 2]
    h = headers[0]
    assert (h.server, h.database, h.dump_type, h.dump_id, h.stripes) == (
        "SYBASE1",
        "sales",
        "D",
        res.dump_id,
        3,
    )
    assert h.compression == {"codec": "zstd", "level": 101, "zstd_level": 1}
    assert h.page_size == res.page_size and h.page_count == res.page_count
    vr = verify_dump(sources(paths))
    assert vr.digest == res.digest and vr.target is None
    with pytest.raises(DumpFormatError, match="not a sybar dump stripe"):
        list_dump([FileSource(db)])


class Chunky:
    """A source that returns at most `k` bytes per read, as a network stream would."""

    def __init__(self, path, k):
        self.inner = FileSource(path)
        self.name = self.inner.name
        self.k = k

    def read(self, n):
        return self.inner.read(min(n, self.k))

    def close(self):
        self.inner.close()


def test_load_from_short_reads(tmp_path, db, db_digest):
    _res, paths = dump_to(db, tmp_path / "d", 2, 1)
    out = tmp_path / "out.db"
    load_database(sources=[Chunky(p, 777) for p in paths], target_tmp=out)
    assert digest_tables(out) == db_digest


# -- dump failures leave nothing behind


def test_more_than_32_stripes_is_refused(tmp_path, db):
    folder = tmp_path / "d"
    folder.mkdir()
    sinks = file_sinks([folder / f"s{i}" for i in range(MAX_STRIPES + 1)])
    with pytest.raises(StatusError) as ei:
        dump_database(server="S", database="sales", db_path=db, sinks=sinks, compression=None)
    assert ei.value.status == BACKUP_FAILED
    assert "33 stripes" in str(ei.value) and "limit is 32" in str(ei.value)
    assert leftovers(folder) == []


def test_bad_compression_level_is_refused(tmp_path, db):
    folder = tmp_path / "d"
    folder.mkdir()
    with pytest.raises(StatusError, match="compression level 10") as ei:
        dump_database(
            server="S", database="sales", db_path=db, sinks=file_sinks([folder / "s"]), compression=10
        )
    assert ei.value.status == BACKUP_FAILED
    assert leftovers(folder) == []


class SlowSink(FileSink):
    """Writes slowly; after `cancel_after` bytes it sets the cancel event (a DBA pressing Cancel)."""

    def __init__(self, path, cancel=None, cancel_after=0):
        super().__init__(path)
        self.cancel = cancel
        self.cancel_after = cancel_after
        self.trailer_written = False

    def write(self, data):
        time.sleep(0.01)
        super().write(data)
        self.trailer_written |= data.startswith(b"SYBAREND")
        if self.cancel is not None and self.written > self.cancel_after:
            self.cancel.set()


def test_cancel_mid_dump_leaves_no_files(tmp_path, db):
    folder = tmp_path / "d"
    folder.mkdir()
    cancel = threading.Event()
    sinks = [SlowSink(folder / "s0", cancel, 1 << 20), SlowSink(folder / "s1"), SlowSink(folder / "s2")]
    with pytest.raises(StatusError) as ei:
        dump_database(server="S", database="sales", db_path=db, sinks=sinks, compression=1, cancel=cancel)
    assert ei.value.status == TERMINATED_BY_ADMIN
    assert "cancelled" in str(ei.value)
    assert leftovers(folder) == []
    assert not any(s.trailer_written for s in sinks)


def test_cancel_before_start(tmp_path, db):
    folder = tmp_path / "d"
    folder.mkdir()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(StatusError) as ei:
        dump_database(
            server="S",
            database="sales",
            db_path=db,
            sinks=file_sinks([folder / "s"]),
            compression=1,
            cancel=cancel,
        )
    assert ei.value.status == TERMINATED_BY_ADMIN
    assert leftovers(folder) == []


class FullDisk(FileSink):
    """A sink whose device fills up after `room` bytes."""

    def __init__(self, path, room):
        super().__init__(path)
        self.room = room

    def write(self, data):
        if self.written + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().write(data)


class RawFullDisk:
    """A non-file sink (as the archive API's) that raises a bare OSError."""

    name = "sybackup::-SERV master1"

    def __init__(self):
        self.aborted = False

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def commit(self):
        raise AssertionError("must not commit")

    def abort(self):
        self.aborted = True


def test_disk_full_is_status_84_and_leaves_nothing(tmp_path, db):
    folder = tmp_path / "d"
    folder.mkdir()
    sinks = [FileSink(folder / "s0"), FullDisk(folder / "s1", 3 << 20), FileSink(folder / "s2")]
    with pytest.raises(StatusError) as ei:
        dump_database(server="S", database="sales", db_path=db, sinks=sinks, compression=None)
    msg = str(ei.value)
    assert ei.value.status == MEDIA_WRITE_ERROR
    assert "stripe 1 of 3" in msg and str(folder / "s1") in msg and "No space left on device" in msg
    assert "ENOSPC" in msg and "free space" in msg
    assert leftovers(folder) == []

    raw = RawFullDisk()
    other = FileSink(folder / "s0")
    with pytest.raises(StatusError) as ei:
        dump_database(server="S", database="sales", db_path=db, sinks=[other, raw], compression=1)
    assert ei.value.status == MEDIA_WRITE_ERROR
    assert "stripe 1 of 2" in str(ei.value) and "sybackup::-SERV master1" in str(ei.value)
    assert raw.aborted and leftovers(folder) == []


class FailingCommit(FileSink):
    def commit(self):
        raise OSError(errno.EIO, os.strerror(errno.EIO))


def test_a_failed_commit_removes_the_committed_stripes(tmp_path, db):
    folder = tmp_path / "d"
    folder.mkdir()
    sinks = [FileSink(folder / "s0"), FileSink(folder / "s1"), FailingCommit(folder / "s2")]
    with pytest.raises(StatusError) as ei:
        dump_database(server="S", database="sales", db_path=db, sinks=sinks, compression=None)
    assert ei.value.status == MEDIA_WRITE_ERROR and "stripe 2 of 3" in str(ei.value)
    assert leftovers(folder) == []


class Exploding(FileSink):
    def write(self, data):
        if self.written > 1 << 20:
            raise RuntimeError("bug in a sink")
        super().write(data)


def test_an_unexpected_worker_error_is_reraised_and_all_aborted(tmp_path, db):
    folder = tmp_path / "d"
    folder.mkdir()
    sinks = [FileSink(folder / "s0"), Exploding(folder / "s1")]
    with pytest.raises(RuntimeError, match="bug in a sink"):
        dump_database(server="S", database="sales", db_path=db, sinks=sinks, compression=None)
    assert leftovers(folder) == []


def test_device_errors_name_the_path(tmp_path):
    with pytest.raises(StatusError) as ei:
        FileSink(tmp_path / "no" / "such" / "dir" / "s0.dmp")
    assert ei.value.status == MEDIA_WRITE_ERROR
    assert str(tmp_path / "no" / "such" / "dir" / "s0.dmp") in str(ei.value)
    assert "No such file or directory" in str(ei.value) and "create the directory" in str(ei.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StatusError, match="Not a directory") as ei:
        FileSink(tmp_path / "file" / "s0.dmp")
    assert ei.value.status == MEDIA_WRITE_ERROR
    with pytest.raises(StatusError, match="names a directory"):
        FileSink(tmp_path)
    with pytest.raises(StatusError, match="both name"):
        file_sinks([tmp_path / "a", tmp_path / "b", tmp_path / "a"])
    with pytest.raises(StatusError) as ei:
        file_sinks([tmp_path / "a", tmp_path / "missing" / "b"])
    assert leftovers(tmp_path) == ["file"]  # the first one was aborted
    with pytest.raises(StatusError) as ei:
        FileSource(tmp_path / "nope.dmp")
    assert ei.value.status == RESTORE_ERROR and "nope.dmp" in str(ei.value)


def test_dump_of_a_missing_database(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    with pytest.raises(StatusError) as ei:
        dump_database(
            server="S",
            database="x",
            db_path=tmp_path / "x.db",
            sinks=file_sinks([folder / "s"]),
            compression=None,
        )
    assert ei.value.status == SNAPSHOT_ERROR
    assert leftovers(folder) == []


# -- load failures leave nothing behind


def test_load_into_a_missing_directory(tmp_path, dump3):
    _res, paths = dump3
    target = tmp_path / "nope" / "out.db"
    assert_load_fails(paths, target, "cannot create")


def test_cancel_mid_load(tmp_path, dump3):
    _res, paths = dump3
    cancel = threading.Event()

    class Slow(Chunky):
        def read(self, n):
            time.sleep(0.005)
            return super().read(n)

    def progress(p):
        if p.bytes_done:
            cancel.set()

    target = tmp_path / "out.db"
    with pytest.raises(StatusError) as ei:
        load_database(
            sources=[Slow(p, 64 << 10) for p in paths], target_tmp=target, progress=progress, cancel=cancel
        )
    assert ei.value.status == TERMINATED_BY_ADMIN
    assert not target.exists()


def test_load_with_no_devices(tmp_path):
    with pytest.raises(StatusError) as ei:
        load_database(sources=[], target_tmp=tmp_path / "x")
    assert ei.value.status == RESTORE_ERROR
    assert not (tmp_path / "x").exists()
