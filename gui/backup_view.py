"""Select for Backup: folder tree, file list with check boxes, preview, and the bottom bar."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import QDir, QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFileSystemModel,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from engine.home import Home
from gui.preview import PreviewPane
from gui.script_model import COL_CHECK, COL_NAME, ScriptListModel
from gui.settings import GuiSettings


class BackupView(QWidget):
    backupRequested = Signal()
    restoreRequested = Signal()

    def __init__(self, home: Home, settings: GuiSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.home = home
        self.settings = settings
        self.setAccessibleName("Select for Backup")

        # -- left: folders --
        self.roots = QComboBox()
        self.roots.setAccessibleName("Script folder")
        self.roots.setToolTip("The script folders: HOME/scripts and the ones you added")
        add = QPushButton("&Add folder…")
        add.setAccessibleName("Add folder")
        add.clicked.connect(self._ask_folder)
        self.dirs = QFileSystemModel(self)
        self.dirs.setFilter(QDir.Filter.AllDirs | QDir.Filter.NoDotAndDotDot)
        self.tree = QTreeView()
        self.tree.setModel(self.dirs)
        self.tree.setAccessibleName("All folders")
        for col in range(1, self.dirs.columnCount()):
            self.tree.hideColumn(col)
        self.tree.setHeaderHidden(True)
        self.tree.selectionModel().currentChanged.connect(self._folder_chosen)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        folders_label = QLabel("All &Folders")
        folders_label.setBuddy(self.roots)
        row = QHBoxLayout()
        row.addWidget(self.roots, 1)
        row.addWidget(add)
        ll.addWidget(folders_label)
        ll.addLayout(row)
        ll.addWidget(self.tree)

        # -- right: contents and preview --
        self.model = ScriptListModel(settings.checked_scripts, self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAccessibleName("Contents of the folder")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(COL_CHECK, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setShowGrid(False)
        self.table.setCornerButtonEnabled(False)
        self.table.setTabKeyNavigation(False)
        self.table.selectionModel().currentRowChanged.connect(self._file_chosen)
        self.contents_label = QLabel("Contents")
        self.contents_label.setBuddy(self.table)
        self.preview = PreviewPane()
        right = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.contents_label)
        tl.addWidget(self.table)
        right.addWidget(top)
        right.addWidget(self.preview)
        right.setSizes([260, 420])

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([260, 740])

        # -- bottom bar --
        self.marked = QLabel()
        self.marked.setAccessibleName("Scripts marked")
        self.backup_button = QPushButton("&Backup")
        self.backup_button.setAccessibleName("Backup")
        self.backup_button.clicked.connect(self.backupRequested)
        self.restore_button = QPushButton("&Restore")
        self.restore_button.setAccessibleName("Restore")
        self.restore_button.setEnabled(False)
        self.restore_button.setToolTip("Run the marked restore scripts (load database ... online database)")
        self.restore_button.clicked.connect(self.restoreRequested)
        bar = QHBoxLayout()
        bar.addWidget(self.marked, 1)
        bar.addWidget(self.backup_button)
        bar.addWidget(self.restore_button)

        layout = QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addLayout(bar)

        self.model.checkedChanged.connect(self._checked_changed)
        self._checked_changed(len(self.model.checked_paths()))
        self._tasks: set[asyncio.Task] = set()
        self._fill_roots()
        self.roots.currentIndexChanged.connect(self._root_chosen)

    # -- folders --
    def root_folders(self) -> list[str]:
        folders = [str(self.home.scripts)]
        for f in self.settings.script_folders:
            if f not in folders:
                folders.append(f)
        return folders

    def _fill_roots(self) -> None:
        self.roots.blockSignals(True)
        current = self.roots.currentText()
        self.roots.clear()
        self.roots.addItems(self.root_folders())
        if current:
            self.roots.setCurrentText(current)
        self.roots.blockSignals(False)

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a script folder", str(self.home.root))
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        folder = str(Path(folder).resolve())
        if folder not in self.settings.script_folders and folder != str(self.home.scripts):
            self.settings.script_folders.append(folder)
            self.settings.save(self.home)
        self._fill_roots()
        self.roots.setCurrentText(folder)

    def _root_chosen(self, _i: int) -> None:
        self.open_root(self.roots.currentText())

    def open_root(self, folder: str) -> asyncio.Task:
        if folder == str(self.home.scripts):
            self.home.scripts.mkdir(parents=True, exist_ok=True)
        parent = str(Path(folder).parent)
        self.tree.setRootIndex(self.dirs.setRootPath(parent))   # the folder shows as a node, siblings too
        ix = self.dirs.index(folder)
        self.tree.selectionModel().blockSignals(True)
        self.tree.setCurrentIndex(ix)
        self.tree.expand(ix)
        self.tree.selectionModel().blockSignals(False)
        return self.show_folder(folder)

    def _folder_chosen(self, current: QModelIndex, _prev: QModelIndex) -> None:
        if current.isValid():
            self.show_folder(self.dirs.filePath(current))

    def show_folder(self, folder: str) -> asyncio.Task:
        self.contents_label.setText(f"&Contents of {folder}")
        self.preview.clear()
        return self.model.load_soon(folder)

    async def start(self) -> None:
        """Show the first script folder (its files analysed off the UI thread)."""
        await self.open_root(self.root_folders()[0])

    async def refresh(self) -> None:
        if self.model.folder is not None:
            await self.model.load(self.model.folder)

    # -- files --
    def _file_chosen(self, current: QModelIndex, _prev: QModelIndex) -> None:
        if not current.isValid() or current.row() >= len(self.model.rows):
            return
        task = asyncio.ensure_future(self.preview_row(current.row()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def preview_row(self, row: int) -> list:
        r = self.model.rows[row]
        return await self.preview.show_file(r.path, r.analysis)

    def select_file(self, name: str) -> int:
        """Select a file of the list by name (the preview follows); its row, or -1."""
        row = self.model.row_of(name)
        if row >= 0:
            self.table.selectionModel().setCurrentIndex(
                self.model.index(row, COL_NAME),
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        return row

    def _checked_changed(self, n: int) -> None:
        self.marked.setText(f"{n} script{'s' if n != 1 else ''} marked")
        self.backup_button.setEnabled(n > 0)
        self.restore_button.setEnabled(n > 0)
        self.settings.checked_scripts = self.model.checked_paths()
        try:
            self.settings.save(self.home)
        except OSError:
            pass
