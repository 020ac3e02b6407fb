"""The transaction log's capture side: which rows each transaction changed, as redo records.

Every user table carries three small triggers that note WHICH rows an insert,
update or delete touched, never values: each appends a *pending mark* (kind
``?``: table and rowid) at the end of ``sybar_log``. Just before a transaction
commits, the session's ``LogWriter`` replaces its pending marks with redo
records: the DDL statements of the transaction (kind ``S``, in order), then for
every touched row its final image (``U``: column names and values as JSON) or
its absence (``D``). Records are written in the same SQLite transaction as the
change itself, so the log holds exactly the committed transactions, each whole,
in commit order (writers are serialised by SQLite's write lock), with one
commit time per transaction. Marks live in the log table itself so that a
commit touches one page more than the change alone (the log's last page), not
three: an autocommit insert stays cheap.

Because records carry final row images rather than statements, replay is exact
whatever the SQL was (random(), getdate(), triggers...) and needs nothing but
``INSERT OR REPLACE`` / ``DELETE`` by rowid; ``ALTER TABLE ... ADD COLUMN`` needs
no new trigger since the triggers name no column. Writers without a LogWriter
(a tool on the file) still leave their marks; the next commit or dump logs
them.

Meta (``sybar_logmeta``): ``instance_id`` (the log lineage), ``last_lsn``,
``last_xid`` and ``last_commit`` (as of the last truncation: the log's last
record is newer when there is one; none of them ever goes back),
``truncated_to`` (records up to it were removed), ``chain_broken`` ('' or why a
log dump cannot follow the last full dump), ``chain_broken_at`` /
``chain_broken_lsn``, ``applied_lsn`` / ``applied_dump`` / ``until_stopped`` (a
database being loaded), ``state`` ('' or 'standby').
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

LOG_TABLE = "sybar_log"
META_TABLE = "sybar_logmeta"
RESERVED_PREFIX = "sybar_"
TRIGGER_PREFIX = "sybar_"
# insert / update / delete triggers: "sybar_i_<table>", "sybar_u_<table>", "sybar_d_<table>"
TRIGGER_KINDS = ("i", "u", "d")

PENDING = "?"  # the kind of a pending mark: a row changed by a transaction not yet logged
NO_FULL_DUMP = "no dump database has been taken since the log started"

_SCHEMA = f"""
create table if not exists {LOG_TABLE}(
    lsn integer primary key, xid integer not null, commit_time real not null,
    kind text not null, tbl text, rid integer, data text);
create table if not exists {META_TABLE}(key text primary key, value);
"""

INT_META = ("last_lsn", "last_xid", "truncated_to", "chain_broken_lsn", "until_stopped")


# -- small helpers ----------------------------------------------------------------------------

def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class RawText(bytes):
    """A TEXT value that is not valid UTF-8 (e.g. a blob concatenated with text): kept byte for byte."""


def _text_or_raw(b: bytes):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return RawText(b)


def encode_value(v):
    if isinstance(v, bytes):
        return {"$t" if isinstance(v, RawText) else "$b": base64.b64encode(v).decode("ascii")}
    return v


def decode_value(v):
    """A row image value back: bytes for a blob, RawText for undecodable text (bind it with CAST(? AS TEXT))."""
    if isinstance(v, dict):
        return RawText(base64.b64decode(v["$t"])) if "$t" in v else base64.b64decode(v["$b"])
    return v


def has_log(con: sqlite3.Connection) -> bool:
    return con.execute(
        "select 1 from main.sqlite_master where type = 'table' and name = ?", (META_TABLE,)).fetchone() is not None


def read_meta(con: sqlite3.Connection) -> dict:
    meta = dict(con.execute(f"select key, value from main.{META_TABLE}").fetchall())
    for k in INT_META:
        meta[k] = int(meta.get(k) or 0)
    for k in ("last_commit", "chain_broken_at", "created"):
        meta[k] = float(meta.get(k) or 0.0)
    for k in ("instance_id", "chain_broken", "state", "applied_dump"):
        meta[k] = str(meta.get(k) or "")
    raw = meta.get("applied_lsn")
    meta["applied_lsn"] = None if raw in (None, "") else int(raw)
    lsn, xid, t = log_head(con)[:3]
    if lsn is not None:
        meta["last_lsn"], meta["last_xid"] = max(meta["last_lsn"], lsn), max(meta["last_xid"], xid)
        meta["last_commit"] = max(meta["last_commit"], t)
    return meta


SMALL = 64  # at most this many pending marks are read row by row; more are found by bisection


def log_head(con: sqlite3.Connection) -> tuple:
    """(lsn, xid, commit time) of the log's last record (Nones when it has none), then the pending
    marks after it: the lowest mark's lsn (None: no marks), the tables they name, and for a small
    transaction the marks themselves ({table: rowids}, else None).

    Marks always sit after every record (a commit deletes them before it
    appends records), so the boundary is found from the end: a few rows back
    for a small transaction, by bisection for a big one.
    """
    first_pending = None
    marks: dict[str, set[int]] = {}
    cur = con.execute(f"select lsn, xid, commit_time, kind, tbl, rid from main.{LOG_TABLE} order by lsn desc")
    try:
        for n, (lsn, xid, t, kind, tbl, rid) in enumerate(cur):  # row by row: stop at the first record
            if kind != PENDING:
                return lsn, xid, t, first_pending, set(marks), marks
            if n == SMALL:
                break
            first_pending = lsn
            marks.setdefault(tbl, set()).add(rid)
        else:
            return None, None, None, first_pending, set(marks), marks
    finally:
        cur.close()
    first = f"select kind = '{PENDING}' from main.{LOG_TABLE} where lsn >= ? order by lsn limit 1"
    lo = con.execute(f"select min(lsn) from main.{LOG_TABLE}").fetchone()[0]
    hi = first_pending  # the first row at or after hi is a mark; at or after lo, a record (unless all are marks)
    if con.execute(first, (lo,)).fetchone()[0]:
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if con.execute(first, (mid,)).fetchone()[0]:
            hi = mid
        else:
            lo = mid
    first_pending = con.execute(f"select min(lsn) from main.{LOG_TABLE} where lsn >= ?", (hi,)).fetchone()[0]
    tables = {r[0] for r in con.execute(f"select distinct tbl from main.{LOG_TABLE} where lsn >= ?",
                                        (first_pending,))}
    row = con.execute(f"select lsn, xid, commit_time from main.{LOG_TABLE} where lsn < ? order by lsn desc "
                      f"limit 1", (first_pending,)).fetchone()
    return (*(row or (None, None, None)), first_pending, tables, None)


def save_head(con: sqlite3.Connection) -> dict:
    """Copy the log's last record into the meta before records are removed; returns the meta."""
    meta = read_meta(con)
    write_meta(con, last_lsn=meta["last_lsn"], last_xid=meta["last_xid"], last_commit=meta["last_commit"])
    return meta


def write_meta(con: sqlite3.Connection, **values) -> None:
    con.executemany(
        f"insert into main.{META_TABLE}(key, value) values (?, ?) "
        "on conflict(key) do update set value = excluded.value",
        list(values.items()),
    )


def time_text(t: float | None) -> str:
    """A commit time as DBAs read it: local time, milliseconds."""
    if not t:
        return "never"
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class WriteTx:
    """Run a block in a write transaction unless the caller already has one open."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con
        self.own = False

    def __enter__(self):
        if not self.con.in_transaction:
            self.con.execute("begin immediate")
            self.own = True
        return self.con

    def __exit__(self, exc_type, exc, tb):
        if self.own:
            self.con.execute("commit" if exc_type is None else "rollback")
        return False


# -- tables and their triggers -----------------------------------------------------------------

@dataclass(frozen=True)
class TableInfo:
    name: str
    alias: str                # how this table's rowid is named (rowid, _rowid_ or oid)
    columns: tuple[str, ...]  # the columns a row image carries (generated columns left out)


def user_tables(con: sqlite3.Connection) -> list[tuple[str, str]]:
    """(name, why it cannot be captured or '') for every user table of the main schema."""
    out = []
    for _schema, name, kind, _ncol, without_rowid, _strict in con.execute("pragma main.table_list"):
        if kind == "view" or name.startswith("sqlite_") or name.lower().startswith(RESERVED_PREFIX):
            continue
        if kind == "virtual":
            out.append((name, "a virtual table"))
        elif kind == "shadow":
            out.append((name, "the storage of a virtual table"))
        elif without_rowid:
            out.append((name, "a WITHOUT ROWID table"))
        elif table_info(con, name) is None:
            out.append((name, "a table whose columns hide its rowid"))
        else:
            out.append((name, ""))
    return out


def table_info(con: sqlite3.Connection, name: str) -> TableInfo | None:
    cols = con.execute(f"pragma main.table_xinfo({quote_ident(name)})").fetchall()
    if not cols:
        return None
    names = {c[1].lower() for c in cols}
    alias = next((a for a in ("rowid", "_rowid_", "oid") if a not in names), None)
    if alias is None:
        return None
    return TableInfo(name, alias, tuple(c[1] for c in cols if c[6] == 0))


def _trigger_name(kind: str, table: str) -> str:
    return f"{TRIGGER_PREFIX}{kind}_{table}"


def install_triggers(con: sqlite3.Connection, table: str, alias: str = "rowid") -> None:
    q, lit = quote_ident(table), quote_text(table)
    mark = f"insert into {LOG_TABLE}(xid, commit_time, kind, tbl, rid)"
    body = {
        "i": ("after insert", f"{mark} values (0, 0, '{PENDING}', {lit}, new.{alias});"),
        "u": ("after update", f"{mark} values (0, 0, '{PENDING}', {lit}, old.{alias}); "
                              f"{mark} select 0, 0, '{PENDING}', {lit}, new.{alias} where new.{alias} <> old.{alias};"),
        "d": ("after delete", f"{mark} values (0, 0, '{PENDING}', {lit}, old.{alias});"),
    }
    for kind, (event, action) in body.items():
        con.execute(f"create trigger if not exists main.{quote_ident(_trigger_name(kind, table))} "
                    f"{event} on {q} begin {action} end")


def mark_all_rows(con: sqlite3.Connection, table: str, alias: str) -> None:
    con.execute(f"insert into main.{LOG_TABLE}(xid, commit_time, kind, tbl, rid) "
                f"select 0, 0, '{PENDING}', ?, {alias} from main.{quote_ident(table)}", (table,))


def capture_triggers(con: sqlite3.Connection) -> dict[str, str]:
    """trigger name -> the table it is on, for sybar's capture triggers."""
    return dict(con.execute(
        "select name, tbl_name from main.sqlite_master where type = 'trigger' and name like 'sybar\\_%' escape '\\'"
    ).fetchall())


def _stale(triggers: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Capture triggers left naming another table than the one they are on (after a rename)."""
    out = {}
    for trig, on in triggers.items():
        kind, _, named = trig[len(TRIGGER_PREFIX):].partition("_")
        if kind in TRIGGER_KINDS and named != on:
            out[trig] = (named, on)
    return out


def _missing(triggers: dict[str, str], name: str) -> bool:
    return any(triggers.get(_trigger_name(k, name)) != name for k in TRIGGER_KINDS)


def reconcile(con: sqlite3.Connection) -> tuple[list[str], dict[str, str], list[str]]:
    """Give every capturable user table its triggers (inside the caller's transaction).

    Returns (tables that had none and got them, renames {old: new} found through
    triggers left naming the old table, tables that cannot be captured). A
    renamed table's pending marks move with it.
    """
    triggers = capture_triggers(con)
    renamed: dict[str, str] = {}
    for trig, (old, new) in _stale(triggers).items():
        renamed[old] = new
        con.execute(f"drop trigger main.{quote_ident(trig)}")
        del triggers[trig]
    if renamed:
        first_pending = log_head(con)[3]
        for old, new in renamed.items():
            if first_pending is not None:
                con.execute(f"update main.{LOG_TABLE} set tbl = ? where lsn >= ? and tbl = ?",
                            (new, first_pending, old))
    added, refused = [], []
    for name, why in user_tables(con):
        if why:
            refused.append(f"{name} ({why})")
        elif _missing(triggers, name):
            install_triggers(con, name, table_info(con, name).alias)
            if name not in renamed.values():
                added.append(name)
    return added, renamed, refused


def prepare_connection(con: sqlite3.Connection) -> None:
    """Every connection that writes a captured database needs this (ensure_capture does it too):
    with it, the rows ``INSERT OR REPLACE`` deletes on a UNIQUE conflict fire the delete trigger."""
    con.execute("pragma recursive_triggers = on")


def ensure_capture(con: sqlite3.Connection) -> list[str]:
    """Make this database's log ready; idempotent, cheap when already done.

    Creates the log tables (a new lineage, whose chain waits for a first full
    dump), installs triggers on every user table that lacks them, and sets
    ``recursive_triggers`` on this connection so rows that ``INSERT OR REPLACE``
    deletes are captured too. A table that had to get triggers in a database
    whose log already existed was changed outside the dataserver: its chain is
    broken. Returns the tables that cannot be captured (``dump transaction``
    refuses while they exist).
    """
    prepare_connection(con)
    if has_log(con):
        added, renamed, refused = capture_plan(con)
        if not added and not renamed:
            return refused
    with WriteTx(con):
        fresh = not has_log(con)
        if fresh:
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    con.execute(stmt)
            write_meta(con, instance_id=uuid.uuid4().hex, last_lsn=0, last_xid=0, last_commit=0.0,
                       truncated_to=0, chain_broken=NO_FULL_DUMP, chain_broken_at=time.time(),
                       chain_broken_lsn=0, applied_lsn="", applied_dump="", until_stopped=0, state="",
                       created=time.time())
        added, renamed, refused = reconcile(con)
        if (added or renamed) and not fresh:
            meta = read_meta(con)
            if not meta["chain_broken"]:
                changed = ", ".join(sorted({*added, *renamed.values()}))
                write_meta(con, chain_broken=f"table {changed} was created or changed outside the "
                                             "dataserver, unlogged",
                           chain_broken_at=time.time(), chain_broken_lsn=meta["last_lsn"])
    return refused


def capture_plan(con: sqlite3.Connection) -> tuple[list[str], list[str], list[str]]:
    """What reconcile would do, read-only: (tables lacking triggers, tables renamed behind the log's back,
    tables that cannot be captured)."""
    triggers = capture_triggers(con)
    missing, refused = [], []
    for name, why in user_tables(con):
        if why:
            refused.append(f"{name} ({why})")
        elif _missing(triggers, name):
            missing.append(name)
    return missing, sorted({on for _old, on in _stale(triggers).values()}), refused


# -- the writer ----------------------------------------------------------------------------------

_TEMP_DDL = re.compile(
    r"""^\s*(create\s+(temp|temporary)\b|.*?\b(table|view|index|on)\s+(if\s+(not\s+)?exists\s+)?("\#|\#|temp\.|"temp"\.))""",
    re.IGNORECASE | re.DOTALL,
)


def is_temp_ddl(sql: str) -> bool:
    """DDL on a temporary (#) object: not part of the database, not logged."""
    return bool(_TEMP_DDL.match(sql))


class LogWriter:
    """Turns one connection's transactions into log records; one per session connection.

    Around every write the session does (see the module's report for the exact
    sequence): ``before_ddl`` / ``ddl`` around each DDL statement, ``commit``
    inside the open transaction right before COMMIT, ``rollback`` after a
    ROLLBACK.
    """

    def __init__(self) -> None:
        self._ddl: list[str] = []
        self._seen: int | None = None      # con.total_changes when nothing was pending
        self._pre: tuple[int, set[str]] | None = None
        self._tables: dict[str, tuple[TableInfo, str, str, str]] = {}
        self._schema: int | None = None

    # -- DDL ----------------------------------------------------------------------------------
    def record_ddl(self, sql: str) -> None:
        """Remember a DDL statement's SQLite text (already executed, in this transaction)."""
        if not is_temp_ddl(sql):
            self._ddl.append(sql)
        self._tables.clear()

    def table_created(self, con: sqlite3.Connection, table: str) -> None:
        """A table was created by this transaction: give it its triggers now."""
        info = table_info(con, table)
        if info is not None and not table.lower().startswith(RESERVED_PREFIX):
            install_triggers(con, table, info.alias)
        self._tables.clear()

    def table_filled(self, con: sqlite3.Connection, table: str) -> None:
        """``create table ... as select`` made this table with rows no trigger saw.

        Marks all its rows changed, and logs the table's own definition in place
        of the statement (replaying the select could give other rows).
        """
        self.table_created(con, table)
        info = table_info(con, table)
        if info is None:
            return
        mark_all_rows(con, table, info.alias)
        row = con.execute("select sql from main.sqlite_master where type = 'table' and name = ?",
                          (table,)).fetchone()
        if row and self._ddl and re.match(r"\s*create\s+table\b", self._ddl[-1], re.IGNORECASE):
            self._ddl[-1] = row[0]

    def before_ddl(self, con: sqlite3.Connection) -> None:
        """Call right before executing a DDL statement (inside the transaction)."""
        self._pre = (con.execute("pragma main.schema_version").fetchone()[0], _table_names(con))

    def ddl(self, con: sqlite3.Connection, sql: str) -> None:
        """Call right after a DDL statement ran (inside the transaction): the one call that does it all.

        Logs the statement (a created table by its own definition, so CTAS rows
        come as row images), installs triggers on created tables and marks CTAS
        rows, follows renames. With ``before_ddl`` first, DDL that did not
        change the database (temporary # objects, ``if not exists`` no-ops) is
        left out exactly; without it, by the statement's text.
        """
        pre, self._pre = self._pre, None
        self._tables.clear()
        if pre is not None:
            version = con.execute("pragma main.schema_version").fetchone()[0]
            if version == pre[0]:
                return
        elif is_temp_ddl(sql):
            return
        added, renamed, _refused = reconcile(con)
        created = [t for t in added if pre is None or t not in pre[1]]
        if created:
            for table in created:
                row = con.execute("select sql from main.sqlite_master where type = 'table' and name = ?",
                                  (table,)).fetchone()
                self._ddl.append(row[0])
                mark_all_rows(con, table, table_info(con, table).alias)
        else:
            self._ddl.append(sql)

    # -- the transaction's end ------------------------------------------------------------------
    def rollback(self) -> None:
        """The transaction was rolled back: forget what it did."""
        self._ddl.clear()
        self._pre = None
        self._tables.clear()
        self._seen = None

    def commit(self, con: sqlite3.Connection, when: float | None = None) -> int:
        """Write this transaction's log records; call inside the open transaction, right before COMMIT.

        Returns the number of records written (0 for a transaction that changed
        nothing: no xid is used). Outside a transaction it opens and commits its
        own, which logs changes committed without it (later, but never lost).
        """
        if not self._ddl and self._seen is not None and con.total_changes == self._seen:
            return 0
        with WriteTx(con):
            n = self._write(con, when)
        self._seen = con.total_changes
        return n

    def _write(self, con: sqlite3.Connection, when: float | None) -> int:
        if self._ddl:
            reconcile(con)
        lsn, xid, last_commit, first_pending, tables, marks = log_head(con)
        if first_pending is None and not self._ddl:
            return 0
        if lsn is None:
            meta = dict(con.execute(f"select key, value from main.{META_TABLE} "
                                    "where key in ('last_lsn', 'last_xid', 'last_commit')").fetchall())
            lsn, xid, last_commit = (int(meta.get("last_lsn") or 0), int(meta.get("last_xid") or 0),
                                     float(meta.get("last_commit") or 0.0))
        xid += 1
        t = max(when if when is not None else time.time(), last_commit)
        records = []
        for sql in self._ddl:
            lsn += 1
            records.append((lsn, xid, t, "S", None, None, sql))
        self._ddl.clear()
        if first_pending is not None:
            version = con.execute("pragma main.schema_version").fetchone()[0]
            if version != self._schema:
                self._tables.clear()
                self._schema = version
            for table in sorted(tables):
                entry = self._tables.get(table)
                if entry is None:
                    entry = self._tables[table] = self._table_entry(con, table)
                if entry is None:
                    continue  # the table is gone (dropped in this transaction): its drop is logged
                _info, select, one, prefix = entry
                if marks is not None:
                    rows = [(rid, *(_row(con, one, rid) or (None,))) for rid in sorted(marks[table])]
                else:
                    rows = _changed_rows(con, select, first_pending, table)
                for row in rows:
                    lsn += 1
                    if row[1] is None:
                        records.append((lsn, xid, t, "D", table, row[0], None))
                    else:
                        vals = row[2:]
                        if any(isinstance(v, bytes) for v in vals):
                            vals = [encode_value(v) for v in vals]
                        records.append((lsn, xid, t, "U", table, row[0], prefix + json.dumps(list(vals)) + "]"))
            con.execute(f"delete from main.{LOG_TABLE} where lsn >= ?", (first_pending,))
        if records:
            con.executemany(f"insert into main.{LOG_TABLE} values (?, ?, ?, ?, ?, ?, ?)", records)
        return len(records)

    @staticmethod
    def _table_entry(con: sqlite3.Connection, table: str):
        if table.lower().startswith(RESERVED_PREFIX):
            return None
        info = table_info(con, table)
        if info is None:
            return None
        cols = ", ".join(f"+t.{quote_ident(c)}" for c in info.columns)
        select = (f"select m.rid, t.{info.alias}{', ' + cols if cols else ''} from "
                  f"(select distinct rid from main.{LOG_TABLE} where lsn >= ? and tbl = ?) m "
                  f"left join main.{quote_ident(table)} t on t.{info.alias} = m.rid order by m.rid")
        plain = ", ".join(f"+{quote_ident(c)}" for c in info.columns)
        one = (f"select {info.alias}{', ' + plain if plain else ''} "
               f"from main.{quote_ident(table)} where {info.alias} = ?")
        prefix = "[" + json.dumps(list(info.columns)) + ","
        return info, select, one, prefix


def _row(con: sqlite3.Connection, one: str, rid: int):
    try:
        return con.execute(one, (rid,)).fetchone()
    except sqlite3.OperationalError as e:
        if "decode" not in str(e):
            raise
    saved = con.text_factory
    con.text_factory = _text_or_raw
    try:
        return con.execute(one, (rid,)).fetchone()
    finally:
        con.text_factory = saved


def _changed_rows(con: sqlite3.Connection, select: str, first_pending: int, table: str) -> list:
    try:
        return con.execute(select, (first_pending, table)).fetchall()
    except sqlite3.OperationalError as e:
        if "decode" not in str(e):
            raise
    saved = con.text_factory
    con.text_factory = _text_or_raw
    try:
        return con.execute(select, (first_pending, table)).fetchall()
    finally:
        con.text_factory = saved


def _table_names(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("select name from main.sqlite_master where type = 'table'")}


def flush_pending(con: sqlite3.Connection) -> int:
    """Log the marks left by writers that had no LogWriter (they stay pending until a commit logs them)."""
    row = con.execute(f"select kind from main.{LOG_TABLE} order by lsn desc limit 1").fetchone()
    if row is None or row[0] != PENDING:
        return 0
    return LogWriter().commit(con)
