"""Turn SQLite result rows into typed TDS columns.

SQLite values carry their own types, not their column's, so a result's TDS
format is inferred from the rows themselves: the first rows are buffered, each
column gets the narrowest type that holds every buffered value, and the rest
stream through. Columns declared ``datetime`` come back as datetimes (a
converter registered on the declared type), so clients show real dates.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterable, Sequence

from engine.tds.tokens import Column

# Rows buffered to decide column types; later rows must fit what was decided.
INFER_ROWS = 2000
# getdate() comes back from SQLite as text in exactly this shape (see tsql_sqlite): a datetime to clients
_GETDATE_TEXT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
INT32 = range(-(2**31), 2**31)


def _parse_datetime(raw: bytes):
    text = raw.decode(errors="replace").strip()
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return text


for _decl in ("DATETIME", "SMALLDATETIME", "DATE", "TIMESTAMP", "BIGDATETIME"):
    sqlite3.register_converter(_decl, _parse_datetime)


def infer_columns(names: Sequence[str], rows: Iterable[Sequence], complete: bool) -> list[Column]:
    """Pick a TDS column per result column from the buffered rows.

    When ``complete`` is false more rows follow, so string columns get room to
    spare rather than the exact widest value seen.
    """
    rows = list(rows)
    kinds: list[set[type]] = [set() for _ in names]
    widths = [0] * len(names)
    wide_int = [False] * len(names)
    for row in rows:
        for i, v in enumerate(row):
            if v is None:
                continue
            kinds[i].add(type(v))
            if isinstance(v, str):
                widths[i] = max(widths[i], len(v.encode()))
            elif isinstance(v, bytes):
                widths[i] = max(widths[i], len(v))
            elif isinstance(v, int) and v not in INT32:
                wide_int[i] = True
    columns = []
    for name, seen, width, wide in zip(names, kinds, widths, wide_int, strict=True):
        if seen and seen <= {int, bool}:
            columns.append(Column(name, "bigint" if wide else "int"))
        elif seen and seen <= {int, float, bool}:
            columns.append(Column(name, "float"))
        elif seen == {dt.datetime} or (seen == {str} and _all_getdate_text(rows, len(columns))):
            columns.append(Column(name, "datetime"))
        elif seen == {bytes}:
            columns.append(Column(name, "binary", width if complete else max(width, 255)))
        else:
            columns.append(Column(name, "varchar", max(width, 1) if complete else max(width, 255)))
    return columns


def _datetime_or_none(text: str):
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")
    except ValueError:
        return None  # a later row broke the shape the first rows had


def _all_getdate_text(rows, i: int) -> bool:
    values = [r[i] for r in rows if r[i] is not None]
    return bool(values) and all(isinstance(v, str) and _GETDATE_TEXT.match(v) for v in values)


def convert_row(columns: Sequence[Column], row: Sequence) -> tuple:
    """Make a row's values fit its columns (mixed-type SQLite columns become text)."""
    out = []
    for col, v in zip(columns, row, strict=True):
        if v is None:
            out.append(None)
        elif col.type == "varchar" and not isinstance(v, str):
            out.append(v.isoformat(sep=" ") if isinstance(v, dt.datetime) else
                       v.hex() if isinstance(v, bytes) else str(v))
        elif col.type == "datetime" and isinstance(v, str):
            out.append(_datetime_or_none(v))
        elif col.type == "float" and not isinstance(v, float):
            out.append(float(v))
        elif col.type in ("int", "bigint") and isinstance(v, bool):
            out.append(int(v))
        else:
            out.append(v)
    return tuple(out)
