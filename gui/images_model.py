"""The catalog's images as a lazy table: pages of ``client.images(..., limit, offset)``.

Qt asks ``canFetchMore``/``fetchMore`` as the view scrolls near the end; each fetch
runs as a task on the qasync loop and the rows are inserted when the page arrives.
Nothing ever loads the whole catalog: only the pages scrolled to are held.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal

from engine.jobs.status import StatusError

log = logging.getLogger(__name__)

COLUMNS = ("Backup time", "Database", "Type", "Stripes", "Size", "Compression", "Policy", "Schedule",
           "Expires", "Keyword", "Last verify")
(COL_TIME, COL_DATABASE, COL_TYPE, COL_STRIPES, COL_SIZE, COL_COMPRESSION, COL_POLICY, COL_SCHEDULE,
 COL_EXPIRES, COL_KEYWORD, COL_VERIFY) = range(len(COLUMNS))

ImageRole = Qt.ItemDataRole.UserRole + 1      # the image's dict
BackupIdRole = Qt.ItemDataRole.UserRole + 2

TYPE_NAMES = {"D": "Full", "T": "Log", "I": "Incremental"}


def short_time(iso: str | None) -> str:
    """An ISO local time as ``YYYY-MM-DD hh:mm:ss`` (no offset), '' for none."""
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(iso)


def human_kbytes(kb: int | None) -> str:
    if kb is None:
        return ""
    size = float(kb)
    for unit in ("KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "KB" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{kb} KB"


def human_bytes(n: int | None) -> str:
    if n is None:
        return ""
    return human_kbytes(None if n is None else max(0, n) / 1024) if n >= 1024 else f"{n} B"


def verify_text(img: dict) -> str:
    """The last verify as the table shows it: not verified / good / failed (status N)."""
    status = img.get("verify_status")
    if status is None:
        return "not verified"
    when = short_time(img.get("verified_at"))
    if int(status) == 0:
        return f"good ({when})" if when else "good"
    return f"failed, status {status}" + (f" ({when})" if when else "")


class ImagesModel(QAbstractTableModel):
    """Images matching the filters, newest first, fetched a page at a time."""

    PAGE = 200

    loadingChanged = Signal(bool)   # a page is on its way
    pageLoaded = Signal(int)        # rows now held
    failed = Signal(str)            # why a page could not be fetched

    def __init__(self, link, parent: QObject | None = None, *, page: int | None = None):
        super().__init__(parent)
        self.link = link
        self.page = page or self.PAGE
        self._rows: list[dict] = []
        self._filters: dict = {}
        self._exhausted = True      # nothing to fetch until set_filters / refresh
        self._task: asyncio.Task | None = None
        self._generation = 0
        self.pages_fetched = 0

    # ------------------------------------------------------------ filters
    def set_filters(self, **filters) -> None:
        """New filters (database, type, keyword, since, until, client ... as ``client.images`` takes
        them; None or '' drops one): reset and fetch the first page."""
        self._filters = {k: v for k, v in filters.items() if v not in (None, "")}
        self.refresh()

    @property
    def filters(self) -> dict:
        return dict(self._filters)

    def refresh(self) -> None:
        self._generation += 1
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        self.beginResetModel()
        self._rows = []
        self._exhausted = False
        self.endResetModel()
        self.fetchMore(QModelIndex())

    async def wait_idle(self) -> None:
        """Until the page on its way (if any) has arrived."""
        while self._task is not None and not self._task.done():
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def loading(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    # ------------------------------------------------------------ lazy fetching
    def canFetchMore(self, parent: QModelIndex = QModelIndex()) -> bool:  # noqa: B008
        if parent.isValid():
            return False
        return not self._exhausted and not self.loading

    def fetchMore(self, parent: QModelIndex = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid() or self._exhausted or self.loading:
            return
        if not getattr(self.link, "is_connected", True):
            return
        self._task = asyncio.ensure_future(self._fetch(self._generation, len(self._rows)))
        self.loadingChanged.emit(True)

    async def _fetch(self, generation: int, offset: int) -> None:
        try:
            page = await self.link.client.images(**self._filters, limit=self.page, offset=offset)
        except StatusError as e:
            if generation == self._generation:
                self._exhausted = True
                self.failed.emit(str(e))
                self.loadingChanged.emit(False)
            return
        except asyncio.CancelledError:
            raise
        if generation != self._generation:
            return
        self.pages_fetched += 1
        if len(page) < self.page:
            self._exhausted = True
        if page:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
            self._rows.extend(page)
            self.endInsertRows()
        self.loadingChanged.emit(False)
        self.pageLoaded.emit(len(self._rows))

    async def fetch_all(self) -> None:
        """Fetch pages until the end (tests and small catalogs)."""
        await self.wait_idle()
        while not self._exhausted:
            self.fetchMore(QModelIndex())
            await self.wait_idle()

    # ------------------------------------------------------------ table
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def image(self, row: int) -> dict:
        return self._rows[row]

    def images(self) -> list[dict]:
        return list(self._rows)

    def row_of(self, backup_id: str) -> int:
        for i, r in enumerate(self._rows):
            if r.get("backup_id") == backup_id:
                return i
        return -1

    def update_image(self, image: dict) -> None:
        """Replace one held image (after a verify) and repaint its row."""
        row = self.row_of(image.get("backup_id"))
        if row >= 0:
            self._rows[row] = image
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        img = self._rows[index.row()]
        col = index.column()
        if role == ImageRole:
            return img
        if role == BackupIdRole:
            return img.get("backup_id")
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(img, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == COL_TIME:
                return img.get("backup_id")
            if col == COL_VERIFY and img.get("verified_at"):
                return f"verified {short_time(img.get('verified_at'))}"
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_STRIPES, COL_SIZE, COL_COMPRESSION):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _display(img: dict, col: int) -> str:
        if col == COL_TIME:
            return short_time(img.get("backup_time"))
        if col == COL_DATABASE:
            return img.get("database") or ""
        if col == COL_TYPE:
            t = img.get("type") or ""
            return f"{TYPE_NAMES.get(t, t)} ({t})" if t else ""
        if col == COL_STRIPES:
            n = img.get("stripe_count")
            return str(n if n is not None else len(img.get("stripes") or []))
        if col == COL_SIZE:
            return human_kbytes(img.get("kbytes"))
        if col == COL_COMPRESSION:
            c = img.get("compression")
            return "none" if not c else str(c)
        if col == COL_POLICY:
            return img.get("policy") or ""
        if col == COL_SCHEDULE:
            return img.get("schedule") or ""
        if col == COL_EXPIRES:
            return short_time(img.get("expiration")) or "never"
        if col == COL_KEYWORD:
            return img.get("keyword") or ""
        if col == COL_VERIFY:
            return verify_text(img)
        return ""
