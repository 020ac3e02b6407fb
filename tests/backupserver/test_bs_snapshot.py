"""The consistent snapshot of a live WAL database, writers running."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from bs_util import Writer, check_consistent, connect, file_sha, integrity, make_db

from engine.backupserver.snapshot import consistent_snapshot
from engine.jobs.status import SNAPSHOT_ERROR, StatusError


def copy_snapshot(snap, dest: Path, *, chunk: int = 256 << 10, sleep: float = 0.0) -> None:
    with open(dest, "wb") as out:
        off = 0
        while off < snap.size:
            n = min(chunk, snap.size - off)
            out.write(snap.pread(off, n))
            off += n
            if sleep:
                time.sleep(sleep)


class Checkpointer:
    """Another connection that checkpoints as hard as it can (the dataserver's autocheckpoint, worst case)."""

    def __init__(self, path: Path):
        self.path = path
        self.stop = threading.Event()
        self.results: list[tuple[int, int, int]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        con = connect(self.path)
        try:
            while not self.stop.is_set():
                self.results.append(con.execute("pragma wal_checkpoint(PASSIVE)").fetchone())
                time.sleep(0.002)
        finally:
            con.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


@pytest.mark.parametrize("round_", range(3))
def test_snapshot_under_concurrent_writes(tmp_path, round_):
    db = make_db(tmp_path / "live.db", mb=4)
    writer = Writer(db).start()
    try:
        writer.wait_commits(200)  # the WAL holds unbackfilled frames now
        with Checkpointer(db) as ckpt, consistent_snapshot(db) as snap:
            assert snap.wal_mode
            before = file_sha(db, snap.size)
            n_at_start = len(writer.committed)
            # copy slowly while the writer keeps committing and the checkpointer keeps trying
            copy_snapshot(snap, tmp_path / "copy.db", chunk=64 << 10, sleep=0.002)
            writer.wait_commits(n_at_start + 300)  # writers were not held during the copy
            time.sleep(0.05)
            after = file_sha(db, snap.size)
            assert before == after, "the main database file changed while the snapshot was held"
            paused, resumed = snap.paused_at, snap.resumed_at
        log = list(writer.committed)
        # the checkpointer really ran, and could not backfill while the snapshot was held
        assert ckpt.results
    finally:
        writer.stop()

    copy = tmp_path / "copy.db"
    assert integrity(copy) == "ok"
    commits = check_consistent(copy)  # meta, log rows and account total agree: not torn
    must_have = [k for k, _t0, t1 in log if t1 < paused]
    must_not = [k for k, t0, _t1 in log if t0 > resumed]
    assert must_have and must_not, "the writer must have committed on both sides of the snapshot"
    assert commits >= max(must_have), "a transaction committed before the snapshot is missing"
    assert commits < min(must_not), "a transaction begun after the snapshot is in it"
    # the snapshot holds exactly the first `commits` writer transactions (a prefix), checked above
    # through meta == count == max id; and the writer went on far beyond it
    assert len(log) > commits + 300
    # the live database, once the writer stopped, is intact too
    assert integrity(db) == "ok"
    assert check_consistent(db) == len(writer.committed)


def test_snapshot_waits_for_a_writer_transaction(tmp_path):
    db = make_db(tmp_path / "w.db", mb=1)
    holder = connect(db)
    holder.execute("begin immediate")
    holder.execute("update meta set v = 41 where k = 'commits'")
    released = threading.Event()

    def release():
        time.sleep(0.3)
        holder.execute("update meta set v = 42 where k = 'commits'")
        holder.execute("commit")
        released.set()

    t = threading.Thread(target=release)
    t.start()
    with consistent_snapshot(db) as snap:
        assert released.is_set()
        copy_snapshot(snap, tmp_path / "c.db")
    t.join()
    holder.close()
    con = sqlite3.connect(tmp_path / "c.db")
    assert con.execute("select v from meta").fetchone()[0] == 42
    con.close()


def test_snapshot_fails_clearly_when_a_writer_never_lets_go(tmp_path):
    db = make_db(tmp_path / "w.db", mb=1)
    holder = connect(db)
    holder.execute("begin immediate")
    try:
        with pytest.raises(StatusError) as ei, consistent_snapshot(db, writer_wait_s=0.3):
            pass
        assert ei.value.status == SNAPSHOT_ERROR
        assert "write transaction" in str(ei.value) and str(db) in str(ei.value)
    finally:
        holder.execute("rollback")
        holder.close()


def test_snapshot_retries_then_fails_while_an_old_reader_pins_the_wal(tmp_path):
    db = make_db(tmp_path / "r.db", mb=1)
    w = connect(db)
    w.execute("pragma wal_autocheckpoint=0")
    for i in range(50):
        w.execute("insert into log(t, payload, note) values (?, randomblob(3000), 'x')", (i,))
    reader = connect(db)
    reader.execute("begin")
    reader.execute("select count(*) from log").fetchone()  # read mark = current end of WAL, not backfilled
    for i in range(50):
        w.execute("insert into log(t, payload, note) values (?, randomblob(3000), 'y')", (i,))
    t0 = time.monotonic()
    with pytest.raises(StatusError) as ei, consistent_snapshot(db, retry_s=0.5):
        pass
    assert time.monotonic() - t0 < 5
    assert ei.value.status == SNAPSHOT_ERROR
    msg = str(ei.value)
    assert "read transaction" in msg and "retry" in msg and str(db) in msg
    # writers were not left blocked
    w.execute("insert into log(t, payload, note) values (0, x'00', 'z')")
    reader.execute("rollback")
    with consistent_snapshot(db) as snap:
        copy_snapshot(snap, tmp_path / "c.db")
    assert integrity(tmp_path / "c.db") == "ok"
    con = sqlite3.connect(tmp_path / "c.db")
    assert con.execute("select count(*) from log where note in ('x', 'y', 'z')").fetchone()[0] == 101
    con.close()
    reader.close()
    w.close()


def test_snapshot_of_a_rollback_journal_database(tmp_path):
    db = tmp_path / "j.db"
    con = sqlite3.connect(db)
    con.execute("create table t (x)")
    con.executemany("insert into t values (?)", [(i,) for i in range(1000)])
    con.commit()
    con.close()
    with consistent_snapshot(db) as snap:
        assert not snap.wal_mode
        copy_snapshot(snap, tmp_path / "c.db")
    assert integrity(tmp_path / "c.db") == "ok"


def test_snapshot_of_a_missing_file(tmp_path):
    with pytest.raises(StatusError) as ei, consistent_snapshot(tmp_path / "nope.db"):
        pass
    assert ei.value.status == SNAPSHOT_ERROR and "nope.db" in str(ei.value)


def test_pread_is_usable_from_other_threads(tmp_path):
    db = make_db(tmp_path / "t.db", mb=2)
    with consistent_snapshot(db) as snap:
        parts: dict[int, bytes] = {}

        def read(i):
            parts[i] = snap.pread(i * snap.page_size, snap.page_size)

        threads = [threading.Thread(target=read, args=(i,)) for i in range(snap.page_count)]
        for t in threads[:64]:
            t.start()
        for t in threads[:64]:
            t.join()
        whole = snap.pread(0, 64 * snap.page_size)
    assert b"".join(parts[i] for i in range(64)) == whole
    assert whole[:16] == b"SQLite format 3\x00"
