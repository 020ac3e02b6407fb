"""The file list of Select for Backup: one row per file, Sybase scripts recognised.

Each file is analysed with ``engine.bphdb.script.analyze_script`` in the loop's
executor (never on the UI thread) and the result cached by modification time.
Checked scripts are kept as absolute paths, across folders.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon
from PySide6.QtWidgets import QApplication, QStyle

from gui.engine_link import run_blocking

try:  # written at the same time by a colleague; guarded until it lands
    from engine.bphdb.script import analyze_script as _engine_analyze
except ImportError:  # pragma: no cover - depends on the engine's progress
    _engine_analyze = None

COLUMNS = ("", "Name", "Kind", "Database(s)", "Type", "Stripes")
COL_CHECK, COL_NAME, COL_KIND, COL_DB, COL_TYPE, COL_STRIPES = range(6)

_DUMP_DB = re.compile(r"\bdump\s+database\s+(\w+)", re.I)
_DUMP_TRAN = re.compile(r"\bdump\s+tran(?:saction)?\s+(\w+)", re.I)
_LOAD = re.compile(r"\bload\s+(?:database|tran(?:saction)?)\s+(\w+)", re.I)
_STRIPE = re.compile(r"\bstripe\s+on\b", re.I)
_SQLREF = re.compile(r"""([\w./${}-]+\.sql)\b""")


@dataclass
class FallbackAnalysis:
    """What the file list needs, read with a few patterns until the engine's analyzer lands."""

    kind: str = "file"
    databases: list[str] = field(default_factory=list)
    stripes: int = 0
    device: str | None = None
    sql_files: list[str] = field(default_factory=list)
    isql_line: int | None = None
    statements: list[str] = field(default_factory=list)
    is_sybase_script: bool = False


def _fallback_analyze(path: Path) -> FallbackAnalysis:
    a = FallbackAnalysis()
    try:
        text = path.read_text(errors="replace")[:200_000]
    except OSError:
        return a
    if path.suffix.lower() == ".sql":
        a.kind = "sql"
        sql = text
    elif text.startswith("#!") and re.search(r"isql", text):
        a.is_sybase_script = True
        a.kind = "script"
        for n, line in enumerate(text.splitlines(), 1):
            if re.search(r"isql", line, re.I) and " -i" in line and a.isql_line is None:
                a.isql_line = n
        names = {m.group(1).split("/")[-1] for m in _SQLREF.finditer(text)}
        a.sql_files = [str(path.parent / n) for n in sorted(names) if (path.parent / n).exists()]
        sql = "\n".join(Path(f).read_text(errors="replace") for f in a.sql_files)
    else:
        return a
    for rx, label in ((_DUMP_DB, "dump database"), (_DUMP_TRAN, "dump transaction"), (_LOAD, "load")):
        for m in rx.finditer(sql):
            a.statements.append(f"{label} {m.group(1)}")
            if m.group(1) not in a.databases:
                a.databases.append(m.group(1))
    if a.statements:
        a.stripes = 1 + len(_STRIPE.findall(sql))
    return a


def analyze(path: str | os.PathLike) -> Any:
    """The engine's analysis of one file (or the fallback's); never raises for an unreadable file."""
    p = Path(path)
    if p.suffix.lower() == ".sql":   # an SQL file is data for isql, not a script: read its statements
        return _fallback_analyze(p)
    if _engine_analyze is not None:
        try:
            return _engine_analyze(p)
        except Exception:  # an unreadable or odd file is still listed, as a plain file
            return _fallback_analyze(p) if p.suffix.lower() == ".sql" else FallbackAnalysis()
    return _fallback_analyze(p)


def analyzer_available() -> bool:
    return _engine_analyze is not None


def statement_text(stmt: Any) -> str:
    if isinstance(stmt, str):
        return stmt
    for attr in ("op", "text", "sql", "statement", "kind"):
        v = getattr(stmt, attr, None)
        if isinstance(v, str):
            return v
    return str(stmt)


def dump_type(a: Any) -> str:
    """D (database dump), T (transaction log dump), load, or '' for the Type column."""
    low = " ".join(statement_text(s) for s in (getattr(a, "statements", None) or [])).lower()
    kind = str(getattr(a, "kind", "") or "").lower()
    if re.search(r"\bload\b", low) or (not low and re.search(r"load|restore", kind)):
        return "load"
    types = []
    if re.search(r"dump\s+database", low) or (not low and re.search(r"full|database|^backup$|^dump$", kind)):
        types.append("D")
    if re.search(r"dump\s+tran", low) or (not low and re.search(r"tran|log", kind)):
        types.append("T")
    return "/".join(types)


def file_kind(path: Path, a: Any) -> str:
    if path.suffix.lower() == ".sql":
        return "SQL"
    if getattr(a, "is_sybase_script", False):
        return "script"
    return "file"


def sql_paths(a: Any) -> list[Path]:
    """The SQL files a script feeds to isql, as absolute paths (those that exist first)."""
    out: list[Path] = []
    for call in getattr(a, "isql_calls", None) or []:
        f = getattr(call, "sql_file", None)
        if getattr(call, "sql_source", "file") == "file" and f and Path(f) not in out:
            out.append(Path(f))
    if not out:
        base = Path(getattr(a, "path", "") or ".").parent
        for name in getattr(a, "sql_files", None) or []:
            p = Path(re.sub(r" \(.*\)$", "", str(name)))
            p = p if p.is_absolute() else base / p
            if p not in out:
                out.append(p)
    return sorted(out, key=lambda p: not p.exists())


ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
_icons: dict[str, QIcon] = {}


def icon_for_kind(kind: str) -> QIcon:
    """The Sybase script marker, or the style's file icon (needs a QApplication)."""
    if kind not in _icons:
        svg = ICONS / ("sybase-script.svg" if kind == "script" else "sql-file.svg" if kind == "SQL" else "")
        if svg.is_file():
            _icons[kind] = QIcon(str(svg))
        else:
            _icons[kind] = QApplication.style().standardIcon(QStyle.StandardPixmap.SP_FileIcon)
    return _icons[kind]


@dataclass
class Row:
    path: Path
    analysis: Any
    kind: str
    databases: str
    type: str
    stripes: int


class ScriptCache:
    """analyze() results by (path, mtime_ns, size)."""

    def __init__(self):
        self._cache: dict[str, tuple[tuple[int, int], Any]] = {}

    def get(self, path: Path) -> Any:
        try:
            st = path.stat()
        except OSError:
            return FallbackAnalysis()
        key = (st.st_mtime_ns, st.st_size)
        hit = self._cache.get(str(path))
        if hit is not None and hit[0] == key:
            return hit[1]
        a = analyze(path)
        self._cache[str(path)] = (key, a)
        return a


def _list_folder(folder: Path, cache: ScriptCache) -> list[Row]:
    rows = []
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError:
        return rows
    for p in entries:
        a = cache.get(p)
        dbs = getattr(a, "databases", None) or []
        rows.append(Row(p, a, file_kind(p, a), ", ".join(dbs), dump_type(a) if dbs else "",
                        int(getattr(a, "stripes", 0) or 0)))
    return rows


class ScriptListModel(QAbstractTableModel):
    """The files of one folder; check boxes mark the Sybase scripts to back up."""

    checkedChanged = Signal(int)     # number of checked scripts
    loaded = Signal(str)             # the folder whose rows are in

    def __init__(self, checked: list[str] | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.rows: list[Row] = []
        self.folder: Path | None = None
        self.cache = ScriptCache()
        self._checked: list[str] = list(dict.fromkeys(checked or []))
        self._load_task: asyncio.Task | None = None

    # -- loading (off the UI thread) --
    async def load(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        rows = await run_blocking(_list_folder, folder, self.cache)
        self.beginResetModel()
        self.folder = folder
        self.rows = rows
        self.endResetModel()
        self.loaded.emit(str(folder))

    def load_soon(self, folder: str | os.PathLike) -> asyncio.Task:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        self._load_task = asyncio.ensure_future(self.load(folder))
        return self._load_task

    # -- checked scripts --
    def checked_paths(self) -> list[str]:
        return list(self._checked)

    def set_checked(self, path: str | os.PathLike, on: bool) -> None:
        p = str(Path(path))
        if on and p not in self._checked:
            self._checked.append(p)
        elif not on and p in self._checked:
            self._checked.remove(p)
        else:
            return
        for r, row in enumerate(self.rows):
            if str(row.path) == p:
                ix = self.index(r, COL_CHECK)
                self.dataChanged.emit(ix, ix, [Qt.ItemDataRole.CheckStateRole])
        self.checkedChanged.emit(len(self._checked))

    def check_all_scripts(self) -> None:
        for row in self.rows:
            if row.kind == "script":
                self.set_checked(row.path, True)

    def clear_checked(self) -> None:
        for p in list(self._checked):
            self.set_checked(p, False)

    def row_of(self, name_or_path: str) -> int:
        for r, row in enumerate(self.rows):
            if row.path.name == name_or_path or str(row.path) == name_or_path:
                return r
        return -1

    # -- the model --
    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.AccessibleTextRole:
            return COLUMNS[section] or "Marked for backup"
        return None

    def flags(self, index):
        f = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == COL_CHECK and self.rows[index.row()].kind == "script":
            f |= Qt.ItemFlag.ItemIsUserCheckable
        return f

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.CheckStateRole and col == COL_CHECK and row.kind == "script":
            return Qt.CheckState.Checked if str(row.path) in self._checked else Qt.CheckState.Unchecked
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            if col == COL_NAME:
                return row.path.name
            if col == COL_KIND:
                return row.kind
            if col == COL_DB:
                return row.databases
            if col == COL_TYPE:
                return row.type
            if col == COL_STRIPES:
                return f"{row.stripes} stripe{'s' if row.stripes != 1 else ''}" if row.stripes else ""
            if col == COL_CHECK and role == Qt.ItemDataRole.AccessibleTextRole:
                return "marked" if str(row.path) in self._checked else "not marked"
        if role == Qt.ItemDataRole.DecorationRole and col == COL_NAME:
            return icon_for_kind(row.kind)
        if role == Qt.ItemDataRole.FontRole and col == COL_NAME and row.kind == "script":
            f = QFont()
            f.setBold(True)
            return f
        if role == Qt.ItemDataRole.ForegroundRole and row.kind == "file":
            return QBrush(QColor(128, 128, 128))
        if role == Qt.ItemDataRole.ToolTipRole:
            if row.kind == "script":
                sql = ", ".join(p.name for p in sql_paths(row.analysis))
                return f"Sybase script{': feeds ' + sql + ' to isql' if sql else ''}"
            return str(row.path)
        if role == Qt.ItemDataRole.UserRole:
            return str(row.path)
        return None

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole) -> bool:
        if role == Qt.ItemDataRole.CheckStateRole and index.column() == COL_CHECK:
            row = self.rows[index.row()]
            if row.kind != "script":
                return False
            on = value in (Qt.CheckState.Checked, Qt.CheckState.Checked.value, 2, True)
            self.set_checked(row.path, on)
            return True
        return False
