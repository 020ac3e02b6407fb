"""Actions → Backup…: master server, client, policy, schedule, keyword; one job per script."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QVBoxLayout,
    QWidget,
)

from engine.config import load_config
from engine.jobs.status import StatusError
from gui.engine_link import EngineLink


def policies_of(home) -> tuple[dict[str, list[str]], dict]:
    """{policy: [its Application Backup schedules]} and the config's defaults (read, never written)."""
    cfg = load_config(home, write_user_config=False)
    out = {}
    for name, pol in cfg.policies.items():
        out[name] = [s.name for s in pol.schedules.values() if s.accepts_user_backups]
    return out, {"master_server": cfg.master_server, "client": cfg.client, "policy": cfg.default_policy,
                 "schedule": cfg.default_schedule}


class BackupDialog(QDialog):
    """Start a user-directed backup of the marked scripts."""

    jobsStarted = Signal(list)      # the job ids, one per script

    def __init__(self, link: EngineLink, scripts: list[str], *, default_policy: str = "",
                 default_schedule: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.link = link
        self.scripts = list(scripts)
        self.jobs: list[int] = []
        self.started: asyncio.Future | None = None
        self._default_policy = default_policy
        self._default_schedule = default_schedule
        self._schedules: dict[str, list[str]] = {}
        self.setWindowTitle("Backup")
        self.setAccessibleName("Backup")
        st = link.status

        self.list = QListWidget()
        self.list.setAccessibleName("Scripts to back up")
        self.list.addItems(self.scripts)
        self.master = QLineEdit(st.get("master_server", ""))
        self.master.setAccessibleName("Master server")
        self.master.setReadOnly(True)
        self.master.setToolTip("The daemon's master server (sybar.toml: master_server)")
        self.client = QLineEdit(st.get("client", ""))
        self.client.setAccessibleName("Client")
        self.client.setReadOnly(True)
        self.client.setToolTip("This client's name (sybar.toml: client)")
        self.policy = QComboBox()
        self.policy.setAccessibleName("Policy")
        self.policy.setEditable(False)
        self.schedule = QComboBox()
        self.schedule.setAccessibleName("Schedule")
        self.keyword = QLineEdit()
        self.keyword.setAccessibleName("Keyword")
        self.keyword.setPlaceholderText("optional, to find the images later")
        self.show_progress = QCheckBox("Show &Task Progress")
        self.show_progress.setChecked(True)
        self.show_progress.setAccessibleName("Show Task Progress")
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setAccessibleName("Backup error")

        form = QFormLayout()
        form.addRow(f"{len(self.scripts)} script{'s' if len(self.scripts) != 1 else ''}:", self.list)
        for text, w in (("&Master server:", self.master), ("&Client:", self.client), ("&Policy:", self.policy),
                        ("&Schedule:", self.schedule), ("&Keyword:", self.keyword)):
            form.addRow(text, w)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.start_button = self.buttons.addButton("Start &Backup", QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.setAccessibleName("Start Backup")
        self.start_button.setDefault(True)
        self.start_button.setEnabled(bool(self.scripts))
        self.buttons.rejected.connect(self.reject)
        self.start_button.clicked.connect(self._start_clicked)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.show_progress)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.policy.currentTextChanged.connect(self._fill_schedules)

    async def load(self) -> None:
        """Fill policies and schedules from the home's config (read off the UI thread)."""
        try:
            self._schedules, defaults = await self.link.run_blocking(policies_of, self.link.home)
        except StatusError as e:
            self.error.setText(str(e))
            self._schedules, defaults = {}, {}
        st = self.link.status
        if not self.master.text():
            self.master.setText(defaults.get("master_server", ""))
        if not self.client.text():
            self.client.setText(defaults.get("client", ""))
        self.policy.blockSignals(True)
        self.policy.clear()
        self.policy.addItems(list(self._schedules))
        self.policy.blockSignals(False)
        policy = self._default_policy or st.get("default_policy") or defaults.get("policy", "")
        if policy and self.policy.findText(policy) < 0:
            self.policy.addItem(policy)
        self.policy.setCurrentText(policy)
        self._fill_schedules(self.policy.currentText())
        sched = self._default_schedule or st.get("default_schedule") or defaults.get("schedule", "")
        if sched and self.schedule.findText(sched) >= 0:
            self.schedule.setCurrentText(sched)

    def _fill_schedules(self, policy: str) -> None:
        current = self.schedule.currentText()
        self.schedule.clear()
        self.schedule.addItems(self._schedules.get(policy, []))
        if current and self.schedule.findText(current) >= 0:
            self.schedule.setCurrentText(current)

    def _start_clicked(self) -> None:
        self.started = asyncio.ensure_future(self.start_backup())

    async def start_backup(self) -> list[int]:
        """Start one job per script; on success the dialog closes and ``jobsStarted`` fires."""
        self.start_button.setEnabled(False)
        self.error.setText("Starting …")
        try:
            jobs = await self.link.client.backup([str(Path(s)) for s in self.scripts],
                                                 policy=self.policy.currentText() or None,
                                                 schedule=self.schedule.currentText() or None,
                                                 keyword=self.keyword.text().strip() or None)
        except StatusError as e:
            self.error.setText(f"Backup not started (status {e.status}): {e}")
            self.start_button.setEnabled(True)
            return []
        self.jobs = list(jobs)
        self.error.setText(f"Started job{'s' if len(jobs) != 1 else ''} {', '.join(map(str, jobs))}.")
        self.jobsStarted.emit(self.jobs)
        self.accept()
        return self.jobs
