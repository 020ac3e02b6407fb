"""Helpers for the Backup Server tests: databases, a live writer, content digests."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ACCOUNTS = 200
TOTAL = ACCOUNTS * 1000


def connect(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)


def make_db(path: Path, *, mb: float = 5, blob: int = 1500, compressible: bool = True) -> Path:
    """A WAL database of about `mb` megabytes: a log table, accounts with a fixed total."""
    con = connect(path)
    con.execute("pragma journal_mode=wal")
    con.execute("create table log (id integer primary key, t real, payload blob, note text)")
    con.execute("create table acct (id integer primary key, bal integer not null)")
    con.execute("create table meta (k text primary key, v integer)")
    con.execute("create index log_note on log(note)")
    con.execute("begin")
    con.executemany("insert into acct values (?, 1000)", [(i,) for i in range(ACCOUNTS)])
    con.execute("insert into meta values ('commits', 0)")
    rows = int(mb * 1e6 / (blob + 120))
    batch = 5000
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        if compressible:  # half text, half random: compresses about 2:1
            text = (b"sybar dump " * (blob // 11 + 1))[: blob - blob // 2]
            payloads = [(os.urandom(blob // 2) + text, f"seed {start + j}") for j in range(n)]
        else:
            payloads = [(os.urandom(blob), f"seed {start + j}") for j in range(n)]
        con.executemany("insert into log(t, payload, note) values (0, ?, ?)", payloads)
    con.execute("commit")
    con.execute("pragma wal_checkpoint(TRUNCATE)")
    con.close()
    return path


def digest_tables(path: Path) -> dict[str, tuple[int, str]]:
    """Row count and sha256 of every table's rows, in rowid order."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out = {}
        names = [r[0] for r in con.execute("select name from sqlite_master where type='table' order by name")]
        for name in names:
            h = hashlib.sha256()
            n = 0
            for row in con.execute(f'select * from "{name}" order by rowid'):
                h.update(repr(row).encode())
                n += 1
            out[name] = (n, h.hexdigest())
        return out
    finally:
        con.close()


def integrity(path: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("pragma integrity_check").fetchone()[0]
    finally:
        con.close()


def file_sha(path: Path, limit: int | None = None) -> str:
    h = hashlib.sha256()
    left = limit
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not chunk:
                break
            h.update(chunk)
            if left is not None:
                left -= len(chunk)
                if left == 0:
                    break
    return h.hexdigest()


@dataclass
class Writer:
    """A thread that commits continuously to `path`, as the dataserver's sessions would.

    Each commit appends one log row (id k), moves money between two accounts
    (the total stays TOTAL) and sets meta.commits = k, so any consistent state
    has meta.commits == max(log.id) == the number of writer rows, and sum(bal)
    == TOTAL. ``committed`` holds (k, monotonic before BEGIN, monotonic after COMMIT).
    """

    path: Path
    blob: int = 2000
    pause: float = 0.0
    committed: list[tuple[int, float, float]] = field(default_factory=list)
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Writer:
        self._thread = threading.Thread(target=self._run, daemon=True, name="test-writer")
        self._thread.start()
        return self

    def wait_commits(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.committed) < n:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, "writer made no progress"
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        con = connect(self.path)
        try:
            con.execute("pragma busy_timeout=30000")
            base = con.execute("select coalesce(max(id), 0) from log").fetchone()[0]
            k = con.execute("select v from meta where k='commits'").fetchone()[0]
            rnd = int.from_bytes(os.urandom(4), "big")
            while not self._stop.is_set():
                k += 1
                rnd = (rnd * 1103515245 + 12345) & 0x7FFFFFFF
                a, b = rnd % ACCOUNTS, (rnd // ACCOUNTS) % ACCOUNTS
                t0 = time.monotonic()
                con.execute("begin immediate")
                con.execute(
                    "insert into log(id, t, payload, note) values (?, ?, randomblob(?), ?)",
                    (base + k, t0, self.blob, f"writer {k}"),
                )
                con.execute("update acct set bal = bal - 7 where id = ?", (a,))
                con.execute("update acct set bal = bal + 7 where id = ?", (b,))
                con.execute("update meta set v = ? where k = 'commits'", (k,))
                con.execute("commit")
                self.committed.append((k, t0, time.monotonic()))
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as e:  # surfaced by stop()
            self.error = e
        finally:
            con.close()


def check_consistent(path: Path) -> int:
    """Assert the writer's invariants hold in the database at path; return its commit count."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        commits = con.execute("select v from meta where k='commits'").fetchone()[0]
        writer_rows = con.execute("select count(*) from log where note like 'writer %'").fetchone()[0]
        total = con.execute("select sum(bal) from acct").fetchone()[0]
        top = con.execute("select max(cast(substr(note, 8) as integer)) from log where note like 'writer %'")
        top = top.fetchone()[0] or 0
    finally:
        con.close()
    assert total == TOTAL, f"accounts sum to {total}, not {TOTAL}: torn snapshot"
    assert writer_rows == commits == top, f"meta says {commits} commits, log holds {writer_rows} (max {top})"
    return commits


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")
