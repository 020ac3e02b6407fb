"""Helpers for the transaction log tests (no tests here): a session-like writer and content hashes."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

from engine.dataserver import translog
from engine.dataserver.master import open_database

DDL = re.compile(r"^\s*(create|drop|alter)\b", re.IGNORECASE)


class Writer:
    """Runs statements the way the session must: BEGIN, statement(s) with the DDL hooks, commit, COMMIT."""

    def __init__(self, path: Path):
        self.path = path
        self.con = open_database(path, decltypes=True)
        self.refused = translog.ensure_capture(self.con)
        self.log = translog.LogWriter()

    def close(self) -> None:
        self.con.close()

    def run(self, sql: str, params=()) -> None:
        if DDL.match(sql):
            self.log.before_ddl(self.con)
            self.con.execute(sql, params)
            self.log.ddl(self.con, sql)
        else:
            self.con.execute(sql, params)

    def tx(self, *statements, when: float | None = None, rollback: bool = False) -> int:
        """One transaction of statements (each a str or (sql, params)); returns the records logged."""
        self.con.execute("begin")
        try:
            for s in statements:
                sql, params = (s, ()) if isinstance(s, str) else s
                self.run(sql, params)
            if rollback:
                raise _Rollback
            n = self.log.commit(self.con, when)
            self.con.execute("commit")
            return n
        except BaseException as e:
            self.con.execute("rollback")
            self.log.rollback()
            if isinstance(e, _Rollback):
                return 0
            raise


class _Rollback(Exception):
    pass


def user_objects(con: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return con.execute(
        "select type, name, coalesce(sql, '') from sqlite_master where name not like 'sqlite\\_%' escape '\\' "
        "and name not like 'sybar\\_%' escape '\\' order by type, name").fetchall()


def content(path_or_con) -> dict[str, str]:
    """Per user table a hash of its definition and every row (rowid, storage class and exact value)."""
    con = path_or_con if isinstance(path_or_con, sqlite3.Connection) else sqlite3.connect(path_or_con)
    objects = user_objects(con)
    saved = con.text_factory
    con.text_factory = bytes  # text that is not UTF-8 (blob || 'x') is compared byte for byte
    try:
        out = {}
        out["<schema>"] = hashlib.sha256(repr([o for o in objects if o[0] != "table"]).encode()).hexdigest()
        for kind, name, sql in objects:
            if kind != "table":
                continue
            h = hashlib.sha256(sql.encode())
            q = '"' + name.replace('"', '""') + '"'
            cols = [r[1] for r in con.execute(f"pragma table_xinfo({q})") if r[6] == 0]
            sel = ", ".join(f'typeof("{c}"), "{c}"' for c in cols)
            for row in con.execute(f"select rowid{', ' + sel if sel else ''} from {q} order by rowid"):
                h.update(repr(row).encode())
            out[name] = h.hexdigest()
        assert all(isinstance(k, str) for k in out)
        return out
    finally:
        con.text_factory = saved
        if con is not path_or_con:
            con.close()


def full_dump(src: Path, dst: Path) -> int:
    """Take a 'full dump' of src into dst the way dump database + load database do; returns its point."""
    con = open_database(src)
    try:
        point, _instance = translog.full_dump_point(con)
        out = sqlite3.connect(dst)
        try:
            con.backup(out)
        finally:
            out.close()
        translog.full_dump_done(con, point)
    finally:
        con.close()
    target = open_database(dst)
    try:
        translog.loaded_full_dump(target)
    finally:
        target.close()
    return point


def file_bytes(path: Path) -> bytes:
    """The database's content as stored (checkpointed first): 'unchanged' means these bytes."""
    con = open_database(path)
    try:
        con.execute("pragma wal_checkpoint(truncate)")
    finally:
        con.close()
    return path.read_bytes()


def ship(src: Path, dst: Path, tmp: Path, *, until: float | None = None, name: str = "log") -> translog.ApplyResult:
    """dump transaction src (extract + truncate), load transaction into dst."""
    out = tmp / f"{name}.tran"
    extract = translog.extract_log(src, out, database="src")
    con = open_database(src)
    try:
        translog.truncate_log(con, extract.last_lsn)
    finally:
        con.close()
    return translog.apply_log(dst, out, until=until, database="dst")
