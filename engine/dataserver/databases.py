"""create database, drop database, online database: the lifecycle of a database.

A database is a SQLite file ``data/NAME.db`` plus its row in master's
sysdatabases, whose state says whether sessions may use it (online), whether it
waits for a load (for load) or for ``online database`` after one (offline).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from engine.dataserver import translog
from engine.dataserver.errors import ServerError, no_such_database
from engine.dataserver.master import FOR_LOAD, OFFLINE, ONLINE, STANDBY, open_database
from engine.dataserver.session import valid_database_name
from engine.dataserver.tsql import CreateDatabase, DropDatabase, OnlineDatabase
from engine.tds.replies import Done, Info

if TYPE_CHECKING:
    from engine.dataserver.server import Dataserver
    from engine.dataserver.session import Session


class Databases:
    def __init__(self, server: Dataserver):
        self.server = server
        self.master = server.master

    async def run(self, session: Session, stmt) -> AsyncIterator:
        match stmt:
            case CreateDatabase():
                async for r in self.create(stmt.name, stmt.size_mb, stmt.for_load):
                    yield r
            case DropDatabase():
                for name in stmt.names:
                    await self.drop(session, name)
                yield Done()
            case OnlineDatabase():
                async for r in self.online(stmt.database, stmt.for_standby_access):
                    yield r

    async def create(self, name: str, size_mb: int | None, for_load: bool) -> AsyncIterator:
        valid_database_name(name)
        if self.master.get(name) is not None:
            raise ServerError(1801, 16, f"Database '{name}' already exists.")
        path = self.master.db_path(name)
        # a file left by a crash between file creation and registration is not a database
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
        await asyncio.to_thread(lambda: open_database(path).close())
        self.master.add(name, size_mb, FOR_LOAD if for_load else ONLINE)
        size = f"{size_mb} megabytes" if size_mb else "space as it grows"
        yield Info(f"CREATE DATABASE: allocating {size} on disk 'data' for database '{name}'.")
        if not for_load:
            yield Info(f"Database '{name}' is now online.")
        yield Done()

    async def drop(self, session: Session, name: str) -> None:
        info = self.master.get(name)
        if info is None:
            raise ServerError(
                3701, 11, f"Cannot drop the database '{name}', because it does not exist in the system catalogs."
            )
        if name == "master":
            raise ServerError(3708, 16, "Cannot drop the database 'master' because it is a system database.")
        if self.server.users_of(name) or self.server.busy.get(name):
            raise ServerError(3702, 16, f"Cannot drop the database '{name}' because it is currently in use.")
        self.master.remove(name)
        path = self.master.db_path(name)
        for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            f.unlink(missing_ok=True)

    async def online(self, name: str, standby: bool = False) -> AsyncIterator:
        info = self.master.get(name)
        if info is None:
            raise no_such_database(name)
        if info.state == ONLINE:
            yield Info(f"Database '{name}' is already online.")  # ASE: a no-op, not an error
        elif info.state in (OFFLINE, STANDBY):
            if standby and self.server.users_of(name) and info.state == OFFLINE:
                raise ServerError(3101, 16, f"Database '{name}' is in use.")
            integrity = await asyncio.to_thread(_integrity, self.master.db_path(name))
            if integrity != "ok":
                raise ServerError(
                    3414, 21,
                    f"Database '{name}' could not be brought online: its pages fail the integrity check "
                    f"({integrity}). Load it again from a good dump.",
                )
            if not standby and self.server.users_of(name):
                raise ServerError(3101, 16, f"Database '{name}' is in use (read-only standby sessions): they "
                                            "must leave it before it goes fully online.")
            await asyncio.to_thread(_log_online, self.master.db_path(name), standby)
            self.master.set_state(name, STANDBY if standby else ONLINE)
            yield Info(f"Started estimating recovery log boundaries for database '{name}'.")
            yield Info(f"Database '{name}', checkpoint=({info.dbid}, 0), first=({info.dbid}, 0), last=({info.dbid}, 0).")
            yield Info(f"Completed estimating recovery log boundaries for database '{name}'.")
            yield Info(f"Database '{name}' is now online" + (" for standby access (read-only; load transaction "
                                                             "still applies further log dumps)." if standby else "."))
        else:
            raise ServerError(
                4221, 16,
                f"ONLINE DATABASE failed: database '{name}' is '{info.state}': it has not been loaded. "
                f"Run load database {name} from a dump first.",
            )
        yield Done()


def _log_online(path, standby: bool) -> None:
    con = open_database(path)
    try:
        translog.ensure_capture(con)
        translog.online(con, standby)
    finally:
        con.close()


def _integrity(path: os.PathLike) -> str:
    con = open_database(path)
    try:
        rows = con.execute("pragma quick_check").fetchall()
        return "; ".join(r[0] for r in rows[:3])
    finally:
        con.close()
