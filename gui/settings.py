"""The window's own settings, in HOME/gui.json (0600), and the Settings dialog.

Kept in the home rather than QSettings so that each home (and each test) has
its own: checked scripts, extra script folders, default policy and schedule,
and the stripe count for generated scripts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.home import Home, make_private_dir, write_private_file

SETTINGS_FILE = "gui.json"


@dataclass
class GuiSettings:
    checked_scripts: list[str] = field(default_factory=list)
    script_folders: list[str] = field(default_factory=list)   # added to HOME/scripts
    default_policy: str = ""
    default_schedule: str = ""
    stripes_default: int = 4

    @staticmethod
    def path(home: Home) -> Path:
        return Path(home.root) / SETTINGS_FILE

    @classmethod
    def load(cls, home: Home) -> GuiSettings:
        try:
            data = json.loads(cls.path(home).read_text())
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        out = cls(**{k: v for k, v in data.items() if k in known} if isinstance(data, dict) else {})
        out.checked_scripts = [str(p) for p in out.checked_scripts if isinstance(p, str)]
        out.script_folders = [str(p) for p in out.script_folders if isinstance(p, str)]
        try:
            out.stripes_default = max(1, min(32, int(out.stripes_default)))
        except (TypeError, ValueError):
            out.stripes_default = 4
        return out

    def save(self, home: Home) -> None:
        make_private_dir(Path(home.root))
        write_private_file(self.path(home), json.dumps(asdict(self), indent=2) + "\n")


class SettingsDialog(QDialog):
    """File → Settings…: home, script folders, defaults for backups and generated scripts."""

    def __init__(self, home: Home, settings: GuiSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.home = home
        self.settings = settings
        form = QFormLayout()

        self.home_edit = QLineEdit(str(home.root))
        self.home_edit.setReadOnly(True)
        self.home_edit.setAccessibleName("Home folder")
        self.home_edit.setToolTip("To use another home, start `sybar gui --home DIR` (or set SYBAR_HOME).")
        form.addRow("&Home folder:", self.home_edit)

        self.folders = QListWidget()
        self.folders.setAccessibleName("Script folders")
        self.folders.addItems(settings.script_folders)
        add = QPushButton("&Add folder…")
        add.setAccessibleName("Add script folder")
        add.clicked.connect(self._add_folder)
        remove = QPushButton("&Remove")
        remove.setAccessibleName("Remove script folder")
        remove.clicked.connect(lambda: [self.folders.takeItem(self.folders.row(i))
                                        for i in self.folders.selectedItems()])
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        box = QVBoxLayout()
        box.addWidget(QLabel(f"Always shown: {home.scripts}"))
        box.addWidget(self.folders)
        box.addLayout(row)
        form.addRow("Script &folders:", box)

        self.policy = QLineEdit(settings.default_policy)
        self.policy.setAccessibleName("Default policy")
        self.policy.setPlaceholderText("the daemon's default")
        form.addRow("Default &policy:", self.policy)
        self.schedule = QLineEdit(settings.default_schedule)
        self.schedule.setAccessibleName("Default schedule")
        self.schedule.setPlaceholderText("the policy's Application Backup schedule")
        form.addRow("Default &schedule:", self.schedule)
        self.stripes = QSpinBox()
        self.stripes.setRange(1, 32)
        self.stripes.setValue(settings.stripes_default)
        self.stripes.setAccessibleName("Stripe count for generated scripts")
        form.addRow("S&tripes in generated scripts:", self.stripes)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a script folder", str(self.home.root))
        if folder:
            self.folders.addItem(folder)

    def apply(self) -> GuiSettings:
        """The settings as edited, saved to HOME/gui.json."""
        s = self.settings
        s.script_folders = [self.folders.item(i).text() for i in range(self.folders.count())]
        s.default_policy = self.policy.text().strip()
        s.default_schedule = self.schedule.text().strip()
        s.stripes_default = self.stripes.value()
        s.save(self.home)
        return s

    def accept(self) -> None:
        self.apply()
        super().accept()
