"""System procedures: sp_helpdb, sp_who, sp_addumpdevice, sp_dropdevice, sp_helpdevice."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from engine.dataserver import dumpconfig, dumphist
from engine.dataserver.errors import ServerError, no_such_database
from engine.dataserver.master import FOR_LOAD, LOADING, OFFLINE, ONLINE, STANDBY
from engine.tds.replies import Done, Info, ResultFormat, ResultRow
from engine.tds.tokens import Column

if TYPE_CHECKING:
    from engine.dataserver.session import Session

_STATUS = {ONLINE: "no options set", OFFLINE: "offline", FOR_LOAD: "for load", LOADING: "offline, load in progress",
           STANDBY: "online for standby access"}


async def run(session: Session, stmt) -> AsyncIterator:
    proc = stmt.procedure.lower()
    if proc.rsplit(".", 1)[-1] in ("sp_dump_history", "sp_config_dump"):
        # these take ASE's named arguments (@operation = 'list', @config_name = ...)
        fn, store = ((dumphist.sp_dump_history, session.server.dumphist) if proc.endswith("sp_dump_history")
                     else (dumpconfig.config_dump_proc, session.server.dumpconfigs))
        result = await asyncio.to_thread(fn, store, stmt.args, stmt.named)
        for r in result.replies():
            yield r
        return
    handler = _PROCS.get(proc)
    if handler is None:
        raise ServerError(2812, 16, f"Stored procedure '{stmt.procedure}' not found. Specify owner.objectname or "
                                    "use sp_help to check whether the object exists (sp_help may produce lots of output).")
    async for reply in handler(session, list(stmt.args) + list(stmt.named.values())):
        yield reply


def _table(columns: list[Column], rows: list[tuple]) -> list:
    return [ResultFormat(columns), *(ResultRow(r) for r in rows)]


def _size_mb(session: Session, name: str, declared: int | None) -> float:
    path = session.server.master.db_path(name)
    actual = sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    return max(float(declared or 0), actual / 2**20)


async def sp_helpdb(session: Session, args: list[str]) -> AsyncIterator:
    master = session.server.master
    if args:
        info = master.get(args[0])
        if info is None:
            raise ServerError(
                15010, 16, f"The specified database '{args[0]}' does not exist. Use sp_helpdb with no argument "
                           "for a list of databases.")
        infos = [info]
    else:
        infos = master.databases()
    columns = [Column("name", "varchar", 30), Column("db_size", "varchar", 13), Column("owner", "varchar", 30),
               Column("dbid", "int"), Column("created", "varchar", 14), Column("status", "varchar", 60)]
    rows = []
    for info in infos:
        created = dt.datetime.strptime(info.crdate, "%Y-%m-%d %H:%M:%S").strftime("%b %d, %Y")
        size = f"{_size_mb(session, info.name, info.size_mb):9.1f} MB"
        rows.append((info.name, size, info.owner, info.dbid, created, _STATUS.get(info.state, info.state)))
    for r in _table(columns, rows):
        yield r
    yield Done(count=len(rows))
    if args:
        info = infos[0]
        path = master.db_path(info.name)
        dev_cols = [Column("device_fragments", "varchar", 30), Column("size", "varchar", 13),
                    Column("usage", "varchar", 20), Column("free kbytes", "varchar", 20)]
        for r in _table(dev_cols, [("data", f"{_size_mb(session, info.name, info.size_mb):9.1f} MB",
                                    "data and log", str(_free_kb(path)))]):
            yield r
        yield Done(count=1)


def _free_kb(path: os.PathLike) -> int:
    try:
        st = os.statvfs(os.path.dirname(path))
        return st.f_bavail * st.f_frsize // 1024
    except OSError:
        return 0


async def sp_who(session: Session, args: list[str]) -> AsyncIterator:
    columns = [Column("fid", "int"), Column("spid", "int"), Column("status", "varchar", 12),
               Column("loginame", "varchar", 30), Column("origname", "varchar", 30),
               Column("hostname", "varchar", 30), Column("program_name", "varchar", 30),
               Column("dbname", "varchar", 30), Column("cmd", "varchar", 30)]
    rows = []
    for s in sorted(session.server.sessions.values(), key=lambda s: s.spid):
        if args and args[0] not in (s.user, str(s.spid)):
            continue
        status = "running" if s is session else ("sleeping" if s.command == "AWAITING COMMAND" else "runnable")
        rows.append((0, s.spid, status, s.user, s.user, s.host, s.app, s.database, s.command))
    for r in _table(columns, rows):
        yield r
    yield Done(count=len(rows))


async def sp_addumpdevice(session: Session, args: list[str]) -> AsyncIterator:
    if len(args) < 3:
        raise ServerError(201, 16, "Procedure sp_addumpdevice expects parameters: 'disk', logical_name, physical_name.")
    kind, name, phyname = args[0].lower(), args[1], args[2]
    if kind not in ("disk", "tape"):
        raise ServerError(17200, 16, f"Unknown device type '{kind}': use 'disk' or 'tape'.")
    session.server.master.add_device(name, phyname, kind)
    yield Info("'Disk' device added." if kind == "disk" else "'Tape' device added.")
    yield Done()


async def sp_dropdevice(session: Session, args: list[str]) -> AsyncIterator:
    if not args or not session.server.master.drop_device(args[0]):
        raise ServerError(17220, 16, f"No such device: '{args[0] if args else ''}'.")
    yield Info("Device dropped.")
    yield Done()


async def sp_helpdevice(session: Session, args: list[str]) -> AsyncIterator:
    rows = [r for r in session.server.master.devices() if not args or r[0] == args[0]]
    for r in _table([Column("device_name", "varchar", 30), Column("physical_name", "varchar", 255),
                     Column("description", "varchar", 60)],
                    [(n, p, f"{k} dump device") for n, k, p in rows]):
        yield r
    yield Done(count=len(rows))


async def sp_dboption(session: Session, args: list[str]) -> AsyncIterator:
    if args and session.server.master.get(args[0]) is None:
        raise no_such_database(args[0])
    yield Info("Database options are accepted for compatibility and have no effect on this dataserver.")
    yield Done()


_PROCS = {
    "sp_helpdb": sp_helpdb,
    "sp_who": sp_who,
    "sp_addumpdevice": sp_addumpdevice,
    "sp_dropdevice": sp_dropdevice,
    "sp_helpdevice": sp_helpdevice,
    "sp_dboption": sp_dboption,
}
