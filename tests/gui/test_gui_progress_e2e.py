"""Task Progress against a real `sybar serve`: a backup watched to 100 % on every stripe,
and a backup cancelled with the view's Cancel button (status 150)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from progress_fixtures import (  # noqa: E402
    Link,
    backup_script_for,
    close_loop,
    control_client,
    new_loop,
    wait_for,
)
from PySide6.QtCore import Qt  # noqa: E402
from sybar_testkit import served_home  # noqa: E402

from gui.jobs_model import COL_STATUS, ProgressRole  # noqa: E402
from gui.progress_view import ProgressView  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory, sa_in_keyring):
    with served_home(tmp_path_factory.mktemp("progresshome"), {"mydb": 16}) as s:
        yield s


@pytest.fixture
def loop(qapp):
    lp = new_loop(qapp)
    yield lp
    close_loop(lp)


def test_backup_reaches_100_percent_on_every_stripe(served, loop, qtbot):
    client = control_client(served.home)
    view = ProgressView(Link(client))
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()

    async def scenario():
        try:
            await view.start()
            assert view.connected
            [parent] = await client.backup([str(served.home / "scripts" / "sybase_mydb_backup")])
            await wait_for(lambda: view.model.job(parent) is not None, 30, "the job to show up")
            view.select_job(parent)
            await wait_for(lambda: not view.model.job(parent).active, 180, "the backup to end")
            await wait_for(lambda: all(not view.model.job(c).active for c in view.model.descendants(parent)),
                           30, "every stripe to end")
            await wait_for(lambda: "DUMP is complete" in view.log_view.toPlainText(), 30, "the log")
            view.model.flush()
            return parent
        finally:
            await view.stop()
            await client.close()

    parent = loop.run_until_complete(scenario())
    m = view.model
    stripes = [c for c in m.descendants(parent) if m.job(c).type == "stripe"]
    assert len(stripes) == 4
    for c in stripes:
        assert m.index_of(c).data(ProgressRole) == 100
        assert m.job(c).status == 0 and m.job(c).bytes_done == m.job(c).bytes_expected > 0
        assert m.index_of(c, COL_STATUS).data(Qt.ItemDataRole.DisplayRole) == "0"
    assert m.job(parent).status == 0
    assert m.index_of(parent).data(ProgressRole) == 100
    assert m.index_of(parent, COL_STATUS).data(Qt.ItemDataRole.DisplayRole) == "0"
    assert m.totals(parent)[0] == served.db_file("mydb").stat().st_size
    assert not view.banner.isVisible()
    assert not view.cancel_button.isEnabled()
    assert view.tree.currentIndex().siblingAtColumn(0) == m.index_of(parent)
    # the tree's parent rows are real: the view shows the stripes under the script job
    assert m.rowCount(m.index_of(parent)) >= 4


def test_cancel_from_the_view_ends_150(served, loop, qtbot):
    client = control_client(served.home)
    view = ProgressView(Link(client))
    qtbot.addWidget(view)
    view.show()
    script = backup_script_for(served, "slowdb", 64, compression=9)

    async def scenario():
        try:
            await view.start()
            [parent] = await client.backup([str(script)])
            m = view.model

            def running():
                kids = m.descendants(parent) if m.job(parent) else []
                return any(m.job(k).bytes_done > 0 and m.job(k).active for k in kids)

            await wait_for(running, 120, "stripes to move")
            view.select_job(parent)
            assert view.cancel_button.isEnabled()
            view.cancel_button.click()
            await wait_for(lambda: not m.job(parent).active, 120, "the cancelled backup to end")
            await wait_for(lambda: view.banner.isVisible(), 10, "the failure banner")
            m.flush()
            return parent
        finally:
            await view.stop()
            await client.close()

    parent = loop.run_until_complete(scenario())
    m = view.model
    assert m.job(parent).status == 150
    assert m.index_of(parent, COL_STATUS).data(Qt.ItemDataRole.DisplayRole) == "150"
    assert "termination requested by administrator" in m.index_of(parent, COL_STATUS).data(
        Qt.ItemDataRole.ToolTipRole)
    assert m.index_of(parent).data(Qt.ItemDataRole.BackgroundRole) is not None  # tinted
    assert "status 150" in view.banner.text() and "termination requested by administrator" in view.banner.text()
    assert "Cancel" in view.message_label.text()
