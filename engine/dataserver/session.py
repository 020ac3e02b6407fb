"""One client session: runs T-SQL batches and answers in ASE's words.

Every statement runs off the event loop (SQLite calls in a worker thread), so
a long select or a dump in one session never stalls the others. Errors become
ASE ``Msg`` messages; a failing statement ends that statement, not the batch,
as ASE does for run-time errors.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from engine.dataserver import procs, translog, tsql
from engine.dataserver.errors import ServerError, database_unavailable, from_sqlite, no_such_database
from engine.dataserver.master import NAME_RE, ONLINE, STANDBY, open_database
from engine.dataserver.results import INFER_ROWS, convert_row, infer_columns
from engine.tds.replies import DatabaseChanged, Done, Error, Info, ResultFormat, ResultRow

if TYPE_CHECKING:
    from engine.dataserver.server import Dataserver

log = logging.getLogger(__name__)

FETCH_ROWS = 500
WHILE_LIMIT = 1_000_000  # a runaway while loop ends with an error rather than holding a session forever
_COLUMN_NAME = re.compile(r"^[A-Za-z_@#][\w@#$]*$")
# statements that change a database (logged), and among them those that change its schema
DDL_KINDS = frozenset({"create_table", "drop_table", "create_index", "drop_index", "create_view", "drop_view",
                       "alter_table", "select_into"})
WRITE_KINDS = DDL_KINDS | {"insert", "update", "delete", "truncate"}


class Session:
    def __init__(self, server: Dataserver, spid: int, user: str, host: str, app: str,
                 client_pid: int | None = None, local_client: bool = False):
        self.server = server
        self.client_pid = client_pid      # the isql's pid, as its login says
        self.local_client = local_client  # connected over loopback: its pid is ours to look up
        self.job_id: int | None = None    # set for the daemon's own sessions (restore of an image)
        self.spid = spid
        self.user = user
        self.host = host
        self.app = app
        self.database = "master"
        self.command = "AWAITING COMMAND"
        self.variables: dict[str, object] = {}
        self.rowcount = 0
        self.error = 0
        self.trancount = 0
        self.nocount = False
        self.row_limit = 0
        self._con: sqlite3.Connection | None = open_database(server.master.db_path("master"), decltypes=True)
        self._log = translog.LogWriter()  # this connection's transactions -> the database's log

    # -- the TDS server's Session protocol ------------------------------------
    async def execute(self, sql: str) -> AsyncIterator:
        try:
            statements = tsql.parse_batch(sql, control_flow=True)
        except tsql.TSQLSyntaxError as e:
            self.error = e.number
            yield Error(e.number, 15, e.message, line=e.line)
            yield Done(error=True)
            return
        try:
            async for reply in self._run_block(statements):
                yield reply
        except _Return:
            pass  # return ends the batch
        except (_Break, _Continue):
            yield Error(156, 15, "break or continue outside a while loop.")
            yield Done(error=True)

    async def _run_block(self, statements) -> AsyncIterator:
        """Statements in order, with if/else and while (scripts test @@error after a dump)."""
        for stmt in statements:
            match stmt:
                case tsql.If():
                    holds = await self._condition(stmt)
                    if holds is None:  # the condition itself failed: its error is out, the branch skipped
                        yield self._last_error
                        yield Done(error=True)
                        continue
                    async for r in self._run_block(stmt.then if holds else stmt.otherwise):
                        yield r
                case tsql.While():
                    for _ in range(WHILE_LIMIT):
                        holds = await self._condition(stmt)
                        if holds is None:
                            yield self._last_error
                            yield Done(error=True)
                        if not holds:
                            break
                        try:
                            async for r in self._run_block(stmt.body):
                                yield r
                        except _Break:
                            break
                        except _Continue:
                            continue
                    else:
                        yield Error(7236, 16, f"while loop stopped after {WHILE_LIMIT} iterations.", line=stmt.line)
                        yield Done(error=True)
                case tsql.Break():
                    raise _Break
                case tsql.Continue():
                    raise _Continue
                case tsql.Return():
                    raise _Return
                case _:
                    async for r in self._run_one(stmt):
                        yield r

    async def _condition(self, stmt) -> bool | None:
        try:
            params = self.parameters(stmt.params)
            row = await asyncio.to_thread(lambda: self._con.execute(stmt.sqlite, params).fetchone())
            return bool(row and row[0])
        except (ServerError, sqlite3.Error) as e:
            err = from_sqlite(e) if isinstance(e, sqlite3.Error) else e
            self.error = err.number
            self._last_error = Error(err.number, err.severity, err.text, state=err.state, line=stmt.line)
            return None

    async def _run_one(self, stmt) -> AsyncIterator:
        self.command = tsql.statement_kind(stmt).upper()
        try:
            async for reply in self._run(stmt):
                yield reply
            self.error = 0
        except ServerError as e:
            self.error = e.number
            yield Error(e.number, e.severity, e.text, state=e.state, line=stmt.line)
            yield Done(error=True)
        except sqlite3.Error as e:
            err = from_sqlite(e)
            self.error = err.number
            yield Error(err.number, err.severity, err.text, state=err.state, line=stmt.line)
            yield Done(error=True)
        except asyncio.CancelledError:
            if self._con is not None:
                self._con.interrupt()
            raise
        finally:
            self.command = "AWAITING COMMAND"

    async def close(self) -> None:
        self.server.session_ended(self)
        con, self._con = self._con, None
        if con is not None:
            await asyncio.to_thread(_close_quietly, con)

    # -- statements ------------------------------------------------------------
    async def _run(self, stmt) -> AsyncIterator:
        match stmt:
            case tsql.Sql():
                async for r in self._run_sql(stmt):
                    yield r
            case tsql.Use():
                yield await self._use(stmt.database)
                yield Done()
            case tsql.Print():
                yield Info(self._format_print(stmt))
                yield Done()
            case tsql.SetOption():
                self._set_option(stmt.name, stmt.value)
                yield Done()
            case tsql.Declare():
                for name, _type in stmt.variables:
                    self.variables[_var(name)] = None
                yield Done()
            case tsql.SelectAssign():
                await self._assign(stmt)
                yield Done()
            case tsql.Execute():
                async for r in procs.run(self, stmt):
                    yield r
            case tsql.BeginTransaction():
                if self.trancount == 0:
                    await self._sql_quiet("begin")
                self.trancount += 1
                yield Done()
            case tsql.CommitTransaction():
                if self.trancount > 0:
                    self.trancount -= 1
                    if self.trancount == 0:
                        await asyncio.to_thread(self._commit)
                yield Done()
            case tsql.RollbackTransaction():
                if self.trancount > 0:
                    self.trancount = 0
                    await asyncio.to_thread(self._rollback)
                yield Done()
            case tsql.Checkpoint():
                await self._sql_quiet("pragma wal_checkpoint(passive)")
                yield Done()
            case tsql.Raiserror():
                number = stmt.number
                if isinstance(number, str):
                    number = int(self.variables.get(_var(number)) or 50000)
                text = self._format_print(tsql.Print(message=stmt.message or "", args=stmt.args,
                                                     text=stmt.text, line=stmt.line))
                self.error = number
                raise ServerError(number, 16, text)
            case tsql.Waitfor():
                await asyncio.sleep(self._wait_seconds(stmt))
                yield Done()
            case tsql.CreateDatabase() | tsql.DropDatabase() | tsql.OnlineDatabase():
                async for r in self.server.databases.run(self, stmt):
                    yield r
            case tsql.DumpDatabase() | tsql.LoadDatabase() | tsql.DumpTransaction() | tsql.LoadTransaction():
                async for r in self.server.backup.run(self, stmt):
                    yield r
            case _:
                raise ServerError(102, 15, f"Incorrect syntax near '{stmt.text.split()[0]}'.")

    async def _use(self, name: str) -> DatabaseChanged:
        info = self.server.master.get(name)
        if info is None:
            raise no_such_database(name)
        if info.state not in (ONLINE, STANDBY):
            raise database_unavailable(name, info.state)
        if name == self.database:
            return DatabaseChanged(name, name)
        if self.trancount:
            raise ServerError(226, 16, "USE DATABASE is not allowed in a multi-statement transaction.")
        con = await asyncio.to_thread(self._open_user_database, name, info.state == STANDBY)
        old, self._con = self._con, con
        self._log = translog.LogWriter()
        previous = self.database
        self.database = name
        if old is not None:
            await asyncio.to_thread(_close_quietly, old)
        return DatabaseChanged(name, previous)

    def _open_user_database(self, name: str, read_only: bool):
        con = open_database(self.server.master.db_path(name), decltypes=True)
        if name != "master":
            translog.ensure_capture(con)   # tables made outside the dataserver get their log triggers too
        if read_only:
            con.execute("pragma query_only = 1")  # a standby database takes changes only from log loads
        return con

    async def leave_database(self) -> None:
        """Move this session to master (before its database is dropped or loaded)."""
        if self.database != "master":
            await self._use("master")

    async def _sql_quiet(self, sql: str) -> None:
        await asyncio.to_thread(self._con.execute, sql)

    def parameters(self, names) -> dict:
        globals_ = {
            "__version": self.server.version,
            "__servername": self.server.name,
            "__spid": self.spid,
            "__rowcount": self.rowcount,
            "__error": self.error,
            "__trancount": self.trancount,
            "__db_name": self.database,
            "__suser_name": self.user,
            "__user_name": "dbo" if self.user == "sa" else self.user,
            "__host_name": self.host,
        }
        out = {}
        for name in names:
            if name in globals_:
                out[name] = globals_[name]
            elif name.startswith("v_"):
                key = name[2:]
                if key not in self.variables:
                    raise ServerError(137, 15, f"Must declare variable '@{key}'.")
                out[name] = self.variables[key]
            else:
                raise ServerError(137, 15, f"Must declare variable '{name}'.")
        return out

    def _logged(self) -> bool:
        """Changes to user databases go to their transaction log; master has none."""
        return self.database != "master"

    def _commit(self) -> None:
        if self._logged():
            self._log.commit(self._con)   # the log records, inside the transaction they describe
        self._con.execute("commit")

    def _rollback(self) -> None:
        self._con.execute("rollback")
        self._log.rollback()

    def _write(self, stmt, params: dict):
        """A statement that changes the database, with its log records, atomically.

        In autocommit mode it runs in a transaction of its own (so that the log
        records commit with the change); inside begin tran it joins that one.
        """
        con = self._con
        own = self.trancount == 0 and not con.in_transaction
        if own:
            con.execute("begin immediate")
        ddl = self._logged() and stmt.kind in DDL_KINDS
        try:
            if ddl:
                self._log.before_ddl(con)
            cursor = con.execute(stmt.sqlite, params)
            if ddl:
                self._log.ddl(con, stmt.sqlite)
            if own:
                self._commit()
            return cursor
        except BaseException:
            if own and con.in_transaction:
                self._rollback()
            raise

    async def _run_sql(self, stmt) -> AsyncIterator:
        params = self.parameters(stmt.params)
        limit = self.row_limit
        if stmt.kind in WRITE_KINDS:
            cursor = await asyncio.to_thread(self._write, stmt, params)
            self.rowcount = max(cursor.rowcount, 0)
            yield Done(count=None if self.nocount or stmt.kind in DDL_KINDS else self.rowcount)
            return
        cursor, head, more = await asyncio.to_thread(self._start_query, stmt.sqlite, params, limit)
        if cursor.description is None:
            self.rowcount = max(cursor.rowcount, 0)
            yield Done(count=None if self.nocount else self.rowcount)
            return
        # ASE gives an unnamed expression (count(*), getdate(), 1) an empty header, not its text
        names = [d[0] if _COLUMN_NAME.match(d[0] or "") else "" for d in cursor.description]
        columns = infer_columns(names, head, complete=not more)
        yield ResultFormat(columns)
        sent = 0
        for row in head:
            yield ResultRow(convert_row(columns, row))
            sent += 1
        while more:
            rows = await asyncio.to_thread(cursor.fetchmany, FETCH_ROWS)
            if limit:
                rows = rows[: max(limit - sent, 0)]
            for row in rows:
                yield ResultRow(convert_row(columns, row))
            sent += len(rows)
            more = len(rows) == FETCH_ROWS and not (limit and sent >= limit)
        self.rowcount = sent
        yield Done(count=None if self.nocount else sent)

    def _start_query(self, sql: str, params: dict, limit: int):
        cursor = self._con.execute(sql, params)
        if cursor.description is None:
            return cursor, [], False
        want = INFER_ROWS if not limit else min(limit, INFER_ROWS)
        head = cursor.fetchmany(want)
        more = len(head) == want and not (limit and len(head) >= limit)
        return cursor, head, more

    async def _assign(self, stmt) -> None:
        """select @a = expr ...: ASE assigns from the last row, and leaves the variables alone on none."""
        params = self.parameters(stmt.params)

        def last_row():
            row = None
            for row in self._con.execute(stmt.sqlite, params):  # noqa: B007 - keep the last
                pass
            return row

        row = await asyncio.to_thread(last_row)
        if row is not None:
            for (name, _expr), value in zip(stmt.assignments, row, strict=True):
                self.variables[_var(name)] = value
        self.rowcount = 1 if row is not None else 0

    def _format_print(self, stmt) -> str:
        def value(arg: str):
            if arg.startswith("@@"):
                return self.parameters(["__" + arg[2:].lower()])["__" + arg[2:].lower()]
            if arg.startswith("@"):
                if _var(arg) not in self.variables:
                    raise ServerError(137, 15, f"Must declare variable '{arg}'.")
                v = self.variables[_var(arg)]
                return "" if v is None else v
            return arg

        text = str(value(stmt.message)) if stmt.message.startswith("@") else stmt.message
        for i, arg in enumerate(stmt.args, start=1):
            text = text.replace(f"%{i}!", str(value(arg)))
        return text

    def _wait_seconds(self, stmt) -> float:
        if stmt.delay_seconds is not None:
            return stmt.delay_seconds
        if stmt.variable:
            value = self.variables.get(_var(stmt.variable))
            h, m, sec = (str(value or "0:0:0").split(":") + ["0", "0"])[:3]
            return int(h) * 3600 + int(m) * 60 + float(sec)
        raise ServerError(4221, 16, "waitfor time is not supported by this dataserver; use waitfor delay.")

    def _set_option(self, name: str, value) -> None:
        name = name.lower()
        if name == "nocount":
            self.nocount = str(value).lower() == "on"
        elif name == "rowcount":
            if isinstance(value, str) and value.startswith("@"):
                value = self.variables.get(_var(value)) or 0
            try:
                self.row_limit = max(int(value), 0)
            except (TypeError, ValueError):
                raise ServerError(102, 15, f"Incorrect syntax near '{value}': set rowcount takes a number.") from None
        # textsize, quoted_identifier, chained, isolation ...: accepted, no effect here


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    pass


def _var(name: str) -> str:
    return name.lstrip("@")


def _close_quietly(con: sqlite3.Connection) -> None:
    try:
        if con.in_transaction:
            con.execute("rollback")
        con.close()
    except sqlite3.Error:
        log.debug("closing a session connection failed", exc_info=True)


def valid_database_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ServerError(
            102, 15,
            f"'{name}' is not a valid database name: use a letter or underscore, then letters, digits or "
            "underscores, 30 characters at most.",
        )
