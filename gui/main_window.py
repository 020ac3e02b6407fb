"""The Backup, Archive, and Restore window: three views, menus, status bar, tray icon."""

from __future__ import annotations

import asyncio
import contextlib

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStyle,
    QSystemTrayIcon,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine import __version__ as ENGINE_VERSION
from engine.home import Home
from engine.jobs.status import StatusError
from gui.backup_dialog import BackupDialog
from gui.backup_view import BackupView
from gui.engine_link import EngineLink
from gui.restore_view import RestoreView
from gui.settings import GuiSettings, SettingsDialog

try:  # written at the same time by a colleague; guarded until it lands
    from gui.progress_view import ProgressView
except ImportError:  # pragma: no cover - depends on the colleague's progress
    ProgressView = None

VIEWS = ("backup", "restore", "progress")


def _placeholder(text: str, name: str) -> QWidget:
    w = QWidget()
    w.setAccessibleName(name)
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setAccessibleName(name)
    lay = QVBoxLayout(w)
    lay.addWidget(label)
    return w


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(self, home: Home, parent: QWidget | None = None):
        super().__init__(parent)
        self.home = home
        self.settings = GuiSettings.load(home)
        self.link = EngineLink(home, self)
        self.setWindowTitle(f"Backup, Archive, and Restore — sybar ({home.root})")
        self.setAccessibleName("sybar Backup, Archive, and Restore")
        self.resize(1100, 720)
        self._tasks: set[asyncio.Task] = set()
        self._active: dict[int, dict] = {}
        self.tray: QSystemTrayIcon | None = None
        self.quitting = False

        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Views")
        self.backup_view = BackupView(home, self.settings)
        self.restore_view = RestoreView(self.link)
        self.restore_view.restoreRequested.connect(lambda image: self.spawn(self._open_restore(image)))
        self.restore_view.restoreStarted.connect(lambda _job: self.show_view("progress"))
        if ProgressView is not None:
            self.progress_view = ProgressView(self.link)
        else:
            self.progress_view = _placeholder("Task Progress is not installed yet (gui/progress_view.py).",
                                              "Task Progress")
        self.tabs.addTab(self.backup_view, "Select for &Backup")
        self.tabs.addTab(self.restore_view, "Select for &Restore")
        self.tabs.addTab(self.progress_view, "&Task Progress")
        self.setCentralWidget(self.tabs)

        self.status_line = QLabel()
        self.status_line.setAccessibleName("Master server, client and policy")
        self.statusBar().addPermanentWidget(self.status_line)
        self._update_status_line()
        self.link.message.connect(lambda m: self.statusBar().showMessage(m, 15000))
        self.link.connected.connect(lambda _s: self._update_status_line())
        self.backup_view.backupRequested.connect(self.open_backup_dialog)
        self.backup_view.restoreRequested.connect(lambda: self.spawn(self.run_restore_scripts()))
        self._make_menus()
        self._make_tray()

    # -- menus --
    def _action(self, menu: QMenu, text: str, slot, shortcut=None, name: str | None = None) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        a.triggered.connect(slot)
        a.setObjectName(name or text.replace("&", "").replace("…", "").strip())
        menu.addAction(a)
        return a

    def _make_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.act_settings = self._action(f, "&Settings…", self.open_settings, QKeySequence.StandardKey.Preferences)
        self.act_logins = self._action(f, "&Logins…", self.open_logins)
        f.addSeparator()
        self.act_quit = self._action(f, "&Quit", self.quit, QKeySequence.StandardKey.Quit)
        e = mb.addMenu("&Edit")
        self._action(e, "Select &all scripts", self.backup_view.model.check_all_scripts, "Ctrl+A")
        self._action(e, "&Clear selection", self.backup_view.model.clear_checked, "Ctrl+Shift+A")
        v = mb.addMenu("&View")
        for i, (label, _view) in enumerate(zip(("Select for &Backup", "Select for &Restore", "&Task Progress"),
                                               VIEWS, strict=True)):
            self._action(v, label, lambda _c=False, i=i: self.tabs.setCurrentIndex(i), f"Ctrl+{i + 1}")
        v.addSeparator()
        self._action(v, "&Refresh", lambda: self.spawn(self.refresh()), "F5")
        a = mb.addMenu("&Actions")
        self.act_backup = self._action(a, "&Backup…", self.open_backup_dialog, "Ctrl+B")
        self.act_cancel = self._action(a, "&Cancel job", lambda: self.spawn(self.cancel_selected_job()))
        h = mb.addMenu("&Help")
        self._action(h, "&About sybar", self.about)

    def _make_tray(self) -> None:
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return
        icon = self.windowIcon()
        if icon.isNull():
            icon = QApplication.style().standardIcon(QStyle.StandardPixmap.SP_DriveHDIcon)
        self.tray = QSystemTrayIcon(icon, self)
        self.tray.setToolTip("sybar: no active jobs")
        menu = QMenu(self)
        menu.addAction("Show sybar", self.showNormal)
        menu.addAction("Quit (jobs keep running)", self.quit)
        self.tray.setContextMenu(menu)
        self.tray.activated.connect(lambda _r: self.showNormal())
        self.tray.show()

    # -- running --
    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            e = task.exception()
            self.statusBar().showMessage(f"{e}" if isinstance(e, StatusError) else f"{type(e).__name__}: {e}",
                                         20000)

    async def start(self) -> None:
        """Connect to (or start) the daemon, fill the views, subscribe to events."""
        self.statusBar().showMessage(f"Connecting to the sybar daemon of {self.home.root} …")
        await self.backup_view.start()
        try:
            await self.link.connect()
        except StatusError as e:
            self.statusBar().showMessage(f"Not connected: {e}")
            return
        if ProgressView is not None and hasattr(self.progress_view, "start"):
            await self.progress_view.start()   # returns once the job list is loaded
        await self.restore_view.start()        # the first page of the last two weeks' images
        self.spawn(self._watch_jobs())

    async def _open_restore(self, image) -> None:
        """Select for Restore -> the Restore dialog for that image (preview, confirmation, start)."""
        dialog = self.restore_view.make_restore_dialog(image)
        await dialog.load()
        dialog.show()

    async def _watch_jobs(self) -> None:
        """Active script jobs for the tray; a notice when one ends (status != 0 warns)."""
        try:
            for job in await self.link.client.jobs(active=True):
                if job.get("parent_id") is None:
                    self._active[job["job_id"]] = job
            self._update_tray()
            async for e in self.link.events():
                kind = e.get("event")
                if kind == "job_started" and e["job"].get("parent_id") is None:
                    self._active[e["job"]["job_id"]] = e["job"]
                    self._update_tray()
                elif kind == "job_ended" and e.get("parent_id") is None:
                    job = self._active.pop(e["job_id"], {})
                    self._update_tray()
                    self.job_ended(e["job_id"], int(e.get("status", 0)), e.get("message", ""), job)
        except StatusError as e:
            self.statusBar().showMessage(f"Lost the daemon's events: {e}")

    def job_ended(self, job_id: int, status: int, message: str, job: dict) -> None:
        what = job.get("script") or f"job {job_id}"
        text = f"Job {job_id} ({what}) ended with status {status}" + (f": {message}" if message else "")
        self.statusBar().showMessage(text, 30000)
        if self.tray is not None:
            icon = (QSystemTrayIcon.MessageIcon.Information if status == 0
                    else QSystemTrayIcon.MessageIcon.Warning)
            self.tray.showMessage("sybar backup " + ("done" if status == 0 else "failed"), text, icon, 10000)

    def _update_tray(self) -> None:
        if self.tray is None:
            return
        n = len(self._active)
        self.tray.setToolTip(f"sybar: {n} active job{'s' if n != 1 else ''}" if n else "sybar: no active jobs")

    def _update_status_line(self) -> None:
        st = self.link.status
        self.status_line.setText(
            f"Master server: {st.get('master_server', '?')}   Client: {st.get('client', '?')}   "
            f"Policy: {self.settings.default_policy or st.get('default_policy', '?')}   (home {self.home.root})")

    async def refresh(self) -> None:
        await self.backup_view.refresh()
        if self.link.is_connected:
            await self.link.refresh_status()
            self._update_status_line()

    # -- actions --
    def show_view(self, view: str) -> None:
        self.tabs.setCurrentIndex(VIEWS.index(view))

    def make_backup_dialog(self) -> BackupDialog:
        dlg = BackupDialog(self.link, self.backup_view.model.checked_paths(),
                           default_policy=self.settings.default_policy,
                           default_schedule=self.settings.default_schedule, parent=self)
        dlg.jobsStarted.connect(lambda jobs, d=dlg: self._jobs_started(jobs, d.show_progress.isChecked()))
        return dlg

    def open_backup_dialog(self) -> None:
        if not self.backup_view.model.checked_paths():
            QMessageBox.information(self, "Backup", "Mark one or more Sybase scripts to back up first.")
            return
        dlg = self.make_backup_dialog()
        self.spawn(dlg.load())
        dlg.open()

    async def run_restore_scripts(self) -> list[int]:
        """Select for Backup's Restore: run each marked restore script through bphdb (as `sybar restore`)."""
        paths = self.backup_view.model.checked_paths()
        if not paths:
            QMessageBox.information(self, "Restore", "Mark one or more restore scripts first.")
            return []
        jobs = [await self.link.client.restore_script(str(p)) for p in paths]
        self._jobs_started(jobs, True)
        return jobs

    def _jobs_started(self, jobs: list[int], show_progress: bool) -> None:
        self.statusBar().showMessage(f"Started backup job{'s' if len(jobs) != 1 else ''} "
                                     f"{', '.join(map(str, jobs))}", 15000)
        if show_progress:
            self.show_view("progress")
            if jobs and hasattr(self.progress_view, "select_job"):
                with contextlib.suppress(Exception):
                    self.progress_view.select_job(jobs[0])

    async def cancel_selected_job(self) -> None:
        job_id = None
        if hasattr(self.progress_view, "selected_job"):
            with contextlib.suppress(Exception):
                job_id = self.progress_view.selected_job()
        if job_id is None:
            self.show_view("progress")
            self.statusBar().showMessage("Select a job in Task Progress to cancel it.", 10000)
            return
        ok = await self.link.client.cancel(int(job_id))
        self.statusBar().showMessage(f"Job {job_id} " + ("cancelled (status 150)" if ok else "was not running"),
                                     10000)

    def open_settings(self) -> None:
        dlg = SettingsDialog(self.home, self.settings, parent=self)
        if dlg.exec():
            self.backup_view._fill_roots()
            self._update_status_line()

    def open_logins(self) -> None:
        from gui.credentials import LoginsDialog

        dlg = LoginsDialog(self.link, self)
        dlg.open()

    def about(self) -> None:
        QMessageBox.about(self, "About sybar",
                          f"<b>sybar</b> {ENGINE_VERSION}<br>Sybase Backup, Archive, and Restore.<br>"
                          f"Home: {self.home.root}")

    def quit(self) -> None:
        self.quitting = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        # Closing never stops a job: the daemon runs on. With a tray, the window hides to it.
        if self.tray is not None and not self.quitting:
            self.hide()
            self.tray.showMessage("sybar", "sybar keeps showing your jobs here; backups go on.",
                                  QSystemTrayIcon.MessageIcon.Information, 5000)
            event.ignore()
            return
        for t in list(self._tasks):
            t.cancel()
        if self.tray is not None:
            self.tray.hide()
        event.accept()
        self.closed.emit()

    async def aclose(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for child in (self.progress_view, self.restore_view):
            close = getattr(child, "aclose", None) or getattr(child, "stop", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    r = close()
                    if asyncio.iscoroutine(r):
                        await r
        await self.link.close()


def app_icon() -> QIcon:
    from gui.script_model import ICONS

    p = ICONS / "sybase-script.svg"
    return QIcon(str(p)) if p.is_file() else QIcon()
