"""Task Progress: the jobs tree with a bar per job and per stripe, Cancel, the selected
job's live log, a failure banner and a live throughput chart.

It follows the control API's event stream (the same one `sybar jobs --follow`
reads) through a ``JobsModel`` that coalesces updates. Everything runs on the
qasync loop: slots only start tasks, no slot waits on the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque

from PySide6.QtCore import QEvent, QModelIndex, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from engine.jobs.status import MEANING, StatusError
from gui.jobs_model import COL_JOB, COL_PROGRESS, COLUMNS, JobsModel, ProgressRole
from gui.throughput_chart import ThroughputChart

log = logging.getLogger(__name__)

ERROR_LINE = re.compile(r"(?i)\b(error|fail(ed|ure)?|msg \d+|abort(ed)?|terminat\w*|refused|cannot|can't|"
                        r"denied|timed out|killed)\b")


class ProgressDelegate(QStyledItemDelegate):
    """Draws the Progress column as a progress bar (percent from ProgressRole)."""

    def paint(self, painter, option, index) -> None:
        if index.column() != COL_PROGRESS:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        percent = index.data(ProgressRole)
        bar = QStyleOptionProgressBar()
        bar.rect = QRect(option.rect.adjusted(2, 2, -2, -2))
        bar.minimum, bar.maximum = 0, 100
        bar.progress = max(0, percent if percent is not None else 0)
        bar.text = f"{percent}%" if percent is not None and percent >= 0 else ""
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, opt.widget)


class ProgressView(QWidget):
    RECENT_JOBS = 200
    SAMPLE_MS = 500  # throughput samples
    HISTORY_JOBS = 64  # jobs whose throughput history is kept
    RECONNECT_MAX_S = 5.0

    connectionChanged = Signal(bool, str)  # connected?, what to tell the user
    selectedJobChanged = Signal(int)

    def __init__(self, link, parent: QWidget | None = None):
        super().__init__(parent)
        self.link = link
        self.model = JobsModel(self)
        self._selected: int | None = None
        self._family: set[int] = set()
        self._log_lines: deque[tuple[float, int, str]] = deque(maxlen=5000)
        self._log_generation = 0
        self._log_loading = False
        self._log_buffer: list[tuple[float, int, str]] = []
        self._history: dict[int, deque[tuple[float, float]]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._follow_task: asyncio.Task | None = None
        self._fetching: set[int] = set()
        self._loaded: asyncio.Event | None = None
        self._stopping = False
        self.connected = False
        self.events_seen = 0
        self._build()
        self.model.jobLog.connect(self._on_job_log)
        self.model.jobEnded.connect(self._on_job_ended)
        self.model.missingJob.connect(self._on_missing_job)
        self.model.rowsInserted.connect(self._on_rows_inserted)
        self.model.dataChanged.connect(self._on_data_changed)
        self._sampler = QTimer(self)
        self._sampler.setInterval(self.SAMPLE_MS)
        self._sampler.timeout.connect(self._sample)

    @property
    def client(self):
        return self.link.client

    # ------------------------------------------------------------ widgets
    def _build(self) -> None:
        self.setAccessibleName("Task Progress")
        self.cancel_button = QPushButton("&Cancel Job")
        self.cancel_button.setAccessibleName("Cancel job")
        self.cancel_button.setToolTip("Stop the selected job (it ends with status 150)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.connection_label = QLabel("Connecting to the sybar daemon ...")
        self.connection_label.setAccessibleName("Connection to the sybar daemon")
        self.message_label = QLabel("")
        self.message_label.setAccessibleName("Task Progress message")
        top = QHBoxLayout()
        top.addWidget(self.cancel_button)
        top.addWidget(self.message_label, 1)
        top.addWidget(self.connection_label)

        self.tree = QTreeView()
        self.tree.setAccessibleName("Jobs")
        self.tree.setAccessibleDescription("Script jobs and their stripe jobs, with progress, bytes, rate and ETA")
        self.tree.setModel(self.model)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setAllColumnsShowFocus(True)
        self.tree.setSelectionBehavior(QTreeView.SelectionBehavior.SelectRows)
        self.tree.setSelectionMode(QTreeView.SelectionMode.SingleSelection)
        self.tree.setItemDelegateForColumn(COL_PROGRESS, ProgressDelegate(self.tree))
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        widths = {"Job": 90, "Type": 70, "State": 60, "Status": 55, "Database": 90, "Stripe": 50,
                  "Progress": 140, "Bytes": 150, "Rate": 90, "ETA": 60, "Elapsed": 65}
        for col, name in enumerate(COLUMNS):
            if name in widths:
                header.resizeSection(col, widths[name])
        self.tree.selectionModel().currentRowChanged.connect(self._on_current_changed)

        self.banner = QLabel("")
        self.banner.setAccessibleName("Job failure details")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                            | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.banner.setStyleSheet("QLabel { background: rgba(220, 60, 60, 70); border: 1px solid rgb(200, 50, 50);"
                                  " border-radius: 3px; padding: 4px; }")
        self.banner.hide()
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setAccessibleName("Job log")
        self.log_view.setAccessibleDescription("The selected job's log and its stripes' logs, live")
        self.log_view.setPlaceholderText("Select a job to see its log")
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.chart = ThroughputChart()

        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.banner)
        lower_split = QSplitter(Qt.Orientation.Vertical)
        lower_split.addWidget(self.log_view)
        lower_split.addWidget(self.chart)
        lower_layout.addWidget(lower_split, 1)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.tree)
        self.splitter.addWidget(lower)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        self._cancel_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Delete), self.tree)
        self._cancel_shortcut.activated.connect(self.cancel_selected)

    # ------------------------------------------------------------ life
    async def start(self) -> None:
        """Load recent jobs, then follow the event stream (reconnecting) until stop()."""
        self._stopping = False
        self._loaded = asyncio.Event()
        self._sampler.start()
        self._follow_task = asyncio.ensure_future(self._follow())
        loaded = asyncio.ensure_future(self._loaded.wait())
        await asyncio.wait({loaded, self._follow_task}, return_when=asyncio.FIRST_COMPLETED)
        if not loaded.done():
            loaded.cancel()

    async def stop(self) -> None:
        self._stopping = True
        self._sampler.stop()
        tasks = [t for t in (self._follow_task, *self._tasks) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._follow_task = None
        self.model.flush()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self._say(str(exc) if isinstance(exc, StatusError) else f"unexpected error: {exc!r}")
            if not isinstance(exc, StatusError):
                log.error("Task Progress task failed", exc_info=exc)

    def _say(self, text: str) -> None:
        self.message_label.setText(text)

    def _set_connected(self, ok: bool, text: str) -> None:
        self.connected = ok
        self.connection_label.setText(text)
        self.connectionChanged.emit(ok, text)

    async def _follow(self) -> None:
        delay = 0.5
        while not self._stopping:
            stream = self.client.events()
            try:
                first = await stream.__anext__()
                if first.get("event") != "connected":
                    self.model.apply(first)
                # the stream is live: whatever happens from now on is queued for us
                await self._resync()
                self._set_connected(True, "Following the sybar daemon's jobs")
                if self._loaded is not None:
                    self._loaded.set()
                delay = 0.5
                async for event in stream:
                    self.events_seen += 1
                    if event.get("event") == "lagged":
                        break  # we fell behind: read the job list again and resubscribe
                    self.model.apply(event)
                if self._stopping:
                    return
                self._set_connected(False, "Event stream ended; reconnecting ...")
            except asyncio.CancelledError:
                raise
            except (TimeoutError, StatusError, OSError, ValueError, StopAsyncIteration) as e:
                if self._stopping:
                    return
                self._set_connected(False, f"Reconnecting: {e}" if str(e) else "Reconnecting ...")
            except Exception as e:  # aiohttp payload errors and the like: reconnect, never die
                if self._stopping:
                    return
                log.warning("event stream failed: %r", e)
                self._set_connected(False, f"Reconnecting: {e!r}")
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()
            if self._loaded is not None:
                self._loaded.set()  # start() returns even when the daemon is away
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.RECONNECT_MAX_S)

    async def _resync(self) -> None:
        jobs = await self.client.jobs(limit=self.RECENT_JOBS)
        self.model.load_jobs(jobs)
        listed = {j["job_id"] for j in jobs}
        stale = [j for j in self.model.job_ids()
                 if j not in listed and (self.model.job(j).active or self.model.job(j).placeholder)]
        for job_id in stale[:50]:
            with contextlib.suppress(StatusError):
                self.model.load_jobs([await self.client.job(job_id)])
        self.model.flush()

    # ------------------------------------------------------------ model signals
    def _on_missing_job(self, job_id: int) -> None:
        if job_id in self._fetching:
            return
        self._fetching.add(job_id)

        async def fetch():
            try:
                job = await self.client.job(job_id)
                if job.get("parent_id") is not None and self.model.job(job["parent_id"]) is None:
                    with contextlib.suppress(StatusError):
                        job = await self.client.job(job["parent_id"])
                self.model.load_jobs([job])
            finally:
                self._fetching.discard(job_id)

        self._spawn(fetch())

    def _on_rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        for row in range(first, last + 1):
            index = self.model.index(row, 0, parent)
            job_id = self.model.job_at(index)
            job = self.model.job(job_id) if job_id is not None else None
            if job is None:
                continue
            if not parent.isValid() and job.active:
                self.tree.expand(index)
                if self._selected is None and self._loaded is not None and self._loaded.is_set():
                    self.select_job(job_id)
            if job_id == self._selected:  # selected before its row existed (just started)
                self.tree.setCurrentIndex(index)
                self._update_controls()
        if parent.isValid():
            self._family = self._family_of(self._selected)

    def _on_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, roles=()) -> None:
        if self._selected is None:
            return
        sel = self.model.index_of(self._selected)
        if sel.parent() == top_left.parent() and top_left.row() <= sel.row() <= bottom_right.row():
            self._update_controls()

    def _on_job_log(self, job_id: int, t: float, line: str) -> None:
        if job_id not in self._family:
            return
        entry = (t, job_id, line)
        if self._log_loading:
            self._log_buffer.append(entry)
            return
        self._log_lines.append(entry)
        self.log_view.appendPlainText(self._format(entry))
        selected = self.model.job(self._selected) if self._selected is not None else None
        if selected is not None and selected.failed:
            self._update_controls()  # the banner shows the last error lines

    def _on_job_ended(self, job_id: int, status: int) -> None:
        hist = self._history.get(job_id)
        if hist is not None:
            hist.append((time.monotonic(), 0.0))
        if self._selected is not None and job_id in self._family:
            self._sample()
            self._update_controls()

    # ------------------------------------------------------------ selection
    def _on_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        job_id = self.model.job_at(current)
        if job_id is not None and job_id != self._selected:
            self.select_job(job_id)

    def selected_job(self) -> int | None:
        return self._selected

    def _family_of(self, job_id: int | None) -> set[int]:
        if job_id is None:
            return set()
        return {job_id, *self.model.descendants(job_id)}

    def select_job(self, job_id: int) -> None:
        """Show this job: select its row, load its log, chart its throughput."""
        self.model.flush()
        self._selected = job_id
        self._family = self._family_of(job_id)
        index = self.model.index_of(job_id)
        if index.isValid() and self.tree.currentIndex().siblingAtColumn(0) != index:
            self.tree.setCurrentIndex(index)
            self.tree.scrollTo(index)
        self.chart.set_title(f"Throughput of job {job_id}")
        self.chart.set_samples(self._history.get(job_id, ()))
        self.log_view.clear()
        self._log_lines.clear()
        self._log_buffer = []
        self._log_generation += 1
        self._log_loading = True
        self._update_controls()
        self.selectedJobChanged.emit(job_id)
        self._spawn(self._load_log(job_id, self._log_generation))

    async def _load_log(self, job_id: int, generation: int) -> None:
        try:
            job = await self.client.job(job_id)
            self.model.load_jobs([job])
            ids = [job_id, *[c["job_id"] for c in job.get("children") or []]]
            logs = await asyncio.gather(*(self.client.job_log(i) for i in ids), return_exceptions=True)
        except StatusError as e:
            if generation == self._log_generation:
                self._log_loading = False
                self.log_view.appendPlainText(f"(could not read the log of job {job_id}: {e})")
            return
        if generation != self._log_generation:
            return
        entries = []
        for i, lines in zip(ids, logs, strict=True):
            if isinstance(lines, BaseException):
                continue
            entries.extend((float(x.get("time") or 0), i, str(x.get("line", ""))) for x in lines)
        seen = set(entries)
        entries.sort(key=lambda e: e[0])
        entries.extend(e for e in self._log_buffer if e not in seen)
        self._log_buffer = []
        self._log_loading = False
        self._family = self._family_of(job_id)
        self._log_lines.extend(entries)
        if entries:
            self.log_view.appendPlainText("\n".join(self._format(e) for e in list(self._log_lines)))
        self._update_controls()

    def _format(self, entry: tuple[float, int, str]) -> str:
        t, job_id, line = entry
        stamp = time.strftime("%H:%M:%S", time.localtime(t)) if t else "--:--:--"
        who = "" if job_id == self._selected else f"[job {job_id}] "
        return f"{stamp} {who}{line}"

    def _update_controls(self) -> None:
        job = self.model.job(self._selected) if self._selected is not None else None
        self.cancel_button.setEnabled(job is not None and job.active and not job.placeholder)
        if job is None or not job.failed:
            self.banner.hide()
            return
        meaning = MEANING.get(job.status, "unknown status")
        text = f"Job {job.job_id} failed: status {job.status} ({meaning})"
        if job.message and job.message != meaning:
            text += f": {job.message}"
        errors = [e for e in self._log_lines if ERROR_LINE.search(e[2])][-4:]
        if not errors:
            errors = list(self._log_lines)[-3:]
        if errors:
            text += "\n" + "\n".join(self._format(e) for e in errors)
        self.banner.setText(text)
        self.banner.show()

    # ------------------------------------------------------------ actions
    def cancel_selected(self) -> asyncio.Task | None:
        """Ask the daemon to cancel the selected job (it ends with status 150)."""
        job_id = self._selected
        job = self.model.job(job_id) if job_id is not None else None
        if job is None or not job.active:
            return None
        self.cancel_button.setEnabled(False)
        self._say(f"Cancelling job {job_id} ...")

        async def cancel():
            try:
                ok = await self.client.cancel(job_id)
            except StatusError as e:
                self._say(f"Could not cancel job {job_id}: {e}")
                self._update_controls()
                return False
            self._say(f"Cancel requested for job {job_id}" if ok else f"Job {job_id} had already ended")
            return ok

        return self._spawn(cancel())

    # ------------------------------------------------------------ throughput
    def _sample(self) -> None:
        now = time.monotonic()
        for job_id in self.model.job_ids():
            job = self.model.job(job_id)
            if job is None or not job.active:
                continue
            hist = self._history.get(job_id)
            if hist is None:
                hist = self._history[job_id] = deque(maxlen=int(ThroughputChart.WINDOW_S * 1000 / self.SAMPLE_MS) + 8)
                if len(self._history) > self.HISTORY_JOBS:
                    for old in sorted(self._history)[: len(self._history) - self.HISTORY_JOBS]:
                        if old != self._selected:
                            del self._history[old]
            hist.append((now, self.model.rate_of(job_id)))
        hist = self._history.get(self._selected) if self._selected is not None else None
        shown = self.chart.samples()
        if hist and (not shown or hist[-1] != shown[-1]):
            self.chart.set_samples(hist)  # an ended job's chart is not repainted again and again

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self.chart.update()
        super().changeEvent(event)


__all__ = ["ProgressView", "ProgressDelegate", "COL_JOB"]
