"""The transaction log's chain side: log dumps out of a database, and into a loaded one.

``dump transaction``: ``extract_log`` copies the log since the last truncation
into a small SQLite file (one read transaction: a consistent cut, every
transaction wholly in or out), then the caller stores it and ``truncate_log``
drops what was dumped. ``load transaction``: ``apply_log`` checks the dump
follows what the database holds (same lineage, no gap, not older, no earlier
stop at an until_time), then replays its whole transactions up to the
until_time in ONE SQLite transaction: on any failure the database is left
exactly as it was.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.dataserver.master import open_database
from engine.dataserver.translog_capture import (
    LOG_TABLE,
    PENDING,
    RawText,
    WriteTx,
    capture_plan,
    decode_value,
    ensure_capture,
    flush_pending,
    has_log,
    quote_ident,
    read_meta,
    reconcile,
    save_head,
    table_info,
    time_text,
    write_meta,
)
from engine.jobs.status import BACKUP_FAILED, RESTORE_ERROR, StatusError

DUMP_META = "sybar_logdump"
LOADED_ONLINE = "loaded from a dump: a full dump must start the log chain of the new database"


@dataclass(frozen=True)
class LogExtract:
    first_lsn: int
    last_lsn: int
    count: int
    first_commit: float | None
    last_commit: float | None
    instance_id: str
    database: str
    dump_id: str = ""


@dataclass(frozen=True)
class ApplyResult:
    applied_transactions: int
    applied_records: int
    first_lsn: int | None          # the first LSN applied (None: nothing was)
    last_lsn_applied: int          # the database's applied LSN after this load
    stopped_at: float | None       # the until_time, when it stopped the load short of the dump's end
    last_commit: float | None      # commit time of the last transaction applied


# -- dump transaction ------------------------------------------------------------------------------

def extract_log(db_path: Path | str, out_path: Path | str, *, database: str) -> LogExtract:
    """Copy the log since the last truncation into a new single-file SQLite log dump at out_path."""
    out = Path(out_path)
    for p in (out, out.with_name(out.name + "-journal")):
        p.unlink(missing_ok=True)
    con = open_database(Path(db_path))
    try:
        if not has_log(con):
            raise StatusError(
                BACKUP_FAILED,
                f"database '{database}' has no transaction log yet: it was never opened by this dataserver "
                f"since it was made. Run dump database {database} first (it starts the log), then dump transaction.")
        flush_pending(con)
        con.execute("attach database ? as logdump", (str(out),))
        try:
            con.execute("pragma logdump.journal_mode = off")
            con.execute("pragma logdump.synchronous = off")
            con.execute("begin")
            try:
                result = _extract(con, database)
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        finally:
            con.execute("detach database logdump")
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return result


def _extract(con: sqlite3.Connection, database: str) -> LogExtract:
    meta = read_meta(con)
    if meta["state"] == "standby":
        raise StatusError(
            BACKUP_FAILED,
            f"database '{database}' is a warm standby (online for standby_access): it only takes log loads. "
            f"Dump the transaction log of its primary database instead.")
    if meta["applied_lsn"] is not None:
        raise StatusError(
            BACKUP_FAILED,
            f"database '{database}' was loaded from a dump and is not online yet: finish the load sequence "
            f"with online database {database}, then dump database {database} to start its log chain.")
    if meta["chain_broken"]:
        raise StatusError(
            BACKUP_FAILED,
            f"cannot dump the transaction log of database '{database}': its log chain is broken "
            f"({meta['chain_broken']}) since {time_text(meta['chain_broken_at'])}. "
            f"Run dump database {database} first, then dump transaction.")
    missing, stale, refused = capture_plan(con)
    if refused:
        raise StatusError(
            BACKUP_FAILED,
            f"cannot dump the transaction log of database '{database}': the log cannot record changes to "
            f"{', '.join(refused)}. Use dump database for this database, or recreate those tables as ordinary "
            f"(rowid) tables.")
    if missing or stale:
        raise StatusError(
            BACKUP_FAILED,
            f"cannot dump the transaction log of database '{database}': table {', '.join(sorted(set(missing + stale)))} "
            f"was changed outside the dataserver, unlogged. Run dump database {database} first, "
            f"then dump transaction.")
    first = meta["truncated_to"] + 1
    last = meta["last_lsn"]
    count, first_commit, last_commit = con.execute(
        f"select count(*), min(commit_time), max(commit_time) from main.{LOG_TABLE} where lsn >= ? and lsn <= ? "
        f"and kind <> '{PENDING}'",
        (first, last)).fetchone()
    con.execute(f"create table logdump.{LOG_TABLE}(lsn integer primary key, xid integer not null, "
                "commit_time real not null, kind text not null, tbl text, rid integer, data text)")
    con.execute(f"create table logdump.{DUMP_META}(key text primary key, value)")
    con.execute(f"insert into logdump.{LOG_TABLE} select lsn, xid, commit_time, kind, tbl, rid, data "
                f"from main.{LOG_TABLE} where lsn >= ? and lsn <= ? and kind <> '{PENDING}' order by lsn",
                (first, last))
    extract = LogExtract(first_lsn=first, last_lsn=last, count=count, first_commit=first_commit,
                         last_commit=last_commit, instance_id=meta["instance_id"], database=database,
                         dump_id=uuid.uuid4().hex)
    rows = {"database": database, "instance_id": extract.instance_id, "first_lsn": first, "last_lsn": last,
            "first_commit": first_commit, "last_commit": last_commit, "count": count,
            "created": time.time(), "dump_id": extract.dump_id, "format": 1}
    con.executemany(f"insert into logdump.{DUMP_META} values (?, ?)", list(rows.items()))
    return extract


def truncate_log(con: sqlite3.Connection, upto_lsn: int) -> None:
    """Drop the records up to upto_lsn (after the log dump holding them is safely stored)."""
    with WriteTx(con):
        meta = save_head(con)
        con.execute(f"delete from main.{LOG_TABLE} where lsn <= ? and kind <> '{PENDING}'", (upto_lsn,))
        if upto_lsn > meta["truncated_to"]:
            write_meta(con, truncated_to=min(upto_lsn, meta["last_lsn"]))


def truncate_only(con: sqlite3.Connection, reason: str) -> None:
    """``dump transaction ... with truncate_only / no_log``: drop the whole log; the chain is broken."""
    ensure_capture(con)
    flush_pending(con)
    with WriteTx(con):
        meta = save_head(con)
        con.execute(f"delete from main.{LOG_TABLE} where kind <> '{PENDING}'")
        write_meta(con, truncated_to=meta["last_lsn"], chain_broken=reason, chain_broken_at=time.time(),
                   chain_broken_lsn=meta["last_lsn"])


def full_dump_point(con: sqlite3.Connection) -> tuple[int, str]:
    """(last_lsn, instance_id) right before a full dump's snapshot: the snapshot holds at least this much."""
    ensure_capture(con)
    flush_pending(con)
    meta = read_meta(con)
    return meta["last_lsn"], meta["instance_id"]


def full_dump_done(con: sqlite3.Connection, point: int | None = None) -> None:
    """A full dump was stored: it starts a valid log chain again.

    ``point``: the LSN full_dump_point gave before the snapshot; a break that
    happened after it (a truncate_only during the dump) stays.
    """
    with WriteTx(con):
        meta = read_meta(con)
        if meta["chain_broken"] and (point is None or meta["chain_broken_lsn"] <= point):
            write_meta(con, chain_broken="", chain_broken_at=0.0, chain_broken_lsn=0)


def log_state(con: sqlite3.Connection) -> dict:
    """The log's meta (ints and floats decoded), plus how many records it holds now."""
    if not has_log(con):
        return {}
    meta = read_meta(con)
    meta["records"] = con.execute(f"select count(*) from main.{LOG_TABLE} where kind <> '{PENDING}'").fetchone()[0]
    return meta


# -- load database / online database ------------------------------------------------------------

def loaded_full_dump(con: sqlite3.Connection) -> None:
    """``load database`` just put a full dump's pages in place: log loads may follow it."""
    ensure_capture(con)
    with WriteTx(con):
        meta = save_head(con)
        con.execute(f"delete from main.{LOG_TABLE}")  # the source's records and marks: in the pages already
        write_meta(con, applied_lsn=meta["last_lsn"], truncated_to=meta["last_lsn"], until_stopped=0,
                   state="", applied_dump="")


def online(con: sqlite3.Connection, standby: bool) -> None:
    """``online database``: for standby_access it keeps taking log loads; else it starts a new lineage."""
    ensure_capture(con)
    with WriteTx(con):
        if standby:
            write_meta(con, state="standby")
            return
        meta = save_head(con)
        con.execute(f"delete from main.{LOG_TABLE}")
        write_meta(con, instance_id=uuid.uuid4().hex, truncated_to=meta["last_lsn"],
                   chain_broken=LOADED_ONLINE, chain_broken_at=time.time(), chain_broken_lsn=meta["last_lsn"],
                   applied_lsn="", applied_dump="", until_stopped=0, state="")


# -- load transaction ----------------------------------------------------------------------------

def read_extract(extract_path: Path | str) -> dict:
    """A log dump file's own description (sybar_logdump), checked for completeness."""
    path = Path(extract_path)
    if not path.is_file():
        raise StatusError(RESTORE_ERROR, f"the log dump file '{path}' does not exist: check the device name.")
    src = _open_readonly(path)
    try:
        return _extract_meta(src, path)
    finally:
        src.close()


def _open_readonly(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)


def _extract_meta(src: sqlite3.Connection, path: Path) -> dict:
    try:
        meta = dict(src.execute(f"select key, value from {DUMP_META}").fetchall())
        count, lo, hi = src.execute(f"select count(*), min(lsn), max(lsn) from {LOG_TABLE}").fetchone()
    except sqlite3.DatabaseError:
        raise StatusError(RESTORE_ERROR, f"'{path}' is not a sybar transaction log dump (or it is damaged): "
                                         "check that the devices name a dump transaction.") from None
    first, last = int(meta.get("first_lsn", 0)), int(meta.get("last_lsn", -1))
    if not meta.get("instance_id") or count != int(meta.get("count", -1)) or count != last - first + 1 \
            or (count and (lo != first or hi != last)):
        raise StatusError(RESTORE_ERROR, f"the log dump '{path}' is damaged: it should hold LSNs {first} to {last} "
                                         f"and holds {count} records. Take it again from its copy or dump again.")
    meta["first_lsn"], meta["last_lsn"], meta["count"] = first, last, count
    return meta


def apply_log(target_path: Path | str, extract_path: Path | str, *, until: float | None = None,
              database: str = "") -> ApplyResult:
    """Apply a log dump to a loaded database, up to until (unix seconds), in one transaction."""
    path = Path(extract_path)
    db = f"database '{database}'" if database else "the database"
    src_meta = read_extract(path)
    src = _open_readonly(path)
    con = open_database(Path(target_path))
    try:
        if not has_log(con):
            raise StatusError(RESTORE_ERROR, f"{db} was not loaded from a dump of a database with a transaction "
                                             f"log: load database from the full dump this log dump follows first.")
        con.execute("begin immediate")
        try:
            meta = read_meta(con)
            _check(meta, src_meta, until, db)
            result = _apply(con, src, meta, src_meta, until, db)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    finally:
        con.close()
        src.close()
    return result


def _check(meta: dict, dump: dict, until: float | None, db: str) -> None:
    first, last = dump["first_lsn"], dump["last_lsn"]
    span = f"LSNs {first}-{last}" if dump["count"] else f"no transactions (up to LSN {last})"
    applied = meta["applied_lsn"]
    if applied is None:
        raise StatusError(RESTORE_ERROR, f"{db} is online, not loaded: a log dump can only be loaded into a "
                                         f"database just loaded with load database (or online for "
                                         f"standby_access). Load the full dump it follows first.")
    if dump["instance_id"] != meta["instance_id"]:
        raise StatusError(RESTORE_ERROR, f"this log dump of database '{dump.get('database')}' belongs to another "
                                         f"database or another load of it, not to what {db} holds: load the full "
                                         f"dump it follows first.")
    if meta["until_stopped"]:
        raise StatusError(RESTORE_ERROR, f"the last load transaction into {db} stopped at until_time "
                                         f"{time_text(meta['last_commit'])} or before (LSN {applied}): no further "
                                         f"log can be loaded. Load the full dump again to go further.")
    if dump.get("dump_id") and dump["dump_id"] == meta["applied_dump"]:
        raise StatusError(RESTORE_ERROR, f"this log dump ({span}) was already loaded into {db}: load the next "
                                         f"one of the sequence.")
    if first > applied + 1:
        raise StatusError(RESTORE_ERROR, f"log dumps must be loaded in order: {db} holds up to LSN {applied} and "
                                         f"this log dump starts at LSN {first}, so the dump covering LSNs "
                                         f"{applied + 1}-{first - 1} is missing. Load it first.")
    if last < applied:
        raise StatusError(RESTORE_ERROR, f"this log dump ({span}) is older than what {db} holds (up to LSN "
                                         f"{applied}): it was already applied or precedes the full dump. Load "
                                         f"the log dumps taken after it, in order.")
    if until is not None and meta["last_commit"] > until:
        raise StatusError(RESTORE_ERROR, f"{db} already holds transactions committed at "
                                         f"{time_text(meta['last_commit'])}, after the until_time "
                                         f"{time_text(until)}: load a full dump taken before that time.")


def _apply(con: sqlite3.Connection, src: sqlite3.Connection, meta: dict, dump: dict, until: float | None,
           db: str) -> ApplyResult:
    applied = meta["applied_lsn"]
    inserts: dict[tuple, str] = {}
    deletes: dict[str, str] = {}
    aliases: dict[str, str] = {}
    first_applied = None
    last_applied = applied
    last_commit = None
    last_xid = meta["last_xid"]
    txs = records = 0
    stopped = False
    xid = None
    cur = src.execute(f"select lsn, xid, commit_time, kind, tbl, rid, data from {LOG_TABLE} where lsn > ? "
                      f"order by lsn", (applied,))
    lsn = None
    batch_sql, batch = None, []  # consecutive changes through one statement go in one executemany

    def flush():
        nonlocal batch_sql
        if batch:
            con.executemany(batch_sql, batch)
            batch.clear()
        batch_sql = None

    def alias_of(tbl: str) -> str:
        alias = aliases.get(tbl)
        if alias is None:
            alias = aliases[tbl] = _alias(con, tbl, lsn, db)
        return alias

    try:
        for lsn, rxid, commit_time, kind, tbl, rid, data in cur:
            if rxid != xid:
                if until is not None and commit_time > until:
                    stopped = True
                    break
                xid = rxid
                txs += 1
                last_commit = commit_time
                last_xid = max(last_xid, rxid)
            if kind == "U":
                cols, vals = json.loads(data)
                key = (tbl, *cols)
                sql = inserts.get(key)
                if sql is None:
                    names = ", ".join([alias_of(tbl), *map(quote_ident, cols)])
                    sql = inserts[key] = (f"insert or replace into main.{quote_ident(tbl)}({names}) "
                                          f"values ({', '.join('?' * (len(cols) + 1))})")
                if '{"$' in data:  # a blob or raw text (a text value's own braces and quotes are escaped)
                    raw = False
                    for i, v in enumerate(vals):
                        if type(v) is dict:
                            vals[i] = decode_value(v)
                            raw = raw or "$t" in v
                    if raw:
                        marks = ", ".join("cast(? as text)" if isinstance(v, RawText) else "?" for v in vals)
                        flush()
                        con.execute(sql[:sql.rindex("values (")] + f"values (?, {marks})", [rid, *vals])
                        sql = None
                if sql is not None:
                    if sql is not batch_sql:
                        flush()
                        batch_sql = sql
                    vals.insert(0, rid)
                    batch.append(vals)
            elif kind == "D":
                sql = deletes.get(tbl)
                if sql is None:
                    sql = deletes[tbl] = f"delete from main.{quote_ident(tbl)} where {alias_of(tbl)} = ?"
                if sql is not batch_sql:
                    flush()
                    batch_sql = sql
                batch.append((rid,))
            elif kind == "S":
                flush()
                con.execute(data)
                reconcile(con)
                inserts.clear()
                deletes.clear()
                aliases.clear()
            else:
                raise StatusError(RESTORE_ERROR, f"the log dump holds a record of unknown kind '{kind}' at LSN "
                                                 f"{lsn}: it was made by a newer sybar; load it with that.")
            records += 1
            last_applied = lsn
            if first_applied is None:
                first_applied = lsn
        flush()
    except sqlite3.Error as e:
        raise StatusError(RESTORE_ERROR, f"applying the log dump to {db} failed at LSN {lsn} ({e}): the database "
                                         f"does not match the log. Nothing was applied; load the full dump this "
                                         f"log dump follows, then the log dumps in order.") from e
    finally:
        cur.close()
    if not stopped:
        last_applied = max(applied, dump["last_lsn"])
    con.execute(f"delete from main.{LOG_TABLE}")  # replay's own marks
    write_meta(con, applied_lsn=last_applied, last_lsn=max(meta["last_lsn"], last_applied),
               truncated_to=max(meta["last_lsn"], last_applied), last_xid=last_xid,
               last_commit=max(meta["last_commit"], last_commit or 0.0), until_stopped=1 if stopped else 0,
               applied_dump=dump.get("dump_id") or "")
    return ApplyResult(applied_transactions=txs, applied_records=records, first_lsn=first_applied,
                       last_lsn_applied=last_applied, stopped_at=until if stopped else None,
                       last_commit=last_commit)


def _alias(con: sqlite3.Connection, tbl: str, lsn: int, db: str) -> str:
    info = table_info(con, tbl)
    if info is None:
        raise StatusError(RESTORE_ERROR, f"the log dump changes table '{tbl}' (LSN {lsn}), which {db} does not "
                                         f"have: the database does not match the log. Nothing was applied; load "
                                         f"the full dump this log dump follows, then the log dumps in order.")
    return info.alias


# -- until_time ------------------------------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_ISO = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.:](\d{1,6}))?)?)?$")
_ASE = re.compile(r"^([a-z]{3})[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})"
                  r"(?:[.:](\d{1,6}))?)?\s*(am|pm)?)?$", re.IGNORECASE)
UNTIL_FORMS = ("'YYYY-MM-DD hh:mm:ss[.fff]'", "'YYYY-MM-DDThh:mm:ss[.fff]'", "'YYYYMMDD hh:mm:ss'",
               "'Mon dd yyyy hh:mm[:ss[:mmm]][AM|PM]'")


def parse_until_time(text: str) -> float:
    """An until_time as ASE takes it, in the dataserver's local time -> unix seconds."""
    value = str(text).strip().strip("'\"").strip()
    try:
        m = _ISO.match(value)
        if m:
            y, mo, d, h, mi, s, frac = m.groups()
            ampm = None
        else:
            m = _ASE.match(value)
            if not m or m.group(1).lower() not in _MONTHS:
                raise ValueError(value)
            mon, d, y, h, mi, s, frac, ampm = m.groups()
            mo = _MONTHS[mon.lower()]
        hour = int(h or 0)
        if ampm:
            if not 1 <= hour <= 12:
                raise ValueError(value)
            hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
        micro = 0
        if frac:
            sep = value[value.rindex(frac) - 1]
            if sep == ":":  # ASE's hh:mm:ss:mmm counts milliseconds
                if len(frac) > 3:
                    raise ValueError(value)
                micro = int(frac) * 1000
            else:
                micro = int(frac.ljust(6, "0"))
        return datetime(int(y), int(mo), int(d), hour, int(mi or 0), int(s or 0), micro).timestamp()
    except (ValueError, OverflowError):
        raise StatusError(RESTORE_ERROR, f"until_time '{text}' is not a date and time this dataserver reads: "
                                         f"use {', '.join(UNTIL_FORMS)}, in the dataserver's local time.") from None
