"""dump database / load database: the dataserver's side of the Backup Server.

The statements are parsed by tsql; this module resolves their devices, runs
the Backup Server's striped dump or verified load in worker threads, and turns
its progress into the messages isql shows, worded as ASE's Backup Server words
them (scripts grep for ``DUMP is complete``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backupserver.devices import FileSource, file_sinks
from engine.backupserver.dump import MAX_STRIPES, dump_database
from engine.backupserver.load import list_dump, load_database
from engine.dataserver import dumpconfig, dumphist, translog
from engine.dataserver.errors import ServerError, database_unavailable, no_such_database
from engine.dataserver.master import FOR_LOAD, LOADING, OFFLINE, ONLINE, STANDBY, open_database
from engine.dataserver.tsql import DumpDatabase, DumpTransaction, LoadDatabase, LoadTransaction
from engine.jobs.status import StatusError
from engine.tds.replies import Done, Info

if TYPE_CHECKING:
    from engine.dataserver.server import Dataserver
    from engine.dataserver.session import Session

# Backup Server message numbers as ASE prints them (scripts and DBAs know them).
MSG_SESSION = "Backup Server session id is: {sid}. Use this value when executing the 'sp_volchanged' system " \
              "stored procedure after fulfilling any volume change request from the Backup Server."
PROGRESS_EVERY = 1.0  # seconds between progress lines per stripe (plus every 10 % step)
ARCHIVE_PREFIX = "sybackup::"


class BackupServer:
    def __init__(self, server: Dataserver):
        self.server = server
        self._sessions = iter(range(1, 1 << 30))

    async def run(self, session: Session, stmt) -> AsyncIterator:
        if isinstance(stmt, DumpDatabase | DumpTransaction) and getattr(stmt, "config", None):
            stmt = dumpconfig.apply_config(self.server.dumpconfigs, stmt)
        started = time.time()
        match stmt:
            case DumpDatabase():
                gen = self.dump(session, stmt)
            case LoadDatabase():
                gen = self.load(session, stmt)
            case DumpTransaction():
                gen = self.dump_transaction(session, stmt)
            case LoadTransaction():
                gen = self.load_transaction(session, stmt)
        try:
            async for r in gen:
                yield r
        except ServerError as e:
            # ASE's dump history keeps failed dumps too (one record per stripe)
            if isinstance(stmt, DumpDatabase | DumpTransaction) and e.number == 8009 \
                    and not getattr(e, "dump_recorded", False):
                dumphist.record_dump(
                    self.server.dumphist, database=self._database_name(session, stmt),
                    dump_type="T" if isinstance(stmt, DumpTransaction) else "D",
                    labels=[d.spec for d in stmt.devices], error=e, started=started, server=self.server.name)
            raise

    # -- devices ---------------------------------------------------------------
    def _device_paths(self, session: Session, stmt) -> tuple[list[Path], int | None]:
        if len(stmt.devices) > MAX_STRIPES:
            raise ServerError(
                8009, 16,
                f"Error encountered by Backup Server: the command names {len(stmt.devices)} stripes and sybar's "
                f"Backup Server takes at most {MAX_STRIPES} per dump. Use {MAX_STRIPES} or fewer 'stripe on' devices.",
            )
        paths: list[Path] = []
        level = None
        for dev in stmt.devices:
            spec = dev.spec
            if dev.compress_level is not None:
                level = dev.compress_level
            if getattr(dev, "is_variable", False) or spec.startswith("@"):
                value = session.variables.get(spec.lstrip("@"))
                if not isinstance(value, str) or not value:
                    raise ServerError(137, 15, f"Must declare variable '{spec}' and set it to a device path.")
                spec = value
            else:
                # a logical dump device (sp_addumpdevice) wins, as on ASE; else it is a path
                spec = self.server.master.device(spec) or spec
            if spec.lower().startswith(ARCHIVE_PREFIX):
                raise ServerError(
                    8009, 16,
                    "Error encountered by Backup Server: the sybackup:: archive API is not available on this "
                    "server yet; dump to file devices.",
                )
            path = Path(spec)
            if not path.is_absolute():
                path = self.server.home.root / "dumps" / path
            if path in paths:
                raise ServerError(
                    8009, 16, f"Error encountered by Backup Server: stripe device '{path}' is named twice.")
            paths.append(path)
        return paths, level

    def _busy(self, name: str, what: str) -> None:
        if self.server.busy.get(name):
            raise ServerError(
                3101, 16,
                f"Database '{name}' is busy with a {self.server.busy[name]} in another session; try again when it ends.")
        self.server.busy[name] = what

    # -- dump ------------------------------------------------------------------
    async def dump(self, session: Session, stmt: DumpDatabase) -> AsyncIterator:
        name = self._database_name(session, stmt)
        info = self.server.master.get(name)
        if info is None:
            raise no_such_database(name)
        if info.state != ONLINE:
            raise database_unavailable(name, info.state)
        if self._archive_devices(stmt):
            async for r in self._archive_dump(session, stmt, name):
                yield r
            return
        paths, level = self._device_paths(session, stmt)
        compression = self._compression(stmt, level)
        _make_parents(paths)
        announce = [f"Backup Server: 4.41.1.1: Creating new disk file {p}." for p in paths]
        try:
            sinks = file_sinks(paths)
        except StatusError as e:
            raise ServerError(8009, 16, f"Error encountered by Backup Server: {e}") from e
        point = await self._log_call(name, translog.full_dump_point)
        history = {"lsn_last": point[0]} if point else {}
        async for item in self._dump_to(name, sinks, [str(p) for p in paths], compression, announce,
                                        history=history):
            if isinstance(item, Info):
                yield item
        if point:
            await self._log_call(name, translog.full_dump_done, point[0])
        yield Done()

    async def _log_call(self, name: str, fn, *args):
        """Run a translog call on its own short connection to database NAME (off the loop)."""
        if name == "master":
            return None
        path = self.server.master.db_path(name)

        def call():
            con = open_database(path)
            try:
                translog.ensure_capture(con)
                return fn(con, *args)
            finally:
                con.close()

        return await asyncio.to_thread(call)

    def _database_name(self, session: Session, stmt) -> str:
        name = stmt.database
        if name.startswith("@"):
            name = str(session.variables.get(name.lstrip("@")) or name)
        return name

    def _compression(self, stmt, level: int | None) -> int | None:
        compression = stmt.options.get("compression", level)
        return None if compression is None else _compression_level(compression)

    async def _dump_to(self, name: str, sinks: list, labels: list[str], compression: int | None,
                       announce: list[str], on_progress=None, db_path: Path | None = None,
                       dump_type: str = "D", archive: bool = False, history: dict | None = None) -> AsyncIterator:
        """Run the striped dump into ready sinks; yields Backup Server lines, then the DumpResult.

        A log dump (dump_type T) dumps the log extract file at db_path the same way."""
        yield Info(MSG_SESSION.format(sid=next(self._sessions)))
        for line in announce:
            yield Info(line)
        if dump_type == "D":
            self._busy(name, "dump")
        started = time.time()
        record = dict(database=name, dump_type=dump_type, labels=labels, archive=archive, started=started,
                      server=self.server.name, compression=compression, **(history or {}))
        try:
            dbpath = db_path or self.server.master.db_path(name)
            work = lambda progress, cancel: dump_database(  # noqa: E731
                server=self.server.name, database=name, db_path=dbpath, sinks=sinks,
                compression=compression, progress=progress, cancel=cancel, dump_type=dump_type,
            )
            async for item in _run_with_progress(work, name, labels, "DUMPED", on_progress):
                if isinstance(item, Info):
                    yield item
                else:
                    result = item
        except (StatusError, OSError) as e:
            text = str(e) if isinstance(e, StatusError) else f"{e.strerror}: {e.filename}"
            err = ServerError(8009, 16, f"Error encountered by Backup Server: {text}")
            err.dump_recorded = True
            dumphist.record_dump(self.server.dumphist, error=err, **record)
            raise err from e
        except BaseException as e:
            e.dump_recorded = True
            dumphist.record_dump(self.server.dumphist, error=e, **record)
            raise
        finally:
            if dump_type == "D":
                self.server.busy.pop(name, None)
        dumphist.record_dump(self.server.dumphist, result=result, **record)
        self.server.master.set_dumpdate(name)
        for phase in (1, 2, 3) if dump_type == "D" else (1,):
            yield Info(f"Backup Server: 3.43.1.1: Dump phase number {phase} completed.")
        kb = result.raw_bytes // 1024
        yield Info(f"Backup Server: 4.188.1.1: Database {name}: {kb} kilobytes (100%) DUMPED.")
        yield Info(f"Backup Server: 3.42.1.1: DUMP is complete (database {name}).")
        yield result

    # -- load ------------------------------------------------------------------
    async def load(self, session: Session, stmt: LoadDatabase) -> AsyncIterator:
        name = self._database_name(session, stmt)
        listing = stmt.options.get("listonly")
        if listing in ("load_sql", "create_sql"):
            # ASE 15.7+: the load sequence (or the DDL of a target) from the dump history
            until = stmt.options.get("until_time")
            if listing == "load_sql":
                sql = await asyncio.to_thread(self.server.dumphist.load_sql, name,
                                              until=dumphist.parse_time(str(until)) if until else None)
            else:
                sql = dumphist.create_sql(name, self.server.master.get(name))
            for line in dumphist.script_lines(sql):
                yield Info(line)
            yield Done()
            return
        if self._archive_devices(stmt):
            async for r in self._archive_load(session, stmt, name):
                yield r
            return
        paths, _level = self._device_paths(session, stmt)
        for p in paths:
            if not p.exists():
                raise ServerError(
                    8009, 16,
                    f"Error encountered by Backup Server: the stripe device '{p}' does not exist. "
                    f"Check the path; nothing was loaded.",
                )
        if stmt.options.get("headeronly") or stmt.options.get("listonly"):
            async for r in self._list(paths, bool(stmt.options.get("listonly"))):
                yield r
            return
        self._check_load_target(name)
        async for item in self._load_from(name, lambda: [FileSource(p) for p in paths], [str(p) for p in paths]):
            if isinstance(item, Info):
                yield item
        yield Done()

    def _check_load_target(self, name: str):
        info = self.server.master.get(name)
        if info is None:
            raise no_such_database(name)
        if name == "master":
            raise ServerError(3108, 16, "LOAD DATABASE of master is not supported by this dataserver.")
        if self.server.users_of(name):
            raise ServerError(
                3101, 16,
                f"Database '{name}' is in use. A user with System Administrator (SA) role must have exclusive use "
                f"of database to run load (sp_who shows who is using it).",
            )
        return info

    async def _load_from(self, name: str, open_sources, labels: list[str], on_progress=None) -> AsyncIterator:
        """Verify every stripe into a temporary file, then swap it in; the target is untouched on failure."""
        info = self._check_load_target(name)
        self._busy(name, "load")
        previous_state = info.state
        target = self.server.master.db_path(name)
        tmp = target.with_name(f".{name}.load.tmp")
        try:
            self.server.master.set_state(name, LOADING)
            yield Info(MSG_SESSION.format(sid=next(self._sessions)))
            sources = open_sources()
            try:
                work = lambda progress, cancel: load_database(  # noqa: E731
                    sources=sources, target_tmp=tmp, progress=progress, cancel=cancel,
                )
                async for item in _run_with_progress(work, name, labels, "LOADED", on_progress):
                    if isinstance(item, Info):
                        yield item
                    else:
                        result = item
            finally:
                for s in sources:
                    with contextlib.suppress(Exception):
                        s.close()
            if info.size_mb and result.page_count * result.page_size > info.size_mb * 2**20:
                need = -(-result.page_count * result.page_size // 2**20)
                raise StatusError(
                    2850, f"data on the dump will not fit into database '{name}' ({info.size_mb} MB): "
                          f"it needs {need} MB. Create the target at least that large.")
            await asyncio.to_thread(_replace_database_file, target, tmp)
        except StatusError as e:
            self.server.master.set_state(name, previous_state)
            tmp.unlink(missing_ok=True)
            raise ServerError(
                8009, 16, f"Error encountered by Backup Server: {e} Database '{name}' was not changed.") from e
        except BaseException:
            self.server.master.set_state(name, previous_state)
            tmp.unlink(missing_ok=True)
            raise
        finally:
            self.server.busy.pop(name, None)
        self.server.master.set_state(name, OFFLINE)
        await self._log_call(name, translog.loaded_full_dump)
        kb = result.page_count * result.page_size // 1024
        yield Info(f"Backup Server: 4.188.1.1: Database {name}: {kb} kilobytes (100%) LOADED.")
        yield Info(f"Backup Server: 3.42.1.1: LOAD is complete (database {name}).")
        yield Info("Use the ONLINE DATABASE command to bring this database online; ASE will not bring it "
                   "online automatically.")
        yield result

    # -- the sybackup:: archive API ---------------------------------------------
    def _archive_devices(self, stmt) -> bool:
        kinds = {d.spec.lower().startswith(ARCHIVE_PREFIX) for d in stmt.devices}
        if kinds == {True, False}:
            raise ServerError(
                8009, 16, "Error encountered by Backup Server: every stripe of one command must use the same "
                          "library: do not mix sybackup:: devices with file devices.")
        if True in kinds:
            if len(stmt.devices) > MAX_STRIPES:
                self._device_paths(None, stmt)  # raises the stripe-limit error
            if self.server.archive is None:
                raise ServerError(
                    8009, 16, "Error encountered by Backup Server: the sybackup:: archive API needs a master "
                              "server: run this dataserver under `sybar serve`.")
            return True
        return False

    async def _archive_dump(self, session: Session, stmt, name: str) -> AsyncIterator:
        agent = self.server.archive
        compression = self._compression(stmt, next((d.compress_level for d in stmt.devices
                                                    if d.compress_level is not None), None))
        point = await self._log_call(name, translog.full_dump_point)
        log_info = {"lsn": point[0], "instance_id": point[1]} if point else {}
        try:
            plan = await agent.begin_dump(session, name, [d.spec for d in stmt.devices], compression,
                                          log_info=log_info)
        except StatusError as e:
            raise ServerError(8009, 16, f"Error encountered by Backup Server: {e} (status {e.status})") from e
        announce = [f"Backup Server: 4.171.1.1: Archive API stripe {s.stripe + 1}: backup object {s.name}, "
                    f"job {s.job_id}" for s in plan.stripes]
        try:
            async for item in self._dump_to(name, plan.sinks, [s.name for s in plan.stripes], compression,
                                            announce, on_progress=lambda p: agent.progress(plan, p), archive=True,
                                            history={"lsn_last": log_info["lsn"]} if log_info else None):
                if isinstance(item, Info):
                    yield item
                else:
                    result = item
            image = await agent.commit_dump(plan, result)
        except BaseException as e:
            await agent.fail_dump(plan, e.__cause__ if isinstance(e, ServerError) and e.__cause__ else e)
            raise
        if point:
            await self._log_call(name, translog.full_dump_done, point[0])
        yield Info(f"sybackup: image {image.backup_id} recorded in the catalog: {len(plan.stripes)} stripes, "
                   f"{image.kbytes} KB, policy {image.policy}, schedule {image.schedule}.")
        yield Done()

    async def _archive_load(self, session: Session, stmt, name: str) -> AsyncIterator:
        agent = self.server.archive
        if stmt.options.get("headeronly") or stmt.options.get("listonly"):
            raise ServerError(8009, 16, "Error encountered by Backup Server: for sybackup:: dumps, "
                                        "`sybar list` and the catalog browser show what a dump holds.")
        self._check_load_target(name)
        try:
            plan = await agent.begin_load(session, name, [d.spec for d in stmt.devices])
        except StatusError as e:
            raise ServerError(8009, 16, f"Error encountered by Backup Server: {e} (status {e.status}) "
                                        f"Database '{name}' was not changed.") from e
        error = None
        try:
            names = [o.name for o in sorted(plan.image.objects, key=lambda o: o.stripe)]
            async for item in self._load_from(name, lambda: plan.sources, names,
                                              on_progress=lambda p: agent.load_progress(plan, p)):
                if isinstance(item, Info):
                    yield item
        except BaseException as e:
            error = e.__cause__ if isinstance(e, ServerError) and e.__cause__ else e
            raise
        finally:
            await agent.end_load(plan, error)
        yield Done()

    # -- transaction log --------------------------------------------------------
    async def dump_transaction(self, session: Session, stmt) -> AsyncIterator:
        name = self._database_name(session, stmt)
        info = self.server.master.get(name)
        if info is None:
            raise no_such_database(name)
        if name == "master":
            raise ServerError(4207, 16, "DUMP TRANSACTION of master is not allowed: master has no separate log. "
                                        "Use dump database master.")
        if info.state != ONLINE:
            raise database_unavailable(name, info.state)
        if stmt.options.get("truncate_only") or stmt.options.get("no_log"):
            how = "truncate_only" if stmt.options.get("truncate_only") else "no_log"
            await self._log_call(name, translog.truncate_only, f"dump transaction with {how} at "
                                                               f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
            yield Info(f"Truncated the transaction log of database '{name}' without dumping it. Its log chain "
                       "is broken: the next dump transaction needs a dump database first.")
            yield Done()
            return
        if not stmt.devices:
            raise ServerError(102, 15, "Incorrect syntax near the end of the statement: DUMP TRANSACTION needs "
                                       "a 'to' device, or 'with truncate_only'.")
        self._busy(name, "log dump")
        extract_path = self.server.master.db_path(name).with_name(f".{name}.logdump.{os.getpid()}.tmp")
        try:
            try:
                extract = await asyncio.to_thread(self._extract, name, extract_path)
            except StatusError as e:
                raise ServerError(4221, 16, f"DUMP TRANSACTION failed: {e}") from e
            summary = (f"Transaction log of '{name}': LSN {extract.first_lsn} to {extract.last_lsn}, "
                       f"{extract.count} records"
                       + (f", commits from {_when(extract.first_commit)} to {_when(extract.last_commit)}."
                          if extract.count else " (nothing committed since the last log dump)."))
            if self._archive_devices(stmt):
                async for r in self._archive_log_dump(session, stmt, name, extract, extract_path, summary):
                    yield r
            else:
                paths, level = self._device_paths(session, stmt)
                _make_parents(paths)
                try:
                    sinks = file_sinks(paths)
                except StatusError as e:
                    raise ServerError(8009, 16, f"Error encountered by Backup Server: {e}") from e
                announce = [summary] + [f"Backup Server: 4.41.1.1: Creating new disk file {p}." for p in paths]
                async for item in self._dump_to(name, sinks, [str(p) for p in paths], self._compression(stmt, level),
                                                announce, db_path=extract_path, dump_type="T",
                                                history=_log_history(extract)):
                    if isinstance(item, Info):
                        yield item
            # stored: only now does the log forget what it dumped
            await self._log_call(name, translog.truncate_log, extract.last_lsn)
        finally:
            self.server.busy.pop(name, None)
            for suffix in ("", "-wal", "-shm"):
                extract_path.with_name(extract_path.name + suffix).unlink(missing_ok=True)
        yield Done()

    def _extract(self, name: str, extract_path: Path):
        path = self.server.master.db_path(name)
        con = open_database(path)
        try:
            translog.ensure_capture(con)
        finally:
            con.close()
        return translog.extract_log(path, extract_path, database=name)

    async def _archive_log_dump(self, session: Session, stmt, name: str, extract, extract_path: Path,
                                summary: str) -> AsyncIterator:
        agent = self.server.archive
        compression = self._compression(stmt, None)
        log_info = {"first_lsn": extract.first_lsn, "last_lsn": extract.last_lsn,
                    "first_commit": extract.first_commit, "last_commit": extract.last_commit,
                    "instance_id": extract.instance_id, "standby": bool(stmt.options.get("standby_access"))}
        try:
            plan = await agent.begin_dump(session, name, [d.spec for d in stmt.devices], compression,
                                          dump_type="T", log_info=log_info)
        except StatusError as e:
            raise ServerError(8009, 16, f"Error encountered by Backup Server: {e} (status {e.status})") from e
        announce = [summary] + [f"Backup Server: 4.171.1.1: Archive API stripe {s.stripe + 1}: backup object "
                                f"{s.name}, job {s.job_id}" for s in plan.stripes]
        try:
            async for item in self._dump_to(name, plan.sinks, [s.name for s in plan.stripes], compression, announce,
                                            on_progress=lambda p: agent.progress(plan, p), db_path=extract_path,
                                            dump_type="T", archive=True, history=_log_history(extract)):
                if isinstance(item, Info):
                    yield item
                else:
                    result = item
            image = await agent.commit_dump(plan, result)
        except BaseException as e:
            await agent.fail_dump(plan, e.__cause__ if isinstance(e, ServerError) and e.__cause__ else e)
            raise
        yield Info(f"sybackup: log dump {image.backup_id} recorded in the catalog: {len(plan.stripes)} stripes, "
                   f"LSN {extract.first_lsn}-{extract.last_lsn}.")

    async def load_transaction(self, session: Session, stmt) -> AsyncIterator:
        name = self._database_name(session, stmt)
        info = self.server.master.get(name)
        if info is None:
            raise no_such_database(name)
        if info.state not in (OFFLINE, STANDBY):
            raise ServerError(
                4306, 16,
                f"LOAD TRANSACTION needs database '{name}' loaded from a full dump and not yet online (or online "
                f"for standby access); it is '{info.state}'. Run load database {name} first.")
        if info.state == OFFLINE and self.server.users_of(name):
            raise ServerError(3101, 16, f"Database '{name}' is in use; load transaction needs exclusive use.")
        until = None
        if stmt.options.get("until_time"):
            try:
                until = translog.parse_until_time(str(stmt.options["until_time"]))
            except StatusError as e:
                raise ServerError(4324, 16, str(e)) from e
        target = self.server.master.db_path(name)
        tmp = target.with_name(f".{name}.logload.tmp")
        archive = self._archive_devices(stmt)
        plan = None
        self._busy(name, "log load")
        try:
            if archive:
                try:
                    plan = await self.server.archive.begin_load(session, name, [d.spec for d in stmt.devices],
                                                                dump_type="T")
                except StatusError as e:
                    raise ServerError(8009, 16, f"Error encountered by Backup Server: {e} (status {e.status}) "
                                                f"Database '{name}' was not changed.") from e
                sources, labels = plan.sources, [o.name for o in sorted(plan.image.objects, key=lambda o: o.stripe)]
                on_progress = lambda p: self.server.archive.load_progress(plan, p)  # noqa: E731
            else:
                paths, _ = self._device_paths(session, stmt)
                missing = [p for p in paths if not p.exists()]
                if missing:
                    raise ServerError(8009, 16, f"Error encountered by Backup Server: the stripe device "
                                                f"'{missing[0]}' does not exist. Database '{name}' was not changed.")
                sources, labels, on_progress = [FileSource(p) for p in paths], [str(p) for p in paths], None
            yield Info(MSG_SESSION.format(sid=next(self._sessions)))
            try:
                work = lambda progress, cancel: load_database(  # noqa: E731
                    sources=sources, target_tmp=tmp, progress=progress, cancel=cancel, expect_dump_type="T")
                async for item in _run_with_progress(work, name, labels, "LOADED", on_progress):
                    if isinstance(item, Info):
                        yield item
                applied = await asyncio.to_thread(translog.apply_log, target, tmp, until=until, database=name)
            except StatusError as e:
                raise ServerError(4305, 16, f"LOAD TRANSACTION failed: {e} Database '{name}' was not changed.") \
                    from e
            finally:
                for src in sources:
                    with contextlib.suppress(Exception):
                        src.close()
        except BaseException as e:
            if plan is not None:
                await self.server.archive.end_load(plan, e.__cause__ if isinstance(e, ServerError) and e.__cause__
                                                   else e)
            raise
        finally:
            self.server.busy.pop(name, None)
            tmp.unlink(missing_ok=True)
        if plan is not None:
            await self.server.archive.end_load(plan, None)
        yield Info(f"Backup Server: 3.42.1.1: LOAD is complete (database {name}).")
        stop = (f" It stopped at until_time {_when(applied.stopped_at)}: no further log dump can be loaded."
                if applied.stopped_at is not None else "")
        yield Info(f"Applied {applied.applied_transactions} transactions ({applied.applied_records} records, up to "
                   f"LSN {applied.last_lsn_applied}"
                   + (f", last commit {_when(applied.last_commit)}" if applied.last_commit else "") + ")." + stop)
        yield Info("Use the ONLINE DATABASE command to bring this database online; ASE will not bring it "
                   "online automatically.")
        yield Done()

    async def _list(self, paths: list[Path], listonly: bool) -> AsyncIterator:
        sources = [FileSource(p) for p in paths]
        try:
            headers = await asyncio.to_thread(list_dump, sources)
        except StatusError as e:
            raise ServerError(8009, 16, f"Error encountered by Backup Server: {e}") from e
        finally:
            for s in sources:
                with contextlib.suppress(OSError):
                    s.close()
        for p, h in zip(paths, headers, strict=True):
            kind = "database" if h.dump_type == "D" else "transaction log"
            yield Info(
                f"This is a {kind} dump of database '{h.database}' from server {h.server}, taken {h.created}: "
                f"stripe {h.stripe + 1} of {h.stripes} on '{p}', dump id {h.dump_id}.")
            yield Info(
                f"Database page size is {h.page_size}. Database contains {h.page_count} pages; this stripe holds "
                f"pages {h.stripe_first_page} to {h.stripe_first_page + h.stripe_page_count - 1}. Compression: "
                f"{'zstd level ' + str(h.compression_level) if h.compression else 'none'}.")
        if listonly:
            yield Info("All stripes listed; no database was loaded.")
        yield Done()


def _log_history(extract) -> dict:
    return {"lsn_first": extract.first_lsn, "lsn_last": extract.last_lsn,
            "until_time": extract.last_commit or time.time()}


def _make_parents(paths: list[Path]) -> None:
    for p in paths:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ServerError(8009, 16, f"Error encountered by Backup Server: cannot create the folder of stripe "
                                        f"device '{p}': {e.strerror}.") from e


def _when(unix: float | None) -> str:
    if unix is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix)) + f".{int(unix * 1000) % 1000:03d}"


def _compression_level(value) -> int:
    try:
        level = int(value)
    except (TypeError, ValueError):
        raise ServerError(102, 15, f"Incorrect syntax near '{value}': compression takes a number 0-9, 100 or 101.") \
            from None
    if not (0 <= level <= 9 or level in (100, 101)):
        raise ServerError(
            7205, 16, f"Compression level {level} is not valid: use 0 to 9, or the fast levels 100 and 101.")
    return level


async def _run_with_progress(work, database: str, labels: list[str], verb: str, on_progress=None) -> AsyncIterator:
    """Run a Backup Server call in a thread and yield its progress as Backup Server lines.

    The call's result is yielded last. Cancelling (an attention from the client)
    sets the call's cancel event and waits for it to clean up.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()
    last: dict[int, tuple[float, int]] = {}

    def progress(p) -> None:
        if on_progress is not None:
            on_progress(p)  # job accounting: every event (the job manager throttles)
        pct = int(100 * p.bytes_done / p.bytes_total) if p.bytes_total else 100
        now = time.monotonic()
        t, step = last.get(p.stripe, (0.0, -1))
        if step == 10:
            return  # this stripe's 100 % line is out already
        if pct // 10 != step or now - t >= PROGRESS_EVERY:
            last[p.stripe] = (now, pct // 10)
            loop.call_soon_threadsafe(queue.put_nowait, (p, pct))

    future = loop.run_in_executor(None, work, progress, cancel)
    announced: set[int] = set()
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, future}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                p, pct = getter.result()
                if p.stripe not in announced:
                    announced.add(p.stripe)
                    yield Info(f"Backup Server: 6.28.1.1: Dumpfile name '{database}' section number 1 mounted on "
                               f"'{labels[p.stripe]}' (stripe {p.stripe + 1} of {p.stripes})")
                yield Info(f"Backup Server: 4.188.1.1: Database {database}: stripe {p.stripe + 1} of {p.stripes}: "
                           f"{p.bytes_done // 1024} kilobytes ({pct}%) {verb}.")
            else:
                getter.cancel()
                break
        result = future.result()
    except asyncio.CancelledError:
        cancel.set()
        with contextlib.suppress(BaseException):
            await asyncio.shield(future)
        raise
    yield result


def _replace_database_file(target: Path, loaded: Path) -> None:
    """Swap the loaded file in for the target, atomically.

    The target's WAL must go first: SQLite would otherwise replay the old
    database's log over the loaded pages. Checkpointing with TRUNCATE folds it
    in and empties it; closing the last connection removes it.
    """
    con = open_database(target)
    try:
        con.execute("pragma wal_checkpoint(truncate)")
    finally:
        con.close()
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    os.replace(loaded, target)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["BackupServer", "FOR_LOAD"]
