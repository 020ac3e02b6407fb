"""The master server's catalog: images, their stripe objects, jobs and job logs.

One SQLite file (``HOME/catalog.db``, mode 0600) in WAL mode, so that the CLI
and the GUI can read while the daemon writes. A ``Catalog`` is safe to share
between threads: it holds one connection behind a lock, and every write is one
transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``).

Images go through three states:

- ``pending``: ``begin_image`` created it; stripes are being stored and
  ``add_object`` records each stripe object as it lands.
- ``complete``: ``commit_image`` checked, in the same transaction that flips
  the state, that every stripe 0..N-1 has its object. The commit runs with
  ``synchronous=FULL``: when it returns, the image is on disk. Only complete
  images are ever listed, found or restored.
- ``failed``: ``fail_image`` gave up on it. Pending and failed images are what
  ``leftovers`` returns for ``sybar cleanup`` (their objects may sit on a
  storage unit).

So a backup that fails or is killed at any point leaves either a whole image
or none, plus leftovers a cleanup finds.

Log chains (schema version 2): a full dump (type ``D``) records ``lsn``, the
database's last log sequence number read just before its snapshot, and a log
dump (type ``T``) the LSNs it holds (``first_lsn``..``last_lsn``) and the
commit times of its first and last transactions (``first_commit``,
``last_commit``). Both carry ``instance_id``, the database's log lineage.
``commit_image`` links a log dump to the image it ``follows``; ``chains.py``
answers what must be loaded, in what order, to reach a point in time.

Times are unix seconds (floats) everywhere in the API; ``to_json`` adds ISO
8601 local-time strings for people.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from engine.catalog.seal import (
    SEALED_FIELDS,
    SEALED_OBJECT_FIELDS,
    ZERO_MAC,
    Sealer,
    fields_digest,
    objects_digest,
)
from engine.jobs.status import (
    BACKUP_FAILED,
    DATABASE_ERROR,
    MEANING,
    NO_ENTITY,
    WORM_LOCK_ERROR,
    StatusError,
)

SCHEMA_VERSION = 3
#: A catalog first opened with its key is sealed at open up to this many images; a larger one
#: is sealed in the background (``seal_migration``) so that the daemon starts at once.
SEAL_AT_OPEN = 20_000
INFINITE_EXPIRATION = float(2**31 - 1)  # NetBackup's "infinity" (an infinite expiration is stored as this)

IMAGE_STATES = ("pending", "complete", "failed")
JOB_TYPES = ("backup", "restore", "dump", "load", "stripe", "verify", "cleanup")
JOB_STATES = ("queued", "active", "done")
SCHEDULE_TYPES = {
    0: "Full",
    1: "Differential Incremental",
    2: "User Backup",
    3: "User Archive",
    4: "Cumulative Incremental",
}

_SCHEMA_V1 = """
CREATE TABLE images (
    backup_id     TEXT PRIMARY KEY,
    client        TEXT NOT NULL,
    dataserver    TEXT NOT NULL,
    database      TEXT NOT NULL,
    dump_type     TEXT NOT NULL CHECK (dump_type IN ('D', 'T')),
    policy        TEXT,
    schedule      TEXT,
    schedule_type INTEGER,
    keyword       TEXT,
    backup_time   REAL NOT NULL,
    expiration    REAL,
    compression   INTEGER,
    job_id        INTEGER,
    dump_id       TEXT,
    stripes       INTEGER NOT NULL CHECK (stripes >= 1),
    kbytes        INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'complete', 'failed')),
    storage_unit  TEXT,
    reason        TEXT,
    created       REAL NOT NULL,
    committed     REAL,
    verified_at   REAL,
    verify_status INTEGER
);
-- Partial indexes: every listing is of complete images only.
CREATE INDEX images_time ON images (backup_time) WHERE state = 'complete';
CREATE INDEX images_db_time ON images (database, backup_time) WHERE state = 'complete';
CREATE INDEX images_client_time ON images (client, backup_time) WHERE state = 'complete';
CREATE INDEX images_server_time ON images (dataserver, backup_time) WHERE state = 'complete';
CREATE INDEX images_unfinished ON images (state, created) WHERE state != 'complete';

CREATE TABLE objects (
    backup_id     TEXT NOT NULL REFERENCES images (backup_id) ON DELETE CASCADE,
    stripe        INTEGER NOT NULL CHECK (stripe >= 0),
    name          TEXT NOT NULL UNIQUE,
    storage_unit  TEXT,
    bytes         INTEGER NOT NULL,
    raw_bytes     INTEGER,
    checksum      TEXT,
    created       REAL NOT NULL,
    PRIMARY KEY (backup_id, stripe)
);

CREATE TABLE jobs (
    job_id         INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id      INTEGER,
    type           TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('queued', 'active', 'done')),
    status         INTEGER,
    client         TEXT,
    dataserver     TEXT,
    database       TEXT,
    policy         TEXT,
    schedule       TEXT,
    script         TEXT,
    stripe         INTEGER,
    object_name    TEXT,
    backup_id      TEXT,
    started        REAL,
    ended          REAL,
    bytes_done     INTEGER NOT NULL DEFAULT 0,
    bytes_expected INTEGER,
    message        TEXT,
    pid            INTEGER
);
CREATE INDEX jobs_parent ON jobs (parent_id);
CREATE INDEX jobs_unfinished ON jobs (state) WHERE state != 'done';

CREATE TABLE job_log (
    job_id  INTEGER NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    time    REAL NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
"""

# Version 2: log chains. Existing images keep every column and get NULLs (standby
# 0): they were recorded without LSNs, so they restore as they were dumped.
# instance_id has no declared type: it is stored as given (an int stays an int).
_SCHEMA_V2 = """
ALTER TABLE images ADD COLUMN lsn INTEGER;
ALTER TABLE images ADD COLUMN first_lsn INTEGER;
ALTER TABLE images ADD COLUMN last_lsn INTEGER;
ALTER TABLE images ADD COLUMN first_commit REAL;
ALTER TABLE images ADD COLUMN last_commit REAL;
ALTER TABLE images ADD COLUMN instance_id;
ALTER TABLE images ADD COLUMN follows TEXT;
ALTER TABLE images ADD COLUMN standby INTEGER NOT NULL DEFAULT 0;
CREATE INDEX images_db_type_time ON images (database, dump_type, backup_time) WHERE state = 'complete';
CREATE INDEX images_instance_lsn ON images (instance_id, first_lsn, backup_time) WHERE state = 'complete'
"""

# Version 3: WORM unlock times (image and object) and the tamper-evident seal
# (engine/catalog/seal.py). Existing complete images are sealed when a catalog
# is first opened with its key (the daemon's open).
_SCHEMA_V3 = """
ALTER TABLE images ADD COLUMN unlock_time REAL;
ALTER TABLE images ADD COLUMN seal_seq INTEGER;
ALTER TABLE objects ADD COLUMN unlock_time REAL;
CREATE INDEX images_expiration ON images (expiration) WHERE state = 'complete';
CREATE INDEX images_unsealed ON images (backup_id) WHERE state = 'complete' AND seal_seq IS NULL;
CREATE TABLE seal_log (
    seq         INTEGER PRIMARY KEY,
    backup_id   TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('commit', 'expiration', 'remove')),
    expiration  REAL,
    unlock_time REAL,
    digest      BLOB NOT NULL,
    mac         BLOB NOT NULL,
    time        REAL NOT NULL
);
CREATE INDEX seal_log_image ON seal_log (backup_id, seq);
CREATE TABLE seal_state (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""

# One entry per schema version: _MIGRATIONS[v] takes a catalog from version v to v+1.
_MIGRATIONS: list[str] = [_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3]


def worm_locked(backup_id: str, unlock_time: float, action: str) -> StatusError:
    """The refusal of changing a WORM image before its unlock time."""
    return StatusError(
        WORM_LOCK_ERROR,
        f"Image {backup_id} is on WORM storage and locked until {iso_local(unlock_time)}: it cannot be {action} "
        "before its unlock time (its expiration can only be extended, with `sybar expire --image ID --until DATE`).",
    )


def iso_local(t: float | None) -> str | None:
    """Unix time as an ISO 8601 local time with its UTC offset, to the second."""
    if t is None:
        return None
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def iso_local_ms(t: float | None) -> str | None:
    """Unix time as an ISO 8601 local time with its UTC offset, to the millisecond
    (commit times: a point-in-time restore tells transactions apart by them)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


def _check_chain_facts(
    dump_type: str,
    lsn: int | None,
    first_lsn: int | None,
    last_lsn: int | None,
    first_commit: float | None,
    last_commit: float | None,
) -> None:
    if dump_type == "D":
        if (
            first_lsn is not None
            or last_lsn is not None
            or first_commit is not None
            or last_commit is not None
        ):
            raise ValueError("a full dump (D) records lsn, not first_lsn/last_lsn/first_commit/last_commit")
    else:
        if lsn is not None:
            raise ValueError("a log dump (T) records first_lsn and last_lsn, not lsn")
        if first_lsn is not None and last_lsn is not None and last_lsn < first_lsn - 1:
            raise ValueError(f"a log dump cannot hold LSNs {first_lsn}..{last_lsn}")
        if first_commit is not None and last_commit is not None and last_commit < first_commit:
            raise ValueError("a log dump's last commit cannot be before its first")


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class ObjectRecord:
    """One stripe of an image, stored as one backup object on a storage unit."""

    backup_id: str
    stripe: int
    name: str
    storage_unit: str | None
    bytes: int
    raw_bytes: int | None
    checksum: str | None
    created: float | None = None
    unlock_time: float | None = None  # WORM unlock time of this fragment (None: not on WORM storage)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stripe": self.stripe,
            "bytes": self.bytes,
            "raw_bytes": self.raw_bytes,
            "checksum": self.checksum,
            "storage_unit": self.storage_unit,
            "unlock_time": iso_local(self.unlock_time),
            "unlock_time_unix": self.unlock_time,
        }


@dataclass(frozen=True)
class Image:
    """A backup image: one dump (all of its stripes) of one database."""

    backup_id: str
    client: str
    dataserver: str
    database: str
    dump_type: str
    policy: str | None
    schedule: str | None
    schedule_type: int | None
    keyword: str | None
    backup_time: float
    expiration: float | None
    compression: int | None
    job_id: int | None
    dump_id: str | None
    stripes: int
    kbytes: int
    state: str
    storage_unit: str | None
    reason: str | None
    created: float
    committed: float | None
    verified_at: float | None
    verify_status: int | None
    # log chains (schema version 2); None for images recorded without them
    lsn: int | None = None  # D: the last LSN read just before the snapshot
    first_lsn: int | None = None  # T: the LSNs the log dump holds
    last_lsn: int | None = None
    first_commit: float | None = None  # T: commit times of its first and last transactions
    last_commit: float | None = None
    instance_id: Any = None  # the database's log lineage
    follows: str | None = None  # T: backup id of the image it follows in its chain
    standby: bool = False  # T: dumped with standby_access
    # WORM (schema version 3): until then the image cannot be deleted or its expiration shortened
    unlock_time: float | None = None
    objects: list[ObjectRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.standby, bool):
            object.__setattr__(self, "standby", bool(self.standby))

    @property
    def type(self) -> str:
        return self.dump_type

    @property
    def bytes(self) -> int:
        return sum(o.bytes for o in self.objects)

    def object_names(self) -> list[str]:
        return [o.name for o in sorted(self.objects, key=lambda o: o.stripe)]

    def to_json(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "database": self.database,
            "type": self.dump_type,
            "backup_time": iso_local(self.backup_time),
            "backup_time_unix": self.backup_time,
            "expiration": iso_local(self.expiration),
            "expiration_unix": self.expiration,
            "keyword": self.keyword,
            "policy": self.policy,
            "schedule": self.schedule,
            "schedule_type": self.schedule_type,
            "schedule_type_name": SCHEDULE_TYPES.get(self.schedule_type)
            if self.schedule_type is not None
            else None,
            "client": self.client,
            "dataserver": self.dataserver,
            "kbytes": self.kbytes,
            "compression": self.compression,
            "job_id": self.job_id,
            "dump_id": self.dump_id,
            "state": self.state,
            "storage_unit": self.storage_unit,
            "stripe_count": self.stripes,
            "stripes": [o.to_json() for o in sorted(self.objects, key=lambda o: o.stripe)],
            "verified_at": iso_local(self.verified_at),
            "verify_status": self.verify_status,
            "lsn": self.lsn,
            "first_lsn": self.first_lsn,
            "last_lsn": self.last_lsn,
            "first_commit": iso_local_ms(self.first_commit),
            "first_commit_unix": self.first_commit,
            "last_commit": iso_local_ms(self.last_commit),
            "last_commit_unix": self.last_commit,
            "instance_id": self.instance_id,
            "follows": self.follows,
            "standby": self.standby,
            "worm": self.unlock_time is not None,
            "unlock_time": iso_local(self.unlock_time),
            "unlock_time_unix": self.unlock_time,
        }


class ChainFacts(NamedTuple):
    """The columns of an image that chains are made of."""

    backup_id: str
    dataserver: str
    dump_type: str
    backup_time: float
    lsn: int | None
    first_lsn: int | None
    last_lsn: int | None
    last_commit: float | None
    instance_id: Any


@dataclass(frozen=True)
class Job:
    job_id: int
    parent_id: int | None
    type: str
    state: str
    status: int | None
    client: str | None
    dataserver: str | None
    database: str | None
    policy: str | None
    schedule: str | None
    script: str | None
    stripe: int | None
    object_name: str | None
    backup_id: str | None
    started: float | None
    ended: float | None
    bytes_done: int
    bytes_expected: int | None
    message: str | None
    pid: int | None

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else time.time()) - self.started

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["status_text"] = MEANING.get(self.status) if self.status is not None else None
        d["started_iso"] = iso_local(self.started)
        d["ended_iso"] = iso_local(self.ended)
        d["elapsed"] = self.elapsed
        return d


_IMAGE_COLUMNS = tuple(f.name for f in fields(Image) if f.name != "objects")
_OBJECT_COLUMNS = (
    "backup_id", "stripe", "name", "storage_unit", "bytes", "raw_bytes", "checksum", "created", "unlock_time"
)  # fmt: skip
_JOB_COLUMNS = tuple(f.name for f in fields(Job))
_JOB_WRITABLE = frozenset(_JOB_COLUMNS) - {"job_id"}

_IMAGE_SELECT = "SELECT " + ", ".join(_IMAGE_COLUMNS) + " FROM images"
_OBJECT_SELECT = "SELECT " + ", ".join(_OBJECT_COLUMNS) + " FROM objects"
_JOB_SELECT = "SELECT " + ", ".join(_JOB_COLUMNS) + " FROM jobs"

_ANY: Any = object()  # "no filter" sentinel where None is a meaningful value


class _Stopped(Exception):
    """A background seal check was told to stop."""

_SEAL_ROW_SQL = f"SELECT {', '.join(SEALED_FIELDS)}, expiration, unlock_time FROM images WHERE backup_id = ?"
_SEAL_OBJECTS_SQL = f"SELECT {', '.join(SEALED_OBJECT_FIELDS)} FROM objects WHERE backup_id = ? ORDER BY stripe"


def _prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with prefix."""
    return prefix + "\U0010ffff"


# ---------------------------------------------------------------- catalog


class Catalog:
    """The catalog database. Use as a context manager or call ``close()``.

    With ``seal_key`` (the daemon gives the home's key from the keyring, see
    seal.py) every complete image is sealed and the chain is checked at open;
    ``seal_problems`` then lists what the check found (empty: intact), and no
    image is removed or has its expiration changed while it is not empty.
    ``key_is_new``: the key was just made (a catalog without seal records is
    then being sealed for the first time, not stripped of its seals).
    ``head_keeper`` (seal.KeyringHead): where the chain's head is also kept, so
    that a catalog file put back from an older copy is found at open."""

    def __init__(
        self,
        path: Path | str,
        *,
        seal_key: bytes | None = None,
        key_is_new: bool = False,
        head_keeper: Any = None,
    ):
        self.path = Path(path)
        self._head_keeper = head_keeper  # seal.KeyringHead: the chain's head kept outside the file
        self._published = 0
        self._lock = threading.RLock()
        self._sealer = Sealer(seal_key) if seal_key is not None else None
        self.seal_problems: list[str] = []
        self.seal_stats: dict[str, Any] = {}
        self._stopping = threading.Event()  # ends a background migration or deep check early
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            # Create the file 0600 ourselves: SQLite gives -wal/-shm the database's mode.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise self._db_error("open", e) from e
        if self._sealer is not None:
            self._open_seal(key_is_new)

    @classmethod
    def for_home(cls, home: Any) -> Catalog:
        """The catalog of a sybar home (``HOME/catalog.db``)."""
        return cls(Path(home.root) / "catalog.db")

    # -- plumbing

    def stop_background(self) -> None:
        """Have a seal migration or a deep check running on another thread stop soon
        (the migration goes on at the next start; a stopped deep check reports nothing)."""
        self._stopping.set()

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db_error(self, action: str, e: Exception) -> StatusError:
        return StatusError(
            DATABASE_ERROR,
            f"The catalog {self.path} could not {action}: {e}. Check that the disk is not full "
            "and that no other program holds the file locked.",
        )

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StatusError(
                    DATABASE_ERROR,
                    f"The catalog {self.path} has schema version {version}, newer than this sybar "
                    f"understands ({SCHEMA_VERSION}); run a newer sybar.",
                )
            while version < SCHEMA_VERSION:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    current = self._db.execute("PRAGMA user_version").fetchone()[0]
                    if current != version:  # another process migrated meanwhile
                        self._db.execute("ROLLBACK")
                        version = current
                        continue
                    for stmt in _MIGRATIONS[version].split(";"):
                        if stmt.strip():
                            self._db.execute(stmt)
                    self._db.execute(f"PRAGMA user_version = {version + 1}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                version += 1

    @contextlib.contextmanager
    def _tx(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction. durable=True: synchronous=FULL for this commit."""
        with self._lock:
            try:
                if durable:
                    self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as e:
                raise self._db_error("start a write", e) from e
            try:
                yield self._db
            except BaseException as e:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                if durable:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("PRAGMA synchronous=NORMAL")
                if isinstance(e, sqlite3.Error):
                    raise self._db_error("write", e) from e
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as e:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise self._db_error("commit a write", e) from e
            finally:
                if durable:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("PRAGMA synchronous=NORMAL")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(params)).fetchall()
            except sqlite3.DatabaseError as e:
                raise self._db_error("be read", e) from e

    # -- the seal (engine/catalog/seal.py)

    @property
    def sealed(self) -> bool:
        """True when this catalog signs and checks its images (opened with the key)."""
        return self._sealer is not None

    def _state(self, db: sqlite3.Connection, name: str) -> dict[str, Any] | None:
        row = db.execute("SELECT value FROM seal_state WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except ValueError:
            return {"sig": None}
        return value if isinstance(value, dict) else {"sig": None}

    def _put_state(self, db: sqlite3.Connection, name: str, value: dict[str, Any]) -> None:
        assert self._sealer is not None
        value = {k: v for k, v in value.items() if k != "sig"}
        value["sig"] = self._sealer.sign_state(name, value)
        db.execute("INSERT OR REPLACE INTO seal_state (name, value) VALUES (?, ?)", (name, json.dumps(value)))

    def _publish_head(self) -> None:
        """After a sealed change is committed: the chain's head to the head keeper."""
        if self._head_keeper is None or self._sealer is None:
            return
        with self._lock:
            head = self._state(self._db, "head")
        if head is None or not self._sealer.state_ok("head", head) or head.get("seq", 0) <= self._published:
            return
        self._head_keeper.write(head["seq"], head["mac"])
        self._published = head["seq"]

    def _seal_append(self, db: sqlite3.Connection, backup_id: str, action: str) -> None:
        """Append the seal entry of an image's current record (in the caller's transaction)."""
        if self._sealer is None:
            if db.execute("SELECT 1 FROM seal_state WHERE name = 'anchor'").fetchone() is not None:
                raise StatusError(
                    DATABASE_ERROR,
                    f"The catalog {self.path} is sealed: only the sybar daemon of its home, which holds the "
                    "seal key in the OS keyring, may change its images.",
                )
            return
        row = db.execute(_SEAL_ROW_SQL, (backup_id,)).fetchone()
        n = len(SEALED_FIELDS)
        objs = db.execute(_SEAL_OBJECTS_SQL, (backup_id,)).fetchall()
        digest = fields_digest(row[:n]) + objects_digest(objs)
        last = db.execute("SELECT seq, mac FROM seal_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, bytes(last[1])) if last is not None else (1, ZERO_MAC)
        head = self._state(db, "head")
        if head is not None and self._sealer.state_ok("head", head) and isinstance(head.get("live"), int):
            live = head["live"]
        else:
            live = db.execute(
                "SELECT count(*) FROM images WHERE state = 'complete' AND seal_seq IS NOT NULL"
            ).fetchone()[0]
        expiration, unlock_time = row[n], row[n + 1]
        mac = self._sealer.entry_mac(seq, action, backup_id, expiration, unlock_time, digest, prev)
        db.execute(
            "INSERT INTO seal_log (seq, backup_id, action, expiration, unlock_time, digest, mac, time)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, backup_id, action, expiration, unlock_time, digest, mac, time.time()),
        )
        if action != "remove":
            db.execute("UPDATE images SET seal_seq = ? WHERE backup_id = ?", (seq, backup_id))
        live += {"commit": 1, "remove": -1}.get(action, 0)
        self._put_state(db, "head", {"seq": seq, "mac": mac.hex(), "live": live})

    def _seal_unsealed(self, db: sqlite3.Connection, limit: int | None = None) -> int:
        """Seal every complete image that has no seal yet (at most ``limit``), oldest first
        (migration, bulk import): the same entries as one ``_seal_append`` each, computed a
        chunk at a time."""
        assert self._sealer is not None
        sealer = self._sealer
        ids = [r[0] for r in db.execute(
            "SELECT backup_id FROM images WHERE state = 'complete' AND seal_seq IS NULL"
            " ORDER BY coalesce(committed, backup_time), rowid" + ("" if limit is None else f" LIMIT {int(limit)}")
        )]  # fmt: skip
        if not ids:
            return 0
        last = db.execute("SELECT seq, mac FROM seal_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0], bytes(last[1])) if last is not None else (0, ZERO_MAC)
        head = self._state(db, "head")
        if head is not None and sealer.state_ok("head", head) and isinstance(head.get("live"), int):
            live = head["live"]
        else:
            live = db.execute(
                "SELECT count(*) FROM images WHERE state = 'complete' AND seal_seq IS NOT NULL"
            ).fetchone()[0]
        n = len(SEALED_FIELDS)
        now = time.time()
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            marks = ", ".join("?" * len(chunk))
            rows = {r[0]: r for r in db.execute(
                f"SELECT {', '.join(SEALED_FIELDS)}, expiration, unlock_time FROM images"
                f" WHERE backup_id IN ({marks})", chunk)}  # fmt: skip
            objs: dict[str, list[tuple]] = {}
            for r in db.execute(
                f"SELECT backup_id, {', '.join(SEALED_OBJECT_FIELDS)} FROM objects WHERE backup_id IN ({marks})"
                " ORDER BY backup_id, stripe",
                chunk,
            ):
                objs.setdefault(r[0], []).append(r[1:])
            entries = []
            for backup_id in chunk:
                row = rows[backup_id]
                digest = fields_digest(row[:n]) + objects_digest(objs.get(backup_id, []))
                seq += 1
                mac = sealer.entry_mac(seq, "commit", backup_id, row[n], row[n + 1], digest, prev)
                entries.append((seq, backup_id, "commit", row[n], row[n + 1], digest, mac, now))
                prev = mac
            db.executemany(
                "INSERT INTO seal_log (seq, backup_id, action, expiration, unlock_time, digest, mac, time)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                entries,
            )
            db.executemany("UPDATE images SET seal_seq = ? WHERE backup_id = ?", [(e[0], e[1]) for e in entries])
        self._put_state(db, "head", {"seq": seq, "mac": prev.hex(), "live": live + len(ids)})
        return len(ids)

    def _open_seal(self, key_is_new: bool) -> None:
        started = time.perf_counter()
        assert self._sealer is not None
        problems: list[str] = []
        try:
            with self._lock:
                anchor = self._state(self._db, "anchor")
            if anchor is None:
                with self._tx(durable=True) as db:
                    if self._state(db, "anchor") is None:  # nobody anchored it meanwhile
                        complete = db.execute("SELECT count(*) FROM images WHERE state = 'complete'").fetchone()[0]
                        if complete and not key_is_new:
                            self._put_state(db, "incident", {"time": time.time(), "text": (
                                f"the catalog held {complete} images but no seal records although this home's "
                                "seal key already existed: its seal tables were emptied or the file was replaced "
                                "(the images present then were sealed again as found)")})  # fmt: skip
                        self._put_state(db, "anchor", {"key_id": self._sealer.key_id, "created": time.time()})
                        if self._head_keeper is not None:
                            self._head_keeper.write(0, "")  # a new chain: what the keyring held is void
                        if complete > SEAL_AT_OPEN:
                            # a large catalog is sealed in the background (seal_migration), not at open
                            self._put_state(db, "migration", {"started": time.time(), "images": complete})
                            self.seal_stats["sealed_on_open"] = 0
                        else:
                            self.seal_stats["sealed_on_open"] = self._seal_unsealed(db)
                            head = self._state(db, "head")
                            if head is not None:
                                self._put_state(db, "verified", {"seq": head["seq"], "mac": head["mac"]})
            else:
                problems += self._check_open(anchor)
            with self._lock:
                incident = self._state(self._db, "incident")
            if incident is not None:
                text = incident.get("text") if self._sealer.state_ok("incident", incident) else None
                problems.append(text or "an incident record of the seal was edited")
        except sqlite3.DatabaseError as e:
            raise self._db_error("check its seal", e) from e
        self.seal_problems = problems
        if not problems:
            self._publish_head()
        self.seal_stats["open_check_s"] = time.perf_counter() - started

    @property
    def migration_pending(self) -> bool:
        """True while the images of a catalog sealed for the first time are still being sealed."""
        if self._sealer is None:
            return False
        with self._lock:
            return self._state(self._db, "migration") is not None

    def seal_migration(self, chunk: int = 1000) -> int:
        """Seal the images a large catalog held when first opened with its key, a chunk
        per transaction, resting as long as each chunk took (the catalog and the daemon
        stay responsive meanwhile). Returns how many."""
        if self._sealer is None or not self.migration_pending:
            return 0
        started = time.perf_counter()
        total = 0
        took = 0.0
        while not self._stopping.is_set():
            if total:
                time.sleep(max(0.005, took))
            t = time.perf_counter()
            with self._tx() as db:
                n = self._seal_unsealed(db, chunk)
                total += n
                took = time.perf_counter() - t
                if n < chunk:
                    db.execute("DELETE FROM seal_state WHERE name = 'migration'")
                    head = self._state(db, "head")
                    if head is not None:
                        self._put_state(db, "verified", {"seq": head["seq"], "mac": head["mac"]})
                    break
        self._publish_head()
        self.seal_stats["sealed_in_background"] = total
        self.seal_stats["migration_s"] = time.perf_counter() - started
        return total

    def _check_open(self, anchor: dict[str, Any]) -> list[str]:
        """The fast checks at open: the signed records, the chain's head, the number
        of images, unsealed images, and the entries added since the last open."""
        assert self._sealer is not None
        sealer = self._sealer
        if anchor.get("key_id") != sealer.key_id:
            return [
                f"the catalog was sealed with another key (key id {anchor.get('key_id')}) than this home's "
                f"keyring entry holds (key id {sealer.key_id}): restore that keyring entry, or the catalog "
                "file that belongs to this home"
            ]
        if not sealer.state_ok("anchor", anchor):
            return ["the seal anchor record was edited outside sybar"]
        problems: list[str] = []
        with self._lock:
            db = self._db
            head = self._state(db, "head")
            last = db.execute("SELECT seq, mac FROM seal_log ORDER BY seq DESC LIMIT 1").fetchone()
            complete = db.execute("SELECT count(*) FROM images WHERE state = 'complete'").fetchone()[0]
            unsealed = [r[0] for r in db.execute(
                "SELECT backup_id FROM images WHERE state = 'complete' AND seal_seq IS NULL LIMIT 5")]
            verified = self._state(db, "verified")
            migrating = self._state(db, "migration")
        if migrating is not None:
            if not sealer.state_ok("migration", migrating):
                return ["the seal migration record was edited outside sybar"]
            complete, unsealed = (head or {}).get("live"), []  # the images not sealed yet are expected
        if head is None and last is None:
            if complete and migrating is None:
                problems.append(f"the catalog holds {complete} images but its seal chain is empty: its seal "
                                "records were deleted outside sybar")  # fmt: skip
        elif head is None or not sealer.state_ok("head", head):
            problems.append("the signed head of the seal chain is missing or was edited outside sybar")
            head = None
        else:
            last_seq = last[0] if last is not None else 0
            if last_seq != head.get("seq") or (last is not None and bytes(last[1]).hex() != head.get("mac")):
                problems.append(
                    f"the seal chain ends at entry {last_seq} but its signed head says {head.get('seq')}: "
                    "entries were deleted or added outside sybar"
                )
            if complete != head.get("live"):
                gone = self._deleted_images(limit=5)
                detail = f" (deleted: {', '.join(gone)})" if gone else ""
                problems.append(
                    f"the catalog holds {complete} images but its seal chain says {head.get('live')}: "
                    f"image records were deleted or added outside sybar{detail}"
                )
        for backup_id in unsealed:
            problems.append(f"image {backup_id} is not sealed: its record was inserted outside sybar")
        kept = self._head_keeper.read() if self._head_keeper is not None else None
        if kept is not None:
            kseq, kmac = kept
            last_seq = last[0] if last is not None else 0
            with self._lock:
                row = self._db.execute("SELECT mac FROM seal_log WHERE seq = ?", (kseq,)).fetchone()
            if kseq <= 0:
                pass  # the chain began after the keyring's record was reset
            elif kseq > last_seq:
                problems.append(
                    f"the catalog ends at seal entry {last_seq} but the OS keyring recorded entry {kseq} as its "
                    "head: catalog.db was put back from an older copy (or its newest entries were removed), so "
                    "images recorded since are missing from it"
                )
            elif row is None or bytes(row[0]).hex() != kmac:
                problems.append(
                    f"seal entry {kseq} differs from the one the OS keyring recorded: catalog.db was replaced"
                )
            else:
                self._published = kseq
        start = 0
        prev = ZERO_MAC
        if verified is not None and sealer.state_ok("verified", verified) and isinstance(verified.get("seq"), int):
            start, prev = verified["seq"], bytes.fromhex(verified.get("mac", ZERO_MAC.hex()))
        walk = self._walk_chain(start, prev)
        problems += walk["problems"]
        self.seal_stats["entries_checked_at_open"] = walk["entries"]
        if not problems and head is not None:
            with self._tx() as db:
                self._put_state(db, "verified", {"seq": head["seq"], "mac": head["mac"]})
        return problems

    def _walk_chain(self, after: int, prev: bytes, db: sqlite3.Connection | None = None) -> dict[str, Any]:
        """Check the macs and the order of the seal entries after seq ``after``."""
        assert self._sealer is not None
        sealer = self._sealer
        problems: list[str] = []
        expected = after + 1
        n = 0
        if after > 0:
            with self._lock if db is None else contextlib.nullcontext():
                row = (db or self._db).execute("SELECT mac FROM seal_log WHERE seq = ?", (after,)).fetchone()
            if row is None or not sealer.same(bytes(row[0]), prev):
                problems.append(f"seal entry {after}, verified before, is missing or was edited outside sybar")
                return {"problems": problems, "entries": 0}
        with self._lock if db is None else contextlib.nullcontext():
            cur = (db or self._db).execute(
                "SELECT seq, backup_id, action, expiration, unlock_time, digest, mac FROM seal_log"
                " WHERE seq > ? ORDER BY seq",
                (after,),
            )
            while True:
                rows = cur.fetchmany(4096)
                if not rows:
                    break
                if db is not None and self._stopping.is_set():
                    raise _Stopped
                for seq, backup_id, action, expiration, unlock_time, digest, mac in rows:
                    n += 1
                    if seq != expected:
                        problems.append(
                            f"seal entries {expected}..{seq - 1} are missing: they were deleted outside sybar"
                        )
                    mine = sealer.entry_mac(seq, action, backup_id, expiration, unlock_time, bytes(digest), prev)
                    if not sealer.same(mine, bytes(mac)):
                        problems.append(f"seal entry {seq} (image {backup_id}, {action}) was edited or forged")
                    prev = bytes(mac)
                    expected = seq + 1
                    if len(problems) >= 10:
                        return {"problems": problems, "entries": n}
        return {"problems": problems, "entries": n}

    def _deleted_images(self, limit: int = 10, db: sqlite3.Connection | None = None) -> list[str]:
        """Images the seal chain says exist but the images table lacks."""
        sql = (
            "SELECT s.backup_id FROM seal_log s WHERE s.action != 'remove'"
            " AND s.seq = (SELECT max(t.seq) FROM seal_log t WHERE t.backup_id = s.backup_id)"
            " AND NOT EXISTS (SELECT 1 FROM images i WHERE i.backup_id = s.backup_id AND i.state = 'complete')"
            " ORDER BY s.seq LIMIT ?"
        )
        if db is not None:
            return [r[0] for r in db.execute(sql, (limit,))]
        return [r[0] for r in self._query(sql, (limit,))]

    def image_seal_problems(self, backup_id: str) -> list[str]:
        """What is wrong with one image's record against its seal (empty: intact)."""
        if self._sealer is None:
            return []
        with self._lock:
            return self._image_problems(self._db, backup_id)

    def _image_problems(self, db: sqlite3.Connection, backup_id: str) -> list[str]:
        assert self._sealer is not None
        sealer = self._sealer
        n = len(SEALED_FIELDS)
        row = db.execute(_SEAL_ROW_SQL.replace("FROM images", ", seal_seq, state FROM images"),
                         (backup_id,)).fetchone()  # fmt: skip
        latest = db.execute(
            "SELECT seq, action FROM seal_log WHERE backup_id = ? ORDER BY seq DESC LIMIT 1", (backup_id,)
        ).fetchone()
        if row is None or row[n + 3] != "complete":
            if latest is not None and latest[1] != "remove":
                return [f"image {backup_id} was deleted from the catalog outside sybar (seal entry {latest[0]})"]
            return []
        seal_seq = row[n + 2]
        if seal_seq is None:
            if self._state(db, "migration") is not None:
                return []  # sealed by the migration under way
            return [f"image {backup_id} is not sealed: its record was inserted outside sybar"]
        entry = db.execute(
            "SELECT backup_id, action, expiration, unlock_time, digest, mac FROM seal_log WHERE seq = ?",
            (seal_seq,),
        ).fetchone()
        if entry is None:
            return [f"image {backup_id}: its seal entry {seal_seq} is missing (deleted outside sybar)"]
        e_id, action, e_exp, e_unlock, digest, mac = entry
        digest = bytes(digest)
        if seal_seq == 1:
            prev: bytes | None = ZERO_MAC
        else:
            p = db.execute("SELECT mac FROM seal_log WHERE seq = ?", (seal_seq - 1,)).fetchone()
            prev = bytes(p[0]) if p is not None else None
        problems: list[str] = []
        if prev is None:
            problems.append(f"image {backup_id}: seal entry {seal_seq - 1} before its own is missing")
        elif not sealer.same(sealer.entry_mac(seal_seq, action, e_id, e_exp, e_unlock, digest, prev), bytes(mac)):
            problems.append(f"image {backup_id}: its seal entry {seal_seq} was edited or forged")
            return problems
        if e_id != backup_id or action == "remove":
            problems.append(f"image {backup_id} points at seal entry {seal_seq}, which seals another record")
            return problems
        if latest is not None and latest[0] != seal_seq:
            problems.append(
                f"image {backup_id}: a later seal entry ({latest[0]}, {latest[1]}) exists, so this record is an "
                "old one put back outside sybar"
            )
        exp, unlock = row[n], row[n + 1]
        if exp != e_exp:
            problems.append(f"image {backup_id}: its expiration reads {iso_local(exp)} but was sealed as "
                            f"{iso_local(e_exp)}")  # fmt: skip
        if unlock != e_unlock:
            problems.append(f"image {backup_id}: its WORM unlock time reads {iso_local(unlock)} but was sealed "
                            f"as {iso_local(e_unlock)}")  # fmt: skip
        if fields_digest(row[:n]) != digest[:16]:
            problems.append(
                f"image {backup_id}: its record (identity, database, type, backup time, policy, size or log "
                "chain) differs from what was sealed"
            )
        objs = db.execute(_SEAL_OBJECTS_SQL, (backup_id,)).fetchall()
        if objects_digest(objs) != digest[16:]:
            problems.append(
                f"image {backup_id}: its object records (names, sizes, checksums or unlock times) differ from "
                "what was sealed"
            )
        return problems

    def check_images(self, backup_ids: Iterable[str], doing: str) -> None:
        """Refuse (StatusError 220) to go on with ``doing`` when any of the images
        fails its seal check."""
        if self._sealer is None:
            return
        problems: list[str] = []
        for backup_id in backup_ids:
            problems += self.image_seal_problems(backup_id)
        if problems:
            for p in problems:
                if p not in self.seal_problems:
                    self.seal_problems.append(p)
            raise StatusError(
                DATABASE_ERROR,
                f"The catalog fails its seal check, so sybar will not {doing}: {'; '.join(problems[:5])}. "
                "Someone changed catalog.db outside sybar: put back a trusted copy of it (`sybar catalog "
                "check` lists everything found).",
            )

    def require_intact(self, doing: str) -> None:
        """Refuse (StatusError 220) to ``doing`` while the catalog's seal check has found anything."""
        if self.seal_problems:
            raise StatusError(
                DATABASE_ERROR,
                f"The catalog fails its seal check, so sybar will not {doing}: "
                f"{'; '.join(self.seal_problems[:5])}"
                + (f" (and {len(self.seal_problems) - 5} more)" if len(self.seal_problems) > 5 else "")
                + ". Someone changed catalog.db outside sybar: put back a trusted copy of it.",
            )

    def deep_check(self) -> dict[str, Any]:
        """Recompute every seal: every entry's mac and order, every complete image's
        digests against its entry, deleted and put-back records. Reads through a
        connection of its own (the catalog stays usable meanwhile). Adds what it
        finds to ``seal_problems``."""
        if self._sealer is None:
            return {"ok": True, "sealed": False, "problems": [], "images": 0, "entries": 0, "seconds": 0.0}
        started = time.perf_counter()
        ro = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30.0)
        problems: list[str] = []
        images = 0
        entries = 0
        try:
            ro.execute("BEGIN")  # one snapshot for every query below
            anchor = self._state(ro, "anchor")
            if anchor is None or not self._sealer.state_ok("anchor", anchor):
                problems.append("the seal anchor record is missing or was edited outside sybar")
            walk = self._walk_chain(0, ZERO_MAC, db=ro)
            problems += walk["problems"]
            head = self._state(ro, "head")
            last = ro.execute("SELECT seq, mac FROM seal_log ORDER BY seq DESC LIMIT 1").fetchone()
            if head is None and last is None:
                pass  # nothing sealed yet
            elif head is None or not self._sealer.state_ok("head", head):
                problems.append("the signed head of the seal chain is missing or was edited outside sybar")
            else:
                if (last[0] if last else 0) != head.get("seq"):
                    problems.append(f"the seal chain ends at entry {last[0] if last else 0} but its signed head "
                                    f"says {head.get('seq')}")  # fmt: skip
            images, row_problems = self._check_rows(ro, migrating=self._state(ro, "migration") is not None)
            problems += row_problems
            for backup_id in self._deleted_images(limit=10, db=ro):
                problems.append(f"image {backup_id} was deleted from the catalog outside sybar")
            for backup_id, seq, action in ro.execute(
                "SELECT i.backup_id, s.seq, s.action FROM images i JOIN seal_log s ON s.backup_id = i.backup_id"
                " AND s.seq > i.seal_seq WHERE i.state = 'complete' LIMIT 10"
            ):
                problems.append(f"image {backup_id}: a later seal entry ({seq}, {action}) exists, so this record "
                                "is an old one put back outside sybar")  # fmt: skip
            entries = walk["entries"]
        except _Stopped:
            return {"ok": True, "sealed": True, "stopped": True, "problems": [], "images": images,
                    "entries": entries, "seconds": time.perf_counter() - started}  # fmt: skip
        finally:
            ro.close()
        for p in problems:
            if p not in self.seal_problems:
                self.seal_problems.append(p)
        seconds = time.perf_counter() - started
        self.seal_stats["deep_check_s"] = seconds
        return {"ok": not problems, "sealed": True, "problems": problems, "images": images, "entries": entries,
                "seconds": seconds}  # fmt: skip

    def _check_rows(self, ro: sqlite3.Connection, migrating: bool = False) -> tuple[int, list[str]]:
        """Every complete image against its seal entry, objects merged in by backup id."""
        n = len(SEALED_FIELDS)
        cols = ", ".join(f"i.{c}" for c in SEALED_FIELDS)
        images = ro.execute(
            f"SELECT {cols}, i.expiration, i.unlock_time, i.seal_seq, s.backup_id, s.action, s.expiration,"
            " s.unlock_time, s.digest FROM images i LEFT JOIN seal_log s ON s.seq = i.seal_seq"
            " WHERE i.state = 'complete' ORDER BY i.backup_id"
        )
        objects = ro.execute(
            f"SELECT backup_id, {', '.join(SEALED_OBJECT_FIELDS)} FROM objects ORDER BY backup_id, stripe"
        )
        obj_rows = iter(objects)
        pending_obj = next(obj_rows, None)
        problems: list[str] = []
        count = 0
        for r in iter(lambda: images.fetchmany(4096), []):
            if self._stopping.is_set():
                raise _Stopped
            for row in r:
                count += 1
                backup_id = row[0]
                objs = []
                while pending_obj is not None and pending_obj[0] < backup_id:
                    pending_obj = next(obj_rows, None)
                while pending_obj is not None and pending_obj[0] == backup_id:
                    objs.append(pending_obj[1:])
                    pending_obj = next(obj_rows, None)
                exp, unlock, seal_seq, e_id, action, e_exp, e_unlock, digest = row[n:]
                what = None
                if seal_seq is None:
                    if migrating:
                        continue  # the migration under way seals it
                    what = "is not sealed: its record was inserted outside sybar"
                elif e_id is None:
                    what = f"has lost its seal entry {seal_seq}"
                elif e_id != backup_id or action == "remove":
                    what = f"points at seal entry {seal_seq}, which seals another record"
                elif exp != e_exp:
                    what = f"has its expiration changed from {iso_local(e_exp)} to {iso_local(exp)}"
                elif unlock != e_unlock:
                    what = f"has its WORM unlock time changed from {iso_local(e_unlock)} to {iso_local(unlock)}"
                elif fields_digest(row[:n]) != bytes(digest)[:16]:
                    what = "has its record (identity, database, type, backup time, policy, size) changed"
                elif objects_digest(objs) != bytes(digest)[16:]:
                    what = "has its object records (names, sizes, checksums or unlock times) changed"
                if what is not None and len(problems) < 20:
                    problems.append(f"image {backup_id} {what} outside sybar")
        return count, problems

    # -- images

    def new_backup_id(self, client: str, when: float) -> str:
        """``client_<10-digit unix time>``, bumping the seconds while the id is taken."""
        with self._lock:
            return self._free_backup_id(self._db, client, when)

    @staticmethod
    def _free_backup_id(db: sqlite3.Connection, client: str, when: float) -> str:
        seconds = int(when)
        while True:
            backup_id = f"{client}_{seconds:010d}"
            if db.execute("SELECT 1 FROM images WHERE backup_id = ?", (backup_id,)).fetchone() is None:
                return backup_id
            seconds += 1

    def begin_image(
        self,
        *,
        client: str,
        dataserver: str,
        database: str,
        dump_type: str,
        stripes: int,
        backup_time: float | None = None,
        backup_id: str | None = None,
        policy: str | None = None,
        schedule: str | None = None,
        schedule_type: int | None = None,
        keyword: str | None = None,
        expiration: float | None = None,
        compression: int | None = None,
        job_id: int | None = None,
        dump_id: str | None = None,
        storage_unit: str | None = None,
        lsn: int | None = None,
        first_lsn: int | None = None,
        last_lsn: int | None = None,
        first_commit: float | None = None,
        last_commit: float | None = None,
        instance_id: Any = None,
        standby: bool = False,
        unlock_time: float | None = None,
    ) -> Image:
        """Record a pending image (invisible until ``commit_image``).

        ``unlock_time``: the image goes to WORM storage and cannot be deleted or
        have its expiration shortened before then (NetBackup: = its expiration).

        Without backup_id, one is allocated from client and backup_time in the
        same transaction, so concurrent backups never share an id.

        Log chain facts: a full dump (D) gives ``lsn`` and ``instance_id``; a log
        dump (T) gives ``first_lsn``, ``last_lsn`` (an empty log dump has
        ``last_lsn == first_lsn - 1``), ``first_commit``, ``last_commit`` (None
        when empty), ``instance_id`` and ``standby``. They may also be given (or
        completed) at ``commit_image``, which links a log dump to the image it
        follows."""
        if dump_type not in ("D", "T"):
            raise ValueError(f"dump_type must be 'D' or 'T', not {dump_type!r}")
        if stripes < 1:
            raise ValueError("an image has at least one stripe")
        _check_chain_facts(dump_type, lsn, first_lsn, last_lsn, first_commit, last_commit)
        now = time.time()
        if backup_time is None:
            backup_time = now
        if expiration is not None and not expiration < INFINITE_EXPIRATION:
            expiration = INFINITE_EXPIRATION
        if unlock_time is not None and not unlock_time < INFINITE_EXPIRATION:
            unlock_time = INFINITE_EXPIRATION
        with self._tx() as db:
            if backup_id is None:
                backup_id = self._free_backup_id(db, client, backup_time)
            elif db.execute("SELECT 1 FROM images WHERE backup_id = ?", (backup_id,)).fetchone():
                raise StatusError(BACKUP_FAILED, f"The catalog already has an image {backup_id}.")
            db.execute(
                "INSERT INTO images (backup_id, client, dataserver, database, dump_type, policy, schedule,"
                " schedule_type, keyword, backup_time, expiration, compression, job_id, dump_id, stripes,"
                " kbytes, state, storage_unit, created, lsn, first_lsn, last_lsn, first_commit, last_commit,"
                " instance_id, standby, unlock_time)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    backup_id, client, dataserver, database, dump_type, policy, schedule, schedule_type,
                    keyword, backup_time, expiration, compression, job_id, dump_id, stripes,
                    storage_unit, now, lsn, first_lsn, last_lsn, first_commit, last_commit,
                    instance_id, 1 if standby else 0, unlock_time,
                ),
            )  # fmt: skip
        image = self.get_image(backup_id, include_pending=True)
        assert image is not None
        return image

    def add_object(
        self,
        backup_id: str,
        *,
        stripe: int,
        name: str,
        storage_unit: str | None,
        bytes: int,
        raw_bytes: int | None = None,
        checksum: str | None = None,
    ) -> ObjectRecord:
        """Record one stored stripe object of a pending image."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT state, stripes, unlock_time FROM images WHERE backup_id = ?", (backup_id,)
            ).fetchone()
            if row is None:
                raise StatusError(
                    NO_ENTITY, f"The catalog has no image {backup_id} to add stripe {stripe} to."
                )
            state, stripes, unlock_time = row
            if state != "pending":
                raise StatusError(
                    BACKUP_FAILED, f"Image {backup_id} is {state}; stripe {stripe} cannot be added to it."
                )
            if not 0 <= stripe < stripes:
                raise StatusError(
                    BACKUP_FAILED,
                    f"Image {backup_id} has {stripes} stripes (0-{stripes - 1}), not stripe {stripe}.",
                )
            try:
                db.execute(
                    "INSERT INTO objects (backup_id, stripe, name, storage_unit, bytes, raw_bytes, checksum, created,"
                    " unlock_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (backup_id, stripe, name, storage_unit, bytes, raw_bytes, checksum, now, unlock_time),
                )
            except sqlite3.IntegrityError as e:
                other = db.execute("SELECT backup_id, stripe FROM objects WHERE name = ?", (name,)).fetchone()
                if other is not None:
                    raise StatusError(
                        BACKUP_FAILED,
                        f"The catalog already has an object named {name} (image {other[0]} stripe {other[1]}).",
                    ) from e
                raise StatusError(
                    BACKUP_FAILED, f"Image {backup_id} already has an object for stripe {stripe}."
                ) from e
        return ObjectRecord(backup_id, stripe, name, storage_unit, bytes, raw_bytes, checksum, now, unlock_time)

    def commit_image(
        self,
        backup_id: str,
        *,
        dump_id: str | None = None,
        compression: int | None = None,
        lsn: int | None = None,
        first_lsn: int | None = None,
        last_lsn: int | None = None,
        first_commit: float | None = None,
        last_commit: float | None = None,
        instance_id: Any = None,
        standby: bool | None = None,
    ) -> Image:
        """Make a pending image visible, in one durable transaction, if and only if
        it has exactly one object for each stripe 0..N-1. Raises StatusError (and
        leaves the image pending and invisible) otherwise. Committing a complete
        image again returns it unchanged. dump_id / compression and the log chain
        facts (see ``begin_image``), when given, are recorded in the same
        transaction (known only once the dump ended), and so is ``follows`` for a
        log dump: the previous log dump of the same lineage whose last_lsn is
        first_lsn - 1, or else the newest full dump of the lineage whose LSN the
        log dump continues (first_lsn - 1 <= lsn <= last_lsn)."""
        with self._tx(durable=True) as db:
            row = db.execute(
                "SELECT state, stripes, dump_type, lsn, first_lsn, last_lsn, first_commit, last_commit"
                " FROM images WHERE backup_id = ?",
                (backup_id,),
            ).fetchone()
            if row is None:
                raise StatusError(NO_ENTITY, f"The catalog has no image {backup_id} to commit.")
            state, stripes, dump_type = row[:3]
            if state == "complete":
                pass
            elif state != "pending":
                raise StatusError(BACKUP_FAILED, f"Image {backup_id} has failed and cannot be committed.")
            else:
                given = (lsn, first_lsn, last_lsn, first_commit, last_commit)
                _check_chain_facts(
                    dump_type, *(g if g is not None else r for g, r in zip(given, row[3:], strict=True))
                )
                have = [
                    r[0]
                    for r in db.execute(
                        "SELECT stripe FROM objects WHERE backup_id = ? ORDER BY stripe", (backup_id,)
                    )
                ]
                if have != list(range(stripes)):
                    missing = sorted(set(range(stripes)) - set(have))
                    raise StatusError(
                        BACKUP_FAILED,
                        f"Image {backup_id} cannot be committed: "
                        f"stripe{'s' if len(missing) != 1 else ''} {', '.join(map(str, missing))} of {stripes} "
                        "never reached the storage unit. The backup is not usable; run it again.",
                    )
                total = db.execute(
                    "SELECT sum(bytes) FROM objects WHERE backup_id = ?", (backup_id,)
                ).fetchone()[0]
                db.execute(
                    "UPDATE images SET state = 'complete', kbytes = ?, committed = ?,"
                    " dump_id = coalesce(?, dump_id), compression = coalesce(?, compression),"
                    " lsn = coalesce(?, lsn), first_lsn = coalesce(?, first_lsn), last_lsn = coalesce(?, last_lsn),"
                    " first_commit = coalesce(?, first_commit), last_commit = coalesce(?, last_commit),"
                    " instance_id = coalesce(?, instance_id), standby = coalesce(?, standby)"
                    " WHERE backup_id = ?",
                    (math.ceil((total or 0) / 1024), time.time(), dump_id, compression, lsn, first_lsn, last_lsn,
                     first_commit, last_commit, instance_id, None if standby is None else int(bool(standby)),
                     backup_id),
                )  # fmt: skip
                if dump_type == "T":
                    db.execute(
                        "UPDATE images SET follows = ? WHERE backup_id = ?",
                        (self._follows(db, backup_id), backup_id),
                    )
                self._seal_append(db, backup_id, "commit")
        self._publish_head()
        image = self.get_image(backup_id)
        assert image is not None
        return image

    @staticmethod
    def _follows(db: sqlite3.Connection, backup_id: str) -> str | None:
        """The image a log dump follows in its chain (None: it follows nothing the
        catalog has, e.g. its lineage began before the catalog or was broken)."""
        row = db.execute(
            "SELECT dataserver, database, instance_id, first_lsn, last_lsn, backup_time FROM images"
            " WHERE backup_id = ?",
            (backup_id,),
        ).fetchone()
        dataserver, database, instance_id, first_lsn, last_lsn, backup_time = row
        if instance_id is None or first_lsn is None or last_lsn is None:
            return None
        prev = db.execute(
            "SELECT backup_id FROM images WHERE instance_id = ? AND state = 'complete' AND first_lsn <= ?"
            " AND last_lsn = ? AND dump_type = 'T' AND database = ? AND dataserver = ? AND backup_time <= ?"
            " AND backup_id != ? ORDER BY first_lsn DESC, backup_time DESC, rowid DESC LIMIT 1",
            (instance_id, first_lsn, first_lsn - 1, database, dataserver, backup_time, backup_id),
        ).fetchone()
        if prev is not None:
            return prev[0]
        full = db.execute(
            "SELECT backup_id FROM images WHERE database = ? AND dump_type = 'D' AND state = 'complete'"
            " AND backup_time <= ? AND instance_id = ? AND dataserver = ? AND lsn BETWEEN ? AND ?"
            " ORDER BY backup_time DESC, rowid DESC LIMIT 1",
            (database, backup_time, instance_id, dataserver, first_lsn - 1, max(last_lsn, first_lsn - 1)),
        ).fetchone()
        return full[0] if full is not None else None

    def fail_image(self, backup_id: str, reason: str) -> bool:
        """Mark a pending image failed (it stays invisible; cleanup removes it).
        Returns False when there was no pending image of that id."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE images SET state = 'failed', reason = ? WHERE backup_id = ? AND state = 'pending'",
                (reason, backup_id),
            )
            return cur.rowcount > 0

    def remove_image(self, backup_id: str) -> bool:
        """Delete an image (any state) and its object records. The objects on the
        storage unit are the caller's to remove. A complete image is refused
        while WORM-locked (StatusError 88) or when its record fails its seal
        check or the catalog's (220); its removal is sealed."""
        with self._tx(durable=True) as db:
            row = db.execute(
                "SELECT state, unlock_time FROM images WHERE backup_id = ?", (backup_id,)
            ).fetchone()
            if row is None:
                return False
            if row[0] == "complete":
                if self._sealer is not None:
                    self.require_intact(f"remove image {backup_id}")
                    problems = self._image_problems(db, backup_id)
                    if problems:
                        self.check_images([backup_id], f"remove image {backup_id}")
                if row[1] is not None and row[1] > time.time():
                    raise worm_locked(backup_id, row[1], "deleted")
                self._seal_append(db, backup_id, "remove")
            db.execute("DELETE FROM objects WHERE backup_id = ?", (backup_id,))
            removed = db.execute("DELETE FROM images WHERE backup_id = ?", (backup_id,)).rowcount > 0
        self._publish_head()
        return removed

    def set_expiration(self, backup_id: str, expiration: float) -> Image:
        """Change a complete image's expiration (NetBackup's bpexpdate). A WORM image
        may only have it extended, and its unlock time (and its objects') follows
        it; a shorter one is refused (StatusError 88). The change is sealed.
        Extending the storage unit's locks first is the caller's part."""
        if not expiration < INFINITE_EXPIRATION:
            expiration = INFINITE_EXPIRATION
        with self._tx(durable=True) as db:
            row = db.execute(
                "SELECT state, expiration, unlock_time FROM images WHERE backup_id = ?", (backup_id,)
            ).fetchone()
            if row is None or row[0] != "complete":
                raise StatusError(NO_ENTITY, f"no image {backup_id} in the catalog: `sybar list` shows the images")
            if self._sealer is not None:
                self.require_intact(f"change the expiration of image {backup_id}")
                if self._image_problems(db, backup_id):
                    self.check_images([backup_id], f"change the expiration of image {backup_id}")
            _, current, unlock = row
            if unlock is not None and current is not None and expiration < current:
                raise StatusError(
                    WORM_LOCK_ERROR,
                    f"Image {backup_id} is on WORM storage: its expiration {iso_local(current)} can only be "
                    f"extended, not shortened to {iso_local(expiration)}.",
                )
            if unlock is not None:
                unlock = max(unlock, expiration)
                db.execute("UPDATE objects SET unlock_time = ? WHERE backup_id = ?", (unlock, backup_id))
            db.execute(
                "UPDATE images SET expiration = ?, unlock_time = ? WHERE backup_id = ?",
                (expiration, unlock, backup_id),
            )
            self._seal_append(db, backup_id, "expiration")
        self._publish_head()
        image = self.get_image(backup_id)
        assert image is not None
        return image

    def expired_images(self, now: float | None = None, limit: int | None = None) -> list[Image]:
        """Complete images whose expiration has passed (oldest expiration first)."""
        sql = f"{_IMAGE_SELECT} WHERE state = 'complete' AND expiration <= ? ORDER BY expiration, rowid"
        params: list[Any] = [time.time() if now is None else now]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self._images(self._query(sql, params))

    def set_verified(self, backup_id: str, status: int, when: float | None = None) -> None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE images SET verified_at = ?, verify_status = ? WHERE backup_id = ?",
                (time.time() if when is None else when, status, backup_id),
            )
            if cur.rowcount == 0:
                raise StatusError(NO_ENTITY, f"The catalog has no image {backup_id}.")

    def import_images(self, images: Iterable[Image]) -> int:
        """Insert complete images with their objects in one transaction (bulk
        loads: catalog recovery, benchmarks, tests). Returns the number inserted."""
        image_rows: list[tuple] = []
        object_rows: list[tuple] = []
        now = time.time()
        for im in images:
            image_rows.append(tuple("complete" if c == "state" else getattr(im, c) for c in _IMAGE_COLUMNS))
            for o in im.objects:
                object_rows.append(
                    (im.backup_id, o.stripe, o.name, o.storage_unit, o.bytes, o.raw_bytes, o.checksum,
                     o.created if o.created is not None else now, o.unlock_time)
                )  # fmt: skip
        with self._tx(durable=True) as db:
            db.executemany(
                f"INSERT INTO images ({', '.join(_IMAGE_COLUMNS)}) VALUES ({', '.join('?' * len(_IMAGE_COLUMNS))})",
                image_rows,
            )
            db.executemany(
                f"INSERT INTO objects ({', '.join(_OBJECT_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(_OBJECT_COLUMNS))})",
                object_rows,
            )
            if self._sealer is not None:
                self._seal_unsealed(db)
            elif image_rows and db.execute("SELECT 1 FROM seal_state WHERE name = 'anchor'").fetchone():
                raise StatusError(
                    DATABASE_ERROR,
                    f"The catalog {self.path} is sealed: only the sybar daemon of its home may add images to it.",
                )
        self._publish_head()
        return len(image_rows)

    # -- image queries

    def _objects_for(self, backup_ids: list[str]) -> dict[str, list[ObjectRecord]]:
        out: dict[str, list[ObjectRecord]] = {b: [] for b in backup_ids}
        for i in range(0, len(backup_ids), 500):
            chunk = backup_ids[i : i + 500]
            rows = self._query(
                f"{_OBJECT_SELECT} WHERE backup_id IN ({', '.join('?' * len(chunk))}) ORDER BY backup_id, stripe",
                chunk,
            )
            for r in rows:
                out[r[0]].append(ObjectRecord(*r))
        return out

    def _images(self, rows: list[tuple], with_objects: bool = True) -> list[Image]:
        if not rows:
            return []
        objs = self._objects_for([r[0] for r in rows]) if with_objects else {}
        return [Image(*r, objects=objs.get(r[0], [])) for r in rows]

    def get_image(self, backup_id: str, include_pending: bool = False) -> Image | None:
        """A complete image by backup id (pending and failed ones too when include_pending)."""
        sql = f"{_IMAGE_SELECT} WHERE backup_id = ?"
        if not include_pending:
            sql += " AND state = 'complete'"
        images = self._images(self._query(sql, (backup_id,)))
        return images[0] if images else None

    @staticmethod
    def _filters(
        database: str | None,
        client: str | None,
        dataserver: str | None,
        since: float | None,
        until: float | None,
        dump_type: str | None,
        keyword: str | None,
        policy: str | None,
    ) -> tuple[str, list[Any]]:
        where = ["state = 'complete'"]
        params: list[Any] = []
        for col, val in (
            ("database", database),
            ("client", client),
            ("dataserver", dataserver),
            ("dump_type", dump_type),
            ("keyword", keyword),
            ("policy", policy),
        ):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if since is not None:
            where.append("backup_time >= ?")
            params.append(since)
        if until is not None:
            where.append("backup_time <= ?")
            params.append(until)
        return " WHERE " + " AND ".join(where), params

    def list_images(
        self,
        *,
        database: str | None = None,
        client: str | None = None,
        dataserver: str | None = None,
        since: float | None = None,
        until: float | None = None,
        dump_type: str | None = None,
        keyword: str | None = None,
        policy: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
        with_objects: bool = True,
    ) -> list[Image]:
        """Complete images matching every given filter (exact matches; since and
        until are inclusive unix times), ordered by backup time."""
        where, params = self._filters(database, client, dataserver, since, until, dump_type, keyword, policy)
        order = "DESC" if newest_first else "ASC"
        sql = f"{_IMAGE_SELECT}{where} ORDER BY backup_time {order}, rowid {order}"
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params += [-1 if limit is None else limit, offset]
        return self._images(self._query(sql, params), with_objects)

    def count_images(
        self,
        *,
        database: str | None = None,
        client: str | None = None,
        dataserver: str | None = None,
        since: float | None = None,
        until: float | None = None,
        dump_type: str | None = None,
        keyword: str | None = None,
        policy: str | None = None,
    ) -> int:
        where, params = self._filters(database, client, dataserver, since, until, dump_type, keyword, policy)
        return self._query(f"SELECT count(*) FROM images{where}", params)[0][0]

    def distinct_values(self, column: str) -> list[str]:
        """The different dataservers, clients or databases of complete images, sorted. A skip-scan of
        the column's index (one lookup per value), so a million images cost no more than a few."""
        if column not in ("dataserver", "client", "database"):
            raise ValueError(f"no listing of distinct {column!r}")
        sql = (f"WITH RECURSIVE v(x) AS (SELECT min({column}) FROM images WHERE state = 'complete' "
               f"UNION ALL SELECT (SELECT min({column}) FROM images WHERE state = 'complete' AND {column} > x) "
               f"FROM v WHERE x IS NOT NULL) SELECT x FROM v WHERE x IS NOT NULL")
        return [r[0] for r in self._query(sql)]

    def find_dump(self, name_or_prefix: str, *, database: str | None = None) -> Image | None:
        """The complete image a load names.

        - an exact object name (any stripe's): that object's image;
        - an exact backup id: that image;
        - otherwise a prefix of object names (``SYBAR.mydb.D`` or
          ``SYBAR.mydb.D.0.1234``): the newest image having an object whose
          name starts with it.

        With database, only images of that database qualify."""
        key = name_or_prefix.strip()
        if not key:
            return None
        db_filter = " AND i.database = ?" if database is not None else ""
        db_params = [database] if database is not None else []
        rows = self._query(
            f"SELECT i.backup_id FROM objects o JOIN images i ON i.backup_id = o.backup_id"
            f" WHERE o.name = ? AND i.state = 'complete'{db_filter}",
            [key, *db_params],
        )
        if not rows:
            rows = self._query(
                f"SELECT i.backup_id FROM images i WHERE i.backup_id = ? AND i.state = 'complete'{db_filter}",
                [key, *db_params],
            )
        if not rows:
            rows = self._find_by_prefix(key, database)
        return self.get_image(rows[0][0]) if rows else None

    def _find_by_prefix(self, prefix: str, database: str | None) -> list[tuple]:
        lo, hi = prefix, _prefix_end(prefix)
        exists = (
            "EXISTS (SELECT 1 FROM objects o WHERE o.backup_id = i.backup_id AND o.name >= ? AND o.name < ?)"
        )
        # Names are SERVER.DATABASE.TYPE.STRIPE...: the whole tokens of the prefix
        # narrow the search to one database's images, newest first, via its index.
        parts = prefix.split(".")
        whole = parts[:-1]
        hint_db = whole[1] if len(whole) >= 2 else None
        hint_type = whole[2] if len(whole) >= 3 and whole[2] in ("D", "T") else None
        if hint_db is not None and database is not None and hint_db != database:
            hint_db = None  # contradicts: let the general query decide (it will find nothing)
        target_db = database if database is not None else hint_db
        if target_db is not None:
            type_filter = " AND i.dump_type = ?" if hint_type is not None else ""
            rows = self._query(
                f"SELECT i.backup_id FROM images i WHERE i.state = 'complete' AND i.database = ?{type_filter}"
                f" AND {exists} ORDER BY i.backup_time DESC, i.rowid DESC LIMIT 1",
                [target_db, *([hint_type] if hint_type is not None else []), lo, hi],
            )
            if rows or database is not None:
                return rows
        # General case: driven by the object-name index.
        db_filter = " AND i.database = ?" if database is not None else ""
        return self._query(
            "SELECT i.backup_id FROM objects o JOIN images i ON i.backup_id = o.backup_id"
            f" WHERE o.name >= ? AND o.name < ? AND i.state = 'complete'{db_filter}"
            " ORDER BY i.backup_time DESC, i.rowid DESC LIMIT 1",
            [lo, hi] + ([database] if database is not None else []),
        )

    # -- chain queries (engine/catalog/chains.py builds on these)

    def log_dumps_from(
        self,
        *,
        dataserver: str,
        database: str,
        instance_id: Any,
        min_last_lsn: int,
        after: tuple[int, float, str] | None = None,
        limit: int = 256,
        with_objects: bool = False,
    ) -> list[Image]:
        """One page of the complete log dumps of one lineage whose last_lsn is at
        least min_last_lsn, in chain order (first_lsn, backup_time, backup_id);
        after: the (first_lsn, backup_time, backup_id) of the previous page's
        last row."""
        sql = (
            f"{_IMAGE_SELECT} WHERE instance_id = ? AND state = 'complete' AND first_lsn >= ?"
            " AND dump_type = 'T' AND last_lsn >= ? AND database = ? AND dataserver = ?"
        )
        params: list[Any] = [
            instance_id,
            -(2**63) if after is None else after[0],
            min_last_lsn,
            database,
            dataserver,
        ]
        if after is not None:
            sql += " AND (first_lsn, backup_time, backup_id) > (?, ?, ?)"
            params += list(after)
        sql += " ORDER BY first_lsn, backup_time, backup_id LIMIT ?"
        params.append(limit)
        return self._images(self._query(sql, params), with_objects)

    def chain_facts(self, database: str, dataserver: str | None = None) -> list[ChainFacts]:
        """What chains are made of, for every complete image of a database, oldest
        first: light rows (no objects) for timelines over thousands of images."""
        sql = (
            "SELECT backup_id, dataserver, dump_type, backup_time, lsn, first_lsn, last_lsn, last_commit,"
            " instance_id FROM images WHERE database = ? AND state = 'complete'"
        )
        params: list[Any] = [database]
        if dataserver is not None:
            sql += " AND dataserver = ?"
            params.append(dataserver)
        sql += " ORDER BY backup_time, backup_id"
        return [ChainFacts(*r) for r in self._query(sql, params)]

    def first_image_after(
        self, *, dataserver: str, database: str, after: float, other_than_instance: Any = _ANY
    ) -> Image | None:
        """The oldest complete image of a database taken after a time (of another
        lineage than other_than_instance, when given: where a lineage changed)."""
        sql = f"{_IMAGE_SELECT} WHERE database = ? AND state = 'complete' AND backup_time > ? AND dataserver = ?"
        params: list[Any] = [database, after, dataserver]
        if other_than_instance is not _ANY:
            sql += " AND instance_id IS NOT NULL AND instance_id IS NOT ?"
            params.append(other_than_instance)
        sql += " ORDER BY backup_time, rowid LIMIT 1"
        images = self._images(self._query(sql, params), with_objects=False)
        return images[0] if images else None

    def leftovers(self, older_than: float) -> list[Image]:
        """Pending and failed images created before older_than (unix time), with
        their object records: what ``sybar cleanup`` removes."""
        rows = self._query(
            f"{_IMAGE_SELECT} WHERE state != 'complete' AND created < ? ORDER BY created",
            (older_than,),
        )
        return self._images(rows)

    def object_names(self) -> set[str]:
        """Names of every object the catalog knows (images in any state), to find
        orphan objects on a storage unit."""
        return {r[0] for r in self._query("SELECT name FROM objects")}

    # -- jobs

    def create_job(
        self,
        *,
        type: str,
        parent_id: int | None = None,
        state: str = "active",
        status: int | None = None,
        client: str | None = None,
        dataserver: str | None = None,
        database: str | None = None,
        policy: str | None = None,
        schedule: str | None = None,
        script: str | None = None,
        stripe: int | None = None,
        object_name: str | None = None,
        backup_id: str | None = None,
        started: float | None = None,
        ended: float | None = None,
        bytes_done: int = 0,
        bytes_expected: int | None = None,
        message: str | None = None,
        pid: int | None = None,
    ) -> int:
        """A new job; an active job without ``started`` starts now. Returns its id."""
        if type not in JOB_TYPES:
            raise ValueError(f"job type must be one of {', '.join(JOB_TYPES)}, not {type!r}")
        if state not in JOB_STATES:
            raise ValueError(f"job state must be one of {', '.join(JOB_STATES)}, not {state!r}")
        if started is None and state != "queued":
            started = time.time()
        values = dict(
            parent_id=parent_id, type=type, state=state, status=status, client=client, dataserver=dataserver,
            database=database, policy=policy, schedule=schedule, script=script, stripe=stripe,
            object_name=object_name, backup_id=backup_id, started=started, ended=ended, bytes_done=bytes_done,
            bytes_expected=bytes_expected, message=message, pid=pid,
        )  # fmt: skip
        cols = list(values)
        with self._tx() as db:
            cur = db.execute(
                f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [values[c] for c in cols],
            )
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def update_job(self, job_id: int, **fields: Any) -> None:
        if not fields:
            return
        unknown = set(fields) - _JOB_WRITABLE
        if unknown:
            raise ValueError(f"unknown job fields: {', '.join(sorted(unknown))}")
        if "state" in fields and fields["state"] not in JOB_STATES:
            raise ValueError(f"job state must be one of {', '.join(JOB_STATES)}")
        cols = list(fields)
        with self._tx() as db:
            db.execute(
                f"UPDATE jobs SET {', '.join(f'{c} = ?' for c in cols)} WHERE job_id = ?",
                [fields[c] for c in cols] + [job_id],
            )

    def end_job(
        self, job_id: int, status: int, message: str | None = None, when: float | None = None
    ) -> bool:
        """Finish a job with a NetBackup status. Returns False (and changes
        nothing) when the job had already ended or does not exist."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET state = 'done', status = ?, message = ?, ended = ?,"
                " started = coalesce(started, ?) WHERE job_id = ? AND state != 'done'",
                (status, message, time.time() if when is None else when, time.time(), job_id),
            )
            return cur.rowcount > 0

    def get_job(self, job_id: int) -> Job | None:
        rows = self._query(f"{_JOB_SELECT} WHERE job_id = ?", (job_id,))
        return Job(*rows[0]) if rows else None

    def list_jobs(
        self, *, parent_id: Any = _ANY, active_only: bool = False, limit: int | None = 100
    ) -> list[Job]:
        """Jobs, newest first. parent_id: omitted = all jobs, None = top-level
        jobs only, an id = that job's children."""
        where: list[str] = []
        params: list[Any] = []
        if parent_id is None:
            where.append("parent_id IS NULL")
        elif parent_id is not _ANY:
            where.append("parent_id = ?")
            params.append(parent_id)
        if active_only:
            where.append("state != 'done'")
        sql = _JOB_SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY job_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [Job(*r) for r in self._query(sql, params)]

    def children(self, job_id: int) -> list[Job]:
        """A job's child jobs in the order they were created (stripe 0 first)."""
        return [Job(*r) for r in self._query(f"{_JOB_SELECT} WHERE parent_id = ? ORDER BY job_id", (job_id,))]

    def append_log(self, job_id: int, line: str, when: float | None = None) -> None:
        self.append_log_many(job_id, [line], when)

    def append_log_many(self, job_id: int, lines: Iterable[str], when: float | None = None) -> None:
        """Append lines to a job's log in one transaction."""
        t = time.time() if when is None else when
        lines = list(lines)
        if not lines:
            return
        with self._tx() as db:
            if db.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone() is None:
                raise StatusError(NO_ENTITY, f"There is no job {job_id} to log to.")
            seq = db.execute(
                "SELECT coalesce(max(seq), 0) FROM job_log WHERE job_id = ?", (job_id,)
            ).fetchone()[0]
            db.executemany(
                "INSERT INTO job_log (job_id, seq, time, line) VALUES (?, ?, ?, ?)",
                [(job_id, seq + i + 1, t, line) for i, line in enumerate(lines)],
            )

    def job_log(self, job_id: int) -> list[tuple[float, str]]:
        return [
            (r[0], r[1])
            for r in self._query("SELECT time, line FROM job_log WHERE job_id = ? ORDER BY seq", (job_id,))
        ]
