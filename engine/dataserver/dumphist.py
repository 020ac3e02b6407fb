"""ASE's dump history (15.7 ESD#2+): every dump, successful or failed, one record per stripe.

ASE keeps a tab-separated ``dumphist`` file; sybar keeps the same records in a
small SQLite file (``HOME/data/dumphist.db``, mode 0600) so that several
sessions can write and read it at once. From it come:

* ``sp_dump_history`` (``@operation = 'list' | 'purge'``): the records as a
  result table, or the purge of old ones;
* ``load database DB with listonly = load_sql [, until_time = '...']``: the
  load sequence that restores DB to a time: the newest successful full dump at
  or before that time, the newest cumulative dump after it (if any), every
  successful transaction dump after that in order (the one holding the time
  with ``until_time``), then ``online database``;
* ``load database DB with listonly = create_sql``: the DDL for a target.

A dump is successful when every one of its stripe records has status 0. A
transaction dump holds the changes committed after the dump before it (full or
log) up to its own ``until_time`` (default: its time); a successful full dump
starts a new chain, so log dumps taken after a newer full dump never follow an
older one. When log sequence numbers are recorded, a chain with a gap is refused.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.dataserver.errors import ServerError
from engine.dataserver.master import open_database
from engine.tds.tokens import Column

log = logging.getLogger(__name__)

DATABASE, TRANSACTION, CUMULATIVE = "D", "T", "C"
DUMP_TYPES = {DATABASE: "DATABASE", TRANSACTION: "TRANSACTION", CUMULATIVE: "CUMULATIVE"}

# Message numbers (ASE's where ASE has one for the case, else in sybar's 19xxx range).
MSG_BAD_DATETIME = 249          # ASE: syntax error converting a string to DATETIME
MSG_OUT_OF_SEQUENCE = 4305      # ASE: a log dump is out of sequence
MSG_NO_HISTORY = 19401          # no usable record in the dump history
MSG_BAD_PARAMETER = 19402       # sp_dump_history: bad argument

_SCHEMA = """
create table if not exists dumphist (
    id integer primary key autoincrement,
    dump_id text not null,          -- the stripes of one dump share it
    dump_type text not null,        -- D database, T transaction, C cumulative
    server text not null,
    database text not null,
    backup_server text not null,
    stripe integer not null,        -- 1-based
    stripes integer not null,
    device text not null,           -- the stripe device as the dump command named it
    stripe_name text not null,      -- what a load reads: a path, or sybackup::OBJECT
    status integer not null,        -- 0 ok, else the error number
    error text not null default '',
    compression integer,
    dump_time real not null,        -- epoch seconds
    until_time real,                -- last commit the dump holds (null: dump_time)
    lsn_first integer,
    lsn_last integer,
    recorded real not null
);
create index if not exists dumphist_db on dumphist(database, dump_time);
create index if not exists dumphist_dump on dumphist(dump_id);
"""

_COLUMNS = ("id, dump_id, dump_type, server, database, backup_server, stripe, stripes, device, stripe_name, "
            "status, error, compression, dump_time, until_time, lsn_first, lsn_last")


class DumpHistoryError(ServerError):
    """An ASE-style error (number, severity, text) from the dump history."""


@dataclass(frozen=True)
class StripeRecord:
    """One row of the dump history: one stripe of one dump."""

    id: int
    dump_id: str
    dump_type: str
    server: str
    database: str
    backup_server: str
    stripe: int
    stripes: int
    device: str
    stripe_name: str
    status: int
    error: str
    compression: int | None
    when: float
    until_time: float | None
    lsn_first: int | None
    lsn_last: int | None

    @property
    def ok(self) -> bool:
        return self.status == 0


@dataclass(frozen=True)
class Dump:
    """All stripes of one dump, in stripe order."""

    dump_id: str
    dump_type: str
    database: str
    when: float
    stripes: tuple[StripeRecord, ...]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stripes)

    @property
    def devices(self) -> list[str]:
        """What a load of this dump names: one device per stripe, in order."""
        return [s.stripe_name for s in self.stripes]

    @property
    def covers_until(self) -> float:
        """The time of the last change the dump holds."""
        t = self.stripes[0].until_time
        return self.when if t is None else t

    @property
    def lsn_first(self) -> int | None:
        return self.stripes[0].lsn_first

    @property
    def lsn_last(self) -> int | None:
        return self.stripes[0].lsn_last


@dataclass
class ProcResult:
    """What a system procedure returns: messages, then an optional result table.

    ``replies()`` turns it into TDS replies (Info lines, ResultFormat/ResultRow,
    Done) for ``procs.py``."""

    messages: list[str] = field(default_factory=list)
    columns: list[Column] | None = None
    rows: list[tuple] = field(default_factory=list)
    return_status: int = 0

    def replies(self) -> list:
        from engine.tds.replies import Done, Info, ResultFormat, ResultRow

        out: list = []
        if self.columns is not None:
            out.append(ResultFormat(self.columns))
            out.extend(ResultRow(r) for r in self.rows)
            out.append(Done(count=len(self.rows)))
        out.extend(Info(m) for m in self.messages)
        if self.columns is None or self.messages:
            out.append(Done())
        return out


# ---------------------------------------------------------------------------------------------
# Times
# ---------------------------------------------------------------------------------------------
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december")
_MONTHS = {m[:3]: i for i, m in enumerate(_MONTH_NAMES, start=1)}
_TIME = r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:([.:])(\d{1,6}))?)?\s*([ap]m)?)?"
_ISO = re.compile(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})" + _TIME + r"\s*$", re.IGNORECASE)
_ISO_COMPACT = re.compile(r"\s*(\d{4})(\d{2})(\d{2})" + _TIME + r"\s*$", re.IGNORECASE)
_NAMED = re.compile(r"\s*([a-z]{3,9})\.?\s+(\d{1,2})\s*,?\s*(\d{4})" + _TIME + r"\s*$", re.IGNORECASE)


def parse_time(text: str) -> float:
    """An ``until_time`` as DBAs write it, in the dataserver's local time -> epoch seconds.

    ``2026-11-25 10:00:00[.fff]`` (also ``T``, no seconds, date only, ``20261125 10:00``) and
    ASE's ``Mar 26 2007 12:35:59:650PM`` / ``january 29,2020 15:00:00:00`` forms (after a
    ``:`` the last part counts milliseconds, after a ``.`` it is a fraction of a second).
    """
    value = str(text)
    m = _ISO.match(value) or _ISO_COMPACT.match(value)
    if m:
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        rest = m.groups()[3:]
    elif (m := _NAMED.match(value)) and m.group(1)[:3].lower() in _MONTHS \
            and _MONTH_NAMES[_MONTHS[m.group(1)[:3].lower()] - 1].startswith(m.group(1).lower()):
        year, month, day = int(m.group(3)), _MONTHS[m.group(1)[:3].lower()], int(m.group(2))
        rest = m.groups()[3:]
    else:
        raise _bad_time(value)
    hour, minute, second, sep, frac, ampm = rest
    h = int(hour or 0)
    if ampm:
        if not 1 <= h <= 12:
            raise _bad_time(value)
        h = h % 12 + (12 if ampm.lower() == "pm" else 0)
    micro = 0
    if frac:
        if sep == ".":
            micro = int((frac + "000000")[:6])
        elif len(frac) <= 3:
            micro = int(frac) * 1000
        else:
            raise _bad_time(value)
    try:
        when = dt.datetime(year, month, day, h, int(minute or 0), int(second or 0), micro)
    except ValueError:
        raise _bad_time(value) from None
    return when.timestamp()


def format_time(when: float) -> str:
    """Epoch seconds -> ``YYYY-MM-DD hh:mm:ss.fff`` local time (what ``until_time`` takes);
    six fraction digits when the time is not a whole millisecond, so nothing is lost."""
    d = dt.datetime.fromtimestamp(when)
    frac = f"{d.microsecond // 1000:03d}" if d.microsecond % 1000 == 0 else f"{d.microsecond:06d}"
    return d.strftime("%Y-%m-%d %H:%M:%S.") + frac


def _bad_time(text: str) -> DumpHistoryError:
    return DumpHistoryError(
        MSG_BAD_DATETIME, 16,
        f"Syntax error during explicit conversion of VARCHAR value '{text}' to a DATETIME field: "
        "write the time as 'YYYY-MM-DD hh:mm:ss[.fff]' (local time).")


def _time_arg(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return parse_time(str(value))


# ---------------------------------------------------------------------------------------------
# The history
# ---------------------------------------------------------------------------------------------
class DumpHistory:
    """The dump history in a SQLite file; safe to share between threads and sessions."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = open_database(self.path)  # 0600, WAL, patient with locks, like every engine store
        with self._lock:
            self._con.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # -- writing ----------------------------------------------------------------------------
    def record(self, *, database: str, dump_type: str, devices: list[str], status: int, when: float,
               backup_server: str = "SYB_BACKUP", server: str = "SYBAR", compression: int | None = None,
               error: str = "", dump_id: str = "", stripe_names: list[str] | None = None,
               until_time: float | None = None, lsn_first: int | None = None,
               lsn_last: int | None = None) -> str:
        """Record one dump: one row per stripe. Returns the dump id (made up when not given).

        ``devices``: the stripe devices as the command named them (absolute paths for files).
        ``stripe_names``: what a load must name to read each stripe back, when that differs
        from the device: for ``sybackup::`` dumps the backup object names (``OBJECT`` or
        ``sybackup::OBJECT``; stored as ``sybackup::OBJECT``). ``status``: 0, or the error
        number of a failed dump (``error``: its text). ``until_time``: the time of the last
        change the dump holds (default ``when``). ``lsn_first``/``lsn_last``: the log range
        of a transaction dump (for a full dump: ``lsn_last`` = the log position it holds).
        """
        dump_type = dump_type.upper()
        if dump_type not in DUMP_TYPES:
            raise ValueError(f"dump_type must be one of {', '.join(DUMP_TYPES)}, not {dump_type!r}")
        devices = [str(d) for d in devices]
        names = [_archive_name(str(n)) for n in stripe_names] if stripe_names else []
        count = max(len(devices), len(names), 1)
        dump_id = dump_id or f"{int(when * 1000):x}.{secrets.token_hex(4)}"
        rows = []
        now = time.time()
        for i in range(count):
            device = devices[i] if i < len(devices) else (devices[-1] if devices else "")
            name = names[i] if i < len(names) else device
            rows.append((dump_id, dump_type, server, database, backup_server, i + 1, count, device, name,
                         int(status), error, compression, float(when), until_time, lsn_first, lsn_last, now))
        with self._lock:
            self._con.execute("begin immediate")
            try:
                self._con.executemany(
                    "insert into dumphist(dump_id, dump_type, server, database, backup_server, stripe, stripes, "
                    "device, stripe_name, status, error, compression, dump_time, until_time, lsn_first, lsn_last, "
                    "recorded) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                self._con.execute("commit")
            except BaseException:
                self._con.execute("rollback")
                raise
        return dump_id

    def purge(self, until: float, database: str | None = None) -> int:
        """Delete the records of dumps taken before ``until``; returns how many rows went."""
        sql, params = "delete from dumphist where dump_time < ?", [until]
        if database is not None:
            sql += " and database = ?"
            params.append(database)
        with self._lock:
            return self._con.execute(sql, params).rowcount

    # -- reading ----------------------------------------------------------------------------
    def rows(self, database: str | None = None, *, until: float | None = None, dump_type: str | None = None,
             status: str | None = None) -> list[StripeRecord]:
        """Stripe records, oldest first. ``until``: taken at or before; ``dump_type``: D/T/C;
        ``status``: ``'success'`` or ``'failure'``."""
        where, params = [], []
        if database is not None:
            where.append("database = ?")
            params.append(database)
        if until is not None:
            where.append("dump_time <= ?")
            params.append(until)
        if dump_type is not None:
            where.append("dump_type = ?")
            params.append(dump_type)
        if status == "success":
            where.append("status = 0")
        elif status == "failure":
            where.append("status <> 0")
        sql = f"select {_COLUMNS} from dumphist"
        if where:
            sql += " where " + " and ".join(where)
        sql += " order by dump_time, id"
        with self._lock:
            found = self._con.execute(sql, params).fetchall()
        return [StripeRecord(*r) for r in found]

    def dumps(self, database: str | None = None) -> list[Dump]:
        """Dumps (stripes grouped), oldest first."""
        groups: dict[str, list[StripeRecord]] = {}
        for r in self.rows(database):
            groups.setdefault(r.dump_id, []).append(r)
        out = [Dump(dump_id=k, dump_type=v[0].dump_type, database=v[0].database, when=v[0].when,
                    stripes=tuple(sorted(v, key=lambda s: s.stripe))) for k, v in groups.items()]
        out.sort(key=lambda d: (d.when, d.stripes[0].id))
        return out

    def latest(self, database: str, dump_type: str | None = None, *, successful: bool = True) -> Dump | None:
        """The newest dump of ``database`` (of that type; successful ones only by default)."""
        found = [d for d in self.dumps(database)
                 if (dump_type is None or d.dump_type == dump_type) and (d.ok or not successful)]
        return found[-1] if found else None

    # -- the load sequence ------------------------------------------------------------------
    def load_chain(self, database: str, *, until: float | None = None) -> list[tuple[Dump, float | None]]:
        """The dumps to load, in order, each with the ``until_time`` its load takes (or None).

        Raises DumpHistoryError when the history holds no successful full dump of
        ``database`` (at or before ``until``), or when the log dumps have a gap."""
        dumps = [d for d in self.dumps(database) if d.ok]
        fulls = [i for i, d in enumerate(dumps)
                 if d.dump_type == DATABASE and (until is None or d.when <= until)]
        if not fulls:
            raise _no_history(database, until, any(d.dump_type == DATABASE for d in dumps),
                              bool(self.rows(database)))
        start = fulls[-1]
        # a newer successful full dump starts a new chain: the log dumps after it do not follow this one
        end = next((i for i in range(start + 1, len(dumps)) if dumps[i].dump_type == DATABASE), len(dumps))
        following = dumps[start + 1 : end]
        chain: list[tuple[Dump, float | None]] = [(dumps[start], None)]
        cumulative = [d for d in following if d.dump_type == CUMULATIVE and (until is None or d.when <= until)]
        if cumulative:
            chain.append((cumulative[-1], None))
            following = following[following.index(cumulative[-1]) + 1 :]
        previous = chain[-1][0]
        for d in following:
            if d.dump_type != TRANSACTION:
                continue
            if until is not None and previous.covers_until >= until:
                break
            _check_link(database, previous, d)
            if until is not None and until < d.covers_until:
                chain.append((d, until))
                break
            chain.append((d, None))
            previous = d
        return chain

    def load_sql(self, database: str, *, until: float | None = None, target: str | None = None) -> list[str]:
        """The statements ``load database DB with listonly = load_sql [, until_time = ...]`` prints."""
        db = target or database
        out = []
        for d, until_time in self.load_chain(database, until=until):
            verb = {DATABASE: f"LOAD DATABASE {db}", CUMULATIVE: f"LOAD DATABASE {db} CUMULATIVE",
                    TRANSACTION: f"LOAD TRAN {db}"}[d.dump_type]
            sql = verb + " FROM " + " STRIPE ON ".join(_quote(dev) for dev in d.devices)
            if until_time is not None:
                sql += f" WITH UNTIL_TIME = '{format_time(until_time)}'"
            out.append(sql)
        out.append(f"ONLINE DATABASE {db}")
        return out


def record_dump(history: DumpHistory | None, *, database: str, dump_type: str, labels: list[str],
                archive: bool = False, devices: list[str] | None = None, result=None,
                error: BaseException | None = None, started: float | None = None, server: str = "SYBAR",
                compression: int | None = None, until_time: float | None = None, lsn_first: int | None = None,
                lsn_last: int | None = None) -> str | None:
    """Record a dump the Backup Server ran (or failed to run); never raises (a history that
    cannot be written is logged, and the dump's own outcome stands). Returns the dump id.

    ``labels``: the stripe labels the Backup Server used (file paths; for ``archive`` dumps the
    backup object names, recorded as ``sybackup::NAME`` stripe names). ``devices``: the device
    strings as the command named them (default: ``labels``). ``result``: the Backup Server's
    DumpResult on success (its dump id, snapshot time and compression are used); ``error``: the
    exception of a failed dump (its ServerError number is the status; 8009 otherwise).
    ``started``: epoch seconds, the time of a failed dump (default: now)."""
    if history is None:
        return None
    if error is not None:
        status = getattr(error, "number", 0) or 8009
        text = getattr(error, "text", "") or str(error) or type(error).__name__
    else:
        status, text = 0, ""
    when = started if started is not None else time.time()
    dump_id = ""
    if result is not None:
        snap = getattr(result, "snapshot_at", None) or getattr(result, "started", None)
        if snap is not None:
            when = snap.timestamp()
        dump_id = getattr(result, "dump_id", "") or ""
        if compression is None:
            compression = getattr(result, "compression", None)
    try:
        return history.record(
            database=database, dump_type=dump_type, devices=list(devices if devices is not None else labels),
            status=status, when=when, server=server, compression=compression, error=text[:1000],
            dump_id=dump_id, stripe_names=list(labels) if archive else None, until_time=until_time,
            lsn_first=lsn_first, lsn_last=lsn_last)
    except Exception:  # noqa: BLE001 - the history must not turn a good dump into a failure
        log.exception("could not record the %s dump of %s in the dump history", dump_type, database)
        return None


def create_sql(database: str, info=None, *, target: str | None = None) -> list[str]:
    """The statements ``load database DB with listonly = create_sql`` prints: the DDL to create
    a target for the load. ``info``: master's DatabaseInfo of ``database`` (its ``size_mb``), or
    None when master does not know it (then the target grows as needed)."""
    db = target or database
    size = getattr(info, "size_mb", None)
    if size:
        return [f"CREATE DATABASE {db} ON DEFAULT = {int(size)} FOR LOAD"]
    return [f"CREATE DATABASE {db} FOR LOAD"]


def script_lines(statements: Iterable[str]) -> list[str]:
    """Statements as ASE prints a listing: each followed by a ``go`` line."""
    out = []
    for s in statements:
        out.extend((s, "go"))
    return out


def _quote(device: str) -> str:
    return "'" + device.replace("'", "''") + "'"


def _archive_name(name: str) -> str:
    return name if name.lower().startswith("sybackup::") else f"sybackup::{name}"


def _check_link(database: str, previous: Dump, dump: Dump) -> None:
    if previous.lsn_last is None or dump.lsn_first is None:
        return
    if dump.lsn_first > previous.lsn_last + 1:
        raise DumpHistoryError(
            MSG_OUT_OF_SEQUENCE, 16,
            f"The dump history of database '{database}' has a gap: the transaction dump taken "
            f"{format_time(dump.when)} ({dump.devices[0]}) starts at log position {dump.lsn_first} but the dump "
            f"before it ends at {previous.lsn_last}. The chain is broken there: take a full dump "
            f"(dump database {database}) to start a new one.")


def _no_history(database: str, until: float | None, has_full: bool, has_rows: bool) -> DumpHistoryError:
    if until is not None and has_full:
        why = f"no successful full dump of database '{database}' was taken at or before {format_time(until)}"
    elif has_rows:
        why = f"the dump history holds no successful full dump of database '{database}'"
    else:
        why = f"the dump history holds no dump of database '{database}'"
    return DumpHistoryError(
        MSG_NO_HISTORY, 16,
        f"Cannot generate the load sequence: {why}. sp_dump_history lists the recorded dumps; "
        "a full dump (dump database) starts a sequence.")


# ---------------------------------------------------------------------------------------------
# sp_dump_history
# ---------------------------------------------------------------------------------------------
HISTORY_COLUMNS = [
    Column("Dump Type", "varchar", 11),
    Column("Server Name", "varchar", 30),
    Column("Database Name", "varchar", 30),
    Column("Time", "datetime"),
    Column("Status", "varchar", 7),
    Column("Error", "int"),
    Column("Backup Server Name", "varchar", 30),
    Column("Compression Level", "int"),
    Column("Stripe", "int"),
    Column("Stripe Name", "varchar", 255),
    Column("Dump ID", "varchar", 40),
    Column("Error Message", "varchar", 255),
]
_PARAMS = ("operation", "name", "until_time", "type", "file", "status")
_TYPE_WORDS = {"database": DATABASE, "db": DATABASE, "tran": TRANSACTION, "transaction": TRANSACTION,
               "cumulative": CUMULATIVE}
_STATUS_WORDS = {"success": "success", "successful": "success", "fail": "failure", "failed": "failure",
                 "failure": "failure"}


def history_result(rows: Iterable[StripeRecord]) -> tuple[list[Column], list[tuple]]:
    """sp_dump_history's result table: one row per stripe record."""
    out = []
    for r in rows:
        out.append((
            DUMP_TYPES.get(r.dump_type, r.dump_type), r.server, r.database, dt.datetime.fromtimestamp(r.when),
            "Success" if r.ok else "Failed", r.status, r.backup_server, r.compression, r.stripe, r.stripe_name,
            r.dump_id, r.error[:255],
        ))
    return list(HISTORY_COLUMNS), out


def sp_dump_history(history: DumpHistory, args: Iterable = (), named: dict | None = None) -> ProcResult:
    """``sp_dump_history [@operation = 'list' | 'purge'] [, @name = db] [, @until_time = '...']
    [, @type = 'database' | 'tran' | 'cumulative'] [, @file = ...] [, @status = 'success' | 'fail']``.

    ``args``: positional values in that order; ``named``: ``Execute.named`` (keys without ``@``).
    list: the records (of ``@name``, taken at or before ``@until_time``, of that type/status);
    purge: delete the records taken before ``@until_time`` (required) of ``@name`` (or all)."""
    params = bind_params("sp_dump_history", _PARAMS, args, named or {})
    operation = (params.get("operation") or "list").lower()
    if operation not in ("list", "purge"):
        raise DumpHistoryError(MSG_BAD_PARAMETER, 16,
                               f"sp_dump_history: @operation must be 'list' or 'purge', not '{operation}'.")
    if params.get("file"):
        raise DumpHistoryError(MSG_BAD_PARAMETER, 16,
                               "sp_dump_history: this server keeps one dump history; do not give @file.")
    database = params.get("name")
    until = _time_arg(params.get("until_time"))
    if operation == "purge":
        if until is None:
            raise DumpHistoryError(
                MSG_BAD_PARAMETER, 16,
                "sp_dump_history: purge needs @until_time: the records of dumps taken before it are deleted "
                "(@until_time = '9999-12-31' purges everything).")
        n = history.purge(until, database)
        return ProcResult(messages=[f"{n} dump history record(s) purged."])
    dump_type = None
    if params.get("type"):
        dump_type = _TYPE_WORDS.get(params["type"].lower())
        if dump_type is None:
            raise DumpHistoryError(
                MSG_BAD_PARAMETER, 16,
                f"sp_dump_history: @type must be 'database', 'tran' or 'cumulative', not '{params['type']}'.")
    status = None
    if params.get("status"):
        status = _STATUS_WORDS.get(params["status"].lower())
        if status is None:
            raise DumpHistoryError(
                MSG_BAD_PARAMETER, 16,
                f"sp_dump_history: @status must be 'success' or 'fail', not '{params['status']}'.")
    columns, rows = history_result(history.rows(database, until=until, dump_type=dump_type, status=status))
    return ProcResult(columns=columns, rows=rows)


def bind_params(proc: str, names: tuple[str, ...], args: Iterable, named: dict,
                error: type[ServerError] = DumpHistoryError) -> dict[str, str | None]:
    """Positional and ``@name =`` arguments -> {param: value or None}; unknown names refused
    (``error``: the ServerError class to raise, message MSG_BAD_PARAMETER)."""
    out: dict[str, str | None] = {}
    args = list(args)
    if len(args) > len(names):
        raise error(MSG_BAD_PARAMETER, 16,
                    f"{proc} takes at most {len(names)} parameters: "
                    + ", ".join("@" + n for n in names) + ".")
    for key, value in zip(names, args, strict=False):
        out[key] = _value(value)
    for key, value in named.items():
        k = str(key).lstrip("@").lower()
        if k not in names:
            raise error(MSG_BAD_PARAMETER, 16,
                        f"{proc} has no parameter @{k}; it takes " + ", ".join("@" + n for n in names) + ".")
        out[k] = _value(value)
    return out


def _value(value) -> str | None:
    if value is None or getattr(value, "is_null", False):
        return None
    return str(value)


__all__ = [
    "DATABASE", "TRANSACTION", "CUMULATIVE", "DumpHistory", "DumpHistoryError", "StripeRecord", "Dump",
    "ProcResult", "record_dump", "parse_time", "format_time", "create_sql", "script_lines", "history_result",
    "sp_dump_history", "HISTORY_COLUMNS", "bind_params",
]
