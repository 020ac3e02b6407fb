"""A live throughput chart drawn with QPainter (no PySide6-Addons): bytes/s over a
rolling window (two minutes), the y axis labelled in MB/s.

``add_sample(t, bytes_per_s)`` appends a point (t in seconds, monotonic);
``set_samples`` replaces them (switching jobs); repaints go through ``update()``,
which Qt merges, so a burst of samples costs one paint.
"""

from __future__ import annotations

import math
import time
from collections import deque

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

MB = 1024 * 1024


def nice_ceiling(x: float) -> float:
    """The smallest 1/2/5 x 10^n at or above x (the top of the axis)."""
    if x <= 0:
        return 1.0
    exp = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10 ** exp >= x:
            return m * 10 ** exp
    return 10 ** (exp + 1)  # pragma: no cover


class ThroughputChart(QWidget):
    WINDOW_S = 120.0

    def __init__(self, parent: QWidget | None = None, *, clock=time.monotonic):
        super().__init__(parent)
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque()
        self._title = ""
        self.setAccessibleName("Throughput chart")
        self.setAccessibleDescription("Bytes per second of the selected job over the last two minutes, in MB/s")
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(480, 160)

    # -- data
    def set_title(self, title: str) -> None:
        self._title = title
        self.update()

    def clear(self) -> None:
        self._samples.clear()
        self.update()

    def set_samples(self, samples) -> None:
        self._samples = deque(samples)
        self._trim()
        self.update()

    def add_sample(self, t: float, bytes_per_s: float) -> None:
        self._samples.append((t, max(0.0, float(bytes_per_s))))
        self._trim()
        self.update()

    def samples(self) -> list[tuple[float, float]]:
        return list(self._samples)

    def _trim(self) -> None:
        if not self._samples:
            return
        newest = max(self._samples[-1][0], self._clock())
        while self._samples and self._samples[0][0] < newest - self.WINDOW_S:
            self._samples.popleft()

    def peak_mb_s(self) -> float:
        return max((v for _, v in self._samples), default=0.0) / MB

    # -- painting
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            pal = self.palette()
            p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
            fm = p.fontMetrics()
            top_mb = nice_ceiling(self.peak_mb_s() * 1.1) if self._samples else 1.0
            labels = [f"{top_mb * i / 4:.3g} MB/s" if i else "0" for i in range(5)]
            label_w = max(fm.horizontalAdvance(t) for t in labels) + 8
            plot = QRectF(label_w, fm.height() + 4, max(10, self.width() - label_w - 8),
                          max(10, self.height() - 2 * fm.height() - 10))
            text = pal.color(QPalette.ColorRole.Text)
            grid = QColor(text)
            grid.setAlpha(50)
            p.setPen(QPen(text))
            p.drawText(QRectF(label_w, 0, plot.width(), fm.height() + 2), Qt.AlignmentFlag.AlignLeft,
                       self._title or "Throughput")
            # y grid and labels
            for i in range(5):
                frac = i / 4
                y = plot.bottom() - frac * plot.height()
                p.setPen(QPen(grid))
                p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
                p.setPen(QPen(text))
                p.drawText(QRectF(0, y - fm.height() / 2, label_w - 4, fm.height()),
                           Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, labels[i])
            # x labels: seconds ago (the outer ones kept inside the widget)
            for secs in (120, 90, 60, 30, 0):
                x = plot.right() - secs / self.WINDOW_S * plot.width()
                label = f"-{secs}s" if secs else "now"
                w = fm.horizontalAdvance(label) + 4
                left = min(max(0.0, x - w / 2), self.width() - w)
                p.drawText(QRectF(left, plot.bottom() + 2, w, fm.height()), Qt.AlignmentFlag.AlignHCenter, label)
            p.setPen(QPen(grid))
            p.drawRect(plot)
            if not self._samples:
                p.setPen(QPen(text))
                p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "no data")
                return
            now = max(self._samples[-1][0], self._clock())
            path = QPainterPath()
            fill = QPainterPath()
            first = True
            for t, v in self._samples:
                x = plot.right() - (now - t) / self.WINDOW_S * plot.width()
                y = plot.bottom() - min(1.0, v / MB / top_mb) * plot.height()
                if first:
                    path.moveTo(x, y)
                    fill.moveTo(x, plot.bottom())
                    fill.lineTo(x, y)
                    first = False
                else:
                    path.lineTo(x, y)
                    fill.lineTo(x, y)
                last_x = x
            fill.lineTo(last_x, plot.bottom())
            fill.closeSubpath()
            accent = pal.color(QPalette.ColorRole.Highlight)
            shade = QColor(accent)
            shade.setAlpha(60)
            p.fillPath(fill, shade)
            p.setPen(QPen(accent, 2))
            p.drawPath(path)
        finally:
            p.end()
