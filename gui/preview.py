"""The preview pane: the script, the SQL file it feeds to isql, and the lint findings.

Dump and load statements (and their ``sybackup::`` stripes) are highlighted;
clicking a finding moves the cursor to its line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QPalette,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gui.engine_link import run_blocking
from gui.script_model import sql_paths

try:  # written at the same time by a colleague; guarded until it lands
    from engine.bphdb.lint import lint as _engine_lint
except ImportError:  # pragma: no cover - depends on the engine's progress
    _engine_lint = None

LINTER_UNAVAILABLE = "linter unavailable (engine.bphdb.lint is not installed)"
MAX_PREVIEW = 512 * 1024


def linter_available() -> bool:
    return _engine_lint is not None


def run_lint(path: str, known_databases: list[str] | set[str] | None = None) -> list[Any]:
    if _engine_lint is None:
        return []
    known = set(known_databases) if known_databases is not None else None
    return list(_engine_lint(path, known_databases=known))


class DumpHighlighter(QSyntaxHighlighter):
    """dump/load statements bold and coloured, sybackup:: devices and the isql line marked."""

    RULES = (
        (re.compile(r"\b(dump|load)\s+(database|tran(saction)?)\b.*", re.I), "dump"),
        (re.compile(r"\bstripe\s+on\b|\bto\s+\"sybackup::", re.I), "stripe"),
        (re.compile(r"sybackup::[^\"']*", re.I), "device"),
        (re.compile(r"\bisql\b.*", re.I), "isql"),
    )

    def __init__(self, document):
        super().__init__(document)
        dark = document.parent() is not None and _is_dark(document.parent())
        self.formats: dict[str, QTextCharFormat] = {}
        for name, color, bold in (("dump", "#ff8f6b" if dark else "#b0301a", True),
                                  ("stripe", "#ffb86b" if dark else "#a05a00", True),
                                  ("device", "#7fc8ff" if dark else "#1a5fb0", False),
                                  ("comment", "#8a8a8a", False),
                                  ("isql", "#b48cff" if dark else "#6a2ab0", False)):
            f = QTextCharFormat()
            f.setForeground(QColor(color))
            if bold:
                f.setFontWeight(QFont.Weight.Bold)
            self.formats[name] = f

    def highlightBlock(self, text: str) -> None:
        if re.match(r"^\s*(--|#)", text):
            self.setFormat(0, len(text), self.formats["comment"])
            return
        for rx, name in self.RULES:
            for m in rx.finditer(text):
                self.setFormat(m.start(), m.end() - m.start(), self.formats[name])


def _is_dark(widget) -> bool:
    try:
        return widget.palette().color(QPalette.ColorRole.Base).lightness() < 128
    except Exception:
        return False


def _code_view(name: str) -> QPlainTextEdit:
    view = QPlainTextEdit()
    view.setReadOnly(True)
    view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                 | Qt.TextInteractionFlag.TextSelectableByMouse)
    view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    view.setAccessibleName(name)
    view.setTabChangesFocus(True)
    return view


def _read(path: Path) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read(MAX_PREVIEW)
    except OSError as e:
        return f"(cannot read {path}: {e.strerror})"


class PreviewPane(QWidget):
    findingActivated = Signal(str, int)   # file, line

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName("Preview")
        self.script_label = QLabel("Select a file to preview it.")
        self.script_view = _code_view("Script preview")
        self.sql_label = QLabel("")
        self.sql_view = _code_view("SQL file preview")
        self.findings_label = QLabel("Lint")
        self.findings = QListWidget()
        self.findings.setAccessibleName("Lint findings")
        self.findings.itemActivated.connect(self._goto)
        self.findings.itemClicked.connect(self._goto)
        self.script_label.setBuddy(self.script_view)
        self.sql_label.setBuddy(self.sql_view)
        self.findings_label.setBuddy(self.findings)
        self.highlighters = [DumpHighlighter(self.script_view.document()),
                             DumpHighlighter(self.sql_view.document())]
        self.script_path: Path | None = None
        self.sql_path: Path | None = None
        self.current: list[Any] = []

        split = QSplitter(Qt.Orientation.Vertical)
        for label, view in ((self.script_label, self.script_view), (self.sql_label, self.sql_view),
                            (self.findings_label, self.findings)):
            box = QWidget()
            lay = QVBoxLayout(box)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.addWidget(label)
            lay.addWidget(view)
            split.addWidget(box)
        split.setSizes([300, 220, 90])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    async def show_file(self, path: str | Path, analysis: Any = None,
                        known_databases: list[str] | None = None) -> list[Any]:
        """Show ``path`` (and its SQL file); lint it off the UI thread. Returns the findings.

        Only the latest call fills the pane: a call overtaken by another (the same
        file selected twice, or another file) stops at its next await."""
        path = Path(path)
        self._generation = generation = getattr(self, "_generation", 0) + 1
        self.script_path = path
        sql_files = sql_paths(analysis) if analysis is not None else []
        self.sql_path = sql_files[0] if sql_files else None
        text = await run_blocking(_read, path)
        sql = await run_blocking(_read, self.sql_path) if self.sql_path else ""
        if self._generation != generation:   # another call took over meanwhile
            return []
        self.script_label.setText(f"&Script: {path}")
        self.script_view.setPlainText(text)
        if self.sql_path is not None:
            more = f" (and {len(sql_files) - 1} more)" if len(sql_files) > 1 else ""
            isql = getattr(analysis, "isql_line", None)
            at = f", fed to isql on line {isql}" if isql else ""
            self.sql_label.setText(f"S&QL file: {self.sql_path}{more}{at}")
        else:
            self.sql_label.setText("S&QL file: none")
        self.sql_view.setPlainText(sql)
        isql_line = getattr(analysis, "isql_line", None)
        if isql_line:   # show where the script runs isql, without taking the focus
            cursor = QTextCursor(self.script_view.document().findBlockByLineNumber(isql_line - 1))
            self.script_view.setTextCursor(cursor)
            self.script_view.centerCursor()
        first = next((st for st in (getattr(analysis, "statements", None) or [])
                      if self.sql_path is not None and getattr(st, "file", None)
                      and Path(st.file) == self.sql_path and getattr(st, "line", 0)), None)
        if first is not None:   # and the dump (or load) statement it feeds to isql
            cursor = QTextCursor(self.sql_view.document().findBlockByLineNumber(first.line - 1))
            self.sql_view.setTextCursor(cursor)
            self.sql_view.centerCursor()
        is_script = bool(getattr(analysis, "is_sybase_script", False))
        findings: list[Any] = []
        self.findings.clear()
        if not linter_available():
            self.findings_label.setText("&Lint: " + LINTER_UNAVAILABLE)
        elif is_script and path.suffix.lower() != ".sql":
            try:
                findings = await run_blocking(run_lint, str(path), known_databases)
            except Exception as e:  # the linter must never take the window down
                self.findings_label.setText(f"&Lint: failed ({type(e).__name__}: {e})")
                findings = []
            else:
                n = len(findings)
                self.findings_label.setText(f"&Lint: {n} finding{'s' if n != 1 else ''}" if n
                                            else "&Lint: no problems found")
            if self._generation != generation:
                return []
            for f in findings:
                fname = Path(getattr(f, "file", path) or path)
                line = int(getattr(f, "line", 0) or 0)
                sev = getattr(f, "severity", "") or ""
                code = getattr(f, "code", "") or ""
                item = QListWidgetItem(f"{fname.name}:{line}: {sev + ': ' if sev else ''}"
                                       f"{getattr(f, 'problem', f)}{' [' + code + ']' if code else ''}")
                item.setData(Qt.ItemDataRole.UserRole, (str(fname), line))
                self.findings.addItem(item)
        else:
            self.findings_label.setText("&Lint: not a Sybase script")
        self.current = findings
        return findings

    def clear(self) -> None:
        self.script_path = self.sql_path = None
        self.script_label.setText("Select a file to preview it.")
        self.sql_label.setText("")
        self.script_view.clear()
        self.sql_view.clear()
        self.findings.clear()

    def _goto(self, item: QListWidgetItem) -> None:
        file, line = item.data(Qt.ItemDataRole.UserRole)
        self.goto(file, line)

    def goto(self, file: str, line: int) -> QPlainTextEdit:
        """Move the cursor of the view showing ``file`` to ``line``; returns that view."""
        view = self.script_view
        if self.sql_path is not None and Path(file).resolve() == self.sql_path.resolve():
            view = self.sql_view
        block = view.document().findBlockByLineNumber(max(0, line - 1))
        cursor = QTextCursor(block)
        cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
        view.setTextCursor(cursor)
        view.centerCursor()
        view.setFocus()
        self.findingActivated.emit(str(file), line)
        return view
