"""Select for Restore: filters, the catalog's images (a lazy, paged table), the selected
image's stripe objects and log chain, Restore… and Verify.

Slots only start tasks on the qasync loop; nothing here waits on the engine.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from datetime import time as dtime

from PySide6.QtCore import QDate, QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QCompleter,
    QDateEdit,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.jobs.status import StatusError
from gui.images_model import ImagesModel, human_bytes, human_kbytes, short_time
from gui.timeline import TimelineWidget, timeline_data

DEFAULT_DAYS = 14     # like BAR's default search: the last two weeks
TYPES = (("All types", None), ("Full (D)", "D"), ("Log (T)", "T"))


def _unix(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


CHAIN_SHOWN = 200          # log dumps listed in the details pane (the first ones and the last)
CHAIN_SCAN_PAGES = 10      # pages of later log dumps looked through for a log dump's followers


async def fetch_chain(client, image: dict, *, limit: int = CHAIN_SHOWN, page: int = 500) -> tuple[list[dict], int]:
    """The log dumps that continue an image's chain, oldest first, and how many there are in all.

    A full dump asks the daemon, which walks the chain by LSN in the catalog (a long chain comes back
    as its first ``limit - 1`` log dumps and its last one). A log dump's followers are found by their
    ``follows`` links among the later log dumps of its database, looking through at most
    ``CHAIN_SCAN_PAGES`` pages: never one unbounded query."""
    if image.get("type") == "D":
        try:
            data = await client.image_chain(image["backup_id"], limit=limit)
            return data.get("logs") or [], int(data.get("count") or 0)
        except StatusError as e:
            if e.status != 2850:
                raise
    db = image.get("database")
    since = image.get("backup_time_unix") or _unix(image.get("backup_time"))
    linked = {image.get("backup_id")}
    chain: list[dict] = []
    for k in range(CHAIN_SCAN_PAGES):
        batch = await client.images(database=db, type="T", since=since, order="oldest", limit=page,
                                    offset=k * page)
        for log_image in batch:
            if log_image.get("backup_id") not in linked and log_image.get("follows") in linked:
                linked.add(log_image.get("backup_id"))
                chain.append(log_image)
        if len(batch) < page or len(chain) >= limit:
            break
    return chain[:limit], len(chain)


async def log_chain(client, image: dict, *, limit: int = CHAIN_SHOWN) -> list[dict]:
    """The log dumps that continue an image, oldest first (``fetch_chain`` without the count)."""
    return (await fetch_chain(client, image, limit=limit))[0]


class RestoreView(QWidget):
    """The Select for Restore tab: ``RestoreView(link)``, then ``await view.start()``."""

    VERIFY_POLL_S = 0.5
    TIMELINE_IMAGES = 500     # the newest images of a database drawn on its timeline
    TIMELINE_JOBS = 500

    restoreRequested = Signal(dict)      # the selected image (the window opens the Restore dialog)
    restoreStarted = Signal(int)         # a restore job started from this view's dialog
    verifyStarted = Signal(list)         # verify job ids
    verifyEnded = Signal(str, int)       # backup id, the verify job's status
    restoreEnded = Signal(int, int, str)  # restore job id, status, the engine's message (what failed, target state)
    message = Signal(str)

    def __init__(self, link, parent: QWidget | None = None, *, page: int | None = None):
        super().__init__(parent)
        self.link = link
        self.model = ImagesModel(link, self, page=page)
        self._tasks: set[asyncio.Task] = set()
        self.details_task: asyncio.Task | None = None
        self.timeline_task: asyncio.Task | None = None
        self._timeline_db: str | None = None
        self.chain: list[dict] = []
        self.verify_jobs: list[int] = []
        self.verify_watches: dict[int, asyncio.Task] = {}
        self.restore_watches: dict[int, asyncio.Task] = {}
        self._build()
        self.model.loadingChanged.connect(self._on_loading)
        self.model.pageLoaded.connect(self._on_page)
        self.model.failed.connect(lambda m: self.status.setText(f"Could not list images: {m}"))

    # ------------------------------------------------------------ widgets
    def _build(self) -> None:
        self.setAccessibleName("Select for Restore")
        today = QDate.currentDate()
        self.date_from = QDateEdit(today.addDays(-DEFAULT_DAYS))
        self.date_from.setCalendarPopup(True)
        self.date_from.setDisplayFormat("yyyy-MM-dd")
        self.date_from.setAccessibleName("Backups from")
        self.date_to = QDateEdit(today)
        self.date_to.setCalendarPopup(True)
        self.date_to.setDisplayFormat("yyyy-MM-dd")
        self.date_to.setAccessibleName("Backups to")
        self.database = QLineEdit()
        self.database.setPlaceholderText("all databases")
        self.database.setAccessibleName("Database")
        self.type = QComboBox()
        self.type.setAccessibleName("Dump type")
        for text, value in TYPES:
            self.type.addItem(text, value)
        # Server and client: editable, offered what the catalog holds (NetBackup's source client list)
        self.server = QComboBox()
        self.server.setEditable(True)
        self.server.setAccessibleName("Server")
        self.server.setToolTip("The dataserver the images were dumped from")
        self.server.lineEdit().setPlaceholderText("all servers")
        self.client = QComboBox()
        self.client.setEditable(True)
        self.client.setAccessibleName("Client")
        self.client.setToolTip("The client (host) that ran the backups")
        self.client.lineEdit().setPlaceholderText("all clients")
        for combo in (self.server, self.client):
            combo.setMinimumContentsLength(10)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.database_names = QStringListModel(self)
        completer = QCompleter(self.database_names, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.database.setCompleter(completer)
        self.keyword = QLineEdit()
        self.keyword.setPlaceholderText("any keyword")
        self.keyword.setAccessibleName("Keyword")
        self.search_button = QPushButton("&Search")
        self.search_button.setAccessibleName("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        for line in (self.database, self.keyword, self.server.lineEdit(), self.client.lineEdit()):
            line.returnPressed.connect(self.search)
        self.server.activated.connect(lambda _i: self.search())
        self.client.activated.connect(lambda _i: self.search())

        # two rows, as BAR's search: when and what kind first, then where from
        filters = QGridLayout()
        rows = ((("From:", self.date_from), ("To:", self.date_to), ("Type:", self.type), ("Keyword:", self.keyword)),
                (("Server:", self.server), ("Client:", self.client), ("Database:", self.database)))
        for r, row in enumerate(rows):
            for c, (text, w) in enumerate(row):
                label = QLabel(text)
                label.setBuddy(w)
                filters.addWidget(label, r, 2 * c)
                filters.addWidget(w, r, 2 * c + 1)
        filters.addWidget(self.search_button, 1, 7)
        for c in (1, 3, 5, 7):
            filters.setColumnStretch(c, 1)

        self.table = QTableView()
        self.table.setAccessibleName("Backup images")
        self.table.setAccessibleDescription("Images in the catalog matching the filters, newest first")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().resizeSection(0, 150)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.table.doubleClicked.connect(lambda _ix: self.request_restore())

        self.stripes = QTreeWidget()
        self.stripes.setAccessibleName("Stripe objects")
        self.stripes.setHeaderLabels(["Stripe", "Object name", "Size", "Checksum"])
        self.stripes.setRootIsDecorated(False)
        self.chain_tree = QTreeWidget()
        self.chain_tree.setAccessibleName("Log chain")
        self.chain_tree.setHeaderLabels(["Backup time", "Type", "Size", "Backup ID"])
        self.chain_tree.setRootIsDecorated(False)
        self.details_label = QLabel("Select an image to see its stripe objects and log chain.")
        self.details_label.setWordWrap(True)
        self.details_label.setAccessibleName("Image details")
        stripes_box = QGroupBox("Stripe objects")
        QVBoxLayout(stripes_box).addWidget(self.stripes)
        chain_box = QGroupBox("Log chain")
        QVBoxLayout(chain_box).addWidget(self.chain_tree)
        details = QWidget()
        dl = QVBoxLayout(details)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.details_label)
        row = QHBoxLayout()
        row.addWidget(stripes_box, 3)
        row.addWidget(chain_box, 2)
        dl.addLayout(row)
        self.timeline = TimelineWidget()
        timeline_box = QGroupBox("Timeline of the database (restorable spans green, gaps orange)")
        QVBoxLayout(timeline_box).addWidget(self.timeline)
        dl.addWidget(timeline_box)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(details)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        self.restore_button = QPushButton("&Restore…")
        self.restore_button.setAccessibleName("Restore")
        self.restore_button.setToolTip("Restore the selected image (preview the plan first)")
        self.restore_button.setEnabled(False)
        self.restore_button.clicked.connect(self.request_restore)
        self.verify_button = QPushButton("&Verify")
        self.verify_button.setAccessibleName("Verify")
        self.verify_button.setToolTip("Verify the selected images (reads every stripe, checks its checksum)")
        self.verify_button.setEnabled(False)
        self.verify_button.clicked.connect(lambda: self.spawn(self.verify_selected()))
        self.status = QLabel("")
        self.status.setAccessibleName("Select for Restore status")
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.verify_button)
        buttons.addWidget(self.restore_button)

        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(buttons)

    # ------------------------------------------------------------ running
    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            e = task.exception()
            self.status.setText(str(e) if isinstance(e, StatusError) else f"{type(e).__name__}: {e}")

    async def start(self) -> None:
        """The first search (the last two weeks); returns once the first page has arrived."""
        self.search()
        await asyncio.gather(self.model.wait_idle(), self.load_choices())

    async def load_choices(self) -> None:
        """Offer the catalog's servers, clients and databases in the filters (typing stays allowed)."""
        try:
            facets = await self.link.client.facets()
        except StatusError:
            return          # the filters still take typed names
        for combo, values in ((self.server, facets.get("dataservers") or []),
                              (self.client, facets.get("clients") or [])):
            text = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem("")           # all
            combo.addItems(values)
            combo.setCurrentText(text)
            combo.blockSignals(False)
        self.database_names.setStringList(facets.get("databases") or [])

    async def aclose(self) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def current_filters(self) -> dict:
        since = datetime.combine(self.date_from.date().toPython(), dtime.min).timestamp()
        until = datetime.combine(self.date_to.date().toPython(), dtime.max).timestamp()
        return {"since": since, "until": until, "database": self.database.text().strip() or None,
                "type": self.type.currentData(), "keyword": self.keyword.text().strip() or None,
                "dataserver": self.server.currentText().strip() or None,
                "client": self.client.currentText().strip() or None}

    def search(self) -> None:
        self._clear_details()
        self.status.setText("Searching …")
        self.model.set_filters(**self.current_filters())

    def _on_loading(self, loading: bool) -> None:
        if loading:
            self.status.setText("Loading images …")

    def _on_page(self, total: int) -> None:
        self.status.setText(f"{total:,} image{'s' if total != 1 else ''} match")

    # ------------------------------------------------------------ selection, details
    def selected_images(self) -> list[dict]:
        rows = sorted({ix.row() for ix in self.table.selectionModel().selectedRows()})
        return [img for img in map(self.model.image, rows) if img is not None]   # not painted yet: not chosen

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)

    def _on_selection(self, *_a) -> None:
        images = self.selected_images()
        self.verify_button.setEnabled(bool(images))
        self.restore_button.setEnabled(len(images) == 1)
        if len(images) == 1:
            self.show_details(images[0])
        elif not images:
            self._clear_details()
        else:
            self.details_label.setText(f"{len(images)} images selected.")

    def _clear_details(self) -> None:
        self.stripes.clear()
        self.chain_tree.clear()
        self.chain = []
        self.details_label.setText("Select an image to see its stripe objects and log chain.")

    def show_details(self, image: dict) -> asyncio.Task:
        self.stripes.clear()
        for s in image.get("stripes") or []:
            item = QTreeWidgetItem([str(s.get("stripe", "")), s.get("name") or "", human_bytes(s.get("bytes")),
                                    s.get("checksum") or ""])
            item.setToolTip(1, s.get("name") or "")
            item.setToolTip(3, s.get("checksum") or "")
            self.stripes.addTopLevelItem(item)
        for c in range(4):
            self.stripes.resizeColumnToContents(c)
        kind = "full dump" if image.get("type") == "D" else "log dump" if image.get("type") == "T" else "image"
        self.details_label.setText(
            f"{image.get('database')}: {kind} {image.get('backup_id')} of {short_time(image.get('backup_time'))}, "
            f"{len(image.get('stripes') or [])} stripe objects, {human_kbytes(image.get('kbytes'))}; "
            f"client {image.get('client', '?')}, dataserver {image.get('dataserver', '?')}.")
        if self.details_task is not None and not self.details_task.done():
            self.details_task.cancel()
        self.details_task = self.spawn(self._load_chain(image))
        db = image.get("database")
        if db and db != self._timeline_db:
            self.show_timeline(db)
        return self.details_task

    def show_timeline(self, database: str) -> asyncio.Task:
        self._timeline_db = database
        if self.timeline_task is not None and not self.timeline_task.done():
            self.timeline_task.cancel()
        self.timeline_task = self.spawn(self._load_timeline(database))
        return self.timeline_task

    async def _load_timeline(self, database: str) -> None:
        client = self.link.client
        images = await client.images(database=database, limit=self.TIMELINE_IMAGES)
        try:
            spans = await client.spans(database)
        except StatusError:
            spans = []       # an older daemon without the spans endpoint
        jobs = await client.jobs(limit=self.TIMELINE_JOBS)
        if database == self._timeline_db:
            self.timeline.set_data(timeline_data(database, images, spans, jobs))

    async def _load_chain(self, image: dict) -> None:
        self.chain_tree.clear()
        head = QTreeWidgetItem([short_time(image.get("backup_time")), image.get("type") or "",
                                human_kbytes(image.get("kbytes")), image.get("backup_id") or ""])
        self.chain_tree.addTopLevelItem(head)
        chain, count = await fetch_chain(self.link.client, image)
        if self.selected_images()[:1] != [image]:
            return       # the selection moved on
        self.chain = chain
        for n, log_image in enumerate(chain):
            if count > len(chain) and n == len(chain) - 1:
                more = QTreeWidgetItem(["…", "", "", f"{count - len(chain):,} more log dumps, then the last:"])
                more.setFlags(Qt.ItemFlag.NoItemFlags)
                self.chain_tree.addTopLevelItem(more)
            self.chain_tree.addTopLevelItem(QTreeWidgetItem([
                short_time(log_image.get("backup_time")), log_image.get("type") or "",
                human_kbytes(log_image.get("kbytes")), log_image.get("backup_id") or ""]))
        if not chain:
            note = QTreeWidgetItem(["", "", "", "no log dumps follow this image"])
            note.setFlags(Qt.ItemFlag.NoItemFlags)
            self.chain_tree.addTopLevelItem(note)
        for c in range(4):
            self.chain_tree.resizeColumnToContents(c)

    # ------------------------------------------------------------ actions
    def request_restore(self) -> None:
        images = self.selected_images()
        if len(images) != 1:
            return
        self.restoreRequested.emit(images[0])

    def make_restore_dialog(self, image: dict | None = None):
        """The Restore dialog for an image (the selected one by default), a child of this view."""
        from gui.restore_dialog import RestoreDialog

        image = image or self.selected_images()[0]
        chain = self.chain if self.selected_images()[:1] == [image] else None
        dlg = RestoreDialog(self.link, image, chain=chain, parent=self)
        dlg.restoreStarted.connect(self.restoreStarted)
        dlg.restoreStarted.connect(lambda job: self.watch_restore(job, dlg.target()))
        return dlg

    def watch_restore(self, job_id: int, target: str) -> asyncio.Task:
        """Follow a restore job to its end and say how it ended (``restoreEnded``)."""
        task = self.spawn(self._watch_restore(job_id, target))
        self.restore_watches[job_id] = task
        return task

    async def _watch_restore(self, job_id: int, target: str) -> dict:
        self.status.setText(f"Restore job {job_id} into {target} started.")
        while True:
            job = await self.link.client.job(job_id)
            if job.get("state") == "done":
                break
            await asyncio.sleep(self.VERIFY_POLL_S)
        status = int(job.get("status") or 0)
        message = job.get("message") or ""
        if status == 0:
            self.status.setText(f"Restore job {job_id} into {target} done: {message or 'status 0'}.")
        else:
            self.status.setText(f"Restore job {job_id} into {target} FAILED (status {status}): {message}")
        self.restoreEnded.emit(job_id, status, message)
        return job

    async def verify_selected(self) -> list[int]:
        """One verify job per selected image."""
        images = self.selected_images()
        if not images:
            return []
        jobs = []
        for image in images:
            try:
                job = await self.link.client.verify(image["backup_id"])
                jobs.append(job)
                self.verify_watches[job] = self.spawn(self._watch_verify(job, image["backup_id"]))
            except StatusError as e:
                self.status.setText(f"Verify of {image['backup_id']} not started (status {e.status}): {e}")
                break
        else:
            self.status.setText(f"Started verify job{'s' if len(jobs) != 1 else ''} {', '.join(map(str, jobs))}.")
        self.verify_jobs.extend(jobs)
        if jobs:
            self.verifyStarted.emit(jobs)
        return jobs

    async def _watch_verify(self, job_id: int, backup_id: str) -> dict:
        """Until the verify job ends; then the image's row shows its new verify status."""
        while True:
            job = await self.link.client.job(job_id)
            if job.get("state") == "done":
                break
            await asyncio.sleep(self.VERIFY_POLL_S)
        image = await self.reload_image(backup_id)
        status = int(job.get("status") or 0)
        if status == 0:
            self.status.setText(f"Verify of {backup_id}: good.")
        else:
            self.status.setText(f"Verify of {backup_id} failed (status {status}): {job.get('message') or ''}")
        self.verifyEnded.emit(backup_id, status)
        return image

    async def reload_image(self, backup_id: str) -> dict:
        """Re-read one image (after its verify) and show its new verify status."""
        image = await self.link.client.image(backup_id)
        self.model.update_image(image)
        return image
