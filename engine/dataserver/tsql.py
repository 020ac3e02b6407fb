"""The T-SQL front end of sybar's dataserver: isql input in, typed statements out.

Sans-I/O and stdlib only. Three layers:

* ``split_batches(script)`` cuts an isql input file into batches the way
  isql does (``go`` / ``go N`` lines; ``reset``; ``quit`` / ``exit``).
* ``parse_batch(sql)`` splits one batch into statements -- T-SQL needs no
  separators, ``set textsize 64512 select @@spid`` is two statements -- and
  classifies each into the dataclasses below. Whatever goes to SQLite is a
  ``Sql`` carrying the translated text (see ``tsql_sqlite.py`` for the
  translation rules) and the parameters it uses.
* ``find_backup_statements(script)`` finds every dump/load/online statement in
  a whole file, with file line numbers, for the script linter.

Control-of-flow (``if``/``else``, ``while``, ``break``, ``continue``,
``return``, ``raiserror``) is parsed only with ``parse_batch(...,
control_flow=True)`` (``If`` / ``While`` statements hold their bodies; see
``walk``); by default it is refused with a syntax error that says so, until
the dataserver runs it. ``find_backup_statements`` always looks inside it.

Anything that cannot be classified raises ``TSQLSyntaxError`` -- never any
other exception -- carrying what ASE's ``Msg 102, Level 15, State 1: ...
Incorrect syntax near 'X'.`` needs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from engine.dataserver.tsql_lex import (
    BRACKET,
    DSTR,
    GVAR,
    NUM,
    OP,
    RESERVED,
    SHELL,
    SSTR,
    VAR,
    WORD,
    Token,
    TSQLSyntaxError,
    block_comment_end,
    tokenize,
)
from engine.dataserver.tsql_sqlite import (
    FUNCTION_PARAM,
    GLOBAL_PARAM,
    NOW,
    Translator,
    param_name,
    parameters_in,
)

__all__ = [
    "TSQLSyntaxError", "Batch", "split_batches", "parse_batch", "statement_kind", "find_backup_statements",
    "GLOBAL_PARAM", "FUNCTION_PARAM", "NOW", "param_name", "parameters_in",
    "Arg", "Device", "Statement", "Use", "CreateDatabase", "DropDatabase", "OnlineDatabase",
    "DumpLoad", "DumpDatabase", "DumpTransaction", "LoadDatabase", "LoadTransaction",
    "Print", "SetOption", "Declare", "SelectAssign", "SetVariable", "Execute",
    "BeginTransaction", "CommitTransaction", "RollbackTransaction", "Checkpoint", "Waitfor", "Sql",
    "If", "While", "Break", "Continue", "Return", "Raiserror", "walk",
]


# ===================================================================================================
# Values and statements
# ===================================================================================================
class Arg(str):
    """A literal or variable as written, quotes removed; a plain ``str`` with a ``kind``.

    kind: ``string`` ('x' / "x"), ``number`` (``-1``, ``2.5``: the text), ``name`` (a bare word),
    ``variable`` (``@x``: the text with its ``@``), ``global`` (``@@spid``), ``null`` (text ``null``),
    ``default`` (the ``default`` keyword in an exec argument), ``shell`` (``$VAR`` in shell mode).
    """

    kind: str

    def __new__(cls, value: str, kind: str = "string"):
        obj = super().__new__(cls, value)
        obj.kind = kind
        return obj

    @property
    def is_variable(self) -> bool:
        return self.kind in ("variable", "global")

    @property
    def is_null(self) -> bool:
        return self.kind == "null"


@dataclass(frozen=True)
class Device:
    """One stripe of a dump or load.

    ``spec``: the device string without its ``compress::[N::]`` prefix (quotes removed), a bare
    logical dump-device name, or a variable ``@path`` (then ``is_variable``). ``compress_level``:
    N from ``compress::N::``, 1 for a plain ``compress::``, else None. ``backup_server``: the name
    after ``at``. ``options``: per-stripe ``density/blocksize/capacity/dumpvolume/file = ...``.
    """

    spec: str
    compress_level: int | None = None
    is_variable: bool = False
    backup_server: str | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Statement:
    """``text``: the statement's exact source text; ``line``: 1-based line of its first token
    (``first_line`` based). Neither takes part in ``==``."""

    text: str = field(default="", compare=False)
    line: int = field(default=1, compare=False)


@dataclass(frozen=True, kw_only=True)
class Use(Statement):
    database: str


@dataclass(frozen=True, kw_only=True)
class CreateDatabase(Statement):
    """``size_mb``: the sum of the data sizes given (``on dev = 100``, ``'1G'``...), None if none;
    ``log_size_mb`` likewise for ``log on``. ``options``: ``with`` options (``override`` ...),
    ``temporary``/``inmemory``/``proxy_update`` flags."""

    name: str
    size_mb: int | None = None
    for_load: bool = False
    log_size_mb: int | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DropDatabase(Statement):
    names: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class OnlineDatabase(Statement):
    database: str
    for_standby_access: bool = False


@dataclass(frozen=True, kw_only=True)
class DumpLoad(Statement):
    """Base of the four dump/load statements. ``database`` may be a variable (``"@db"``, an ``Arg``).

    ``options``: the ``with`` options, keys lower-case; a bare flag is True, a number an int,
    anything else a str (an ``Arg``, quotes removed; ``verify``/``notify``/``listonly`` values
    lower-cased). Also ``cumulative`` (``dump database db cumulative to ...``) and ``config``
    (``using config = 'x'``). ``devices`` is empty for ``dump tran db with truncate_only``.
    """

    database: str
    devices: tuple[Device, ...] = ()
    options: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DumpDatabase(DumpLoad):
    """``config``: the dump configuration named by ``using config = NAME`` (also in
    ``options["config"]``), else None; with a config and no ``to`` clause ``devices`` is empty
    (the configuration supplies them); a ``to`` clause given as well wins."""

    config: str | None = None


@dataclass(frozen=True, kw_only=True)
class DumpTransaction(DumpLoad):
    """``config``: as for ``DumpDatabase``."""

    config: str | None = None


@dataclass(frozen=True, kw_only=True)
class LoadDatabase(DumpLoad):
    """``load database db with listonly = load_sql | create_sql [, until_time = '...']`` may
    omit the ``from`` clause (the server reads its dump history): ``devices`` is then empty."""


@dataclass(frozen=True, kw_only=True)
class LoadTransaction(DumpLoad):
    pass


@dataclass(frozen=True, kw_only=True)
class Print(Statement):
    """``print 'fmt %1!', @x``: ``message`` is the format string (or ``@var``: an ``Arg`` with
    kind ``variable``), ``args`` the arguments (``Arg``: variables keep their ``@``)."""

    message: str
    args: tuple[str, ...] = ()

    @property
    def parts(self) -> tuple[str, ...]:
        return (self.message, *self.args)


@dataclass(frozen=True, kw_only=True)
class SetOption(Statement):
    """``set nocount on`` -> name ``nocount``, value ``"on"``; ``set textsize 64512`` -> 64512;
    ``set transaction isolation level read committed`` -> name ``transaction isolation level``,
    value 1; ``set identity_insert t on`` -> target ``t``. Names lower-case, words joined by one space;
    ``on``/``off`` lower-case; numbers int; strings/words/variables as ``Arg``."""

    name: str
    value: str | int
    target: str | None = None


@dataclass(frozen=True, kw_only=True)
class Declare(Statement):
    """``declare @a int, @b varchar(30)`` -> ``(("@a", "int"), ("@b", "varchar(30)"))``."""

    variables: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class SelectAssign(Statement):
    """``select @a = expr, @b = expr2 [from ...]`` (also ``set @a = expr``).

    ``assignments``: ``(("@a", sqlite_expr), ...)`` -- each expression already translated for
    SQLite (``parameters_in(expr)`` lists its parameters). ``sqlite``: the whole statement as a
    SQLite select returning one column per assignment (with its from/where clauses); ASE assigns
    from the last row it returns, and leaves the variables alone when there is none.
    ``params``: parameters used by ``sqlite``."""

    assignments: tuple[tuple[str, str], ...]
    sqlite: str = ""
    params: tuple[str, ...] = ()


SetVariable = SelectAssign


@dataclass(frozen=True, kw_only=True)
class Execute(Statement):
    """``[exec[ute]] [@rc =] proc arg, @name = arg [output], ...``.

    ``procedure`` as written (``sp_helpdb``, ``master..sp_helpdb``); ``args``: positional
    arguments; ``named``: ``{"dbname": "x"}`` for ``@dbname = 'x'`` (key without ``@``); all values
    ``Arg`` (quotes removed; variables keep their ``@``). ``return_status``: ``"@rc"`` or None."""

    procedure: str
    args: tuple[str, ...] = ()
    named: dict = field(default_factory=dict)
    return_status: str | None = None


@dataclass(frozen=True, kw_only=True)
class BeginTransaction(Statement):
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class CommitTransaction(Statement):
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class RollbackTransaction(Statement):
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class Checkpoint(Statement):
    """``checkpoint`` (current database: ``databases == ()``), ``checkpoint db1, db2``, ``checkpoint all``."""

    databases: tuple[str, ...] = ()
    all_databases: bool = False


@dataclass(frozen=True, kw_only=True)
class Waitfor(Statement):
    """``waitfor delay '00:00:05'`` -> delay_seconds 5.0; ``waitfor delay @v`` -> variable ``"@v"``
    (delay_seconds None: the variable holds the delay string); ``waitfor time '22:00'`` ->
    time_of_day ``"22:00"`` (``waitfor time @t`` -> ``"@t"``, an ``Arg`` of kind variable)."""

    delay_seconds: float | None = None
    time_of_day: str | None = None
    variable: str | None = None


@dataclass(frozen=True, kw_only=True)
class Sql(Statement):
    """A statement SQLite runs. ``kind``: select, select_into, insert, update, delete, truncate,
    create_table, drop_table, create_index, drop_index, create_view, drop_view, alter_table,
    update_statistics. ``sqlite``: the translated text; ``params``: the named parameters it uses
    (no ``:``; see ``GLOBAL_PARAM`` / ``param_name``). ``drop table a, b`` gives two ``Sql``."""

    kind: str
    sqlite: str
    params: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class If(Statement):
    """``if <condition> <statement or begin...end> [else <statement or block>]`` (``control_flow=True``).

    ``condition``: a SQLite expression (translated like any SQL, ``params`` its parameters); true
    when ``select case when <condition> then 1 else 0 end`` gives 1. ``then`` / ``otherwise``: the
    statements to run (a block's statements, flattened)."""

    condition: str
    params: tuple[str, ...] = ()
    then: tuple[Statement, ...] = ()
    otherwise: tuple[Statement, ...] = ()

    @property
    def sqlite(self) -> str:
        return f"select case when {self.condition} then 1 else 0 end"


@dataclass(frozen=True, kw_only=True)
class While(Statement):
    """``while <condition> <statement or block>`` (``control_flow=True``); see ``If``."""

    condition: str
    params: tuple[str, ...] = ()
    body: tuple[Statement, ...] = ()

    @property
    def sqlite(self) -> str:
        return f"select case when {self.condition} then 1 else 0 end"


@dataclass(frozen=True, kw_only=True)
class Break(Statement):
    pass


@dataclass(frozen=True, kw_only=True)
class Continue(Statement):
    pass


@dataclass(frozen=True, kw_only=True)
class Return(Statement):
    """``return [status]`` -- ends the batch. ``status``: the integer text or ``@var`` (an ``Arg``), or None."""

    status: str | None = None


@dataclass(frozen=True, kw_only=True)
class Raiserror(Statement):
    """``raiserror 20001 'format %1!', @x`` -> number 20001 (or ``"@var"``), message, args (``Arg``)."""

    number: int | str
    message: str | None = None
    args: tuple[str, ...] = ()


def walk(statements) -> list[Statement]:
    """The statements with those nested in ``If`` / ``While`` bodies, in source order."""
    out: list[Statement] = []
    stack = [iter(statements)]
    while stack:
        stmt = next(stack[-1], None)
        if stmt is None:
            stack.pop()
            continue
        out.append(stmt)
        if isinstance(stmt, If):
            stack.append(iter((*stmt.then, *stmt.otherwise)))
        elif isinstance(stmt, While):
            stack.append(iter(stmt.body))
    return out


_KIND_NAMES = {
    Use: "use", CreateDatabase: "create database", DropDatabase: "drop database",
    OnlineDatabase: "online database", DumpDatabase: "dump database", DumpTransaction: "dump transaction",
    LoadDatabase: "load database", LoadTransaction: "load transaction", Print: "print", SetOption: "set",
    Declare: "declare", SelectAssign: "select", Execute: "execute", BeginTransaction: "begin transaction",
    CommitTransaction: "commit transaction", RollbackTransaction: "rollback transaction",
    Checkpoint: "checkpoint", Waitfor: "waitfor", If: "if", While: "while", Break: "break",
    Continue: "continue", Return: "return", Raiserror: "raiserror",
}
_SQL_KIND_NAMES = {
    "select_into": "select into", "truncate": "truncate table", "create_table": "create table",
    "drop_table": "drop table", "create_index": "create index", "drop_index": "drop index",
    "create_view": "create view", "drop_view": "drop view", "alter_table": "alter table",
    "update_statistics": "update statistics",
}


def statement_kind(stmt: Statement) -> str:
    """ASE's name for a statement, as in messages: ``dump database``, ``select``, ``create table``..."""
    if isinstance(stmt, Sql):
        return _SQL_KIND_NAMES.get(stmt.kind, stmt.kind)
    return _KIND_NAMES.get(type(stmt), type(stmt).__name__.lower())


# ===================================================================================================
# Batches
# ===================================================================================================
@dataclass(frozen=True)
class Batch:
    """``text``: the batch's lines (without the ``go`` line); ``first_line``: the 1-based input
    line where the batch starts (the line after the previous separator)."""

    text: str
    first_line: int


_GO = re.compile(r"\s*go(?:\s+(\d{1,9}))?\s*", re.IGNORECASE)
_RESET = re.compile(r"\s*reset\s*", re.IGNORECASE)
_QUIT = re.compile(r"\s*(?:quit|exit)\s*", re.IGNORECASE)


def _carry(line: str, state: tuple[str, int]) -> tuple[str, int]:
    """Lexical state after ``line`` given the state before it.

    state: ("n", 0) normal, ("c", depth) inside /* */, ("'", 0) / ('"', 0) inside a string.
    """
    mode, depth = state
    n = len(line)
    i = 0
    while i < n:
        if mode == "c":
            close = line.find("*/", i)
            opening = line.find("/*", i)
            if opening >= 0 and (close < 0 or opening < close):
                depth += 1
                i = opening + 2
            elif close >= 0:
                depth -= 1
                i = close + 2
                if depth == 0:
                    mode = "n"
            else:
                return mode, depth
        elif mode in ("'", '"'):
            j = line.find(mode, i)
            if j < 0:
                return mode, 0
            if line.startswith(mode, j + 1):
                i = j + 2
            else:
                mode = "n"
                i = j + 1
        else:
            c = line[i]
            if c == "-" and line.startswith("--", i):
                return mode, 0
            if c == "/" and line.startswith("/*", i):
                mode, depth = "c", 1
                i += 2
            elif c == "'" or c == '"':
                mode = c
                i += 1
            else:
                i += 1
    return mode, depth


def _blank(text: str) -> bool:
    """Only white space and complete comments?"""
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = block_comment_end(text, i)
            if j < 0:
                return False
            i = j
        else:
            return False
    return True


def split_batches(script: str) -> list[tuple[Batch, int]]:
    """Cut an isql input into batches: ``[(Batch, repeat), ...]``.

    A line whose text is ``go`` or ``go N`` (any case, spaces around) ends a batch, run N times
    (default 1). A ``reset`` line discards the pending batch; a ``quit`` or ``exit`` line ends the
    input (the batches before it are returned, the unfinished one after the last ``go`` is
    dropped, as isql does). Such lines inside a ``/* */`` comment or a string do not count.
    Text after the last ``go`` is returned as a final batch (isql runs it at end of input too).
    Batches holding only white space and comments are dropped. Never raises.
    """
    result: list[tuple[Batch, int]] = []
    lines = script.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline ending the last line does not start another
    pending: list[str] = []
    start = 1
    state: tuple[str, int] = ("n", 0)

    def flush(repeat: int) -> None:
        text = "\n".join(pending)
        if not _blank(text):
            result.append((Batch(text, start), repeat))

    for number, line in enumerate(lines, start=1):
        if state[0] == "n":
            m = _GO.fullmatch(line)
            if m:
                flush(int(m.group(1)) if m.group(1) else 1)
                pending, start = [], number + 1
                continue
            if _RESET.fullmatch(line):
                pending, start = [], number + 1
                continue
            if _QUIT.fullmatch(line):
                return result
        pending.append(line)
        state = _carry(line, state)
    if pending:
        flush(1)
    return result


# ===================================================================================================
# Statements
# ===================================================================================================
_STARTS = frozenset((
    "use", "create", "drop", "dump", "load", "online", "print", "set", "declare", "select", "insert",
    "update", "delete", "exec", "execute", "begin", "commit", "rollback", "checkpoint", "waitfor",
    "truncate", "alter", "if", "while", "else", "end", "return", "break", "continue", "goto", "raiserror",
    "grant", "revoke", "dbcc", "kill", "reconfigure", "shutdown", "disk", "save", "setuser", "fetch",
    "open", "close", "deallocate", "readtext", "writetext", "prepare", "quiesce"
))
_CONTROL_FLOW = frozenset(("if", "while", "else", "return", "break", "continue", "goto"))
_UNSUPPORTED = frozenset((
    "raiserror", "grant", "revoke", "dbcc", "kill", "reconfigure", "shutdown", "disk", "save", "setuser",
    "fetch", "open", "close", "deallocate", "readtext", "writetext", "prepare", "quiesce"
))
_STRIPE_KEYS = frozenset(("density", "blocksize", "capacity", "dumpvolume", "file"))
_LOWER_VALUES = frozenset(("verify", "notify", "listonly"))
# ``load database db with listonly = load_sql | create_sql``: listings from the dump history, no device
_HISTORY_LISTINGS = frozenset(("load_sql", "create_sql"))
_COMPRESS = re.compile(r"compress::(?:(\d+)::)?", re.IGNORECASE)
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)b?\s*", re.IGNORECASE)
_SIZE_UNITS = {"": 1.0, "m": 1.0, "k": 1 / 1024, "g": 1024.0, "t": 1024.0 * 1024, "p": 1 / 512}
_DELAY = re.compile(r"\s*(\d{1,9}):(\d{1,9})(?::(\d{1,9})(?:[:.](\d{1,9}))?)?\s*")
_ISOLATION_WORDS = {"read uncommitted": 0, "read committed": 1, "repeatable read": 2, "serializable": 3}
_WORD_VALUED = frozenset(
    ("dateformat", "language", "char_convert", "proxy", "clientname", "clienthostname", "clientapplname",
     "session authorization", "datefirst", "lock"))
_TARGETED = frozenset(("identity_insert", "identity_update", "role"))
_TYPE_PREFIXES = {
    "double": ("precision",), "unsigned": ("int", "integer", "bigint", "smallint", "tinyint"),
    "long": ("varchar", "nvarchar", "binary"), "national": ("char", "character", "varchar"),
    "char": ("varying",), "character": ("varying",),
}


def parse_batch(sql: str, first_line: int = 1, *, quoted_identifier: bool = False,
                shell: bool = False, control_flow: bool = False) -> list[Statement]:
    """Split one batch into statements and classify them.

    ``first_line``: the input line where the batch starts; statement and error lines are
    ``first_line`` + their line offset in ``sql``. ``quoted_identifier``: the session's setting
    (``"x"`` is then a name, not a string). ``shell``: read ``$VAR``/``${...}``/backquotes as words
    (SQL in a shell here-document, for the linter). ``control_flow``: return ``If``, ``While``,
    ``Break``, ``Continue``, ``Return`` and ``Raiserror`` statements; when False (the default, until
    the dataserver runs them) they raise TSQLSyntaxError "control-of-flow is not supported by this
    dataserver yet". Raises TSQLSyntaxError only.
    """
    return _run_parser(sql, first_line, quoted_identifier, shell, recover=False, control_flow=control_flow)[0]


def find_backup_statements(script_sql: str, *, shell: bool = False,
                           errors: list[TSQLSyntaxError] | None = None) -> list[Statement]:
    """Every dump/load/online statement of a whole isql input, across batches, with file lines.

    Statements inside ``if`` / ``while`` bodies count too. Batches that do not parse are skipped
    statement by statement (the parser resynchronises at
    the next statement keyword), so one bad line does not hide the dump after it; the syntax
    errors met are appended to ``errors`` when given. Never raises.
    """
    found: list[Statement] = []
    for batch, _repeat in split_batches(script_sql):
        statements, errs = _run_parser(batch.text, batch.first_line, False, shell, recover=True,
                                       control_flow=True)
        found.extend(s for s in walk(statements) if isinstance(s, DumpLoad | OnlineDatabase))
        if errors is not None:
            errors.extend(errs)
    return found


def _run_parser(sql: str, first_line: int, quoted_identifier: bool, shell: bool, recover: bool,
                control_flow: bool) -> tuple[list[Statement], list[TSQLSyntaxError]]:
    try:
        parser = _Parser(sql, first_line, quoted_identifier, shell, recover, control_flow)
        parser.run()
        return parser.statements, parser.errors
    except TSQLSyntaxError:
        raise
    except (RecursionError, MemoryError):
        if recover:
            return [], []
        raise TSQLSyntaxError("The batch is too complex to parse.", first_line, number=102) from None
    except Exception:  # pragma: no cover - a parser bug must still look like a syntax error
        if not SAFETY_NET:
            raise
        if recover:
            return [], []
        raise TSQLSyntaxError("Incorrect syntax.", first_line, number=102) from None


#: Turn unexpected parser exceptions into TSQLSyntaxError (the tests switch it off to find bugs).
SAFETY_NET = True


class _Parser:
    def __init__(self, sql: str, first_line: int, quoted_identifier: bool, shell: bool, recover: bool,
                 control_flow: bool):
        self.src = sql
        self.off = first_line - 1
        self.qi = quoted_identifier
        self.recover = recover
        self.statements: list[Statement] = []
        self.errors: list[TSQLSyntaxError] = []
        try:
            toks, lex_error = tokenize(sql, shell=shell, recover=recover)
        except TSQLSyntaxError as e:
            e.line += self.off
            raise
        if lex_error is not None:
            lex_error.line += self.off
            self.errors.append(lex_error)
        self.t = toks
        self.n = len(toks)
        self.pos = 0
        self.control_flow = control_flow
        self.depth = 0  # nesting of begin/end blocks and if/while bodies
        self.first = True
        self.error_index = -1  # the token the last syntax error was near (recovery resumes there)

    # -- helpers -----------------------------------------------------------------------------------
    def peek(self, k: int = 0) -> Token | None:
        i = self.pos + k
        return self.t[i] if i < self.n else None

    def advance(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise self.error(None)
        self.pos += 1
        return tok

    def error(self, tok: Token | None, message: str | None = None, number: int | None = None) -> TSQLSyntaxError:
        if tok is None:  # at the end of the batch: ASE names the last token
            tok = self.t[self.pos - 1] if 0 < self.pos <= self.n else (self.t[-1] if self.t else None)
        if tok is None:
            return TSQLSyntaxError(message or "Incorrect syntax.", self.off + 1, number=number or 102)
        self.error_index = max(self.error_index, tok.index)
        near = tok.text if len(tok.text) <= 255 else tok.text[:255]
        if message is None:
            if tok.kind == WORD and tok.lower in RESERVED:
                message, default_number = f"Incorrect syntax near the keyword '{near}'.", 156
            else:
                message, default_number = f"Incorrect syntax near '{near}'.", 102
        else:
            default_number = 102
        return TSQLSyntaxError(message, tok.line + self.off, near=near, number=number or default_number)

    def expect_word(self, *words: str) -> Token:
        tok = self.peek()
        if tok is None or not tok.is_word(*words):
            raise self.error(tok)
        self.pos += 1
        return tok

    def accept_word(self, *words: str) -> Token | None:
        tok = self.peek()
        if tok is not None and tok.is_word(*words):
            self.pos += 1
            return tok
        return None

    def integer(self, text: str, tok: Token) -> int:
        """``int(text)`` for a number ASE could hold; longer digit strings are a syntax error."""
        if len(text.lstrip("+-")) > 19:
            raise self.error(tok)
        return int(text)

    def accept_op(self, op: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == OP and tok.text == op:
            self.pos += 1
            return True
        return False

    def add(self, cls, start: int, **fields) -> None:
        end = self.pos
        text = self.src[self.t[start].start : self.t[end - 1].end] if end > start else ""
        self.statements.append(cls(text=text, line=self.t[start].line + self.off, **fields))

    def name(self, *, allow_variable: bool = False) -> Arg:
        """A database / object name: a bare word, ``[name]``, ``"name"`` (or ``@var``)."""
        tok = self.peek()
        if tok is None:
            raise self.error(None)
        if tok.kind == WORD and tok.lower not in RESERVED:
            self.pos += 1
            return Arg(tok.text, "name")
        if tok.kind in (BRACKET, DSTR):
            self.pos += 1
            return Arg(tok.value, "name")
        if tok.kind == SHELL:
            self.pos += 1
            return Arg(tok.text, "shell")
        if allow_variable and tok.kind == VAR:
            self.pos += 1
            return Arg(tok.text, "variable")
        raise self.error(tok)

    # -- driver ----------------------------------------------------------------------------------------
    def run(self) -> None:
        while self.pos < self.n:
            tok = self.t[self.pos]
            if tok.is_op(";"):
                self.pos += 1
                continue
            start = self.pos
            self.error_index = -1
            self.depth = 0
            try:
                self.statement()
            except TSQLSyntaxError as e:
                if not self.recover:
                    raise
                self.errors.append(e)
                self.resync(start)
            self.first = False

    def resync(self, start: int) -> None:
        """After a syntax error (recovery mode): on to the next statement keyword from the error on."""
        i = max(start + 1, self.error_index)
        while i < self.n and not (self.t[i].kind == WORD and self.t[i].lower in _STARTS
                                  and self.t[i].lower not in ("end", "else")):
            i += 1
        self.pos = i

    def statement(self) -> None:
        tok = self.t[self.pos]
        if tok.kind == WORD:
            lw = tok.lower
            handler = _DISPATCH.get(lw)
            if handler is not None:
                handler(self)
                return
            if lw in _CONTROL_FLOW:
                if self.control_flow and lw in _FLOW_DISPATCH:
                    _FLOW_DISPATCH[lw](self)
                    return
                raise self.error(tok, f"Incorrect syntax near the keyword '{tok.text}': control-of-flow is "
                                      "not supported by this dataserver yet.", 156)
            if lw == "raiserror" and self.control_flow:
                self.raiserror()
                return
            if lw in _UNSUPPORTED:
                raise self.error(tok, f"Incorrect syntax near the keyword '{tok.text}': {lw} is not "
                                      "supported by this dataserver.", 156)
            if lw not in RESERVED and (self.first or self._procedure_like()):
                self.execute(bare=True)
                return
        raise self.error(tok)

    def _procedure_like(self) -> bool:
        """A bare ``sp_*`` (optionally ``db..sp_x`` / ``db.owner.sp_x``) at the current position."""
        i = self.pos
        last = self.t[i]
        while i + 1 < self.n and self.t[i + 1].is_op("."):
            i += 1
            if i + 1 < self.n and self.t[i + 1].kind == WORD:
                i += 1
                last = self.t[i]
        return last.kind == WORD and last.lower.startswith("sp_")

    # -- database statements -----------------------------------------------------------------------
    def use(self) -> None:
        start = self.pos
        self.pos += 1
        db = self.name()
        self.add(Use, start, database=db)

    def create(self) -> None:
        start = self.pos
        nxt = self.peek(1)
        if nxt is None:
            raise self.error(self.t[start])
        lw = nxt.lower
        if lw == "database" or (lw in ("temporary", "inmemory") and (tok := self.peek(2)) is not None
                                and tok.is_word("database")):
            self.create_database()
        elif lw == "table":
            self.sql("create_table")
        elif lw == "view":
            self.sql("create_view")
        elif lw in ("index", "unique", "clustered", "nonclustered"):
            self.sql("create_index")
        elif lw in ("procedure", "proc", "trigger", "function", "rule", "default", "schema"):
            raise self.error(nxt, f"Incorrect syntax near the keyword '{nxt.text}': create {lw} is not "
                                  "supported by this dataserver.", 156)
        else:
            raise self.error(nxt)

    def create_database(self) -> None:
        start = self.pos
        self.pos += 1
        options: dict = {}
        kind = self.accept_word("temporary", "inmemory")
        if kind is not None:
            options[kind.lower] = True
        self.expect_word("database")
        name = self.name()
        data: list[int] = []
        log: list[int] = []
        for_load = False
        while (tok := self.peek()) is not None and tok.kind == WORD:
            if tok.lower == "on":
                self.pos += 1
                data.extend(self._db_devices())
            elif tok.lower == "log" and (nxt := self.peek(1)) is not None and nxt.is_word("on"):
                self.pos += 2
                log.extend(self._db_devices())
            elif tok.lower == "with":
                self.pos += 1
                options.update(self.with_options())
            elif tok.lower == "for":
                self.pos += 1
                what = self.expect_word("load", "proxy_update")
                if what.lower == "load":
                    for_load = True
                else:
                    options["proxy_update"] = True
            else:
                break
        self.add(CreateDatabase, start, name=name, size_mb=sum(data) if data else None, for_load=for_load,
                 log_size_mb=sum(log) if log else None, options=options)

    def _db_devices(self) -> list[int]:
        sizes = []
        while True:
            tok = self.peek()
            if tok is None:
                raise self.error(None)
            if tok.is_word("default"):
                self.pos += 1
            else:
                self.name()
            if self.accept_op("="):
                sizes.append(self._size_mb(self.advance()))
            if not self.accept_op(","):
                return sizes

    def _size_mb(self, tok: Token) -> int:
        if tok.kind == NUM and not tok.text.lower().startswith("0x"):
            mb = float(tok.text)
        elif tok.kind in (SSTR, DSTR) and (m := _SIZE.fullmatch(tok.value)):
            mb = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
        else:
            raise self.error(tok)
        if not math.isfinite(mb) or mb > 2**53:
            raise self.error(tok)
        return math.ceil(mb)

    def drop(self) -> None:
        nxt = self.peek(1)
        if nxt is None:
            raise self.error(self.t[self.pos])
        lw = nxt.lower
        if lw == "database":
            start = self.pos
            self.pos += 2
            names = [self.name()]
            while self.accept_op(","):
                names.append(self.name())
            self.add(DropDatabase, start, names=tuple(names))
        elif lw in ("table", "view", "index"):
            self.sql("drop_" + lw)
        elif lw in ("procedure", "proc", "trigger", "function", "rule", "default", "schema"):
            raise self.error(nxt, f"Incorrect syntax near the keyword '{nxt.text}': drop {lw} is not "
                                  "supported by this dataserver.", 156)
        else:
            raise self.error(nxt)

    def online(self) -> None:
        start = self.pos
        self.pos += 1
        self.expect_word("database")
        db = self.name()
        standby = False
        if self.accept_word("for"):
            self.expect_word("standby_access")
            standby = True
        self.add(OnlineDatabase, start, database=db, for_standby_access=standby)

    # -- dump / load -------------------------------------------------------------------------------
    def dump_load(self) -> None:
        start = self.pos
        verb = self.advance().lower
        what = self.expect_word("database", "tran", "transaction").lower
        is_db = what == "database"
        db = self.name(allow_variable=True)
        options: dict = {}
        if self.accept_word("cumulative"):
            options["cumulative"] = True
        if self.accept_word("using"):
            self.expect_word("config")
            if not self.accept_op("="):
                raise self.error(self.peek())
            options["config"] = self.option_value("config")
        devices: list[Device] = []
        direction = "to" if verb == "dump" else "from"
        if self.accept_word(direction):
            devices.append(self.device())
            while self.accept_word("stripe"):
                self.expect_word("on")
                devices.append(self.device())
        elif not ((verb == "dump" and not is_db) or "config" in options
                  or (verb == "load" and is_db and (w := self.peek()) is not None and w.is_word("with"))):
            raise self.error(self.peek())
        with_tok = self.peek()
        if self.accept_word("with"):
            options.update(self.with_options())
        if verb == "load" and not devices and options.get("listonly") not in _HISTORY_LISTINGS:
            # only the dump-history listings may omit `from`: they read no device
            raise self.error(with_tok)
        if verb == "dump" and not is_db and not devices and "config" not in options and not (
                {"truncate_only", "no_log"} & options.keys()):
            raise self.error(self.peek())
        cls = {("dump", True): DumpDatabase, ("dump", False): DumpTransaction,
               ("load", True): LoadDatabase, ("load", False): LoadTransaction}[(verb, is_db)]
        fields = {"config": options["config"]} if verb == "dump" and "config" in options else {}
        self.add(cls, start, database=db, devices=tuple(devices), options=options, **fields)

    def device(self) -> Device:
        tok = self.peek()
        if tok is None:
            raise self.error(None)
        level: int | None = None
        if tok.is_word("compress") and (a := self.peek(1)) is not None and a.is_op(":") \
                and (b := self.peek(2)) is not None and b.is_op(":"):
            self.pos += 3
            level = 1
            lv, c1, c2 = self.peek(), self.peek(1), self.peek(2)
            if lv is not None and lv.kind == NUM and lv.text.isdigit() and c1 is not None and c1.is_op(":") \
                    and c2 is not None and c2.is_op(":"):
                level = self.integer(lv.text, lv)
                self.pos += 3
            tok = self.peek()
            if tok is None:
                raise self.error(None)
        is_variable = False
        if tok.kind in (SSTR, DSTR):
            spec = tok.value
            m = _COMPRESS.match(spec)
            if m:
                level = self.integer(m.group(1), tok) if m.group(1) else 1
                spec = spec[m.end() :]
        elif tok.kind == VAR:
            spec, is_variable = tok.text, True
        elif tok.kind == WORD and tok.lower not in RESERVED:
            spec = tok.text
        elif tok.kind in (BRACKET, SHELL):
            spec = tok.value
        else:
            raise self.error(tok)
        self.pos += 1
        server = None
        if self.accept_word("at"):
            st = self.peek()
            if st is not None and st.kind == SSTR:
                self.pos += 1
                server = st.value
            else:
                server = str(self.name())
        options: dict = {}
        while (k := self.peek()) is not None and k.kind == WORD and k.lower in _STRIPE_KEYS \
                and (eq := self.peek(1)) is not None and eq.is_op("="):
            self.pos += 2
            options[k.lower] = self.option_value(k.lower)
            nxt, key, eq2 = self.peek(), self.peek(1), self.peek(2)
            if nxt is not None and nxt.is_op(",") and key is not None and key.kind == WORD \
                    and key.lower in _STRIPE_KEYS and eq2 is not None and eq2.is_op("="):
                self.pos += 1
        return Device(spec, level, is_variable, server, options)

    def with_options(self) -> dict:
        """``opt [= value] {, opt [= value]}`` after ``with``."""
        options: dict = {}
        while True:
            tok = self.peek()
            if tok is None or tok.kind != WORD:
                raise self.error(tok)
            self.pos += 1
            key = tok.lower
            if self.accept_op("="):
                options[key] = self.option_value(key)
            else:
                options[key] = True
            if not self.accept_op(","):
                return options

    def option_value(self, key: str):
        tok = self.advance()
        sign = ""
        if tok.is_op("-", "+"):
            sign = "-" if tok.text == "-" else ""
            tok = self.advance()
            if tok.kind != NUM:
                raise self.error(tok)
        if tok.kind == NUM:
            text = sign + tok.text
            if key in ("passwd", "password"):
                return Arg(text, "number")
            if re.fullmatch(r"-?\d+", text):
                return self.integer(text, tok)
            if tok.text.lower().startswith("0x"):
                return Arg(text, "number")
            return float(text)
        if tok.kind in (SSTR, DSTR):
            value = tok.value.lower() if key in _LOWER_VALUES else tok.value
            return Arg(value, "string")
        if tok.kind == WORD:
            value = tok.text.lower() if key in _LOWER_VALUES else tok.text
            return Arg(value, "name")
        if tok.kind in (VAR, GVAR):
            return Arg(tok.text, "variable" if tok.kind == VAR else "global")
        if tok.kind in (BRACKET, SHELL):
            return Arg(tok.value, "name" if tok.kind == BRACKET else "shell")
        raise self.error(tok)

    # -- session statements ----------------------------------------------------------------------
    def print_(self) -> None:
        start = self.pos
        self.pos += 1
        tok = self.advance()
        if tok.kind in (SSTR, DSTR):
            message = Arg(tok.value, "string")
        elif tok.kind == VAR:
            message = Arg(tok.text, "variable")
        elif tok.kind == GVAR:
            message = Arg(tok.text, "global")
        else:
            raise self.error(tok)
        args = []
        while self.accept_op(","):
            args.append(self.value(allow_names=False))
        self.add(Print, start, message=message, args=tuple(args))

    def value(self, *, allow_names: bool) -> Arg:
        """A literal or variable (exec / print arguments)."""
        tok = self.advance()
        if tok.is_op("-", "+"):
            num = self.advance()
            if num.kind != NUM:
                raise self.error(num)
            return Arg(("-" if tok.text == "-" else "") + num.text, "number")
        if tok.kind in (SSTR, DSTR):
            return Arg(tok.value, "string")
        if tok.kind == NUM:
            return Arg(tok.text, "number")
        if tok.kind == VAR:
            return Arg(tok.text, "variable")
        if tok.kind == GVAR:
            return Arg(tok.text, "global")
        if tok.kind == SHELL:
            return Arg(tok.text, "shell")
        if tok.is_word("null"):
            return Arg(tok.text.lower(), "null")
        if allow_names:
            if tok.is_word("default"):
                return Arg("default", "default")
            if tok.kind == BRACKET:
                return Arg(tok.value, "name")
            if tok.kind == WORD and tok.lower not in RESERVED:
                text = tok.text
                while (dot := self.peek()) is not None and dot.is_op(".") and (w := self.peek(1)) is not None \
                        and w.kind == WORD and dot.start == tok.end and w.start == dot.end:
                    self.pos += 2
                    text += "." + w.text
                    tok = w
                return Arg(text, "name")
        raise self.error(tok)

    def set_(self) -> None:
        start = self.pos
        nxt = self.peek(1)
        if nxt is not None and nxt.kind == VAR:
            self.assignment(start)
            return
        self.pos += 1
        parts: list[str] = []
        value: str | int | None = None
        target: str | None = None
        while True:
            tok = self.peek()
            if tok is None or tok.is_op(";"):
                break
            if tok.kind == WORD and tok.lower in ("on", "off") and parts and parts != ["close"]:
                value = tok.lower
                self.pos += 1
                break
            if tok.kind in (NUM, SSTR, DSTR, VAR, GVAR) and parts:
                value = self.option_value("")
                if isinstance(value, float):
                    raise self.error(tok)
                break
            if tok.is_op(",") and parts:
                parts[-1] += ","
                self.pos += 1
                continue
            if tok.kind != WORD or (parts and tok.lower in _STARTS):
                break
            parts.append(tok.lower)
            self.pos += 1
            name = " ".join(parts)
            if name in ("transaction isolation level", "tran isolation level"):
                value = self._isolation_level()
                parts = ["transaction", "isolation", "level"]
                break
            if name == "lock":
                if self.accept_word("nowait"):
                    value = "nowait"
                    break
                self.expect_word("wait")
                value = self.option_value("") if (p := self.peek()) is not None and p.kind == NUM else "wait"
                break
            if name in _WORD_VALUED:
                vt = self.peek()
                if vt is None:
                    raise self.error(None)
                if vt.kind == WORD:
                    self.pos += 1
                    value = vt.text.lower() if vt.lower in ("on", "off") else Arg(vt.text, "name")
                else:
                    value = self.option_value(name)
                break
            if name in _TARGETED and target is None:
                tt = self.peek()
                if tt is not None and tt.kind == SSTR:
                    self.pos += 1
                    target = tt.value
                else:
                    target = str(self.name())
        if not parts:
            raise self.error(self.peek() if self.peek() is not None else self.t[start])
        if value is None:
            raise self.error(self.peek())
        self.add(SetOption, start, name=" ".join(parts), value=value, target=target)

    def _isolation_level(self) -> int:
        tok = self.peek()
        if tok is not None and tok.kind == NUM and tok.text in ("0", "1", "2", "3"):
            self.pos += 1
            return int(tok.text)
        for words, level in _ISOLATION_WORDS.items():
            ws = words.split()
            if all((t := self.peek(k)) is not None and t.is_word(w) for k, w in enumerate(ws)):
                self.pos += len(ws)
                return level
        raise self.error(tok)

    def declare(self) -> None:
        start = self.pos
        self.pos += 1
        variables = []
        while True:
            tok = self.advance()
            if tok.kind != VAR:
                if tok.kind == WORD and (c := self.peek()) is not None and c.is_word("cursor", "scroll",
                                                                                      "insensitive"):
                    raise self.error(c, f"Incorrect syntax near the keyword '{c.text}': cursors are not "
                                        "supported by this dataserver.", 156)
                raise self.error(tok)
            self.accept_word("as")
            variables.append((tok.text, self.type_name()))
            if not self.accept_op(","):
                break
        self.add(Declare, start, variables=tuple(variables))

    def type_name(self) -> str:
        tok = self.peek()
        if tok is None or tok.kind not in (WORD, BRACKET) or tok.lower in _STARTS:
            raise self.error(tok)
        first = self.pos
        self.pos += 1
        follow = _TYPE_PREFIXES.get(tok.lower)
        if follow and (nx := self.peek()) is not None and nx.is_word(*follow):
            self.pos += 1
        if self.accept_op("("):
            while True:
                t = self.advance()
                if t.is_op(")"):
                    break
                if not (t.kind == NUM or t.is_op(",") or t.is_word("max")):
                    raise self.error(t)
        return " ".join(self.src[self.t[first].start : self.t[self.pos - 1].end].split())

    def execute(self, *, bare: bool = False) -> None:
        start = self.pos
        if not bare:
            self.pos += 1
        return_status = None
        tok, eq = self.peek(), self.peek(1)
        if tok is not None and tok.kind == VAR and eq is not None and eq.is_op("="):
            return_status = tok.text
            self.pos += 2
        tok = self.peek()
        if tok is None:
            raise self.error(None)
        if tok.is_op("("):
            raise self.error(tok, "Incorrect syntax near '(': execute of a character string is not supported "
                                  "by this dataserver.")
        if tok.kind == VAR:
            procedure = tok.text
            self.pos += 1
        else:
            procedure = self._dotted_name()
        if (semi := self.peek()) is not None and semi.is_op(";") and (num := self.peek(1)) is not None \
                and num.kind == NUM and semi.start == self.t[self.pos - 1].end:
            self.pos += 2
            procedure += ";" + num.text
        args: list[Arg] = []
        named: dict[str, Arg] = {}
        if self._starts_argument():
            while True:
                tok, eq = self.peek(), self.peek(1)
                if tok is not None and tok.kind == VAR and eq is not None and eq.is_op("="):
                    self.pos += 2
                    named[tok.text[1:]] = self.value(allow_names=True)
                else:
                    args.append(self.value(allow_names=True))
                self.accept_word("output", "out")
                if not self.accept_op(","):
                    break
        if (w := self.peek()) is not None and w.is_word("with") and (r := self.peek(1)) is not None \
                and r.is_word("recompile"):
            self.pos += 2
        self.add(Execute, start, procedure=procedure, args=tuple(args), named=named, return_status=return_status)

    def _dotted_name(self) -> str:
        tok = self.peek()
        if tok is None or not (tok.kind == BRACKET or (tok.kind == WORD and tok.lower not in RESERVED)):
            raise self.error(tok)
        parts = [tok.value]
        self.pos += 1
        while (dot := self.peek()) is not None and dot.is_op("."):
            self.pos += 1
            nxt = self.peek()
            if nxt is not None and nxt.is_op("."):
                parts.append("")
                continue
            if nxt is None or not (nxt.kind == BRACKET or (nxt.kind == WORD and nxt.lower not in RESERVED)):
                raise self.error(nxt)
            parts.append(nxt.value)
            self.pos += 1
        return ".".join(parts)

    def _starts_argument(self) -> bool:
        tok = self.peek()
        if tok is None:
            return False
        if tok.kind in (SSTR, DSTR, NUM, VAR, GVAR, SHELL, BRACKET):
            return True
        if tok.is_op("-", "+"):
            nxt = self.peek(1)
            return nxt is not None and nxt.kind == NUM
        if tok.kind == WORD:
            if tok.lower in ("null", "default"):
                return True
            if tok.lower in RESERVED:
                return False
            # a bare sp_* on a later line is the next statement, not an argument
            prev = self.t[self.pos - 1]
            return not (tok.lower.startswith("sp_") and tok.line > prev.line)
        return False

    def begin(self) -> None:
        start = self.pos
        self.pos += 1
        if self.accept_word("distributed"):
            self.expect_word("tran", "transaction")
        elif not self.accept_word("tran", "transaction"):
            self.block()  # begin ... end: a plain block, its statements run in order
            return
        self.add(BeginTransaction, start, name=self._tran_name())

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_BLOCK_DEPTH:
            raise self.error(self.peek(), "Incorrect syntax: blocks are nested too deeply.")

    def block(self) -> None:
        """The statements of ``begin ... end`` (``begin`` consumed) into the current list."""
        self.nest()
        self.first = False
        while True:
            tok = self.peek()
            if tok is None:
                raise self.error(None)
            if tok.is_op(";"):
                self.pos += 1
            elif tok.is_word("end"):
                self.pos += 1
                break
            else:
                self.statement()
        self.depth -= 1

    def body(self) -> tuple[Statement, ...]:
        """The body of an ``if`` / ``else`` / ``while``: one statement or a ``begin ... end`` block."""
        saved = self.statements
        self.statements = []
        depth = self.depth
        try:
            self.nest()
            while self.accept_op(";"):
                pass
            tok = self.peek()
            if tok is None:
                raise self.error(None)
            if tok.is_word("begin") and not ((nxt := self.peek(1)) is not None
                                             and nxt.is_word("tran", "transaction", "distributed")):
                self.pos += 1
                self.block()
            else:
                self.first = False
                self.statement()
            return tuple(self.statements)
        finally:
            self.statements = saved
            self.depth = depth

    def condition(self, start: int) -> tuple[str, tuple[str, ...]]:
        """The condition after ``if`` / ``while`` (at ``self.pos``): SQLite text and parameters."""
        t = self.t
        i = self.pos
        depth = 0
        cases = 0
        while i < self.n:
            tok = t[i]
            if tok.is_op("("):
                depth += 1
            elif tok.is_op(")"):
                if depth == 0:
                    raise self.error(tok)
                depth -= 1
            elif depth == 0 and tok.kind == WORD:
                lw = tok.lower
                if lw == "case":
                    cases += 1
                elif lw == "end" and cases:
                    cases -= 1
                elif lw == "else" and cases:
                    pass
                elif lw in _STARTS or (lw.startswith("sp_") and not (i + 1 < self.n and t[i + 1].is_op("(", "."))):
                    break
            i += 1
        if i == self.pos:
            raise self.error(self.peek() if self.peek() is not None else t[start])
        if depth:
            raise self.error(t[i - 1])
        tr = self._translator(t[self.pos : i])
        tr.prepare_selects()
        text = tr.render()
        self.pos = i
        return text, tuple(tr.params)

    def if_(self) -> None:
        start = self.pos
        self.pos += 1
        cond, params = self.condition(start)
        then = self.body()
        otherwise: tuple[Statement, ...] = ()
        if self.accept_word("else"):
            otherwise = self.body()
        self.add(If, start, condition=cond, params=params, then=then, otherwise=otherwise)

    def while_(self) -> None:
        start = self.pos
        self.pos += 1
        cond, params = self.condition(start)
        body = self.body()
        self.add(While, start, condition=cond, params=params, body=body)

    def break_(self) -> None:
        start = self.pos
        self.pos += 1
        self.add(Break, start)

    def continue_(self) -> None:
        start = self.pos
        self.pos += 1
        self.add(Continue, start)

    def return_(self) -> None:
        start = self.pos
        self.pos += 1
        status = None
        tok = self.peek()
        if tok is not None and (tok.kind in (NUM, VAR) or tok.is_op("-")):
            value = self.value(allow_names=False)
            if value.kind == "number" and not re.fullmatch(r"-?\d+", value):
                raise self.error(tok)
            status = value
        self.add(Return, start, status=status)

    def raiserror(self) -> None:
        start = self.pos
        self.pos += 1
        tok = self.advance()
        if tok.kind == NUM and tok.text.isdigit():
            number: str | int = self.integer(tok.text, tok)
        elif tok.kind == VAR:
            number = Arg(tok.text, "variable")
        else:
            raise self.error(tok)
        message = None
        nxt = self.peek()
        if nxt is not None and nxt.kind in (SSTR, DSTR, VAR):
            message = self.value(allow_names=False)
        args = []
        while self.accept_op(","):
            args.append(self.value(allow_names=False))
        if (w := self.peek()) is not None and w.is_word("with"):
            raise self.error(w, "Incorrect syntax near the keyword 'with': raiserror with errordata is not "
                                "supported by this dataserver.", 156)
        self.add(Raiserror, start, number=number, message=message, args=tuple(args))

    def _tran_name(self) -> str | None:
        tok = self.peek()
        if tok is not None and (tok.kind == VAR or (tok.kind == WORD and tok.lower not in RESERVED
                                                   and not tok.lower.startswith("sp_"))):
            self.pos += 1
            return tok.text
        return None

    def end(self) -> None:
        raise self.error(self.t[self.pos])  # an `end` without its `begin`

    def commit(self) -> None:
        start = self.pos
        self.pos += 1
        name = None
        w = self.accept_word("tran", "transaction", "work")
        if w is not None and w.lower != "work":
            name = self._tran_name()
        self.add(CommitTransaction, start, name=name)

    def rollback(self) -> None:
        start = self.pos
        self.pos += 1
        name = None
        if (t := self.peek()) is not None and t.is_word("trigger"):
            raise self.error(t, "Incorrect syntax near the keyword 'trigger': rollback trigger is not supported "
                                "by this dataserver.", 156)
        w = self.accept_word("tran", "transaction", "work")
        if w is not None and w.lower != "work":
            name = self._tran_name()
        self.add(RollbackTransaction, start, name=name)

    def checkpoint(self) -> None:
        start = self.pos
        self.pos += 1
        if self.accept_word("all"):
            self.add(Checkpoint, start, all_databases=True)
            return
        names = []
        tok = self.peek()
        if tok is not None and (tok.kind in (BRACKET, SHELL) or (
                tok.kind == WORD and tok.lower not in RESERVED and not tok.lower.startswith("sp_"))):
            names.append(str(self.name()))
            while self.accept_op(","):
                names.append(str(self.name()))
        self.add(Checkpoint, start, databases=tuple(names))

    def waitfor(self) -> None:
        start = self.pos
        self.pos += 1
        how = self.peek()
        if how is not None and how.is_word("errorexit", "processexit", "mirrorexit"):
            raise self.error(how, f"Incorrect syntax near the keyword '{how.text}': waitfor {how.lower} is not "
                                  "supported by this dataserver.", 156)
        how = self.expect_word("delay", "time")
        tok = self.advance()
        if tok.kind == VAR:
            if how.lower == "delay":
                self.add(Waitfor, start, variable=Arg(tok.text, "variable"))
            else:
                self.add(Waitfor, start, time_of_day=Arg(tok.text, "variable"))
            return
        if tok.kind not in (SSTR, DSTR):
            raise self.error(tok)
        m = _DELAY.fullmatch(tok.value)
        if not m:
            raise self.error(tok)
        if how.lower == "time":
            self.add(Waitfor, start, time_of_day=tok.value.strip())
            return
        h, mi, s, frac = m.groups()
        seconds = int(h) * 3600 + int(mi) * 60 + int(s or 0)
        if frac:
            seconds += int(frac) / 10 ** len(frac)
        self.add(Waitfor, start, delay_seconds=float(seconds))

    def truncate(self) -> None:
        start = self.pos
        self.pos += 1
        self.expect_word("table")
        end = self._scan(start, "truncate")
        toks = self.t[start:end]
        tr = self._translator(toks)
        parts, k = tr.name_parts(2, len(toks))
        if k < len(toks) and not toks[k].is_word("partition"):
            raise self.error(toks[k])
        name = tr.text([(x, None) if isinstance(x, str) else (tr.map_token(x), None) for x in tr.table_name(parts)])
        self.pos = end
        self.add(Sql, start, kind="truncate", sqlite=f"delete from {name}", params=tuple(tr.params))

    def alter(self) -> None:
        nxt = self.peek(1)
        if nxt is not None and nxt.is_word("table"):
            self.sql("alter_table")
            return
        if nxt is not None and nxt.is_word("database"):
            raise self.error(nxt, "Incorrect syntax near the keyword 'database': alter database is not "
                                  "supported by this dataserver.", 156)
        raise self.error(nxt)

    # -- SQL for SQLite ----------------------------------------------------------------------------------
    def select(self) -> None:
        start = self.pos
        i = start + 1
        if i < self.n and self.t[i].is_word("distinct", "all"):
            i += 1
        if i + 1 < self.n and self.t[i].is_word("top") and self.t[i + 1].kind in (NUM, VAR):
            i += 2
        if i + 1 < self.n and self.t[i].kind == VAR and self.t[i + 1].is_op("="):
            self.assignment(start)
            return
        self.sql("select")

    def update(self) -> None:
        nxt = self.peek(1)
        if nxt is not None and (nxt.is_word("statistics") or (
                nxt.is_word("index", "all", "table") and (s := self.peek(2)) is not None
                and s.is_word("statistics"))):
            self.update_statistics()
            return
        self.sql("update")

    def update_statistics(self) -> None:
        start = self.pos
        end = self._scan(start, "update_statistics")
        toks = self.t[start:end]
        tr = self._translator(toks)
        k = 2 if toks[1].is_word("statistics") else 3
        if k >= len(toks):
            raise self.error(toks[-1])
        parts, _ = tr.name_parts(k, len(toks))
        name = tr.text([(x, None) if isinstance(x, str) else (tr.map_token(x), None) for x in tr.table_name(parts)])
        self.pos = end
        self.add(Sql, start, kind="update_statistics", sqlite=f"analyze {name}", params=tuple(tr.params))

    def assignment(self, start: int) -> None:
        end = self._scan(start, "select")
        toks = self.t[start:end]
        tr = self._translator(toks)
        tr.prepare_selects()
        tr.add_before(0, "select")
        tr.skip.add(0)
        first = 1
        if toks[first].is_word("distinct", "all"):
            first += 1
        if first + 1 < len(toks) and toks[first].is_word("top"):
            first += 2
        assignments, sqlite = tr.assignments(first)
        self.pos = end
        self.add(SelectAssign, start, assignments=assignments, sqlite=sqlite, params=tuple(tr.params))

    def sql(self, kind: str) -> None:
        start = self.pos
        end = self._scan(start, kind)
        toks = self.t[start:end]
        if len(toks) < 2:
            raise self.error(toks[0])
        tr = self._translator(toks)
        texts: list[str]
        if kind == "create_table":
            tr.prepare_selects()
            texts = [tr.create_table(2)]
        elif kind == "create_index":
            texts = [tr.create_index()]
        elif kind in ("drop_table", "drop_view", "drop_index"):
            texts = tr.drop_list(kind[5:])
        elif kind == "alter_table":
            tr.prepare_selects()
            texts = tr.alter_table()
        else:
            tr.prepare_selects()
            if kind == "select" and tr.select_into():
                kind = "select_into"
            elif kind == "insert" and not toks[1].is_word("into"):
                tr.add_before(1, "into")
            elif kind == "delete" and not toks[1].is_word("from", "top"):
                tr.add_before(1, "from")
            elif kind == "create_view":
                self._strip_check_option(tr, toks)
            texts = [tr.render()]
        self.pos = end
        params = tuple(tr.params)
        for text in texts:
            self.add(Sql, start, kind=kind, sqlite=text, params=params)

    @staticmethod
    def _strip_check_option(tr: Translator, toks: list[Token]) -> None:
        n = len(toks)
        if n >= 3 and toks[-3].is_word("with") and toks[-2].is_word("check") and toks[-1].is_word("option"):
            tr.skip.update((n - 3, n - 2, n - 1))

    def _translator(self, toks: list[Token]) -> Translator:
        def error(tok: Token | None) -> TSQLSyntaxError:
            return self.error(tok if tok is not None else toks[-1])

        return Translator(toks, quoted_identifier=self.qi, error=error)

    def _scan(self, start: int, kind: str) -> int:
        """The end (exclusive) of a SQL statement starting at ``start``: the next statement keyword
        outside parentheses that cannot continue it, a ``;``, or the end of the batch."""
        t = self.t
        n = self.n
        depth = 0
        cases = 0
        seen_source = kind != "insert"  # insert: its select / values not met yet
        seen_set = kind != "update"
        view_select = kind == "create_view"
        prev = t[start]
        i = start + 1
        while i < n:
            tok = t[i]
            if tok.kind == OP:
                if tok.text == "(":
                    depth += 1
                elif tok.text == ")":
                    if depth == 0:
                        raise self.error(tok)
                    depth -= 1
                elif tok.text == ";" and depth == 0:
                    break
            elif tok.kind == WORD and depth == 0:
                lw = tok.lower
                if lw == "case":
                    cases += 1
                elif lw == "end":
                    if not cases:
                        break
                    cases -= 1
                elif lw == "else" and cases:
                    pass
                elif lw == "values" and not seen_source:
                    seen_source = True
                elif lw in _STARTS:
                    pl = prev.lower
                    if lw == "select" and (pl in ("union", "all", "except", "intersect", "minus") or prev.is_op("(")):
                        pass
                    elif lw == "select" and not seen_source:
                        seen_source = True
                    elif lw == "select" and view_select and pl == "as":
                        view_select = False
                    elif lw == "set" and not seen_set:
                        seen_set = True
                    elif (lw in ("update", "delete") and pl in ("on", "for")) or (
                            lw == "drop" and kind == "alter_table"):
                        pass
                    else:
                        break
            prev = tok
            i += 1
        if depth:
            raise self.error(t[i - 1] if i < n else None)
        return i


_FLOW_DISPATCH = {
    "if": _Parser.if_, "while": _Parser.while_, "break": _Parser.break_, "continue": _Parser.continue_,
    "return": _Parser.return_, "raiserror": _Parser.raiserror,
}
MAX_BLOCK_DEPTH = 32

_DISPATCH = {
    "use": _Parser.use, "create": _Parser.create, "drop": _Parser.drop, "dump": _Parser.dump_load,
    "load": _Parser.dump_load, "online": _Parser.online, "print": _Parser.print_, "set": _Parser.set_,
    "declare": _Parser.declare, "select": _Parser.select, "insert": lambda p: p.sql("insert"),
    "update": _Parser.update, "delete": lambda p: p.sql("delete"), "exec": _Parser.execute,
    "execute": _Parser.execute, "begin": _Parser.begin, "end": _Parser.end, "commit": _Parser.commit,
    "rollback": _Parser.rollback, "checkpoint": _Parser.checkpoint, "waitfor": _Parser.waitfor,
    "truncate": _Parser.truncate, "alter": _Parser.alter,
}
