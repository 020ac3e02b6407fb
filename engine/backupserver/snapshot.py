"""A consistent snapshot of a live SQLite database file, writers kept running.

How it works (WAL mode)
-----------------------
A database in WAL mode is the main file plus the write-ahead log. Writers
only append frames to the WAL; the main file changes only when a checkpoint
copies ("backfills") WAL frames into it. So the main file is a consistent
image of the database exactly when every committed frame has been backfilled,
and it stays that image for as long as nothing backfills again.

1. A PASSIVE checkpoint first backfills what it can without blocking anybody,
   so that step 3 has little left to do while writers wait.
2. Connection G runs ``BEGIN IMMEDIATE``: it takes the WAL write lock, so no
   frame can be appended (writers wait in their busy handler; they are not
   failed). This is the only moment writers are held, and it is short
   (milliseconds). G polls for the lock itself, every ~0.5 ms: SQLite's busy
   handler sleeps up to 100 ms between tries and loses nearly every race
   against a writer that starts its next transaction right after each commit.
3. Connection D runs ``PRAGMA wal_checkpoint(PASSIVE)`` and reads the result
   (busy, log, checkpointed). With the write lock held the WAL cannot grow,
   so ``log == checkpointed`` means the WAL is fully backfilled: the main file
   holds every committed transaction. ``(busy, -1, -1)`` means another
   connection's checkpoint is running; it is retried for a few ms, G held.
   When a reader still pins older frames (a read transaction begun before the
   last writes were backfilled) the backfill stops short: we release G, wait a
   little and retry, for at most CHECKPOINT_RETRY_S, then fail with status 156
   naming the cause.
4. D runs ``BEGIN`` and a read. A read transaction that starts while
   ``nBackfill == mxFrame`` takes WAL read-lock 0, which means "I read the
   main file only, and ignore the WAL". Every checkpoint must take read-lock
   0 exclusively before it writes a single page into the main file, so while
   D holds its read lock no backfill can happen, by anybody, in this process
   or another. (Had D taken a read-lock i>0 instead, its read mark would
   equal mxFrame == nBackfill and a checkpoint could still backfill nothing
   beyond it; the main file is stable either way.) D also reads
   ``page_size`` and ``page_count`` of its snapshot.
5. G rolls back: writers resume and append to the WAL (or restart it from the
   beginning, which touches only the WAL), never to the main file.

Until D ends its transaction the first ``page_count * page_size`` bytes of
the main file are byte for byte the database as of step 2, and can be read
with ``os.pread`` from any thread. A copy of those bytes is a complete SQLite
database (its header says WAL mode; it opens without any WAL file). The cost
to writers is step 3's short wait; the cost of a long dump is a WAL that
grows until the snapshot ends and the next checkpoint catches up.

A database in rollback-journal mode (``PRAGMA journal_mode`` is not wal) needs no
checkpoint: D's shared lock alone keeps the file stable, but it also keeps
writers from committing until the snapshot ends.

What the dataserver must not do: hold a connection in ``locking_mode =
EXCLUSIVE`` (G can never get in), or keep a read transaction open across
writes for longer than CHECKPOINT_RETRY_S while a dump starts (step 3 fails).
tests/backupserver/test_bs_snapshot.py checks, with a writer committing and
another connection checkpointing as fast as they can, that the main file does
not change while the snapshot is held, that the copy passes integrity_check,
and that it holds exactly the transactions committed before step 2.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.jobs.status import SNAPSHOT_ERROR, StatusError

#: How long BEGIN IMMEDIATE may wait for a writer's transaction to end.
WRITER_WAIT_S = 30.0
#: How long to keep retrying a checkpoint that cannot backfill the whole WAL.
CHECKPOINT_RETRY_S = 20.0


@dataclass
class Snapshot:
    path: Path
    page_size: int
    page_count: int
    taken_at: _dt.datetime  # UTC
    fd: int = -1  # read-only descriptor of the database file, valid inside the context
    #: time.monotonic() when writers were held and released: every transaction
    #: committed before paused_at is in the snapshot, none that committed
    #: after resumed_at is.
    paused_at: float = 0.0
    resumed_at: float = 0.0
    attempts: int = 1
    wal_mode: bool = True

    @property
    def size(self) -> int:
        return self.page_size * self.page_count

    def pread_into(self, buf: bytearray, offset: int, n: int) -> memoryview:
        """Read n snapshot bytes at offset into buf (reused by the caller: no allocation per block);
        returns a view of them. Thread-safe; StatusError on a short read."""
        view = memoryview(buf)[:n]
        got = 0
        try:
            while got < n:
                k = os.preadv(self.fd, [view[got:]], offset + got)
                if k == 0:
                    break
                got += k
        except OSError as e:
            raise self._read_failed(offset, e) from e
        if got != n:
            raise self._ended_early(offset + got)
        return view

    def _read_failed(self, offset: int, e: OSError) -> StatusError:
        return StatusError(SNAPSHOT_ERROR, f"reading database file {self.path} at offset {offset} failed: "
                                           f"{e.strerror}; check the disk holding the database")

    def _ended_early(self, at: int) -> StatusError:
        return StatusError(SNAPSHOT_ERROR, f"database file {self.path} ended at offset {at} inside the snapshot of "
                                           f"{self.size} bytes: the file was changed outside the dataserver; "
                                           "check it and retry the dump")

    def pread(self, offset: int, n: int) -> bytes:
        """Read n snapshot bytes at offset; thread-safe; StatusError on a short read."""
        try:
            data = os.pread(self.fd, n, offset)
        except OSError as e:
            raise self._read_failed(offset, e) from e
        if len(data) != n:
            raise self._ended_early(offset + len(data))
        return data


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    uri = path.resolve().as_uri() + "?mode=rw"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=True)
    return conn


def _is_busy(e: sqlite3.OperationalError) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(e) or "busy" in str(e)


def _pause_writers(g: sqlite3.Connection, path: Path, wait_s: float) -> None:
    """BEGIN IMMEDIATE on g, polling every ~0.5 ms.

    SQLite's own busy handler sleeps up to 100 ms between tries, and a busy
    writer that begins its next transaction right after each commit wins
    nearly every race against it (seconds of starvation were measured);
    polling finds the short gaps between two transactions quickly.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.0001
    while True:
        try:
            g.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if not _is_busy(e):
                raise StatusError(SNAPSHOT_ERROR, f"cannot pause writers of {path}: {e}") from e
            if time.monotonic() >= deadline:
                raise StatusError(
                    SNAPSHOT_ERROR,
                    f"cannot pause writers of {path} for the snapshot: a write transaction held the "
                    f"database for more than {wait_s:.0f} s; end it and retry the dump",
                ) from e
            time.sleep(delay)
            delay = min(delay * 2, 0.0005)


def _checkpoint(d: sqlite3.Connection, path: Path) -> tuple[int, int]:
    """PRAGMA wal_checkpoint(PASSIVE) -> (log frames, checkpointed frames).

    (busy, -1, -1) means another connection's checkpoint is running; with
    writers held it ends quickly, so it is retried here for up to ~50 ms
    rather than by releasing the writers and starting over.
    """
    for _ in range(100):
        try:
            _busy, log, done = d.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as e:
            raise StatusError(SNAPSHOT_ERROR, f"checkpoint of {path} failed: {e}") from e
        if log >= 0:
            return log, done
        time.sleep(0.0005)
    return log, done


@contextlib.contextmanager
def consistent_snapshot(
    db_path: Path | str,
    *,
    writer_wait_s: float = WRITER_WAIT_S,
    retry_s: float = CHECKPOINT_RETRY_S,
) -> Iterator[Snapshot]:
    """Hold a consistent snapshot of the database file at db_path (see module doc).

    Raises StatusError(156) when the snapshot cannot be taken.
    """
    path = Path(db_path)
    if not path.is_file():
        raise StatusError(
            SNAPSHOT_ERROR, f"database file {path} does not exist: check the database's device path"
        )
    try:
        g = _connect(path, 0.0)  # BEGIN IMMEDIATE is retried by _pause_writers, not SQLite's busy handler
        d = _connect(path, 5.0)
    except sqlite3.Error as e:
        raise StatusError(SNAPSHOT_ERROR, f"cannot open database file {path} for a snapshot: {e}") from e
    fd = -1
    snap: Snapshot | None = None
    try:
        try:
            wal_mode = d.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
            if wal_mode:
                d.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # step 1, nobody waits
        except sqlite3.Error as e:
            raise StatusError(SNAPSHOT_ERROR, f"cannot read database file {path}: {e}") from e
        deadline = time.monotonic() + retry_s
        attempts = 0
        delay = 0.005
        while True:
            attempts += 1
            _pause_writers(g, path, writer_wait_s)
            paused_at = time.monotonic()
            released = False
            try:
                log, done = _checkpoint(d, path) if wal_mode else (0, 0)
                if not wal_mode or (log >= 0 and log == done):
                    try:
                        d.execute("BEGIN")
                        d.execute("select count(*) from sqlite_master").fetchone()
                        page_size = d.execute("PRAGMA page_size").fetchone()[0]
                        page_count = d.execute("PRAGMA page_count").fetchone()[0]
                    except sqlite3.Error as e:
                        raise StatusError(SNAPSHOT_ERROR, f"cannot read database {path}: {e}") from e
                    taken = _dt.datetime.now(_dt.UTC)
                    g.execute("ROLLBACK")
                    released = True
                    snap = Snapshot(
                        path=path,
                        page_size=page_size,
                        page_count=page_count,
                        taken_at=taken,
                        paused_at=paused_at,
                        resumed_at=time.monotonic(),
                        attempts=attempts,
                        wal_mode=wal_mode,
                    )
                    break
            finally:
                if not released:
                    g.execute("ROLLBACK")
            if time.monotonic() >= deadline:
                if log < 0:
                    why = (
                        f"another connection's checkpoint kept running through {attempts} attempts "
                        f"in {retry_s:.0f} s: retry the dump when it has finished"
                    )
                else:
                    why = (
                        f"only {done} of {log} write-ahead log frames could be checkpointed after "
                        f"{attempts} attempts in {retry_s:.0f} s: a long-running read transaction "
                        "is holding old pages; end it and retry the dump"
                    )
                raise StatusError(SNAPSHOT_ERROR, f"cannot take a consistent snapshot of {path}: {why}")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise StatusError(SNAPSHOT_ERROR, f"cannot open database file {path}: {e.strerror}") from e
        snap.fd = fd
        size = os.fstat(fd).st_size
        if size < snap.size:
            raise StatusError(
                SNAPSHOT_ERROR,
                f"database file {path} is {size} bytes, shorter than its {snap.page_count} pages of "
                f"{snap.page_size} bytes: the file is damaged; run dbcc checkdb / integrity_check",
            )
        yield snap
    finally:
        if fd >= 0:
            os.close(fd)
        if snap is not None:
            snap.fd = -1
        for conn in (d, g):
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):
                conn.close()
