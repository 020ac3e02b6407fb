"""A database's backups on a time axis: full and log dumps (height by size, width by how long they
took), failed backups marked, the spans of time it can be restored to and the gaps between them,
and the expected duration of the next backup of each kind (from the last ones of that kind)."""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from datetime import datetime

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

RECENT_FOR_ESTIMATE = 5
BACKUP_JOBS = ("backup", "dump")


@dataclass
class Mark:
    time: float
    kind: str            # "D", "T" or "failed"
    kbytes: int = 0
    seconds: float | None = None
    backup_id: str | None = None
    label: str = ""


@dataclass
class TimelineData:
    database: str
    marks: list[Mark] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)   # restorable, merged, oldest first
    gaps: list[tuple[float, float]] = field(default_factory=list)    # not restorable to: between spans
    expected: dict[str, float] = field(default_factory=dict)         # "D"/"T" -> seconds of the next one

    @property
    def start(self) -> float:
        times = [m.time for m in self.marks] + [s for s, _ in self.spans]
        return min(times) if times else 0.0

    @property
    def end(self) -> float:
        times = [m.time + (m.seconds or 0) for m in self.marks] + [e for _, e in self.spans]
        return max(times) if times else 1.0


def _f(v) -> float | None:
    return None if v is None else float(v)


def _about(job: dict, database: str) -> bool:
    """A job of this database: its own database, or a script named for it (sybase_<db>_backup)."""
    if job.get("database"):
        return job["database"] == database
    script = os.path.basename(job.get("script") or "")
    return f"_{database}_" in f"_{script}_".replace(".", "_")


def timeline_data(database: str, images: list[dict], spans: list[dict], jobs: list[dict]) -> TimelineData:
    """Marks for every image and failed backup job of ``database``; restorable spans merged, gaps
    between them; the next backup's expected duration per kind (mean of the last few)."""
    kinds = {j.get("job_id"): j.get("type") for j in jobs}

    def backup_side(j: dict) -> bool:       # a backup's job, or a stripe of one (not of a load)
        if j.get("type") in BACKUP_JOBS:
            return True
        return j.get("type") == "stripe" and kinds.get(j.get("parent_id")) in BACKUP_JOBS

    elapsed = {j.get("job_id"): _f(j.get("elapsed")) for j in jobs if j.get("state") == "done"}
    seconds: dict[str, float] = {}
    for img in images:       # an image names the job that took it
        if img.get("job_id") in elapsed and elapsed[img["job_id"]] is not None:
            seconds[img["backup_id"]] = elapsed[img["job_id"]]
    for j in jobs:
        if j.get("backup_id") and j.get("elapsed") is not None and j.get("state") == "done" and backup_side(j):
            seconds[j["backup_id"]] = max(seconds.get(j["backup_id"], 0.0), float(j["elapsed"]))
    data = TimelineData(database)
    for img in images:
        if img.get("database") != database:
            continue
        t = _f(img.get("backup_time_unix"))
        if t is None:
            continue
        data.marks.append(Mark(t, img.get("type") or "D", int(img.get("kbytes") or 0),
                               seconds.get(img.get("backup_id")), img.get("backup_id"),
                               f"{img.get('type')} {img.get('backup_id')}"))
    failed_parents: set = set()
    for j in jobs:
        if (_about(j, database) and j.get("state") == "done" and j.get("status") not in (None, 0, 1)
                and j.get("started") and backup_side(j)):
            key = j.get("parent_id") or j.get("job_id")
            if key in failed_parents:
                continue
            failed_parents.add(key)
            data.marks.append(Mark(float(j["started"]), "failed", 0, _f(j.get("elapsed")), None,
                                   f"job {key} failed, status {j.get('status')}"))
    data.marks.sort(key=lambda m: m.time)
    merged: list[list[float]] = []
    for s in sorted(spans, key=lambda s: s["start_unix"]):
        a, b = float(s["start_unix"]), float(s["end_unix"])
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    data.spans = [(a, b) for a, b in merged]
    data.gaps = [(merged[i][1], merged[i + 1][0]) for i in range(len(merged) - 1)]
    for kind in ("D", "T"):
        last = [m.seconds for m in data.marks if m.kind == kind and m.seconds is not None][-RECENT_FOR_ESTIMATE:]
        if last:
            data.expected[kind] = statistics.fmean(last)
    return data


COLORS = {"D": QColor(40, 100, 200), "T": QColor(60, 160, 90), "failed": QColor(210, 50, 40)}


class TimelineWidget(QWidget):
    """Paints a ``TimelineData`` (``set_data``); empty until given one."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.data: TimelineData | None = None
        self.setAccessibleName("Backup timeline")
        self.setAccessibleDescription("Full and log dumps by time and size, failures, restorable spans and gaps")
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def set_data(self, data: TimelineData | None) -> None:
        self.data = data
        self.setToolTip(self.summary())
        self.update()

    def summary(self) -> str:
        d = self.data
        if d is None:
            return "No database selected."
        full = sum(1 for m in d.marks if m.kind == "D")
        logs = sum(1 for m in d.marks if m.kind == "T")
        failed = sum(1 for m in d.marks if m.kind == "failed")
        parts = [f"{d.database}: {full} full, {logs} log dumps, {failed} failed",
                 f"{len(d.spans)} restorable span{'s' if len(d.spans) != 1 else ''}, "
                 f"{len(d.gaps)} gap{'s' if len(d.gaps) != 1 else ''}"]
        for kind, name in (("D", "full"), ("T", "log")):
            if kind in d.expected:
                parts.append(f"next {name} dump: about {d.expected[kind]:.0f} s")
        return "; ".join(parts)

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(8, 6, -8, -22)
        p.fillRect(self.rect(), self.palette().base())
        d = self.data
        if d is None or (not d.marks and not d.spans):
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Select an image to see its database's timeline.")
            return
        t0, t1 = d.start, d.end
        if t1 <= t0:
            t0, t1 = t0 - 60, t1 + 60
        pad = (t1 - t0) * 0.03
        t0, t1 = t0 - pad, t1 + pad

        def x(t: float) -> float:
            return r.left() + (t - t0) / (t1 - t0) * r.width()

        band = QRectF(r.left(), r.bottom() - 8, r.width(), 8)
        for a, b in d.spans:
            p.fillRect(QRectF(x(a), band.top(), max(2.0, x(b) - x(a)), band.height()), QColor(120, 190, 120))
        for a, b in d.gaps:
            p.fillRect(QRectF(x(a), band.top(), max(2.0, x(b) - x(a)), band.height()), QColor(230, 170, 60))
        biggest = max([m.kbytes for m in d.marks] + [1])
        top, bottom = r.top(), band.top() - 4
        for m in d.marks:
            h = (bottom - top) * (0.15 + 0.85 * math.log1p(m.kbytes) / math.log1p(biggest)) if m.kbytes else 10
            w = max(3.0, x(m.time + (m.seconds or 0)) - x(m.time))
            rect = QRectF(x(m.time), bottom - h, w, h)
            if m.kind == "failed":
                p.setPen(QPen(COLORS["failed"], 2))
                c = QPointF(x(m.time), bottom - 6)
                p.drawLine(c + QPointF(-5, -5), c + QPointF(5, 5))
                p.drawLine(c + QPointF(-5, 5), c + QPointF(5, -5))
            else:
                p.fillRect(rect, COLORS.get(m.kind, COLORS["D"]))
        p.setPen(self.palette().text().color())
        fmt = "%m-%d %H:%M"
        p.drawText(QRectF(r.left(), r.bottom() + 2, 200, 16), Qt.AlignmentFlag.AlignLeft,
                   datetime.fromtimestamp(t0 + pad).strftime(fmt))
        p.drawText(QRectF(r.right() - 200, r.bottom() + 2, 200, 16), Qt.AlignmentFlag.AlignRight,
                   datetime.fromtimestamp(t1 - pad).strftime(fmt))
        p.drawText(QRectF(r.left() + 120, r.bottom() + 2, r.width() - 240, 16), Qt.AlignmentFlag.AlignCenter,
                   self.summary())
