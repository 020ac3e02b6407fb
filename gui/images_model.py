"""The catalog's images as a lazy table: pages of ``client.images(..., limit, offset)``.

The model counts the matching images and has that many rows; a row's page is fetched (a task on
the qasync loop) when the view paints it. Nothing ever loads the whole catalog: only the pages
painted lately are held.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
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
    """Images matching the filters, newest first: a window onto the catalog.

    The model counts the matches first and has that many rows at once, so the scroll bar is true and
    the end is one drag away; a row's page (``page`` images) is fetched when the view first paints it,
    and at most ``max_pages`` pages are held (least recently used go first). Pages past the middle are
    asked for oldest-first, so the daemon never skips more than half the matches to reach one.
    """

    PAGE = 200
    MAX_PAGES = 40          # 8,000 rows held at most, whatever the catalog's size

    loadingChanged = Signal(bool)   # pages are on their way / all arrived
    pageLoaded = Signal(int)        # a page arrived; the number of matching images
    failed = Signal(str)            # why the catalog could not be listed

    def __init__(self, link, parent: QObject | None = None, *, page: int | None = None,
                 max_pages: int | None = None):
        super().__init__(parent)
        self.link = link
        self.page = page or self.PAGE
        self.max_pages = max(2, max_pages or self.MAX_PAGES)
        self._filters: dict = {}
        self._total: int | None = None            # matching images, once counted
        self._pages: OrderedDict[int, list[dict]] = OrderedDict()   # page number -> its images
        self._wanted: dict[int, None] = {}        # pages painted but not held, most recent last
        self._task: asyncio.Task | None = None
        self._generation = 0
        self.pages_fetched = 0

    # ------------------------------------------------------------ filters
    def set_filters(self, **filters) -> None:
        """New filters (database, type, keyword, since, until, client, dataserver as ``client.images``
        takes them; None or '' drops one): count the matches and fetch the first page."""
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
        self._total = None
        self._pages.clear()
        self._wanted.clear()
        self.endResetModel()
        self._want(0)

    async def wait_idle(self) -> None:
        """Until every page asked for (if any) has arrived."""
        while self._task is not None and not self._task.done():
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def loading(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def total(self) -> int | None:
        """How many images match the filters (None until counted)."""
        return self._total

    @property
    def held_rows(self) -> int:
        return sum(len(p) for p in self._pages.values())

    @property
    def exhausted(self) -> bool:
        """Every matching image is held (small catalogs, or after ``fetch_all``)."""
        return self._total is not None and self.held_rows >= self._total

    # ------------------------------------------------------------ fetching pages
    def canFetchMore(self, parent: QModelIndex = QModelIndex()) -> bool:  # noqa: B008
        return False        # every row exists from the count on; pages come as rows are painted

    def _want(self, page: int) -> None:
        self._wanted.pop(page, None)
        self._wanted[page] = None
        while len(self._wanted) > self.max_pages:       # scrolled past long ago: not worth fetching
            del self._wanted[next(iter(self._wanted))]
        if self._task is None or self._task.done():
            if not getattr(self.link, "is_connected", True):
                return
            self._task = asyncio.ensure_future(self._fetch_wanted(self._generation))
            self.loadingChanged.emit(True)

    async def _fetch_wanted(self, generation: int) -> None:
        client = self.link.client
        try:
            if self._total is None:
                total, first = await asyncio.gather(client.count_images(**self._filters),
                                                    client.images(**self._filters, limit=self.page, offset=0))
                if generation != self._generation:
                    return
                self._wanted.pop(0, None)
                self._set_total(int(total))
                self._store(0, first)
            while self._wanted and generation == self._generation:
                page = self._wanted.popitem()[0]           # the most recently painted first
                if page in self._pages or page * self.page >= (self._total or 0):
                    continue
                rows = await self._fetch_page(client, page)
                if generation != self._generation:
                    return
                self._store(page, rows)
        except StatusError as e:
            if generation == self._generation:
                self._wanted.clear()
                self.failed.emit(str(e))
        finally:
            if generation == self._generation:
                self.loadingChanged.emit(False)

    async def _fetch_page(self, client, page: int) -> list[dict]:
        start = page * self.page
        end = min(self._total or 0, start + self.page)
        if start > (self._total or 0) // 2:                # nearer the oldest end: count from there
            rows = await client.images(**self._filters, order="oldest", limit=end - start,
                                       offset=(self._total or 0) - end)
            return rows[::-1]
        return await client.images(**self._filters, limit=end - start, offset=start)

    def _set_total(self, total: int) -> None:
        if total > 0:
            self.beginInsertRows(QModelIndex(), 0, total - 1)
            self._total = total
            self.endInsertRows()
        else:
            self._total = 0

    def _store(self, page: int, rows: list[dict]) -> None:
        self.pages_fetched += 1
        self._pages[page] = rows
        self._pages.move_to_end(page)
        while len(self._pages) > self.max_pages:
            self._pages.popitem(last=False)
        if rows:
            first = page * self.page
            last = min(first + len(rows), self._total or 0) - 1
            if last >= first:
                self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))
        self.pageLoaded.emit(self._total or 0)

    async def fetch_all(self) -> None:
        """Fetch every page (tests and small catalogs; a big catalog keeps only ``max_pages``)."""
        await self.wait_idle()
        for page in range(((self._total or 0) + self.page - 1) // self.page):
            if page not in self._pages:
                self._want(page)
                await self.wait_idle()

    # ------------------------------------------------------------ table
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else (self._total or 0)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def image(self, row: int) -> dict | None:
        """The image on a row, or None while its page is not held."""
        rows = self._pages.get(row // self.page)
        k = row % self.page
        return rows[k] if rows is not None and k < len(rows) else None

    def images(self) -> list[dict]:
        """The held images in row order (all of them after ``fetch_all`` on a small catalog)."""
        return [img for p in sorted(self._pages) for img in self._pages[p]]

    def row_of(self, backup_id: str) -> int:
        for p, rows in self._pages.items():
            for k, r in enumerate(rows):
                if r.get("backup_id") == backup_id:
                    return p * self.page + k
        return -1

    def update_image(self, image: dict) -> None:
        """Replace one held image (after a verify) and repaint its row."""
        row = self.row_of(image.get("backup_id"))
        if row >= 0:
            self._pages[row // self.page][row % self.page] = image
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= (self._total or 0):
            return None
        col = index.column()
        page = index.row() // self.page
        rows = self._pages.get(page)
        if rows is None:
            if role == Qt.ItemDataRole.DisplayRole:
                self._want(page)
                return "loading …" if col == COL_TIME else ""
            return None
        if col == COL_TIME and role == Qt.ItemDataRole.DisplayRole:
            self._pages.move_to_end(page)           # painted: keep it longest
        k = index.row() % self.page
        if k >= len(rows):
            return None
        img = rows[k]
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
