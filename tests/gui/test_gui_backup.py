"""Select for Backup against a real `sybar serve`: two scripts through the dialog, images in the
catalog; lint in the preview; a login stored and used through the real Secret Service."""

from __future__ import annotations

import asyncio
import os
import time

from PySide6.QtCore import Qt

from engine import secrets
from gui.preview import linter_available


async def _wait_jobs_done(client, job_ids, timeout=240.0) -> dict[int, dict]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = {j: await client.job(j) for j in job_ids}
        if all(j.get("state") == "done" for j in jobs.values()):
            return jobs
        assert time.monotonic() < deadline, f"jobs did not end: {jobs}"
        await asyncio.sleep(0.5)


def test_backup_two_scripts_through_the_dialog(window, loop, qtbot, gui_served):
    view = window.backup_view
    model = view.model
    model.clear_checked()
    for name in ("sybase_mydb_backup", "sybase_mydb2_backup"):
        ix = model.index(model.row_of(name), 0)
        assert ix.flags() & Qt.ItemFlag.ItemIsUserCheckable
        assert model.setData(ix, Qt.CheckState.Checked, Qt.ItemDataRole.CheckStateRole)
    assert view.marked.text() == "2 scripts marked" and view.backup_button.isEnabled()

    dlg = window.make_backup_dialog()   # a child of the window: the window's teardown deletes it
    loop.run_until_complete(dlg.load())
    assert dlg.master.text() == "localhost" and dlg.client.text()
    assert dlg.policy.currentText() == "Sybase_ASE"
    assert dlg.schedule.currentText() == "Default-Application-Backup"
    assert [dlg.list.item(i).text() for i in range(dlg.list.count())] == model.checked_paths()
    dlg.show()
    qtbot.keyClicks(dlg.keyword, "gui-two")
    assert dlg.show_progress.isChecked()
    started = []
    dlg.jobsStarted.connect(started.append)
    qtbot.mouseClick(dlg.start_button, Qt.MouseButton.LeftButton)
    assert dlg.started is not None
    jobs = loop.run_until_complete(asyncio.wait_for(dlg.started, 60))
    assert len(jobs) == 2 and started == [jobs], dlg.error.text()
    assert window.tabs.currentIndex() == 2          # switched to Task Progress

    client = window.link.client
    done = loop.run_until_complete(_wait_jobs_done(client, jobs))
    for job_id, job in done.items():
        assert job["status"] == 0, (job_id, job, loop.run_until_complete(client.job_log(job_id))[-10:])
    images = loop.run_until_complete(client.images(keyword="gui-two"))
    assert sorted(i["database"] for i in images) == ["mydb", "mydb2"]
    assert all(len(i["stripes"]) == 4 and i["type"] == "D" for i in images)
    model.clear_checked()


def test_backup_dialog_reports_a_refused_backup(window, loop, qtbot, gui_served):
    from gui.backup_dialog import BackupDialog

    dlg = BackupDialog(window.link, [str(window.home.scripts / "no_such_script")])
    qtbot.addWidget(dlg)
    loop.run_until_complete(dlg.load())
    jobs = loop.run_until_complete(dlg.start_backup())
    assert jobs == [] and "not started" in dlg.error.text() and dlg.start_button.isEnabled()


BROKEN = """#!/bin/sh
# a backup script with a password on isql's command line
SQLFILE=`dirname "$0"`/broken_backup.sql
sybar-isql -Usa -SSYBAR -Psecret123 -i "$SQLFILE"
exit $?
"""


def test_lint_of_a_broken_script_shows_the_right_line(window, loop, gui_served):
    scripts = window.home.scripts
    (scripts / "broken_backup").write_text(BROKEN)
    (scripts / "broken_backup").chmod(0o700)
    (scripts / "broken_backup.sql").write_text("dump database mydb to \"sybackup::-SERV localhost\"\ngo\n")
    try:
        view = window.backup_view
        loop.run_until_complete(view.refresh())
        row = view.select_file("broken_backup")
        assert row >= 0 and view.model.rows[row].kind == "script"
        findings = loop.run_until_complete(view.preview_row(row))
        assert view.preview.script_view.toPlainText() == BROKEN
        assert "dump database mydb" in view.preview.sql_view.toPlainText()
        if not linter_available():
            assert "linter unavailable" in view.preview.findings_label.text()
            return
        assert findings, "the linter found nothing in a script with a password on the command line"
        lines = [(f.line, f.code) for f in findings]
        on_4 = [i for i, f in enumerate(findings) if f.line == 4]
        assert on_4, lines
        item = view.preview.findings.item(on_4[0])
        assert item.text().startswith("broken_backup:4:")
        view.preview.findings.itemClicked.emit(item)
        assert view.preview.script_view.textCursor().blockNumber() == 3
        assert view.preview.script_view.textCursor().selectedText().startswith("sybar-isql")
    finally:
        (scripts / "broken_backup").unlink()
        (scripts / "broken_backup.sql").unlink()


def test_logins_store_test_and_use_a_password_in_the_real_keyring(window, loop, qtbot, gui_served):
    from gui.credentials import LoginsDialog

    assert os.environ.get("DBUS_SESSION_BUS_ADDRESS"), "run under dbus-run-session -- tools/with-keyring"
    dlg = LoginsDialog(window.link)
    qtbot.addWidget(dlg)
    assert dlg.server.text() == "SYBAR" and dlg.user.text() == "sa"
    assert dlg.password.echoMode() == dlg.password.EchoMode.Password

    # a wrong password fails the test, a right one passes
    dlg.password.setText("wrong-password")
    out = loop.run_until_complete(dlg.test_connection())
    assert not out.ok and "failed" in out.text.lower()
    dlg.password.setText(gui_served.password)
    out = loop.run_until_complete(dlg.test_connection())
    assert out.ok, out.text

    # store a new login's password through the dialog; read it back through the engine
    dlg.server.setText("GUITEST")
    dlg.user.setText("dba_gui")
    dlg.password.setText("Gui-Pa55-word")
    qtbot.mouseClick(dlg.save_button, Qt.MouseButton.LeftButton)
    out = loop.run_until_complete(asyncio.wait_for(dlg.pending, 30))
    assert out.ok, out.text
    assert dlg.password.text() == ""
    got = loop.run_until_complete(window.link.run_blocking(secrets.get_password, "GUITEST", "dba_gui"))
    assert got == "Gui-Pa55-word"
    assert "Gui-Pa55-word" not in dlg.message.text()

    # with no password typed, Test connection uses the stored one (sa's, kept by sa_in_keyring)
    dlg.server.setText("SYBAR")
    dlg.user.setText("sa")
    out = loop.run_until_complete(dlg.test_connection())
    assert out.ok, out.text
    loop.run_until_complete(window.link.run_blocking(secrets.delete_password, "GUITEST", "dba_gui"))


def test_a_missing_keyring_gets_a_clear_message(window, loop, qtbot, monkeypatch):
    from engine.jobs.status import SYSTEM_ERROR, StatusError
    from gui import credentials

    def locked(server, user, pw):
        raise StatusError(SYSTEM_ERROR, "no OS keyring is available: the collection is locked")

    monkeypatch.setattr(credentials.secrets, "set_password", locked)
    dlg = credentials.LoginsDialog(window.link)
    qtbot.addWidget(dlg)
    dlg.password.setText("x-secret")
    out = loop.run_until_complete(dlg.save())
    assert not out.ok and "missing or locked" in out.text and "dbus-run-session" in out.text
    assert "x-secret" not in out.text
