"""Translation of the T-SQL that sybar hands to SQLite (part of ``tsql.py``).

Works on the tokens of one statement. Only the places where the dialects
differ are rewritten; everything else is copied token by token (comments
dropped, white space normalised to single spaces):

* ``@name`` -> ``:v_name``, ``@@spid`` -> ``:__spid`` (see ``GLOBAL_PARAM``,
  ``param_name``); the names used are returned with the text.
* ``select top N ...`` -> ``... limit N`` (at the end of that select's scope);
  ``select ... into t from ...`` -> ``create table t as select ... from ...``
  (``#t`` -> ``create temp table "#t"``); ``holdlock``/``noholdlock``/
  ``readpast``, table hints ``(index i [prefetch 16 lru])``, ``at isolation ...``,
  ``for browse``/``for read only``/``for update`` are dropped.
* functions: ``getdate()`` -> ``strftime('%Y-%m-%d %H:%M:%f','now','localtime')``,
  ``getutcdate()``, ``isnull`` -> ``ifnull``, ``len``/``char_length`` ->
  ``length``, ``datalength(x)`` -> ``length(cast(x as blob))``,
  ``convert(type, x[, style])`` -> ``cast(x as affinity)`` (a few date
  styles -> ``strftime``), ``substring`` -> ``substr``, ``str_replace`` ->
  ``replace``, ``charindex(a, b)`` -> ``instr(b, a)``, ``left``/``right`` ->
  ``substr``, ``ascii`` -> ``unicode``, ``newid()``, ``rand()``, and
  ``db_name()``/``suser_name()``/``user_name()``/``host_name()`` -> parameters
  (``FUNCTION_PARAM``).
* names: ``[x]`` -> ``"x"``; ``"x"`` -> ``'x'`` (a string) unless
  quoted_identifier is on; ``#temp`` -> ``"#temp"``; ``db..t`` and
  ``db.dbo.t`` -> ``db.t``; ``dbo.t`` -> ``t``; ``!<``/``!>`` -> ``>=``/``<=``.
* statements: ``truncate table t`` -> ``delete from t``; ``insert t`` ->
  ``insert into t``; ``delete t`` -> ``delete from t``; ``create table``:
  ``identity`` -> ``integer primary key autoincrement`` (``integer`` when the
  table has another primary key), ``default <expression>`` in parentheses,
  ``clustered``/``nonclustered`` and everything after the column list
  (``lock datarows``, ``on segment``, ``with ...``) dropped; ``create index``
  loses ``clustered``/``with``/``on segment``; ``drop index t.i`` -> ``drop
  index i``; ``drop table a, b`` and ``alter table t add a ..., b ...`` become
  one statement each; ``alter table t add c`` -> ``add column c``, ``drop c``
  -> ``drop column c``; ``update statistics t`` -> ``analyze t``.

String concatenation with ``+`` is not translated.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from engine.dataserver.tsql_lex import (
    BRACKET,
    DSTR,
    GVAR,
    NUM,
    OP,
    SHELL,
    SSTR,
    VAR,
    WORD,
    Token,
    TSQLSyntaxError,
    tokenize,
)

__all__ = ["GLOBAL_PARAM", "FUNCTION_PARAM", "NOW", "param_name", "parameters_in", "Translator"]

#: ``@@global`` -> SQLite named parameter (without the ``:``) the dataserver binds.
GLOBAL_PARAM = {
    "@@version": "__version",
    "@@servername": "__servername",
    "@@spid": "__spid",
    "@@rowcount": "__rowcount",
    "@@error": "__error",
    "@@trancount": "__trancount",
}
#: Argument-less built-in functions that become parameters too.
FUNCTION_PARAM = {
    "db_name": "__db_name",
    "suser_name": "__suser_name",
    "user_name": "__user_name",
    "host_name": "__host_name",
}
#: What ``getdate()`` becomes.
NOW = "strftime('%Y-%m-%d %H:%M:%f','now','localtime')"
_NOW_FUNCTIONS = {
    "getdate": NOW,
    "getutcdate": "strftime('%Y-%m-%d %H:%M:%f','now')",
    "current_date": "date('now','localtime')",
    "current_time": "time('now','localtime')",
    "current_bigdatetime": NOW,
    "newid": "lower(hex(randomblob(16)))",
    "rand": "(abs(random()) / 9223372036854775808.0)",
}
_RENAMED = {
    "isnull": "ifnull",
    "len": "length",
    "char_length": "length",
    "character_length": "length",
    "substring": "substr",
    "str_replace": "replace",
    "ascii": "unicode",
}
# convert(char-type, date, style) -> strftime format
_DATE_STYLES = {
    "1": "%m/%d/%y", "101": "%m/%d/%Y", "2": "%y.%m.%d", "102": "%Y.%m.%d", "3": "%d/%m/%y",
    "103": "%d/%m/%Y", "4": "%d.%m.%y", "104": "%d.%m.%Y", "5": "%d-%m-%y", "105": "%d-%m-%Y",
    "8": "%H:%M:%S", "108": "%H:%M:%S", "10": "%m-%d-%y", "110": "%m-%d-%Y", "11": "%y/%m/%d",
    "111": "%Y/%m/%d", "12": "%y%m%d", "112": "%Y%m%d", "23": "%Y-%m-%dT%H:%M:%S", "140": "%Y-%m-%d %H:%M:%f",
}
_TEXT_TYPES = frozenset((
    "char", "varchar", "nchar", "nvarchar", "unichar", "univarchar", "text", "unitext", "sysname",
    "longsysname", "character"
))
_INT_TYPES = frozenset(("int", "integer", "smallint", "tinyint", "bigint", "bit", "unsigned"))
_NUMERIC_TYPES = frozenset(("numeric", "decimal", "money", "smallmoney"))
_REAL_TYPES = frozenset(("float", "real", "double"))
_BLOB_TYPES = frozenset(("binary", "varbinary", "image"))

MAX_NESTING = 64
_SQL_OPERATORS = frozenset(("(", ")", ",", ".", "=", "<", ">", "+", "-", "*", "/", "%", "&", "|", "^", "~",
                            "<>", "!=", "<=", ">=", "!<", "!>", "||"))
_SAFE_PARAM = re.compile(r"[^\w]")
_PLAIN_NAME = re.compile(r"[^\W\d]\w*")
_COLUMN_MODIFIERS = frozenset((
    "not", "null", "constraint", "primary", "unique", "check", "references", "identity", "collate",
    "default", "clustered", "nonclustered"
))
_TABLE_CONSTRAINTS = frozenset(("constraint", "primary", "unique", "check", "foreign"))


def param_name(var: str) -> str:
    """The SQLite parameter name (no ``:``) for ``@name`` / ``@@global``.

    ``@x`` -> ``v_x``; ``@@spid`` -> ``__spid`` (``GLOBAL_PARAM``; other
    globals -> ``__`` + their lower-case name). Characters SQLite does not
    accept in a parameter name are written as ``_xHH``.
    """
    if var.startswith("@@"):
        g = var.lower()
        return GLOBAL_PARAM.get(g) or "__" + _SAFE_PARAM.sub(_escape_char, g[2:])
    if var.startswith("@"):
        return "v_" + _SAFE_PARAM.sub(_escape_char, var[1:])
    raise ValueError(f"not a T-SQL variable: {var!r}")


def _escape_char(m: re.Match) -> str:
    return f"_x{ord(m.group()):02X}"


def parameters_in(sqlite_text: str) -> tuple[str, ...]:
    """The ``:name`` parameters a translated text uses, in order of first use (no ``:``)."""
    tokens, _ = tokenize(sqlite_text, recover=True)
    seen: list[str] = []
    for a, b in zip(tokens, tokens[1:], strict=False):
        if a.is_op(":") and b.kind == WORD and a.end == b.start and b.text not in seen:
            seen.append(b.text)
    return tuple(seen)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Translator:
    """Translates the tokens of one statement. ``error(token)`` builds the syntax error to raise."""

    def __init__(self, toks: list[Token], *, quoted_identifier: bool,
                 error: Callable[[Token | None], TSQLSyntaxError]):
        self.t = toks
        self.n = len(toks)
        self.qi = quoted_identifier
        self.error = error
        self.skip: set[int] = set()
        self.before: dict[int, list] = {}
        self.params: list[str] = []
        self.match: dict[int, int] = {}
        self.enclosing: list[int] = [-1] * self.n
        stack: list[int] = []
        for i, tok in enumerate(toks):
            self.enclosing[i] = stack[-1] if stack else -1
            if tok.kind == OP:
                if tok.text not in _SQL_OPERATORS:  # `$x`, `?`, `:x` would be SQLite parameters
                    raise error(tok)
                if tok.text == "(":
                    stack.append(i)
                    if len(stack) > MAX_NESTING:
                        raise error(tok)
                elif tok.text == ")":
                    if not stack:
                        raise error(tok)
                    j = stack.pop()
                    self.match[j] = i
                    self.match[i] = j
        if stack:
            raise error(toks[-1])
        self._names()

    # -- building blocks ---------------------------------------------------------------------------
    def _names(self) -> None:
        """``db..t`` -> ``db.t``; ``db.dbo.t`` -> ``db.t``; ``dbo.t`` -> ``t``."""
        t = self.t
        for i in range(self.n - 2):
            a, b, c = t[i], t[i + 1], t[i + 2]
            if a.is_op(".") and b.is_op(".") and a.end == b.start and i > 0 and _is_name(t[i - 1]):
                self.skip.add(i + 1)
            elif a.is_word("dbo") and b.is_op(".") and _is_name(c):
                self.skip.update((i, i + 1))

    def add_before(self, i: int, *items) -> None:
        self.before.setdefault(i, []).extend(items)

    def use_param(self, name: str) -> str:
        if name not in self.params:
            self.params.append(name)
        return ":" + name

    def map_token(self, i: int) -> str:
        tok = self.t[i]
        k = tok.kind
        if k in (VAR, GVAR):
            return self.use_param(param_name(tok.text))
        if k == DSTR:
            return quote_ident(tok.value) if self.qi else quote_string(tok.value)
        if k == BRACKET:
            return quote_ident(tok.value)
        if k == WORD:
            return tok.text if _PLAIN_NAME.fullmatch(tok.text) else quote_ident(tok.text)
        if k == OP:
            if tok.text == "!<":
                return ">="
            if tok.text == "!>":
                return "<="
            if tok.text == "+" and self._string_beside(i):
                # T-SQL concatenates strings with +, SQLite with || ('/dumps/' + @db + '.dmp')
                return "||"
        return tok.text

    def _string_beside(self, i: int) -> bool:
        strings = (SSTR,) if self.qi else (SSTR, DSTR)
        return (i > 0 and self.t[i - 1].kind in strings) or (i + 1 < len(self.t) and self.t[i + 1].kind in strings)

    def emit(self, lo: int, hi: int, out: list) -> None:
        t = self.t
        i = lo
        while i < hi:
            if i in self.before:
                self._put(self.before[i], out)
            if i in self.skip:
                i += 1
                continue
            tok = t[i]
            if tok.kind == WORD and i + 1 < hi and t[i + 1].is_op("(") and (i + 1) not in self.skip:
                j = self.match.get(i + 1, -1)
                if i + 1 < j < hi and self._function(i, j, out):
                    i = j + 1
                    continue
            out.append((self.map_token(i), i))
            i += 1

    def _put(self, items: list, out: list) -> None:
        for item in items:
            if isinstance(item, int):
                out.append((self.map_token(item), None))
            else:
                out.append((item, None))

    def _close(self, j: int, text: str, out: list) -> None:
        if j in self.before:
            self._put(self.before[j], out)
        out.append((text, None))

    def commas(self, lo: int, hi: int) -> list[int]:
        """Indexes of the commas in ``[lo, hi)`` outside any parentheses."""
        found = []
        i = lo
        while i < hi:
            tok = self.t[i]
            if tok.is_op("("):
                i = self.match[i] + 1
                continue
            if tok.is_op(","):
                found.append(i)
            i += 1
        return found

    def _function(self, i: int, j: int, out: list) -> bool:
        """A call ``name ( ... )`` at ``i``, closing paren at ``j``: rewrite it if needed."""
        name = self.t[i].lower
        empty = j == i + 2
        if name in _NOW_FUNCTIONS and empty:
            out.append((_NOW_FUNCTIONS[name], None))
            return True
        if name in FUNCTION_PARAM and empty:
            out.append((self.use_param(FUNCTION_PARAM[name]), None))
            return True
        if name in _RENAMED:
            out.append((_RENAMED[name] + "(", None))
            self.emit(i + 2, j, out)
            self._close(j, ")", out)
            return True
        if name == "datalength":
            out.append(("length(cast(", None))
            self.emit(i + 2, j, out)
            self._close(j, "as blob))", out)
            return True
        if name not in ("convert", "charindex", "left", "right"):
            return False
        commas = self.commas(i + 2, j)
        if name == "convert" and commas:
            c1 = commas[0]
            c2 = commas[1] if len(commas) > 1 else j
            affinity = _affinity(self.t[i + 2 : c1])
            style = self.t[c2 + 1 : j] if c2 < j else []
            fmt = _DATE_STYLES.get(style[0].text) if len(style) == 1 and style[0].kind == NUM else None
            if fmt and affinity == "text":
                out.append((f"strftime({quote_string(fmt)},", None))
                self.emit(c1 + 1, c2, out)
                self._close(j, ")", out)
            else:
                out.append(("cast(", None))
                self.emit(c1 + 1, c2, out)
                self._close(j, f"as {affinity})", out)
            return True
        if name == "charindex" and len(commas) == 1:
            out.append(("instr(", None))
            self.emit(commas[0] + 1, j, out)
            out.append((",", None))
            self.emit(i + 2, commas[0], out)
            self._close(j, ")", out)
            return True
        if name in ("left", "right") and len(commas) == 1:
            out.append(("substr(", None))
            self.emit(i + 2, commas[0], out)
            out.append((", 1," if name == "left" else ", -(", None))
            self.emit(commas[0] + 1, j, out)
            self._close(j, ")" if name == "left" else "))", out)
            return True
        return False

    def text(self, out: list) -> str:
        parts: list[str] = []
        prev_idx = None
        prev_text = ""
        for text, idx in out:
            if not text:
                continue
            if parts:
                adjacent = (idx is not None and prev_idx is not None and idx == prev_idx + 1
                            and self.t[idx].start == self.t[prev_idx].end)
                glued = prev_text.endswith("(") or prev_text == "." or text == "." or text[0] in "),"
                if not (adjacent or glued):
                    parts.append(" ")
            parts.append(text)
            prev_idx, prev_text = idx, text
        return "".join(parts)

    def render(self, lo: int = 0, hi: int | None = None, tail: bool = True) -> str:
        out: list = []
        hi = self.n if hi is None else hi
        self.emit(lo, hi, out)
        if tail and hi == self.n and self.n in self.before:
            self._put(self.before[self.n], out)
        return self.text(out)

    def name_parts(self, lo: int, hi: int) -> tuple[list[list[int]], int]:
        """A dotted name starting at ``lo``: its parts (lists of token indexes) and the index after it."""
        parts: list[list[int]] = [[]]
        i = lo
        while i < hi:
            tok = self.t[i]
            if tok.is_op("."):
                parts.append([])
            elif _is_name(tok) and not parts[-1]:
                parts[-1].append(i)
            else:
                break
            i += 1
        if not parts[-1]:
            raise self.error(self.t[i] if i < self.n else (self.t[i - 1] if i > 0 else None))
        return parts, i

    def part_text(self, part: list[int]) -> str:
        return self.map_token(part[0]) if part else ""

    # -- select --------------------------------------------------------------------------------------
    def prepare_selects(self) -> None:
        """``top N`` -> ``limit N``; hints dropped (every select in the statement)."""
        t = self.t
        dropped_to = -1
        for i, tok in enumerate(t):
            if i < dropped_to:
                continue
            if tok.is_op("(") and i > 0 and _is_name(t[i - 1]) and self._is_table_hint(i):
                dropped_to = self.match[i] + 1
                self.skip.update(range(i, dropped_to))
                continue
            if tok.kind != WORD:
                continue
            lw = tok.lower
            if lw == "select":
                j = i + 1
                if j < self.n and t[j].is_word("distinct", "all"):
                    j += 1
                if j + 1 < self.n and t[j].is_word("top") and t[j + 1].kind in (NUM, VAR):
                    self.skip.update((j, j + 1))
                    scope = self.enclosing[i]
                    end = self.match[scope] if scope >= 0 else self.n
                    self.add_before(end, "limit", j + 1)
            elif lw in ("holdlock", "noholdlock", "readpast"):
                self.skip.add(i)
            elif lw == "at" and i + 1 < self.n and t[i + 1].is_word("isolation"):
                k = i + 2
                while k < self.n and (t[k].kind == NUM or t[k].is_word(
                        "read", "committed", "uncommitted", "repeatable", "serializable", "level")):
                    k += 1
                self.skip.update(range(i, k))
            elif lw == "for" and i + 1 < self.n and t[i + 1].is_word("browse", "read", "update"):
                depth_end = self.match[self.enclosing[i]] if self.enclosing[i] >= 0 else self.n
                if t[i + 1].lower == "read":
                    if i + 2 < self.n and t[i + 2].is_word("only"):
                        self.skip.update((i, i + 1, i + 2))
                else:
                    self.skip.update(range(i, depth_end))
                    dropped_to = depth_end

    def _is_table_hint(self, i: int) -> bool:
        """``t (index ix [prefetch 16] [lru|mru])``: an ASE table hint at ``(``."""
        return i + 1 < self.n and self.t[i + 1].is_word("index")

    def select_into(self) -> bool:
        """``select ... into t from ...`` (statement level): rewrite, True if found."""
        t = self.t
        i = 1
        while i < self.n:
            tok = t[i]
            if tok.is_op("("):
                i = self.match[i] + 1
                continue
            if tok.kind == WORD and tok.lower in ("from", "where", "union", "group", "order", "having"):
                return False
            if tok.is_word("into"):
                parts, end = self.name_parts(i + 1, self.n)
                self.skip.update(range(i, end))
                head = ["create", "table"]
                last = t[parts[-1][0]]
                if last.kind == WORD and last.text.startswith("#"):
                    head = ["create", "temp", "table"]
                name = self.table_name(parts)
                self.add_before(0, *head, *name, "as")
                return True
            i += 1
        return False

    def table_name(self, parts: list[list[int]]) -> list:
        """Render items for a dotted table name: ``db.owner.t`` -> ``db.t``, ``owner.t`` -> ``t``."""
        table = parts[-1][0]
        if len(parts) >= 3 and parts[0]:
            return [parts[0][0], ".", table]
        return [table]

    def assignments(self, start: int) -> tuple[tuple[tuple[str, str], ...], str]:
        """``select @a = x, @b = y [from ...]`` (``start`` = index of the first item)."""
        t = self.t
        end = start
        while end < self.n:
            tok = t[end]
            if tok.is_op("("):
                end = self.match[end] + 1
                continue
            if tok.kind == WORD and tok.lower in ("from", "where", "group", "order", "having", "union", "into"):
                break
            end += 1
        bounds = [start - 1, *self.commas(start, end), end]
        pairs = []
        for a, b in zip(bounds, bounds[1:], strict=False):
            lo = a + 1
            if not (lo + 2 <= b and t[lo].kind == VAR and t[lo + 1].is_op("=")):
                err = self.error(t[lo] if lo < self.n else None)
                err.message = ("A SELECT statement that assigns a value to a variable must not be combined "
                               "with data-retrieval operations.")
                err.args = (err.message,)
                err.number = 141
                raise err
            if lo + 2 == b:
                raise self.error(t[lo + 1])
            self.skip.update((lo, lo + 1))
            pairs.append((t[lo].text, lo + 2, b))
        sqlite = self.render()
        exprs = tuple((name, self.render(lo, hi, tail=False)) for name, lo, hi in pairs)
        return exprs, sqlite

    # -- DDL -----------------------------------------------------------------------------------------
    def create_table(self, name_at: int) -> str:
        """``create table NAME ( ... ) [anything]``; ``name_at`` = index of the name."""
        t = self.t
        parts, i = self.name_parts(name_at, self.n)
        if i >= self.n or not t[i].is_op("("):
            raise self.error(t[i] if i < self.n else t[-1])
        close = self.match[i]
        last = t[parts[-1][0]]
        out: list = [("create temp table" if last.text.startswith("#") and last.kind == WORD
                      else "create table", None)]
        self._put(self.table_name(parts), out)
        out.append(("(", None))
        bounds = [i, *self.commas(i + 1, close), close]
        items = [(a + 1, b) for a, b in zip(bounds, bounds[1:], strict=False)]
        has_other_pk = False
        for lo, hi in items:
            if lo >= hi:
                raise self.error(t[hi])
            if t[lo].kind == WORD and t[lo].lower in _TABLE_CONSTRAINTS:
                if any(t[k].is_word("primary") for k in range(lo, hi)):
                    has_other_pk = True
            elif not any(t[k].is_word("identity") for k in range(lo, hi)) and any(
                    t[k].is_word("primary") for k in range(lo, hi)):
                has_other_pk = True
        for n_item, (lo, hi) in enumerate(items):
            if n_item:
                out.append((",", None))
            if t[lo].kind == WORD and t[lo].lower in _TABLE_CONSTRAINTS:
                self._constraint(lo, hi, out)
            else:
                self._column(lo, hi, out, has_other_pk)
        out.append((")", None))
        return self.text(out)

    def _constraint(self, lo: int, hi: int, out: list) -> None:
        t = self.t
        k = lo
        while k < hi:
            tok = t[k]
            if tok.is_word("clustered", "nonclustered"):
                k += 1
                continue
            if tok.is_word("with"):  # with fillfactor = N, max_rows_per_page = N ...
                k += 1
                while k + 1 < hi and t[k].kind == WORD and t[k + 1].is_op("="):
                    k += 3
                    if k < hi and t[k].is_op(","):
                        k += 1
                continue
            if tok.is_word("on") and not (k + 1 < hi and t[k + 1].is_word("delete", "update")):
                k += 2  # on segment
                continue
            if tok.is_op("("):
                j = self.match[k]
                out.append(("(", None))
                self.emit(k + 1, j, out)
                out.append((")", None))
                k = j + 1
                continue
            self.emit(k, k + 1, out)
            k += 1

    def _column(self, lo: int, hi: int, out: list, has_other_pk: bool) -> None:
        """One column definition ``name type [(..)] modifiers``."""
        t = self.t
        if not _is_name(t[lo]):
            raise self.error(t[lo])
        if lo + 1 >= hi:
            raise self.error(t[lo])
        out.append((self.map_token(lo), None))
        k = lo + 1
        type_lo = k
        if t[k].kind not in (WORD, BRACKET) or t[k].lower in _COLUMN_MODIFIERS:
            raise self.error(t[k])
        k += 1
        if k < hi and t[k - 1].is_word("double", "unsigned", "long", "national", "char", "character") \
                and t[k].kind == WORD and t[k].lower not in _COLUMN_MODIFIERS:
            k += 1
        if k < hi and t[k].is_op("("):
            k = self.match[k] + 1
        type_hi = k
        identity = any(t[m].is_word("identity") for m in range(k, hi))
        if identity:
            out.append(("integer" if has_other_pk else "integer primary key autoincrement", None))
        else:
            self.emit(type_lo, type_hi, out)
        while k < hi:
            tok = t[k]
            if tok.is_word("identity", "clustered", "nonclustered"):
                k += 1
                continue
            if identity and not has_other_pk and tok.is_word("primary"):
                k += 2 if k + 1 < hi and t[k + 1].is_word("key") else 1
                continue
            if identity and not has_other_pk and tok.is_word("constraint") and k + 2 < hi \
                    and t[k + 2].is_word("primary"):
                k += 2
                continue
            if tok.is_word("default"):
                k = self._default(k, hi, out)
                continue
            if tok.is_op("("):
                j = self.match[k]
                out.append(("(", None))
                self.emit(k + 1, j, out)
                out.append((")", None))
                k = j + 1
                continue
            self.emit(k, k + 1, out)
            k += 1

    def _default(self, k: int, hi: int, out: list) -> int:
        """``default <expr>``: a literal as is, anything else in parentheses. Returns the next index."""
        t = self.t
        out.append(("default", None))
        lo = k + 1
        if lo >= hi:
            raise self.error(t[k])
        if t[lo].is_word("null"):
            out.append(("null", None))
            return lo + 1
        end = lo
        while end < hi:
            tok = t[end]
            if tok.is_op("("):
                end = self.match[end] + 1
                continue
            if tok.kind == WORD and tok.lower in _COLUMN_MODIFIERS:
                break
            end += 1
        if end == lo:
            raise self.error(t[lo])
        literal = (end - lo == 1 and t[lo].kind in (NUM, SSTR, DSTR)) or (
            end - lo == 2 and t[lo].is_op("-", "+") and t[lo + 1].kind == NUM)
        if literal:
            self.emit(lo, end, out)
        else:
            out.append(("(", None))
            self.emit(lo, end, out)
            out.append((")", None))
        return end

    def create_index(self) -> str:
        """``create [unique] [clustered|nonclustered] index NAME on TABLE (cols) [with ..] [on seg]``."""
        t = self.t
        k = 1
        unique = False
        while k < self.n and t[k].is_word("unique", "clustered", "nonclustered"):
            unique = unique or t[k].lower == "unique"
            k += 1
        if k >= self.n or not t[k].is_word("index"):
            raise self.error(t[k] if k < self.n else t[-1])
        name_parts, k = self.name_parts(k + 1, self.n)
        if k >= self.n or not t[k].is_word("on"):
            raise self.error(t[k] if k < self.n else t[-1])
        table_parts, k = self.name_parts(k + 1, self.n)
        if k >= self.n or not t[k].is_op("("):
            raise self.error(t[k] if k < self.n else t[-1])
        close = self.match[k]
        out: list = [("create unique index" if unique else "create index", None)]
        if len(table_parts) >= 3 and table_parts[0]:
            self._put([table_parts[0][0], "."], out)
        out.append((self.part_text(name_parts[-1]), None))
        out.append(("on", None))
        out.append((self.part_text(table_parts[-1]), None))
        out.append(("(", None))
        self.emit(k + 1, close, out)
        out.append((")", None))
        return self.text(out)

    def drop_list(self, what: str) -> list[str]:
        """``drop table|view|index a, b`` -> one SQLite statement per name."""
        bounds = [1, *self.commas(2, self.n), self.n]
        result = []
        for a, b in zip(bounds, bounds[1:], strict=False):
            parts, end = self.name_parts(a + 1, b)
            if end != b:
                raise self.error(self.t[end])
            if what == "index":
                if len(parts) < 2:
                    raise self.error(self.t[parts[-1][0]])
                name = self.part_text(parts[-1])
                if len(parts) >= 3 and parts[0]:
                    name = self.part_text(parts[0]) + "." + name
            else:
                name = self.text([(x, None) if isinstance(x, str) else (self.map_token(x), None)
                                  for x in self.table_name(parts)])
            result.append(f"drop {what} {name}")
        return result

    def alter_table(self) -> list[str]:
        t = self.t
        parts, k = self.name_parts(2, self.n)
        head = "alter table " + self.text([(x, None) if isinstance(x, str) else (self.map_token(x), None)
                                           for x in self.table_name(parts)])
        if k < self.n and t[k].is_word("add", "drop"):
            action = t[k].lower
            bounds = [k, *self.commas(k + 1, self.n), self.n]
            result = []
            for a, b in zip(bounds, bounds[1:], strict=False):
                lo = a + 1
                if lo >= b:
                    raise self.error(t[a])
                out: list = [(head, None)]
                if t[lo].kind == WORD and t[lo].lower in (*_TABLE_CONSTRAINTS, "column"):
                    out.append((action, None))
                    self.emit(lo, b, out)
                elif action == "add":
                    out.append(("add column", None))
                    self._column(lo, b, out, has_other_pk=True)
                else:
                    out.append(("drop column", None))
                    self.emit(lo, b, out)
                result.append(self.text(out))
            return result
        return [self.render()]


def _is_name(tok: Token) -> bool:
    return tok.kind in (BRACKET, DSTR, SHELL) or (tok.kind == WORD and tok.lower not in _NOT_NAMES)


_NOT_NAMES = frozenset((
    "select", "from", "where", "into", "values", "set", "on", "and", "or", "not", "null", "as", "order",
    "group", "having", "union", "by", "join"
))


def _affinity(type_tokens: list[Token]) -> str:
    if not type_tokens or type_tokens[0].kind != WORD:
        return "text"
    w = type_tokens[0].lower
    if w in _TEXT_TYPES:
        return "text"
    if w in _INT_TYPES:
        return "integer"
    if w in _NUMERIC_TYPES:
        return "numeric"
    if w in _REAL_TYPES:
        return "real"
    if w in _BLOB_TYPES:
        return "blob"
    return "text"
