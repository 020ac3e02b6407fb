"""`sybar gui --home DIR --screenshot OUT.png [--view backup|restore|progress]`.

Builds the real window, connects to the home's daemon, shows the view, lets
the loop settle until the data is in, and saves ``window.grab()`` to OUT.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gui.main_window import VIEWS, MainWindow


async def settle(seconds: float) -> None:
    """Run the loop for ``seconds`` (events, repaints, late data). Never processEvents() by hand:
    on a qasync loop that re-enters running tasks."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def take(window: MainWindow, out: str | Path, view: str = "backup", *, settle_s: float = 1.5,
               select: str | None = None, dialog: str | None = None) -> Path:
    """Show ``view`` of a started window and save it as a PNG; returns the path.
    ``dialog="restore"``: the Restore dialog of the newest full dump with its plan previewed instead."""
    if view not in VIEWS:
        raise ValueError(f"--view must be one of {', '.join(VIEWS)}")
    window.show()
    window.show_view(view)
    if view == "backup":
        bv = window.backup_view
        if bv.model.folder is None:
            await bv.start()
        name = select
        if name is None:   # preview the first Sybase script, so the picture shows a script and its SQL
            name = next((r.path.name for r in bv.model.rows if r.kind == "script"), None)
        if name is not None and bv.select_file(name) >= 0:
            await bv.preview_row(bv.model.row_of(name))
    if view == "restore" and hasattr(window.restore_view, "model"):
        # select the newest full dump, so the picture shows its stripes and its chain
        await settle(settle_s / 2)
        rv = window.restore_view
        if rv.model.rowCount() and hasattr(rv, "table"):
            rows = range(min(rv.model.rowCount(), rv.model.page))
            rv.table.selectRow(next((r for r in rows if (rv.model.image(r) or {}).get("type") == "D"), 0))
        if dialog == "restore":
            return await _restore_dialog(window, out, settle_s)
    if view == "progress" and hasattr(window.progress_view, "model"):
        # show the newest running job (else the newest job): its log and its throughput chart
        await settle(settle_s / 2)
        pv = window.progress_view
        rows = [pv.model.job(j) for j in pv.model.job_ids()]
        top = [r for r in rows if r is not None and r.parent_id is None]
        pick = max((r for r in top if r.active), default=None, key=lambda r: r.job_id) or \
            max(top, default=None, key=lambda r: r.job_id)
        if pick is not None:
            pv.select_job(pick.job_id)
    await settle(settle_s)
    return _save(window, out)


def _save(widget, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not widget.grab().save(str(out), "PNG"):
        raise OSError(f"could not write {out}")
    return out


async def _restore_dialog(window: MainWindow, out: str | Path, settle_s: float) -> Path:
    """The Restore dialog of the newest full dump: a new target database, the latest point in time
    the chain reaches, and the previewed plan."""
    rv = window.restore_view
    await rv.model.wait_idle()
    rows = range(min(rv.model.rowCount(), rv.model.page))
    full = next((r for r in rows if (rv.model.image(r) or {}).get("type") == "D"), None)
    if full is None:
        raise RuntimeError("no full dump in Select for Restore to open the Restore dialog for")
    rv.table.selectRow(full)
    if rv.details_task is not None:
        await asyncio.gather(rv.details_task, return_exceptions=True)
    dlg = rv.make_restore_dialog()
    await dlg.load()
    dlg.resize(900, 620)
    dlg.show()
    dlg.database.setText(f"{dlg.image.get('database')}_copy")     # restore beside it, as a DBA would check first
    if dlg.use_time.isEnabled():
        dlg.use_time.setChecked(True)
    await dlg.preview_plan()
    await settle(settle_s)
    try:
        return _save(dlg, out)
    finally:
        dlg.close()
