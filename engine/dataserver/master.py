"""The master database: which databases exist, their state, and the logins.

master is itself a SQLite file (``data/master.db``), so a DBA can
``select name from sysdatabases`` through isql just as on ASE.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Database states, as sp_helpdb shows them.
ONLINE = "online"
OFFLINE = "offline"          # loaded, waiting for `online database`
FOR_LOAD = "for load"        # created for load, never loaded
LOADING = "load in progress"
STANDBY = "online for standby access"  # read-only, still takes load transaction

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,29}$")

_SCHEMA = """
create table if not exists sysdatabases (
    name text primary key,
    dbid integer unique not null,
    owner text not null default 'sa',
    crdate text not null,
    size_mb integer,            -- declared size; null = grows as needed
    state text not null default 'online',
    dumpdate text
);
create table if not exists sysdevices (
    name text primary key,      -- logical dump device (sp_addumpdevice)
    phyname text not null,
    kind text not null default 'disk'
);
create table if not exists syslogins (
    name text primary key,
    password_hash text not null,  -- scrypt$n$r$p$salt$hash, never the password
    created text not null
);
"""

# scrypt cost: ~50 ms per login check, slow enough to make guessing expensive.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(got, bytes.fromhex(digest))


def now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class DatabaseInfo:
    name: str
    dbid: int
    owner: str
    crdate: str
    size_mb: int | None
    state: str
    dumpdate: str | None


class Master:
    """Thread-safe access to master.db's system tables."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.path = data_dir / "master.db"
        self._lock = threading.Lock()
        self._con = open_database(self.path)
        with self._lock:
            self._con.executescript(_SCHEMA)
            if not self._get("master"):
                self._con.execute(
                    "insert into sysdatabases(name, dbid, crdate, state) values ('master', 1, ?, 'online')",
                    (now_text(),),
                )

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # -- databases ---------------------------------------------------------
    def _get(self, name: str) -> DatabaseInfo | None:
        row = self._con.execute(
            "select name, dbid, owner, crdate, size_mb, state, dumpdate from sysdatabases where name = ?", (name,)
        ).fetchone()
        return DatabaseInfo(*row) if row else None

    def get(self, name: str) -> DatabaseInfo | None:
        with self._lock:
            return self._get(name)

    def databases(self) -> list[DatabaseInfo]:
        with self._lock:
            rows = self._con.execute(
                "select name, dbid, owner, crdate, size_mb, state, dumpdate from sysdatabases order by dbid"
            ).fetchall()
        return [DatabaseInfo(*r) for r in rows]

    def add(self, name: str, size_mb: int | None, state: str, owner: str = "sa") -> DatabaseInfo:
        with self._lock:
            dbid = self._con.execute("select coalesce(max(dbid), 3) + 1 from sysdatabases").fetchone()[0]
            self._con.execute(
                "insert into sysdatabases(name, dbid, owner, crdate, size_mb, state) values (?, ?, ?, ?, ?, ?)",
                (name, max(dbid, 4), owner, now_text(), size_mb, state),
            )
            return self._get(name)

    def remove(self, name: str) -> None:
        with self._lock:
            self._con.execute("delete from sysdatabases where name = ?", (name,))

    def set_state(self, name: str, state: str) -> None:
        with self._lock:
            self._con.execute("update sysdatabases set state = ? where name = ?", (state, name))

    def set_dumpdate(self, name: str) -> None:
        with self._lock:
            self._con.execute("update sysdatabases set dumpdate = ? where name = ?", (now_text(), name))

    def db_path(self, name: str) -> Path:
        return self.data_dir / f"{name}.db"

    # -- dump devices -------------------------------------------------------
    def add_device(self, name: str, phyname: str, kind: str = "disk") -> None:
        with self._lock:
            self._con.execute(
                "insert into sysdevices(name, phyname, kind) values (?, ?, ?) "
                "on conflict(name) do update set phyname = excluded.phyname, kind = excluded.kind",
                (name, phyname, kind),
            )

    def drop_device(self, name: str) -> bool:
        with self._lock:
            return self._con.execute("delete from sysdevices where name = ?", (name,)).rowcount > 0

    def device(self, name: str) -> str | None:
        with self._lock:
            row = self._con.execute("select phyname from sysdevices where name = ?", (name,)).fetchone()
        return row[0] if row else None

    def devices(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return self._con.execute("select name, kind, phyname from sysdevices order by name").fetchall()

    # -- logins -----------------------------------------------------------
    def login_hash(self, name: str) -> str | None:
        with self._lock:
            row = self._con.execute("select password_hash from syslogins where name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_login(self, name: str, password: str) -> None:
        hashed = hash_password(password)
        with self._lock:
            self._con.execute(
                "insert into syslogins(name, password_hash, created) values (?, ?, ?) "
                "on conflict(name) do update set password_hash = excluded.password_hash",
                (name, hashed, now_text()),
            )


def open_database(path: Path, decltypes: bool = False) -> sqlite3.Connection:
    """A connection as every session uses it: WAL, autocommit, patient with locks.

    The busy timeout matters: a dump briefly holds the write lock to take its
    snapshot, and writers must wait for it rather than fail.
    """
    new = not path.exists()
    # decltypes: columns declared datetime come back as datetimes (see results.py)
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60,
                          detect_types=sqlite3.PARSE_DECLTYPES if decltypes else 0)
    if new:
        os.chmod(path, 0o600)
    con.execute("pragma journal_mode = wal")
    con.execute("pragma synchronous = normal")
    con.execute("pragma busy_timeout = 60000")
    return con
