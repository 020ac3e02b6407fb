"""The Task Progress model: jobs as a tree (script job -> stripe jobs), fed by engine events.

``JobsModel.apply(event)`` takes the control API's event dicts (``job_started``,
``job_progress``, ``job_log``, ``job_ended``) and job dicts from ``client.jobs()``
(``load_jobs``). The internal rows change at once; the view hears about it at
most ``FLUSH_MS`` apart: a QTimer emits one ``dataChanged`` per contiguous range
of changed rows, so a hundred stripes at twenty events a second still cost only
a few repaints a second (DESIGN.md §9). Rows are inserted with beginInsertRows as
jobs start. Elapsed ticks once a second for active jobs.

Indexes carry their parent's job id as internalId (0 for top-level jobs), so
any depth works (backup -> stripe, dump -> stripe, ...).
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor

from engine.jobs.status import MEANING

COLUMNS = ("Job", "Type", "State", "Status", "Database", "Stripe", "Progress", "Bytes", "Rate", "ETA",
           "Elapsed", "Object")
(COL_JOB, COL_TYPE, COL_STATE, COL_STATUS, COL_DATABASE, COL_STRIPE, COL_PROGRESS, COL_BYTES, COL_RATE,
 COL_ETA, COL_ELAPSED, COL_OBJECT) = range(len(COLUMNS))
_RIGHT_COLUMNS = frozenset((COL_STATUS, COL_STRIPE, COL_BYTES, COL_RATE, COL_ETA, COL_ELAPSED))

ProgressRole = int(Qt.ItemDataRole.UserRole) + 1  # int percent 0..100, or -1 while unknown
JobIdRole = int(Qt.ItemDataRole.UserRole) + 2
StatusRole = int(Qt.ItemDataRole.UserRole) + 3  # int status or None
ActiveRole = int(Qt.ItemDataRole.UserRole) + 4  # bool

# roles as plain ints: data() runs for every role of every visible cell on each repaint
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_BACKGROUND = int(Qt.ItemDataRole.BackgroundRole)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)
_ACCESSIBLE = int(Qt.ItemDataRole.AccessibleTextRole)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_ROLES = frozenset((_DISPLAY, _TOOLTIP, _BACKGROUND, _ALIGN, _ACCESSIBLE, ProgressRole, JobIdRole, StatusRole,
                    ActiveRole))

FAILED_TINT = QColor(220, 60, 60, 60)  # translucent: readable on light and dark palettes
_DISPLAY = Qt.ItemDataRole.DisplayRole


def human_bytes(n: float | None) -> str:
    if n is None:
        return ""
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"  # pragma: no cover


def human_duration(s: float | None) -> str:
    if s is None or s < 0:
        return ""
    s = int(round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


@dataclass
class JobRow:
    job_id: int
    parent_id: int | None = None
    type: str = ""
    state: str = "active"
    status: int | None = None
    database: str | None = None
    stripe: int | None = None
    object_name: str | None = None
    script: str | None = None
    message: str | None = None
    started: float | None = None
    ended: float | None = None
    bytes_done: int = 0
    bytes_expected: int | None = None
    rate: float = 0.0
    eta_s: float | None = None
    placeholder: bool = False  # a parent known only from its children so far
    children: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state != "done"

    @property
    def failed(self) -> bool:
        return self.state == "done" and self.status not in (None, 0)


_JOB_FIELDS = ("type", "state", "status", "database", "stripe", "object_name", "script", "message", "started",
               "ended", "bytes_done", "bytes_expected")


class JobsModel(QAbstractItemModel):
    FLUSH_MS = 250  # at most four dataChanged rounds a second
    TICK_MS = 1000  # elapsed of active jobs

    missingJob = Signal(int)  # a parent seen only through its children: the view may fetch it
    jobEnded = Signal(int, int)  # job id, status
    jobLog = Signal(int, float, str)  # job id, time, line

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: dict[int, JobRow] = {}
        self._roots: list[int] = []  # newest first
        self._row_of: dict[int, int] = {}
        self._dirty: set[int] = set()
        self._cache: dict[int, tuple] = {}  # job id -> display strings and percent
        self._failed_brush = QBrush(FAILED_TINT)
        self.flushes = 0  # rounds of dataChanged emitted (for tests and benchmarks)
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(self.FLUSH_MS)
        self._flush_timer.timeout.connect(self.flush)
        self._tick_timer = QTimer(self)
        self._tick_timer.setInterval(self.TICK_MS)
        self._tick_timer.timeout.connect(self._tick)
        self._tick_timer.start()

    # ------------------------------------------------------------ lookups
    def job(self, job_id: int) -> JobRow | None:
        return self._rows.get(job_id)

    def job_ids(self) -> list[int]:
        return list(self._rows)

    def descendants(self, job_id: int) -> list[int]:
        out, todo = [], list(self._rows[job_id].children) if job_id in self._rows else []
        while todo:
            j = todo.pop()
            out.append(j)
            todo.extend(self._rows[j].children)
        return out

    def index_of(self, job_id: int, column: int = 0) -> QModelIndex:
        row = self._rows.get(job_id)
        if row is None or job_id not in self._row_of:
            return QModelIndex()
        return self.createIndex(self._row_of[job_id], column, row.parent_id or 0)

    def _siblings(self, parent_id: int | None) -> list[int]:
        if parent_id is None or parent_id not in self._rows:
            return self._roots
        return self._rows[parent_id].children

    def totals(self, job_id: int) -> tuple[int, int | None, float, float | None]:
        """bytes done, bytes expected, rate and ETA as shown: a job without bytes of its
        own (a script job) shows the sum of its children's."""
        r = self._rows[job_id]
        if r.children and not r.bytes_expected and not r.bytes_done:
            kids = [self._rows[c] for c in r.children]
            parts = [self.totals(k.job_id) for k in kids]
            done = sum(p[0] for p in parts)
            expected = sum(p[1] for p in parts) if all(p[1] is not None for p in parts) else None
            rate = sum(p[2] for p, k in zip(parts, kids, strict=True) if k.active) if r.active else self._average(r, done)
            etas = [p[3] for p, k in zip(parts, kids, strict=True) if k.active]
            eta = None if not r.active or not etas or any(e is None for e in etas) else max(etas)
            return done, expected, rate, eta
        if r.active:
            return r.bytes_done, r.bytes_expected, r.rate, r.eta_s
        return r.bytes_done, r.bytes_expected, self._average(r, r.bytes_done), None

    @staticmethod
    def _average(r: JobRow, done: int) -> float:
        if r.started is None or r.ended is None or r.ended <= r.started:
            return 0.0
        return done / (r.ended - r.started)

    def rate_of(self, job_id: int) -> float:
        """Bytes per second now: the job's own rate, or the sum of its active stripes'."""
        if job_id not in self._rows:
            return 0.0
        r = self._rows[job_id]
        if not r.active:
            return 0.0
        return self.totals(job_id)[2]

    def percent(self, job_id: int) -> int:
        done, expected, _, _ = self.totals(job_id)
        r = self._rows[job_id]
        if expected:
            return max(0, min(100, int(100 * done / expected)))
        if r.state == "done" and r.status == 0:
            return 100
        return -1

    # ------------------------------------------------------------ events
    def load_jobs(self, jobs: list[dict]) -> None:
        """Jobs from client.jobs()/client.job(): parents before children, oldest first."""
        flat: list[dict] = []
        for j in jobs:
            flat.append(j)
            flat.extend(j.get("children") or [])
        by_id = {j["job_id"]: j for j in flat}

        def depth(j: dict) -> int:
            d, p, seen = 0, j.get("parent_id"), set()
            while p is not None and p in by_id and p not in seen:
                seen.add(p)
                d += 1
                p = by_id[p].get("parent_id")
            return d

        for j in sorted(by_id.values(), key=lambda j: (depth(j), j["job_id"])):
            self._upsert(j, snapshot=True)

    def apply(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "job_started":
            self._upsert(event.get("job") or {}, snapshot=False)
        elif kind == "job_progress":
            job_id = event["job_id"]
            r = self._rows.get(job_id) or self._ensure(job_id, event.get("parent_id"), stripe=event.get("stripe"))
            if not r.active:
                return  # a late progress event never undoes the final numbers
            r.bytes_done = int(event.get("bytes_done") or 0)
            if event.get("bytes_expected") is not None:
                r.bytes_expected = int(event["bytes_expected"])
            r.rate = float(event.get("rate") or 0.0)
            r.eta_s = event.get("eta_s")
            self._mark(job_id)
        elif kind == "job_log":
            job_id = event["job_id"]
            self.jobLog.emit(job_id, float(event.get("time") or time.time()), str(event.get("line", "")))
        elif kind == "job_ended":
            job_id = event["job_id"]
            r = self._rows.get(job_id) or self._ensure(job_id, event.get("parent_id"))
            self._finish(r, int(event.get("status") or 0), event.get("message"), time.time())
            self.jobEnded.emit(job_id, r.status)

    def _finish(self, r: JobRow, status: int, message: str | None, when: float) -> None:
        r.state = "done"
        r.status = status
        if message is not None:
            r.message = message
        if r.ended is None:
            r.ended = when
        if status == 0 and r.bytes_expected is not None:
            r.bytes_done = r.bytes_expected
        r.eta_s = None
        r.rate = 0.0
        self._mark(r.job_id)

    def _upsert(self, job: dict, *, snapshot: bool) -> None:
        job_id = job.get("job_id")
        if job_id is None:
            return
        r = self._rows.get(job_id)
        if r is None:
            r = JobRow(job_id=job_id, parent_id=job.get("parent_id"))
            self._fill(r, job)
            self._insert(r)
        else:
            if not r.active and job.get("state") != "done":
                return  # an older picture of a job we saw end
            new_parent = job.get("parent_id")
            if r.placeholder and new_parent != r.parent_id:
                self._remove(job_id)
                r.parent_id = new_parent
                self._fill(r, job)
                r.placeholder = False
                self._insert(r)
            else:
                self._fill(r, job)
                r.placeholder = False
            self._mark(job_id)
        if r.state == "done":
            r.eta_s = None
            if r.status == 0 and r.bytes_expected is not None:
                r.bytes_done = r.bytes_expected
        elif snapshot and job.get("eta_s") is not None:
            r.eta_s = job["eta_s"]

    @staticmethod
    def _fill(r: JobRow, job: dict) -> None:
        for name in _JOB_FIELDS:
            if name in job and (job[name] is not None or name in ("status", "ended")):
                value = job[name]
                if name == "bytes_done":  # a job's bytes never go back: snapshots lag live events
                    value = max(int(value or 0), r.bytes_done)
                setattr(r, name, value)
        if job.get("rate") is not None:
            r.rate = float(job["rate"])
        r.extra = {k: v for k, v in job.items() if k not in _JOB_FIELDS and k != "children"}

    def _ensure(self, job_id: int, parent_id: int | None, stripe: int | None = None) -> JobRow:
        """A row for a job we only heard of through an event (we joined mid-job)."""
        r = JobRow(job_id=job_id, parent_id=parent_id, stripe=stripe, type="stripe" if stripe is not None else "",
                   placeholder=True)
        self._insert(r)
        self.missingJob.emit(job_id)
        return r

    def _insert(self, r: JobRow) -> None:
        if r.parent_id is not None and r.parent_id not in self._rows:
            self._ensure(r.parent_id, None)
        siblings = self._siblings(r.parent_id)
        if siblings is self._roots:  # newest first
            keys = [-j for j in siblings]
            pos = bisect.bisect_left(keys, -r.job_id)
            parent_index = QModelIndex()
        else:
            pos = bisect.bisect_left(siblings, r.job_id)
            parent_index = self.index_of(r.parent_id)
        self.beginInsertRows(parent_index, pos, pos)
        siblings.insert(pos, r.job_id)
        self._rows[r.job_id] = r
        for i in range(pos, len(siblings)):
            self._row_of[siblings[i]] = i
        self.endInsertRows()
        if r.parent_id is not None:
            self._mark(r.parent_id)

    def _remove(self, job_id: int) -> None:
        """Take a row (and its subtree) out of its place, to put it back elsewhere."""
        r = self._rows[job_id]
        siblings = self._siblings(r.parent_id)
        pos = self._row_of[job_id]
        parent_index = QModelIndex() if siblings is self._roots else self.index_of(r.parent_id)
        self.beginRemoveRows(parent_index, pos, pos)
        del siblings[pos]
        del self._rows[job_id]
        del self._row_of[job_id]
        for i in range(pos, len(siblings)):
            self._row_of[siblings[i]] = i
        self.endRemoveRows()
        self._dirty.discard(job_id)
        self._cache.pop(job_id, None)

    def _mark(self, job_id: int) -> None:
        self._dirty.add(job_id)
        self._cache.pop(job_id, None)
        p = self._rows[job_id].parent_id if job_id in self._rows else None
        while p is not None and p in self._rows:  # parents show their children's sums
            self._cache.pop(p, None)
            self._dirty.add(p)
            p = self._rows[p].parent_id
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _tick(self) -> None:
        active = [j for j, r in self._rows.items() if r.active and r.started is not None]
        if active:
            for j in active:
                self._dirty.add(j)
                self._cache.pop(j, None)
            if not self._flush_timer.isActive():
                self._flush_timer.start()

    def flush(self) -> None:
        """Emit dataChanged for the changed rows: one signal per contiguous range."""
        self._flush_timer.stop()
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        by_parent: dict[int, list[int]] = {}
        for j in dirty:
            r = self._rows.get(j)
            if r is not None and j in self._row_of:
                by_parent.setdefault(r.parent_id or 0, []).append(self._row_of[j])
        self.flushes += 1
        last = len(COLUMNS) - 1
        for pid, rows in by_parent.items():
            parent_index = self.index_of(pid) if pid else QModelIndex()
            rows.sort()
            start = prev = rows[0]
            for row in rows[1:] + [None]:
                if row is not None and row == prev + 1:
                    prev = row
                    continue
                self.dataChanged.emit(self.index(start, 0, parent_index), self.index(prev, last, parent_index))
                if row is not None:
                    start = prev = row

    # ------------------------------------------------------------ Qt model
    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        if not parent.isValid():
            return len(self._roots)
        if parent.column() != 0:
            return 0
        job_id = self._job_at(parent)
        return len(self._rows[job_id].children) if job_id in self._rows else 0

    def index(self, row: int, column: int, parent: QModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if parent.isValid():
            pid = self._job_at(parent)
            siblings = self._rows[pid].children if pid in self._rows else []
        else:
            pid, siblings = 0, self._roots
        if 0 <= row < len(siblings) and 0 <= column < len(COLUMNS):
            return self.createIndex(row, column, pid)
        return QModelIndex()

    def parent(self, index: QModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if not index.isValid():
            return QModelIndex()
        pid = index.internalId()
        if not pid or pid not in self._rows:
            return QModelIndex()
        return self.index_of(pid)

    def _job_at(self, index: QModelIndex) -> int | None:
        if not index.isValid():
            return None
        pid = index.internalId()
        if pid:
            parent = self._rows.get(pid)
            siblings = parent.children if parent is not None else self._roots
        else:
            siblings = self._roots
        row = index.row()
        return siblings[row] if 0 <= row < len(siblings) else None

    def job_at(self, index: QModelIndex) -> int | None:
        return self._job_at(index)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == _DISPLAY and 0 <= section < len(COLUMNS):
            return COLUMNS[section]
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: QModelIndex, role: int = _DISPLAY) -> Any:
        role = int(role)
        if role not in _ROLES:  # decoration, font, foreground, check state, ...: asked for every cell
            return None
        job_id = self._job_at(index)
        if job_id is None:
            return None
        col = index.column()
        if role == _DISPLAY:
            return self._texts(job_id)[col]
        if role == ProgressRole:
            return self._texts(job_id)[len(COLUMNS)]
        if role == _BACKGROUND:
            return self._failed_brush if self._rows[job_id].failed else None
        if role == _ALIGN:
            return _RIGHT if col in _RIGHT_COLUMNS else None
        if role == JobIdRole:
            return job_id
        r = self._rows[job_id]
        if role == StatusRole:
            return r.status
        if role == ActiveRole:
            return r.active
        if role == _TOOLTIP:
            if col == COL_STATUS and r.status is not None:
                return f"status {r.status}: {MEANING.get(r.status, 'unknown status')}" + (
                    f"\n{r.message}" if r.message and r.message != MEANING.get(r.status) else "")
            if col == COL_OBJECT and r.object_name:
                return r.object_name
            if col == COL_JOB and r.script:
                return r.script
            return None
        if role == _ACCESSIBLE:
            text = self._texts(job_id)[col]
            return f"{COLUMNS[col]}: {text}" if text else COLUMNS[col]
        return None

    def _texts(self, job_id: int) -> tuple:
        """The row's display strings and its percent, computed once per change."""
        texts = self._cache.get(job_id)
        if texts is None:
            r = self._rows[job_id]
            texts = (*(self._display(r, c) for c in range(len(COLUMNS))), self.percent(job_id))
            self._cache[job_id] = texts
        return texts

    def _display(self, r: JobRow, col: int) -> str:
        if col == COL_JOB:
            return str(r.job_id)
        if col == COL_TYPE:
            return r.type.capitalize() if r.type else ""
        if col == COL_STATE:
            return {"active": "Active", "done": "Done", "queued": "Queued"}.get(r.state, r.state.capitalize())
        if col == COL_STATUS:
            return "" if r.status is None else str(r.status)
        if col == COL_DATABASE:
            return r.database or ""
        if col == COL_STRIPE:
            return "" if r.stripe is None else str(r.stripe + 1)
        if col == COL_PROGRESS:
            p = self.percent(r.job_id)
            return "" if p < 0 else f"{p}%"
        if col == COL_BYTES:
            done, expected, _, _ = self.totals(r.job_id)
            if not done and expected is None:
                return ""
            return f"{human_bytes(done)} / {human_bytes(expected)}" if expected is not None else human_bytes(done)
        if col == COL_RATE:
            rate = self.totals(r.job_id)[2]
            return f"{human_bytes(rate)}/s" if rate else ""
        if col == COL_ETA:
            if not r.active:
                return ""
            return human_duration(self.totals(r.job_id)[3])
        if col == COL_ELAPSED:
            if r.started is None:
                return ""
            return human_duration((r.ended if r.ended is not None else time.time()) - r.started)
        if col == COL_OBJECT:
            return r.object_name or (r.script.rsplit("/", 1)[-1] if r.script else "")
        return ""
