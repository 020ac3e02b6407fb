"""The window against a real `sybar serve`: tabs, menus, status line, persistence, screenshot."""

from __future__ import annotations

import asyncio
import os
import stat
import struct
import subprocess
import sys

from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
)

from engine.home import Home
from gui.main_window import MainWindow
from gui.settings import GuiSettings


def test_window_has_three_views_menus_and_status_line(window):
    tabs = [window.tabs.tabText(i).replace("&", "") for i in range(window.tabs.count())]
    assert tabs == ["Select for Backup", "Select for Restore", "Task Progress"]
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus == ["File", "Edit", "View", "Actions", "Help"]
    line = window.status_line.text()
    assert line.startswith("Master server: ") and "Client: " in line and "Policy: Sybase_ASE" in line
    assert f"(home {window.home.root})" in line
    assert window.link.status["pid"] > 0 and not window.link.started_daemon
    shortcuts = {a.shortcut().toString() for m in window.menuBar().actions() for a in m.menu().actions()}
    assert {"Ctrl+1", "Ctrl+2", "Ctrl+3", "F5", "Ctrl+B"} <= shortcuts
    for i, key in enumerate(("Ctrl+1", "Ctrl+2", "Ctrl+3")):
        next(a for m in window.menuBar().actions() for a in m.menu().actions()
             if a.shortcut().toString() == key).trigger()
        assert window.tabs.currentIndex() == i


def test_every_control_has_an_accessible_name(window):
    kinds = (QAbstractButton, QLineEdit, QComboBox, QAbstractItemView, QPlainTextEdit)
    unnamed = []
    for w in window.backup_view.findChildren(kinds[0]) + [
            c for k in kinds[1:] for c in window.backup_view.findChildren(k)]:
        if type(w).__name__ in ("QHeaderView",) or w.parent() is None or w.objectName().startswith("qt_"):
            continue
        name = w.accessibleName() or (w.text() if isinstance(w, QAbstractButton) else "")
        if not name and not isinstance(w.parent(), QComboBox) and w.objectName() != "qt_scrollarea_viewport":
            unnamed.append(f"{type(w).__name__} {w.objectName()}")
    assert not [u for u in unnamed if not u.startswith(("QListView", "QComboBoxListView"))], unnamed


def test_sample_scripts_are_listed_and_marked_as_sybase_scripts(window):
    model = window.backup_view.model
    assert model.folder == window.home.scripts
    by_name = {r.path.name: r for r in model.rows}
    for name in ("sybase_mydb_backup", "sybase_mydb_tran_backup", "sybase_mydb_restore", "sybase_mydb2_backup"):
        assert by_name[name].kind == "script", name
    assert by_name["sybase_mydb_backup.sql"].kind == "SQL"
    assert by_name["sybase_mydb_backup"].databases == "mydb"
    assert by_name["sybase_mydb_backup"].type == "D" and by_name["sybase_mydb_backup"].stripes == 4
    assert by_name["sybase_mydb_tran_backup"].type == "T" and by_name["sybase_mydb_tran_backup"].stripes == 2
    assert by_name["sybase_mydb_restore"].type == "load"


def test_checked_scripts_persist_across_restarts(window, loop, qtbot, gui_served):
    from PySide6.QtCore import Qt

    model = window.backup_view.model
    model.clear_checked()
    row = model.row_of("sybase_mydb_backup")
    assert model.setData(model.index(row, 0), Qt.CheckState.Checked, Qt.ItemDataRole.CheckStateRole)
    assert window.backup_view.marked.text() == "1 script marked"
    path = GuiSettings.path(window.home)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = MainWindow(Home.resolve(gui_served.home))
    qtbot.addWidget(again)
    loop.run_until_complete(again.backup_view.start())
    assert again.backup_view.model.checked_paths() == [str(window.home.scripts / "sybase_mydb_backup")]
    assert again.backup_view.marked.text() == "1 script marked"
    idx = again.backup_view.model.index(again.backup_view.model.row_of("sybase_mydb_backup"), 0)
    assert idx.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    model.clear_checked()
    assert GuiSettings.load(window.home).checked_scripts == []


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_screenshot_command_writes_the_view(gui_served, tmp_path):
    for view in ("backup", "progress"):
        out = tmp_path / f"{view}.png"
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        r = subprocess.run([sys.executable, "-m", "gui.app", "--home", str(gui_served.home),
                            "--screenshot", str(out), "--view", view, "--settle", "0.5"],
                           capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert out.stat().st_size > 10_000
        assert _png_size(out) == (1100, 720)


def test_file_list_loads_off_the_ui_thread(window, loop):
    # the analysis runs in the executor: the loop keeps turning while a folder loads
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def go():
        t = asyncio.ensure_future(tick())
        window.backup_view.model.cache = type(window.backup_view.model.cache)()   # cold cache
        await window.backup_view.model.load(window.home.scripts)
        t.cancel()

    loop.run_until_complete(go())
    assert ticks > 0


def test_the_link_starts_a_daemon_when_none_runs_and_says_so(loop, tmp_path, monkeypatch):
    import signal

    from sybar_testkit import SA_PASSWORD

    from engine.jobs.status import StatusError
    from gui.engine_link import EngineLink

    home = Home.resolve(tmp_path / "fresh")
    link = EngineLink(home)
    messages = []
    link.message.connect(messages.append)
    try:
        loop.run_until_complete(link.connect(start=False))
    except StatusError as e:
        assert "no sybar daemon is running" in str(e)
    else:
        raise AssertionError("connected to a daemon that should not exist")
    monkeypatch.setenv("SYBAR_SA_PASSWORD", SA_PASSWORD)   # a first start needs sa's password
    status = loop.run_until_complete(asyncio.wait_for(link.connect(), 90))
    try:
        assert link.started_daemon and status["home"] == str(home.root)
        assert any("Started the sybar daemon" in m and "keeps running" in m for m in messages), messages
    finally:
        loop.run_until_complete(link.close())
        os.kill(int(status["pid"]), signal.SIGTERM)      # the daemon this test started


def test_edit_menu_marks_all_scripts_and_settings_persist(window, qtbot):
    from gui.settings import SettingsDialog

    actions = {a.objectName(): a for a in window.findChildren(type(window.act_backup))}
    actions["Select all scripts"].trigger()
    model = window.backup_view.model
    n_scripts = sum(1 for r in model.rows if r.kind == "script")
    assert len(model.checked_paths()) == n_scripts >= 5
    assert window.backup_view.marked.text() == f"{n_scripts} scripts marked"
    actions["Clear selection"].trigger()
    assert model.checked_paths() == [] and not window.backup_view.backup_button.isEnabled()

    dlg = SettingsDialog(window.home, window.settings)
    qtbot.addWidget(dlg)
    dlg.folders.addItem("/tmp")
    dlg.schedule.setText("Default-Application-Backup")
    dlg.stripes.setValue(8)
    dlg.accept()
    again = GuiSettings.load(window.home)
    assert again.script_folders == ["/tmp"] and again.stripes_default == 8
    assert again.default_schedule == "Default-Application-Backup"
    again.script_folders, again.default_schedule, again.stripes_default = [], "", 4
    again.save(window.home)
    window.settings.script_folders = []
