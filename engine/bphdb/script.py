"""Static analysis of a Sybase backup/restore shell script (nothing is executed).

``analyze_script(path)`` reads a POSIX shell script the way a DBA reads it:
it finds the isql invocations (``isql``, ``$ISQL``, ``"$ISQL"``, ``${ISQL}``,
``fisql``, ``sybar-isql``, ``sybar isql``, ``$SYBASE/$SYBASE_OCS/bin/isql``, a
variable assigned one of those), skipping comments and here-document bodies;
their flags (``-U -P -S -D -i -o -w -e -b -I ...``, glued or spaced); where the
SQL comes from (``-i FILE`` resolved against variables assigned earlier and
```dirname "$0"``` / ``$(dirname "$0")``, a ``< FILE`` redirection, a
here-document, a SQL file the script writes itself with ``cat > F <<EOF``);
and the dump/load/online statements of that SQL (``find_backup_statements``),
with the line numbers of the file they are in.

Values known only at run time show as ``<NAME>`` (``$DUMPDIR/x.dmp`` with
``DUMPDIR=${DUMPDIR:-/tmp}`` reads ``<DUMPDIR>/x.dmp``). A database given by a
``for db in a b; do`` loop variable expands to the loop's words.

``ScriptAnalysis.to_dict()`` mirrors the ``expect.json`` files of
``tests/dataserver/data/scripts``.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.dataserver.tsql import (
    DumpDatabase,
    DumpLoad,
    DumpTransaction,
    LoadDatabase,
    LoadTransaction,
    OnlineDatabase,
    Statement,
    TSQLSyntaxError,
    find_backup_statements,
    statement_kind,
)

__all__ = [
    "ISQL_NAMES", "Word", "Heredoc", "Command", "IsqlCall", "FoundStatement", "SyntaxProblem",
    "ScriptAnalysis", "analyze_script", "analyze_text", "parse_shell", "MAX_SCRIPT_BYTES",
]

#: program names that are isql
ISQL_NAMES = frozenset(("isql", "fisql", "sybar-isql", "isql64", "isql_r64"))
#: isql flags that take a value (glued ``-Usa`` or spaced ``-U sa``)
_VALUE_FLAGS = set("UPSDiowIHJzsctlmaAEyRKkWTfNOxQ")
_BOOL_FLAGS = set("ebnpvXYFqhZ")
#: words that run the next word as the command
_WRAPPERS = frozenset(("exec", "nohup", "time", "command", "nice", "env", "sudo", "timeout", "ionice", "stdbuf"))
_KEYWORDS = frozenset(("if", "then", "else", "elif", "do", "while", "until", "!", "{", "fi", "}", "esac"))
_ASSIGN = re.compile(r"^([A-Za-z_]\w*)(\+?=)(.*)$", re.S)
_MAX_DEPTH = 12
#: a shell script larger than this is not a script a DBA selects (the GUI lists every file)
MAX_SCRIPT_BYTES = 4 * 1024 * 1024
_SQL_START = re.compile(r"(?:use|go|dump|load|online|create|select|exec|execute|sp_\w+|declare|print|set)\b", re.I)


# ===================================================================================================
# The shell lexer: commands with their words, redirections and here-documents
# ===================================================================================================
@dataclass
class Word:
    text: str  # raw source text (quotes kept)
    line: int


@dataclass
class Heredoc:
    delimiter: str
    quoted: bool  # <<'EOF': no expansion in the body
    dash: bool  # <<-EOF
    line: int  # the line of the << operator
    body: str = ""
    body_line: int = 0  # first line of the body
    terminated: bool = True
    herestring: bool = False  # <<< word


@dataclass
class Command:
    words: list[Word] = field(default_factory=list)
    redirects: list[tuple[str, Word]] = field(default_factory=list)  # (op, target)
    heredocs: list[Heredoc] = field(default_factory=list)
    piped_in: bool = False
    piped_out: bool = False
    in_substitution: bool = False
    line: int = 0
    loops: tuple = ()  # ((var, (values...) or None), ...) of the enclosing for loops

    @property
    def first_line(self) -> int:
        if self.words:
            return self.words[0].line
        if self.redirects:
            return self.redirects[0][1].line
        return self.line


class _Lexer:
    def __init__(self, src: str, line: int = 1):
        self.src = src
        self.n = len(src)
        self.i = 0
        self.line = line
        self.commands: list[Command] = []
        self.comments: list[tuple[int, str]] = []
        self.pending: list[Heredoc] = []
        self.depth = 0

    # -- commands ----------------------------------------------------------------------------------
    def parse_list(self, nested: bool = False) -> None:
        src = self.src
        cmd = Command(in_substitution=nested, line=self.line)
        parens = 0
        self.depth += 1
        try:
            while self.i < self.n:
                c = src[self.i]
                if c in " \t\r":
                    self.i += 1
                elif c == "\\" and src.startswith("\\\n", self.i):
                    self.i += 2
                    self.line += 1
                elif c == "\n":
                    cmd = self._end(cmd, nested)
                    self.i += 1
                    self.line += 1
                    self._read_heredocs()
                elif c == "#":
                    j = src.find("\n", self.i)
                    j = self.n if j < 0 else j
                    self.comments.append((self.line, src[self.i + 1 : j]))
                    self.i = j
                elif c in ";&|()":
                    m = re.compile(r";;&?|;&|&&|\|\||\|&|[;&|()]").match(src, self.i)
                    op = m.group()
                    self.i = m.end()
                    if op == "(":
                        parens += 1
                    elif op == ")":
                        if nested and parens == 0:
                            self._end(cmd, nested)
                            return
                        parens -= 1
                    prev = cmd
                    cmd = self._end(cmd, nested)
                    if op in ("|", "|&"):
                        prev.piped_out = True
                        cmd.piped_in = True
                elif (m := re.compile(r"\d*(<<<|<<-|<<|>>|>&|<&|<>|>\||<|>)").match(src, self.i)) and (
                        c in "<>" or m.group(1)):
                    self.i = m.end()
                    op = m.group(1)
                    while self.i < self.n and src[self.i] in " \t":
                        self.i += 1
                    target = self._read_word()
                    if target is None:
                        continue
                    if not cmd.words and not cmd.redirects:
                        cmd.line = target.line
                    if op in ("<<", "<<-"):
                        quoted = any(q in target.text for q in "'\"\\")
                        delim = re.sub(r"[\"'\\]", "", target.text)
                        h = Heredoc(delim, quoted, op == "<<-", target.line)
                        cmd.heredocs.append(h)
                        self.pending.append(h)
                    elif op == "<<<":
                        cmd.heredocs.append(Heredoc("", False, False, target.line, body=_unquote_simple(target.text),
                                                    body_line=target.line, herestring=True))
                    else:
                        cmd.redirects.append((op, target))
                else:
                    w = self._read_word()
                    if w is None:  # pragma: no cover - defensive
                        self.i += 1
                        continue
                    if not cmd.words and not cmd.redirects:
                        cmd.line = w.line
                    cmd.words.append(w)
            self._end(cmd, nested)
        finally:
            self.depth -= 1

    def _end(self, cmd: Command, nested: bool) -> Command:
        if cmd.words or cmd.redirects or cmd.heredocs:
            self.commands.append(cmd)
        return Command(in_substitution=nested, line=self.line)

    def _read_heredocs(self) -> None:
        pending, self.pending = self.pending, []
        src = self.src
        for h in pending:
            h.body_line = self.line
            lines = []
            while True:
                if self.i >= self.n:
                    h.terminated = False
                    break
                j = src.find("\n", self.i)
                j = self.n if j < 0 else j
                text = src[self.i : j]
                self.i = min(j + 1, self.n)
                self.line += 1
                cmp = text.lstrip("\t") if h.dash else text
                if cmp.rstrip("\r") == h.delimiter:
                    break
                lines.append(cmp if h.dash else text)
            h.body = "".join(x + "\n" for x in lines)

    # -- words -------------------------------------------------------------------------------------
    def _read_word(self) -> Word | None:
        src = self.src
        start = self.i
        line = self.line
        while self.i < self.n:
            c = src[self.i]
            if c in " \t\r\n;&|<>()":
                break
            if c == "\\":
                if src.startswith("\\\n", self.i):
                    self.line += 1
                self.i += 2
            elif c == "'":
                j = src.find("'", self.i + 1)
                j = self.n - 1 if j < 0 else j
                self.line += src.count("\n", self.i, j + 1)
                self.i = j + 1
            elif c == '"':
                self._dquote()
            elif c == "`":
                self._backquote()
            elif c == "$":
                self._dollar()
            else:
                self.i += 1
        if self.i == start:
            return None
        return Word(src[start : self.i].replace("\\\n", ""), line)

    def _dquote(self) -> None:
        src = self.src
        self.i += 1
        while self.i < self.n:
            c = src[self.i]
            if c == "\\":
                if src.startswith("\\\n", self.i):
                    self.line += 1
                self.i += 2
            elif c == '"':
                self.i += 1
                return
            elif c == "`":
                self._backquote()
            elif c == "$":
                self._dollar()
            else:
                if c == "\n":
                    self.line += 1
                self.i += 1

    def _backquote(self) -> None:
        src = self.src
        j = self.i + 1
        while j < self.n and src[j] != "`":
            j += 2 if src[j] == "\\" else 1
        inner = src[self.i + 1 : j].replace("\\`", "`").replace("\\\\", "\\")
        if self.depth < _MAX_DEPTH:
            sub = _Lexer(inner, self.line)
            sub.depth = self.depth
            sub.parse_list(nested=False)
            for c in sub.commands:
                c.in_substitution = True
            self.commands.extend(sub.commands)
        self.line += src.count("\n", self.i, min(j + 1, self.n))
        self.i = min(j + 1, self.n)

    def _dollar(self) -> None:
        src = self.src
        if src.startswith("$((", self.i):
            depth = 0
            j = self.i + 1
            while j < self.n:
                if src[j] == "(":
                    depth += 1
                elif src[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            self.line += src.count("\n", self.i, j)
            self.i = min(j + 1, self.n)
        elif src.startswith("$(", self.i):
            self.i += 2
            if self.depth < _MAX_DEPTH:
                self.parse_list(nested=True)
            else:  # pragma: no cover - absurd nesting: skip to the next ')'
                j = src.find(")", self.i)
                self.i = self.n if j < 0 else j + 1
        elif src.startswith("${", self.i):
            depth = 0
            j = self.i + 1
            while j < self.n:
                if src[j] == "{":
                    depth += 1
                elif src[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                elif src[j] == "\\":
                    j += 1
                j += 1
            self.line += src.count("\n", self.i, j)
            self.i = min(j + 1, self.n)
        else:
            self.i += 1


def _unquote_simple(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "'":
            j = text.find("'", i + 1)
            j = len(text) if j < 0 else j
            out.append(text[i + 1 : j])
            i = j + 1
        elif c == '"':
            i += 1
        elif c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_shell(src: str) -> tuple[list[Command], list[tuple[int, str]]]:
    """The commands of a shell script (in source order of their ends) and its comments
    (line, text after ``#``). Commands in ``$(...)`` and backquotes are included, marked
    ``in_substitution``. Enclosing ``for`` loops are filled in ``Command.loops``."""
    lx = _Lexer(src)
    lx.parse_list()
    commands = sorted(lx.commands, key=lambda c: (c.first_line, c.in_substitution))
    stack: list[tuple[str, tuple | None]] = []
    for cmd in commands:
        if cmd.in_substitution:
            cmd.loops = tuple(x for x in stack if x[0])
            continue
        words = [w.text for w in cmd.words]
        k = 0
        while k < len(words) and words[k] in _KEYWORDS:
            if words[k] in ("while", "until"):
                stack.append(("", None))
            k += 1
        if k < len(words) and words[k] == "done":
            if stack:
                stack.pop()
            k += 1
        elif k < len(words) and words[k] == "for" and k + 1 < len(words):
            var = words[k + 1]
            values = None
            if k + 2 < len(words) and words[k + 2] == "in":
                values = tuple(words[k + 3 :])
            stack.append((var, values))
        cmd.loops = tuple(x for x in stack if x[0])
    return commands, lx.comments


# ===================================================================================================
# Variables and expansion
# ===================================================================================================
class _Env:
    """Variables assigned in the script, and the expansion of words against them."""

    def __init__(self, commands: list[Command], script: Path):
        self.script = script
        self.scriptdir = str(script.parent)
        self.assigned: dict[str, list[tuple[int, str]]] = {}
        for cmd in commands:
            if cmd.in_substitution:
                continue
            words = cmd.words
            k = 0
            while k < len(words) and words[k].text in _KEYWORDS:
                k += 1
            if k < len(words) and words[k].text in ("export", "readonly", "local", "typeset", "declare"):
                k += 1
                while k < len(words) and words[k].text.startswith("-"):
                    k += 1
                for w in words[k:]:
                    if m := _ASSIGN.match(w.text):
                        self.assigned.setdefault(m.group(1), []).append((w.line, m.group(3)))
                continue
            prefix = []
            while k < len(words) and (m := _ASSIGN.match(words[k].text)):
                prefix.append((m.group(1), words[k].line, m.group(3)))
                k += 1
            if k == len(words):  # plain assignments
                for name, line, value in prefix:
                    self.assigned.setdefault(name, []).append((line, value))

    def raw_values(self, name: str) -> list[str]:
        return [v for _, v in self.assigned.get(name, ())]

    def value_before(self, name: str, line: int) -> str | None:
        best = None
        for ln, value in self.assigned.get(name, ()):
            if ln < line:
                best = value
        return best

    # -- expansion ---------------------------------------------------------------------------------
    def expand(self, raw: str, line: int, *, defaults: bool = False, quoted: bool = False,
               loops: tuple = (), depth: int = 0) -> tuple[str, bool]:
        """(text, known): ``raw`` with variables replaced by the values assigned before ``line``;
        anything known only at run time reads ``<NAME>`` and makes ``known`` False. ``defaults``
        takes ``${X:-default}`` for a variable the script never set; ``quoted``: ``raw`` is the
        inside of a double-quoted string (a here-document body)."""
        out: list[str] = []
        known = True
        i = 0
        n = len(raw)
        in_dq = quoted
        while i < n:
            c = raw[i]
            if c == "'" and not in_dq:
                j = raw.find("'", i + 1)
                j = n if j < 0 else j
                out.append(raw[i + 1 : j])
                i = j + 1
            elif c == '"' and not quoted:
                in_dq = not in_dq
                i += 1
            elif c == "\\" and i + 1 < n:
                out.append(raw[i + 1] if (not in_dq or raw[i + 1] in '$`"\\') else raw[i : i + 2])
                i += 2
            elif c == "`":
                j = i + 1
                while j < n and raw[j] != "`":
                    j += 2 if raw[j] == "\\" else 1
                text, ok = self._command_subst(raw[i + 1 : j].replace('\\"', '"'))
                out.append(text)
                known = known and ok
                i = j + 1
            elif c == "$" and raw.startswith("$(", i) and not raw.startswith("$((", i):
                j = _match_paren(raw, i + 1)
                text, ok = self._command_subst(raw[i + 2 : j])
                out.append(text)
                known = known and ok
                i = j + 1
            elif c == "$" and raw.startswith("${", i):
                j = _match_brace(raw, i + 1)
                text, ok = self._param(raw[i + 2 : j], line, defaults, loops, depth)
                out.append(text)
                known = known and ok
                i = j + 1
            elif c == "$" and (m := re.compile(r"\$([A-Za-z_]\w*|[0-9#?@*$!-])").match(raw, i)):
                text, ok = self._param(m.group(1), line, defaults, loops, depth)
                out.append(text)
                known = known and ok
                i = m.end()
            else:
                out.append(c)
                i += 1
        return "".join(out), known

    def _command_subst(self, cmd: str) -> tuple[str, bool]:
        c = cmd.strip()
        if "dirname" in c and re.search(r"\$\{?0\}?", c):
            return self.scriptdir, True
        if re.fullmatch(r"pwd|/bin/pwd", c):
            return "<PWD>", False
        word = c.split()[0] if c.split() else "command"
        return f"<{os.path.basename(word)}>", False

    def _param(self, body: str, line: int, defaults: bool, loops: tuple, depth: int) -> tuple[str, bool]:
        m = re.fullmatch(r"(#?)([A-Za-z_]\w*|[0-9#?@*$!-])(.*)", body, re.S)
        if not m:
            return f"<{body}>", False
        length, name, op = m.groups()
        if name == "0":
            if op in ("%/*",):
                return self.scriptdir, True
            if not op and not length:
                return str(self.script), True
        if length:
            return f"<#{name}>", False
        for var, values in reversed(loops):
            if var == name:
                if isinstance(values, str):  # bound to one of the loop's words
                    return values, True
                return f"<{name}>", False
        value = self._lookup(name, line, defaults, loops, depth)
        mdef = re.fullmatch(r":?([-=])(.*)", op, re.S)
        if value is None:
            if mdef and defaults:
                return self.expand(mdef.group(2), line, defaults=True, loops=loops, depth=depth + 1)
            return f"<{name}>", False
        if op and not mdef:
            return f"<{name}>", False
        return value

    def _lookup(self, name: str, line: int, defaults: bool, loops: tuple, depth: int) -> tuple[str, bool] | None:
        if depth > _MAX_DEPTH:
            return f"<{name}>", False
        raw = self.value_before(name, line)
        if raw is None:
            return None
        at = max(ln for ln, v in self.assigned[name] if ln < line)
        text, ok = self.expand(raw, at, defaults=defaults, loops=loops, depth=depth + 1)
        if not ok and _atomic(raw):
            return f"<{name}>", False
        return text, ok


def _match_paren(s: str, i: int) -> int:
    depth = 0
    j = i
    while j < len(s):
        if s[j] == "(":
            depth += 1
        elif s[j] == ")":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return len(s)


def _match_brace(s: str, i: int) -> int:
    depth = 0
    j = i
    while j < len(s):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return len(s)


def _atomic(raw: str) -> bool:
    """True when a value is one expansion and nothing else (``${X:-d}``, a backquoted command)."""
    r = raw.strip()
    if len(r) >= 2 and r[0] == r[-1] == '"':
        r = r[1:-1]
    if r.startswith("`") and r.endswith("`") and r.count("`") == 2:
        return True
    if r.startswith("$(") and _match_paren(r, 1) == len(r) - 1:
        return True
    if r.startswith("${") and _match_brace(r, 1) == len(r) - 1:
        return True
    return bool(re.fullmatch(r"\$\w+", r))


# ===================================================================================================
# isql invocations
# ===================================================================================================
_ISQL_IN_TEXT = re.compile(r"(?:^|[/\s\"'{:=\-])(?:f?isql(?:64)?|isql_r64|sybar-isql|sybar\s+isql)(?:$|[\s\"'}])")
_VAR_ONLY = re.compile(r'^"?\$\{?([A-Za-z_]\w*)\}?"?$')


@dataclass
class SyntaxProblem:
    file: str
    line: int
    message: str


@dataclass
class FoundStatement:
    """A dump/load/online statement the script's isql runs."""

    op: str  # "dump database", "load transaction", "online database", ...
    database: str  # as shown: a name, or <db> for a run-time value
    databases: list[str]  # resolved names (a loop variable gives one per loop word)
    file: str  # the file the statement is in (the SQL file, or the script for a here-document)
    line: int
    devices: list[str] = field(default_factory=list)
    device_lines: list[int] = field(default_factory=list)
    sybackup: list[dict | None] = field(default_factory=list)  # per device: parsed options or None
    with_options: dict = field(default_factory=dict)
    statement: Statement | None = None
    database_known: bool = True

    @property
    def end_line(self) -> int:
        """The last line of the statement in ``file`` (for highlighting)."""
        text = self.statement.text if self.statement is not None else ""
        return self.line + text.count("\n")

    def to_dict(self) -> dict:
        d: dict = {"op": self.op, "database": self.database, "file": self.file, "line": self.line}
        if self.op != "online database":
            d["devices"] = list(self.devices)
            sy = [s for s in self.sybackup if s]
            if sy:
                d["sybackup"] = sy[0]
            d["with"] = {k: (v if isinstance(v, bool | int) else str(v)) for k, v in self.with_options.items()}
        return d


@dataclass
class IsqlCall:
    line: int  # the line of the command word
    program: str  # the command word as written
    flags: list[tuple[str, str | None, int]] = field(default_factory=list)  # (letter, raw value, line)
    sql_source: str | None = None  # file | heredoc | pipe | stdin
    sql_file_text: str | None = None  # the -i (or < file) word as written
    sql_file: str | None = None  # resolved path (or <X>/... display when not known)
    sql_file_state: str | None = None  # ok | missing | unresolved | generated | unreadable
    sql_file_line: int = 0
    sql_file_defaulted: bool = False  # the path came from a ${VAR:-default}: the run may name another file
    heredoc: Heredoc | None = None
    generated_by: int | None = None  # the script line that writes the SQL file (cat > f <<EOF)
    statements: list[FoundStatement] = field(default_factory=list)
    syntax_errors: list[SyntaxProblem] = field(default_factory=list)
    loops: tuple = ()
    in_substitution: bool = False
    spaced: set = field(default_factory=set)  # letters given as "-U sa" rather than "-Usa"

    def flag(self, letter: str) -> str | None:
        for f, v, _ in self.flags:
            if f == letter:
                return v if v is not None else ""
        return None


@dataclass
class ScriptAnalysis:
    path: Path
    readable: bool = True
    read_error: str | None = None
    text: str = ""
    isql_calls: list[IsqlCall] = field(default_factory=list)
    commented_isql_lines: list[int] = field(default_factory=list)
    unterminated_heredocs: list[Heredoc] = field(default_factory=list)
    is_sybase_script: bool = False
    binary: bool = False  # not a text file (NUL bytes, or larger than MAX_SCRIPT_BYTES): not analysed

    @property
    def is_sql_file(self) -> bool:
        """An isql input file rather than a script (``x.sql``, or T-SQL with ``go`` lines, no ``#!``
        and no isql): selected by mistake, the linter says so."""
        if self.isql_calls or self.text.startswith("#!"):
            return False
        if self.path.suffix.lower() == ".sql":
            return True
        text = re.sub(r"/\*.*?\*/", "", self.text, flags=re.S)
        lines = [x.strip() for x in text.splitlines() if x.strip() and not x.strip().startswith("--")]
        return bool(lines) and bool(_SQL_START.match(lines[0])) and any(
            re.fullmatch(r"go(?:\s+\d+)?", x, re.I) for x in lines)

    @property
    def statements(self) -> list[FoundStatement]:
        return [s for c in self.isql_calls for s in c.statements]

    @property
    def backup_statements(self) -> list[FoundStatement]:
        return [s for s in self.statements if s.op != "online database"]

    @property
    def kind(self) -> str:
        for s in self.backup_statements:
            if s.op == "dump database":
                return "backup"
            if s.op == "dump transaction":
                return "tran_backup"
            return "restore"
        return "unknown"

    @property
    def databases(self) -> list[str]:
        out: list[str] = []
        for s in self.statements:
            for db in s.databases:
                if db not in out:
                    out.append(db)
        return out

    @property
    def stripes(self) -> int | None:
        counts = [len(s.devices) for s in self.backup_statements if s.devices]
        return max(counts) if counts else None

    @property
    def device(self) -> str | None:
        kinds = set()
        for s in self.backup_statements:
            st = s.statement
            for d in getattr(st, "devices", ()):
                if d.spec.lower().startswith("sybackup::"):
                    kinds.add("sybackup")
                elif d.compress_level is not None:
                    kinds.add("compress")
                else:
                    kinds.add("file")
        for k in ("sybackup", "compress", "file"):
            if k in kinds:
                return k
        return None

    @property
    def main_call(self) -> IsqlCall | None:
        for c in self.isql_calls:
            if c.statements:
                return c
        return self.isql_calls[0] if self.isql_calls else None

    @property
    def isql_line(self) -> int | None:
        c = self.main_call
        return c.line if c else None

    @property
    def sql_source(self) -> str | None:
        c = self.main_call
        if c is None:
            return None
        return "file" if c.sql_source == "file" else c.sql_source

    @property
    def sql_files(self) -> list[str]:
        out = []
        for c in self.isql_calls:
            if c.sql_source != "file" or c.sql_file is None:
                continue
            name = self.display_path(c.sql_file)
            if c.sql_file_state == "missing":
                name += " (missing)"
            elif c.sql_file_state == "generated":
                name += f" (written by the script, line {c.generated_by})"
            if name not in out:
                out.append(name)
        return out

    @property
    def sql_paths(self) -> list[Path]:
        """The SQL files isql reads that exist (for a preview pane), in order, once each."""
        out: list[Path] = []
        for c in self.isql_calls:
            if c.sql_source == "file" and c.sql_file_state == "ok" and Path(c.sql_file) not in out:
                out.append(Path(c.sql_file))
        return out

    def display_path(self, p: str) -> str:
        try:
            rel = os.path.relpath(p, self.path.parent.resolve())
        except ValueError:  # pragma: no cover - other drive
            return p
        return p if rel.startswith("..") else rel

    def to_dict(self) -> dict:
        """The fields of an ``expect.json`` (statements with file names relative to the script)."""
        stmts = []
        for s in self.statements:
            d = s.to_dict()
            d["file"] = self.display_path(d["file"]) if d["file"] != str(self.path) else self.path.name
            stmts.append(d)
        return {
            "script": self.path.name, "kind": self.kind, "databases": self.databases, "stripes": self.stripes,
            "device": self.device, "sql_source": self.sql_source, "sql_files": self.sql_files,
            "isql_line": self.isql_line, "statements": stmts, "is_sybase_script": self.is_sybase_script,
        }


def analyze_script(path: str | os.PathLike) -> ScriptAnalysis:
    """Read and analyse a shell script (see the module docstring). Never raises for a bad
    script: an unreadable one gives ``readable=False`` and ``read_error``."""
    p = Path(path)
    try:
        if not stat.S_ISREG(os.stat(p).st_mode):  # a FIFO or a device would block or never end
            return ScriptAnalysis(p, readable=False, read_error="not a regular file")
        with open(p, "rb") as f:
            raw = f.read(MAX_SCRIPT_BYTES + 1)
    except OSError as e:
        return ScriptAnalysis(p, readable=False, read_error=e.strerror or str(e))
    if len(raw) > MAX_SCRIPT_BYTES or b"\0" in raw[:8192]:
        return ScriptAnalysis(p, binary=True)
    return analyze_text(raw.decode("utf-8", errors="replace"), p)


def analyze_text(text: str, path: str | os.PathLike) -> ScriptAnalysis:
    """Like ``analyze_script`` for a script's text (SQL files are still read from disk)."""
    p = Path(path)
    a = ScriptAnalysis(p, text=text)
    script_abs = p if p.is_absolute() else Path(os.path.abspath(p))
    commands, comments = parse_shell(text)
    env = _Env(commands, script_abs)
    a.unterminated_heredocs = [h for c in commands for h in c.heredocs if not h.terminated]
    for i, cmd in enumerate(commands):
        call = _isql_call(cmd, env)
        if call is None:
            continue
        for c in _bound_calls(call, cmd, env):
            _sql_of(c, cmd, commands[:i], env, script_abs, p)
            a.isql_calls.append(c)
    for line, ctext in comments:
        sub, _ = parse_shell(ctext)
        for c in sub:
            call = _isql_call(c, env)
            # prose that mentions isql ("# isql echoes the SQL") is not a commented-out command
            if call is not None and (call.flags or c.redirects or c.heredocs):
                a.commented_isql_lines.append(line)
                break
    a.is_sybase_script = not a.is_sql_file and (bool(a.isql_calls or a.commented_isql_lines) or bool(
        re.search(r"\b(?:dump|load)\s+(?:database|tran(?:saction)?)\b", text, re.I)))
    return a


def _command_index(cmd: Command) -> int:
    words = cmd.words
    k = 0
    while k < len(words) and (words[k].text in _KEYWORDS or words[k].text == "done"):
        k += 1
    while k < len(words) and _ASSIGN.match(words[k].text):
        k += 1
    while k < len(words) and os.path.basename(_unquote_simple(words[k].text)) in _WRAPPERS:
        k += 1
        while k < len(words) and (words[k].text.startswith("-") or _ASSIGN.match(words[k].text)):
            k += 1
    return k


def _is_isql_word(text: str, line: int, env: _Env, depth: int = 0) -> bool:
    m = _VAR_ONLY.match(text)
    if m:
        name = m.group(1)
        if "ISQL" in name.upper():
            return True
        if depth < 4:
            return any(_is_isql_word(v, line, env, depth + 1) or _ISQL_IN_TEXT.search(v)
                       for v in env.raw_values(name))
        return False
    value, _ = env.expand(text, line, defaults=True)
    base = os.path.basename(value.strip())
    return base in ISQL_NAMES


def _isql_call(cmd: Command, env: _Env) -> IsqlCall | None:
    words = cmd.words
    k = _command_index(cmd)
    if k >= len(words):
        return None
    w = words[k]
    start = None
    if _is_isql_word(w.text, w.line, env):
        start = k + 1
    elif os.path.basename(_unquote_simple(w.text)) == "sybar" and k + 1 < len(words) and words[k + 1].text == "isql":
        start = k + 2
    if start is None:
        return None
    call = IsqlCall(line=w.line, program=" ".join(x.text for x in words[k:start]), loops=cmd.loops,
                    in_substitution=cmd.in_substitution)
    j = start
    while j < len(words):
        t = _unquote_simple(words[j].text) if not words[j].text.startswith("-") else words[j].text
        raw = words[j].text
        if raw.startswith("-") and len(raw) >= 2 and raw[1].isalpha():
            letter = raw[1]
            if letter in _VALUE_FLAGS:
                if len(raw) > 2:
                    call.flags.append((letter, raw[2:], words[j].line))
                elif j + 1 < len(words) and not words[j + 1].text.startswith("-"):
                    call.flags.append((letter, words[j + 1].text, words[j].line))
                    call.spaced.add(letter)
                    j += 1
                else:
                    call.flags.append((letter, None, words[j].line))
            else:
                for ch in raw[1:]:
                    call.flags.append((ch, None, words[j].line))
        elif t == "--":
            pass
        j += 1
    return call


def _bound_calls(call: IsqlCall, cmd: Command, env: _Env) -> list[IsqlCall]:
    """``for db in a b; do isql -i $HERE/dump_$db.sql; done`` runs isql once per word: one call
    each, with the loop variable bound, so that every SQL file is found and checked."""
    word = next((v for f, v, _ in call.flags if f == "i" and v is not None), None)
    if word is None:
        word = next((t.text for op, t in cmd.redirects if op == "<"), None)
    if word is None or not call.loops:
        return [call]
    for k, (var, values) in enumerate(call.loops):
        if not isinstance(values, tuple) or not values:
            continue
        if f"<{var}>" not in env.expand(word, call.line, loops=call.loops)[0]:
            continue
        words = []
        for v in values:
            text, known = env.expand(v, call.line)
            if not known:
                return [call]
            words.extend(text.split())
        out = []
        for w in words:
            loops = (*call.loops[:k], (var, w), *call.loops[k + 1 :])
            out.append(replace(call, loops=loops, flags=list(call.flags), statements=[], syntax_errors=[]))
        return out or [call]
    return [call]


# ===================================================================================================
# The SQL an isql call runs
# ===================================================================================================
def _sql_of(call: IsqlCall, cmd: Command, earlier: list[Command], env: _Env, script_abs: Path,
            script_path: Path) -> None:
    input_word = None
    for f, v, _line in call.flags:
        if f == "i" and v is not None:
            input_word = v
    if input_word is None:
        for op, target in cmd.redirects:
            if op == "<":
                input_word = target.text
    if input_word is not None:
        call.sql_source = "file"
        call.sql_file_text = input_word
        _sql_file(call, input_word, earlier, env, script_abs, script_path)
        return
    here = [h for h in cmd.heredocs]
    if here:
        h = here[-1]
        call.sql_source = "heredoc"
        call.heredoc = h
        _sql_text(call, h.body, str(script_path), h.body_line, shell=not h.quoted, env=env, expand_line=cmd.first_line)
        return
    call.sql_source = "pipe" if cmd.piped_in else "stdin"


def _sql_file(call: IsqlCall, word: str, earlier: list[Command], env: _Env, script_abs: Path,
              script_path: Path) -> None:
    value, known = env.expand(word, call.line, loops=call.loops)
    if not known:
        dvalue, dknown = env.expand(word, call.line, defaults=True, loops=call.loops)
        if dknown:
            value, known = dvalue, True
            call.sql_file_defaulted = True
    path = value if os.path.isabs(value) or not known else os.path.join(str(script_abs.parent), value)
    if known:
        path = os.path.normpath(path)
    call.sql_file = path
    # a SQL file the script writes itself (cat > $F <<EOF ... EOF) before running isql
    for prev in reversed(earlier):
        for op, target in prev.redirects:
            if op in (">", ">>", ">|") and prev.heredocs:
                tv, _ = env.expand(target.text, prev.first_line)
                tp = tv if os.path.isabs(tv) or "<" in tv else os.path.join(str(script_abs.parent), tv)
                if os.path.normpath(tp) == os.path.normpath(path) or tv == value:
                    h = prev.heredocs[-1]
                    call.sql_file_state = "generated"
                    call.generated_by = prev.first_line
                    _sql_text(call, h.body, str(script_path), h.body_line, shell=not h.quoted, env=env,
                              expand_line=prev.first_line)
                    return
    if not known:
        call.sql_file_state = "unresolved"
        return
    try:
        # a regular file of bounded size only: -i /dev/zero or a FIFO must not hang or fill memory
        if not stat.S_ISREG(os.stat(path).st_mode):
            call.sql_file_state = "unreadable"
            return
        with open(path, "rb") as f:
            data = f.read(MAX_SCRIPT_BYTES + 1)
    except FileNotFoundError:
        call.sql_file_state = "missing"
        return
    except (OSError, ValueError):
        call.sql_file_state = "unreadable"
        return
    if len(data) > MAX_SCRIPT_BYTES:
        call.sql_file_state = "unreadable"
        return
    call.sql_file_state = "ok"
    _sql_text(call, data.decode("utf-8", errors="replace"), path, 1, shell=False, env=None, expand_line=0)


def _sql_text(call: IsqlCall, sql: str, file: str, first_line: int, *, shell: bool, env: _Env | None,
              expand_line: int) -> None:
    errors: list[TSQLSyntaxError] = []
    found = find_backup_statements(sql, shell=shell, errors=errors)
    off = first_line - 1
    for e in errors:
        call.syntax_errors.append(SyntaxProblem(file, e.line + off, e.message))
    for st in found:
        call.statements.append(_found(st, file, off, shell and env is not None, env, expand_line, call.loops))


def _found(st: Statement, file: str, off: int, expand: bool, env: _Env | None, line: int,
           loops: tuple) -> FoundStatement:
    db_raw = str(getattr(st, "database", ""))
    db_kind = getattr(getattr(st, "database", None), "kind", "name")
    known = True
    databases: list[str]
    if expand and env is not None and db_kind == "shell":
        shown, known = env.expand(db_raw, line, quoted=True, loops=loops)
        databases = [shown] if known else []
        m = _VAR_ONLY.match(db_raw)
        if not known and m:
            for var, values in loops:
                if var == m.group(1) and isinstance(values, tuple) and values:
                    vals = [env.expand(v, line)[0] for v in values]
                    if all("<" not in v and v for v in vals):
                        databases = vals
                        break
    elif db_kind in ("variable", "global", "shell"):
        shown, known, databases = db_raw, False, []
    else:
        shown, databases = db_raw, [db_raw]
    fs = FoundStatement(op=statement_kind(st), database=shown, databases=databases, file=file,
                        line=st.line + off, statement=st, database_known=known)
    if isinstance(st, DumpLoad):
        fs.with_options = dict(st.options)
        search_from = 0
        for d in st.devices:
            spec = d.spec
            idx = st.text.find(spec, search_from) if spec else -1
            if idx >= 0:
                search_from = idx + len(spec)
            dline = st.line + off + (st.text.count("\n", 0, idx) if idx >= 0 else 0)
            shown_dev = env.expand(spec, line, quoted=True, loops=loops)[0] if (expand and env is not None) else spec
            if d.is_variable:
                shown_dev = spec
            fs.devices.append(shown_dev)
            fs.device_lines.append(dline)
            fs.sybackup.append(None)
            if shown_dev.lower().startswith("sybackup::"):
                fs.sybackup[-1] = _sybackup(shown_dev)
    return fs


def _sybackup(device: str) -> dict | None:
    from engine.config import parse_sybackup_options
    from engine.jobs.status import StatusError

    try:
        return parse_sybackup_options(device)
    except StatusError:
        return None


_DUMP_TYPES = (DumpDatabase, DumpTransaction, LoadDatabase, LoadTransaction, OnlineDatabase)
