"""Restore an image: target database, an optional point in time (bounded by the log chain),
a preview of the exact plan, a confirmation naming the database overwritten, Start Restore."""

from __future__ import annotations

import asyncio
from datetime import datetime

from PySide6.QtCore import QDateTime, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.jobs.status import StatusError
from gui.images_model import human_kbytes, short_time

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _unix(image: dict, key: str) -> float | None:
    v = image.get(f"{key}_unix")
    if v is not None:
        return float(v)
    iso = image.get(key)
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def until_text(t: float) -> str:
    """Unix time -> the engine's 'YYYY-MM-DD hh:mm:ss.fff' local time (truncated to the ms)."""
    millis = int(t * 1000)
    seconds, ms = divmod(millis, 1000)
    return datetime.fromtimestamp(seconds).strftime(TIME_FORMAT) + f".{ms:03d}"


def chain_bounds(image: dict, chain: list[dict]) -> tuple[float, float] | None:
    """The times the chain can restore to: (the full dump's time, the last commit its logs hold);
    None when no log dump follows the image."""
    if not chain:
        return None
    start = _unix(image, "backup_time") or 0.0
    def end(log: dict) -> float:
        commit = _unix(log, "last_commit")
        if commit is not None:
            return commit
        if log.get("last_lsn") is not None:
            return start        # a log dump with no commit in it reaches no later time
        return _unix(log, "backup_time") or start      # recorded before chains had LSNs

    return start, max([start, *map(end, chain)])


class RestoreDialog(QDialog):
    """``RestoreDialog(link, image, chain=None, parent=None)``; ``await dlg.load()`` before showing."""

    restoreStarted = Signal(int)     # the restore job id

    def __init__(self, link, image: dict, *, chain: list[dict] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.link = link
        self.image = image
        self.chain = chain
        self.job: int | None = None
        self.plan: dict | None = None
        self.started: asyncio.Future | None = None
        self.previewing: asyncio.Future | None = None
        self.setWindowTitle(f"Restore {image.get('database')}")
        self.setAccessibleName("Restore")

        kind = {"D": "Full dump", "T": "Log dump"}.get(image.get("type"), "Image")
        self.image_label = QLabel(
            f"{kind} of {image.get('database')} taken {short_time(image.get('backup_time'))} "
            f"({len(image.get('stripes') or [])} stripes, {human_kbytes(image.get('kbytes'))})\n"
            f"{image.get('backup_id')}")
        self.image_label.setAccessibleName("Image to restore")
        self.image_label.setWordWrap(True)
        self.server = QLineEdit(image.get("dataserver") or link.status.get("dataserver", ""))
        self.server.setAccessibleName("Target server")
        self.server.setReadOnly(True)
        self.server.setToolTip("The dataserver the image is loaded into")
        self.database = QLineEdit(image.get("database") or "")
        self.database.setAccessibleName("Target database")
        self.database.setToolTip("The image's database by default; a new name creates that database for load")
        self.use_time = QCheckBox("Restore to a &point in time")
        self.use_time.setAccessibleName("Restore to a point in time")
        self.use_time.setEnabled(False)
        self.point_in_time = QDateTimeEdit()
        self.point_in_time.setAccessibleName("Point in time")
        self.point_in_time.setDisplayFormat("yyyy-MM-dd HH:mm:ss.zzz")
        self.point_in_time.setCalendarPopup(True)
        self.point_in_time.setEnabled(False)
        self.chain_label = QLabel("Looking for log dumps after this image …")
        self.chain_label.setWordWrap(True)
        self.chain_label.setAccessibleName("Log chain")
        self.use_time.toggled.connect(self._on_use_time)

        self.preview_button = QPushButton("&Preview")
        self.preview_button.setAccessibleName("Preview restore plan")
        self.preview_button.setToolTip("Show the exact statements and images, before anything runs")
        self.preview_button.clicked.connect(self._preview_clicked)
        self.save_button = QPushButton("Save as restore &script…")
        self.save_button.setAccessibleName("Save as restore script")
        self.save_button.setToolTip("Write this restore as a script + SQL file in the home's scripts folder, "
                                    "to run again from Select for Backup")
        self.save_button.clicked.connect(self._save_clicked)
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setAccessibleName("Restore plan")
        self.preview.setPlaceholderText("Preview shows the LOAD statements and images before anything runs.")
        self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))

        self.confirm_label = QLabel()
        self.confirm_label.setWordWrap(True)
        self.confirm = QLineEdit()
        self.confirm.setAccessibleName("Confirm the database name")
        self.confirm_label.setBuddy(self.confirm)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setAccessibleName("Restore error")

        form = QFormLayout()
        form.addRow("Image:", self.image_label)
        form.addRow("Target &server:", self.server)
        form.addRow("Target &database:", self.database)
        form.addRow("", self.use_time)
        form.addRow("Point in &time:", self.point_in_time)
        form.addRow("", self.chain_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setAccessibleName("Cancel")
        self.start_button = self.buttons.addButton("Start &Restore", QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.setAccessibleName("Start Restore")
        self.start_button.setEnabled(False)
        self.buttons.rejected.connect(self.reject)
        self.start_button.clicked.connect(self._start_clicked)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        buttons_row = QHBoxLayout()
        buttons_row.addWidget(self.preview_button)
        buttons_row.addWidget(self.save_button)
        buttons_row.addStretch(1)
        layout.addLayout(buttons_row)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.confirm_label)
        layout.addWidget(self.confirm)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.database.textChanged.connect(self._on_target_changed)
        self.confirm.textChanged.connect(self._update_start)
        self._on_target_changed()
        self.resize(720, 560)

    # ------------------------------------------------------------ state
    def target(self) -> str:
        return self.database.text().strip()

    def until(self) -> str | None:
        if not (self.use_time.isEnabled() and self.use_time.isChecked()):
            return None
        return until_text(self.point_in_time.dateTime().toMSecsSinceEpoch() / 1000)

    def _on_target_changed(self, *_a) -> None:
        db = self.target()
        same = db == self.image.get("database")
        what = ("overwritten" if same else "overwritten if it exists (created for load if not)")
        self.confirm_label.setText(f"Database <b>{db or '?'}</b> will be {what}. "
                                   f"Type the database name to confirm:")
        self.confirm.setPlaceholderText(db)
        self.plan = None
        self._update_start()

    def _on_use_time(self, on: bool) -> None:
        self.point_in_time.setEnabled(on and self.use_time.isEnabled())
        self.plan = None
        self._update_start()

    def _update_start(self, *_a) -> None:
        ok = bool(self.target()) and self.confirm.text().strip() == self.target()
        self.start_button.setEnabled(ok and self.started is None)

    # ------------------------------------------------------------ loading
    async def load(self) -> None:
        """Find the log chain (if not given) and bound the point-in-time picker by it."""
        if self.chain is None:
            from gui.restore_view import log_chain

            try:
                self.chain = await log_chain(self.link.client, self.image)
            except StatusError as e:
                self.chain = []
                self.error.setText(f"Could not read the log chain: {e}")
        bounds = chain_bounds(self.image, self.chain) if self.image.get("type") == "D" else None
        if bounds is None:
            self.chain_label.setText("No log dumps follow this image: it restores to the time it was taken.")
            self.use_time.setEnabled(False)
            self.point_in_time.setEnabled(False)
            return
        start, end = bounds
        lo = QDateTime.fromMSecsSinceEpoch(int(start * 1000))
        hi = QDateTime.fromMSecsSinceEpoch(int(end * 1000))
        self.point_in_time.setDateTimeRange(lo, hi)
        self.point_in_time.setDateTime(hi)
        self.use_time.setEnabled(True)
        self.point_in_time.setEnabled(self.use_time.isChecked())
        n = len(self.chain)
        self.chain_label.setText(f"{n} log dump{'s follow' if n != 1 else ' follows'} this "
                                 f"image: restorable from {until_text(start)} to {until_text(end)}.")

    # ------------------------------------------------------------ preview, start
    def _preview_clicked(self) -> None:
        self.previewing = asyncio.ensure_future(self.preview_plan())

    async def preview_plan(self) -> dict | None:
        """The engine's plan for the current choices (``sybar restore --plan``), shown as text."""
        self.preview_button.setEnabled(False)
        self.error.setText("")
        try:
            self.plan = await self.link.client.restore_plan(self.image["backup_id"], database=self.target() or None,
                                                            until=self.until())
        except StatusError as e:
            self.plan = None
            self.preview.setPlainText("")
            self.error.setText(f"No plan (status {e.status}): {e}")
            return None
        finally:
            self.preview_button.setEnabled(True)
        self.preview.setPlainText(self.plan.get("plan") or "\n".join(self.plan.get("statements") or []))
        return self.plan

    def _save_clicked(self) -> None:
        self.saving = asyncio.ensure_future(self.save_restore_script())

    async def save_restore_script(self) -> str | None:
        """The plan as a restore script in HOME/scripts (engine.bphdb.restore_script); returns its path."""
        from engine.bphdb.restore_script import script_name, write_restore_script

        plan = await self.preview_plan()
        if plan is None:
            return None
        home = self.link.home
        name = script_name(plan.get("target") or self.target(), self.image["backup_id"])
        summary = f"restore image {self.image['backup_id']} into {plan.get('target')}" + (
            f" until {self.until()}" if self.until() else "")
        try:
            script, _sql = await self.link.run_blocking(
                lambda: write_restore_script(home.scripts, name, plan["statements"], summary=summary))
        except StatusError as e:
            self.error.setText(f"Not saved (status {e.status}): {e}")
            return None
        self.error.setText(f"Saved {script}; it runs from Select for Backup (Restore) or `sybar restore`.")
        return str(script)

    def _start_clicked(self) -> None:
        self.started = asyncio.ensure_future(self.start_restore())
        self._update_start()

    async def start_restore(self) -> int | None:
        """Start the restore job; on success the dialog closes and ``restoreStarted`` fires."""
        db = self.target()
        if not db or self.confirm.text().strip() != db:
            self.error.setText(f"Type {db!r} to confirm the database that will be overwritten.")
            self.started = None
            self._update_start()
            return None
        self.start_button.setEnabled(False)
        self.error.setText("Starting …")
        try:
            job = await self.link.client.restore_image(self.image["backup_id"], database=db, until=self.until())
        except StatusError as e:
            self.error.setText(f"Restore not started (status {e.status}): {e}")
            self.started = None
            self._update_start()
            return None
        self.job = job
        self.error.setText(f"Started restore job {job}.")
        self.restoreStarted.emit(job)
        self.accept()
        return job
