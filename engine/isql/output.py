"""isql's output: result sets, row counts and server messages, as ASE's isql prints them.

Pure formatting over the TDS client's events (``Message``, ``RowFormat``,
``Row``, ``Done``, ``EnvChange`` from ``engine.tds.tokens``); it never touches
a socket, so tests feed it synthetic event sequences. Events are recognised
by their class name, so any object with the same fields works.

Layout (SAP isql's, with its defaults ``-s " "`` and ``-w 80``)::

     name                           dbid
     ------------------------------ -----------
     master                                   1
     salesdb                                  4

    (2 rows affected)

- Every column is preceded by the column separator and the line ends with
  one (so ``-s "|"`` gives ``|name|dbid|``; with the default space the line
  ends in a space). No separator is drawn between the dashes and the next
  column other than the separator itself.
- A column is as wide as the larger of its name and its type's display width:
  int 11, bigint 20, smallint 6, tinyint 3, float/real 20, bit 1,
  datetime 26, varchar/char its declared length (0 means 255, as on
  the wire), binary 2 + 2 x length.
  A value wider than its column is printed whole, never cut.
- Numbers (int, bigint, smallint, tinyint, float, real, bit, numeric,
  decimal, money) are right-aligned; everything else left-aligned.
  NULL prints as ``NULL``.
- datetime values print in ASE's default style (style 100):
  ``Nov 25 2026 12:34PM``, day and hour space-padded (``Jan  5 2026  3:04AM``);
  floats in their shortest exact form (``1.5``, ``0.1``, ``1e+20``);
  binary as ``0x`` and lowercase hex; bit as 1/0.
- A row wider than ``-w`` wraps like isql's: columns that do not fit go on a
  continuation line that starts with a tab (counted as 8 columns); the
  header, the dashes and every row wrap the same way. A single column wider
  than the width is never split.
- After a result set's rows comes a blank line; a DONE whose count is valid
  prints ``(1 row affected)`` / ``(N rows affected)`` (after selects and DML
  alike, as SAP isql does); ``-b`` drops the header and dash lines.
- Server messages of severity above 10::

      Msg 2812, Level 16, State 5:
      Server 'SYBAR', Procedure 'sp_x', Line 3:
      Stored procedure 'sp_y' not found.

  (``Procedure`` only when set, ``Line`` only when non-zero); severity 10 and
  below (``print``, Backup Server progress) print the text alone.

Output is flushed after every message line, every DONE and at the end of each
batch, so progress shows while a dump runs, also into an ``-o`` file.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from typing import Any, TextIO

DONE_MORE = 0x01
DONE_ERROR = 0x02
DONE_COUNT = 0x10
DONE_ATTN = 0x20

TAB_WIDTH = 8
DEFAULT_VAR_LENGTH = 255  # TDS: a varchar/binary column of length 0 holds up to 255 bytes

_FIXED_WIDTH = {
    "int": 11,
    "integer": 11,
    "smallint": 6,
    "tinyint": 3,
    "bigint": 20,
    "float": 20,
    "real": 20,
    "double": 20,
    "bit": 1,
    "datetime": 26,
    "smalldatetime": 26,
    "bigdatetime": 26,
    "date": 11,
    "time": 7,
    "money": 21,
    "smallmoney": 12,
}
_NUMERIC = {"int", "integer", "smallint", "tinyint", "bigint", "float", "real", "double", "bit",
            "numeric", "decimal", "money", "smallmoney"}
_BINARY = {"binary", "varbinary", "image"}

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def type_name(t: Any) -> str:
    """A column type as a lowercase name, whether given as a string or an enum."""
    if isinstance(t, str):
        name = t
    else:
        name = getattr(t, "name", None) or str(t)
    return name.rsplit(".", 1)[-1].lower()


def display_width(column: Any) -> int:
    """How many characters a column takes: its type's display width or its name, if longer."""
    t = type_name(getattr(column, "type", "varchar"))
    length = getattr(column, "length", None) or 0
    if t in _FIXED_WIDTH:
        w = _FIXED_WIDTH[t]
    elif t in _BINARY:
        w = 2 + 2 * (length or DEFAULT_VAR_LENGTH)
    else:
        w = length or DEFAULT_VAR_LENGTH
    return max(w, len(getattr(column, "name", "") or ""), 1)


def is_numeric(column: Any) -> bool:
    return type_name(getattr(column, "type", "varchar")) in _NUMERIC


def format_datetime(v: dt.datetime | dt.date | dt.time) -> str:
    """ASE's default datetime display: ``Nov 25 2026 12:34PM``."""
    if isinstance(v, dt.datetime):
        return f"{format_datetime(v.date())} {format_datetime(v.time())}"
    if isinstance(v, dt.date):
        return f"{_MONTHS[v.month - 1]} {v.day:2d} {v.year:4d}"
    hour = v.hour % 12 or 12
    return f"{hour:2d}:{v.minute:02d}{'AM' if v.hour < 12 else 'PM'}"


def format_value(column: Any, v: Any) -> str:
    """One value as isql shows it (without padding)."""
    if v is None:
        return "NULL"
    t = type_name(getattr(column, "type", "varchar"))
    if isinstance(v, bool) or t == "bit":
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return format_datetime(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "0x" + bytes(v).hex()
    if isinstance(v, decimal.Decimal):
        return str(v)
    return str(v)


class Layout:
    """Column widths, alignment, and which columns go on which physical line (wrapping)."""

    def __init__(self, columns: Sequence[Any], width: int = 80, colsep: str = " "):
        self.columns = list(columns)
        self.colsep = colsep
        self.widths = [display_width(c) for c in self.columns]
        self.right = [is_numeric(c) for c in self.columns]
        self.lines: list[list[int]] = [[]]
        pos = 0
        for i, w in enumerate(self.widths):
            seg = len(colsep) + w
            if self.lines[-1] and pos + seg > width:
                self.lines.append([])
                pos = TAB_WIDTH
            self.lines[-1].append(i)
            pos += seg

    def render(self, cells: Sequence[str], *, align: bool = True) -> list[str]:
        out = []
        for n, idxs in enumerate(self.lines):
            parts = ["\t" if n else ""]
            for i in idxs:
                cell = cells[i] if i < len(cells) else ""
                parts.append(self.colsep)
                parts.append(cell.rjust(self.widths[i]) if align and self.right[i] else cell.ljust(self.widths[i]))
            parts.append(self.colsep)
            out.append("".join(parts))
        return out

    def header(self) -> list[str]:
        return self.render([getattr(c, "name", "") or "" for c in self.columns], align=False)

    def dashes(self) -> list[str]:
        return self.render(["-" * w for w in self.widths], align=False)

    def row(self, values: Sequence[Any]) -> list[str]:
        cells = [format_value(c, v) for c, v in zip(self.columns, values, strict=False)]
        return self.render(cells)


def format_message(msg: Any) -> str:
    """A server message as isql prints it (no trailing newline)."""
    text = getattr(msg, "text", "") or ""
    severity = getattr(msg, "severity", 0) or 0
    if severity <= 10:
        return text
    where = []
    server = getattr(msg, "server", "") or ""
    proc = getattr(msg, "proc", "") or ""
    line = getattr(msg, "line", 0) or 0
    if server:
        where.append(f"Server '{server}'")
    if proc:
        where.append(f"Procedure '{proc}'")
    if line:
        where.append(f"Line {line}")
    head = f"Msg {getattr(msg, 'number', 0)}, Level {severity}, State {getattr(msg, 'state', 0)}:"
    if where:
        return f"{head}\n{', '.join(where)}:\n{text}"
    return f"{head}\n{text}"


def rows_affected(count: int) -> str:
    return "(1 row affected)" if count == 1 else f"({count} rows affected)"


class ResultWriter:
    """Turns one connection's events into isql's output on a text stream."""

    def __init__(self, out: TextIO, *, width: int = 80, headers: bool = True, colsep: str = " "):
        self.out = out
        self.width = width
        self.headers = headers
        self.colsep = colsep
        self._layout: Layout | None = None
        self.errors: list[Any] = []       # messages of severity > 10 since reset_errors()
        self.cancelled = False            # a DONE carried the attention acknowledgement
        self.database: str | None = None  # from database EnvChanges

    # -- plumbing --------------------------------------------------------------
    def _write_lines(self, lines: Sequence[str]) -> None:
        self.out.write("".join(line + "\n" for line in lines))

    def flush(self) -> None:
        try:
            self.out.flush()
        except (AttributeError, ValueError):
            pass

    def reset_errors(self) -> None:
        self.errors = []
        self.cancelled = False

    # -- events ----------------------------------------------------------------
    def feed(self, event: Any) -> None:
        kind = type(event).__name__
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event)

    def _on_Message(self, msg: Any) -> None:
        if (getattr(msg, "severity", 0) or 0) > 10:
            self.errors.append(msg)
        self._write_lines([format_message(msg)])
        self.flush()

    def _on_RowFormat(self, fmt: Any) -> None:
        self._close_result()
        self._layout = Layout(getattr(fmt, "columns", []), self.width, self.colsep)
        if self.headers:
            self._write_lines(self._layout.header() + self._layout.dashes())

    def _on_Row(self, row: Any) -> None:
        if self._layout is None:  # a row without a format: show it plainly
            self._layout = Layout([], self.width, self.colsep)
        values = getattr(row, "values", ())
        if not self._layout.columns and values:
            self._write_lines([self.colsep.join(format_value(None, v) for v in values)])
            return
        self._write_lines(self._layout.row(values))

    def _on_Done(self, done: Any) -> None:
        status = getattr(done, "status", 0) or 0
        self._close_result()
        if status & DONE_ATTN:
            self.cancelled = True
        elif status & DONE_COUNT:
            self._write_lines([rows_affected(getattr(done, "count", 0) or 0)])
        self.flush()

    def _on_EnvChange(self, env: Any) -> None:
        if getattr(env, "kind", None) in (1, "database"):
            self.database = getattr(env, "new", None)

    def _on_ReturnStatus(self, rs: Any) -> None:
        value = getattr(rs, "status", getattr(rs, "value", None))
        if value is not None:
            self._close_result()
            self._write_lines([f"(return status = {value})"])

    def _close_result(self) -> None:
        if self._layout is not None:
            self._write_lines([""])
            self._layout = None

    # -- batches ---------------------------------------------------------------
    def echo(self, lines: Sequence[str], *, numbered: bool) -> None:
        """-e: the batch's input before its output (``1> ...`` unless -n)."""
        if numbered:
            self._write_lines([f"{n}> {line}" for n, line in enumerate(lines, 1)])
        else:
            self._write_lines(lines)
        self.flush()

    def end_batch(self) -> None:
        self._close_result()
        self.flush()

    def text(self, line: str) -> None:
        self._write_lines([line])
        self.flush()
