"""Select for Restore against a real `sybar serve`: the images table (newest first, filters, pages
fetched as rows are painted), the details pane (stripe objects, log chain), the Restore dialog (preview = the plan,
a confirmation naming the database, a restore into a new database) and Verify."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from sybar_testkit import table_digest

from engine.control.client import connect_home
from engine.home import Home
from gui.engine_link import EngineLink
from gui.images_model import COL_DATABASE, COL_TYPE, COL_VERIFY, ImagesModel
from gui.restore_dialog import RestoreDialog
from gui.restore_view import RestoreView

KEYWORD = "gui-restore"


async def _wait_jobs_done(client, job_ids, timeout=240.0) -> dict[int, dict]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = {j: await client.job(j) for j in job_ids}
        if all(j.get("state") == "done" for j in jobs.values()):
            return jobs
        assert time.monotonic() < deadline, f"jobs did not end: {jobs}"
        await asyncio.sleep(0.5)


async def _backup(client, scripts: list[str]) -> None:
    jobs = await client.backup(scripts, keyword=KEYWORD)
    done = await _wait_jobs_done(client, jobs)
    for job_id, job in done.items():
        assert job["status"] == 0, (job_id, job, (await client.job_log(job_id))[-10:])


@pytest.fixture(scope="module")
def made_images(gui_served):
    """mydb full twice, then a log dump of mydb; mydb2 full once (through the control API)."""
    home = Home.resolve(gui_served.home)

    async def make():
        client = await connect_home(home, start=False)
        try:
            s = home.scripts
            await _backup(client, [str(s / "sybase_mydb_backup")])
            await _backup(client, [str(s / "sybase_mydb_backup")])
            await _backup(client, [str(s / "sybase_mydb_tran_backup")])
            await _backup(client, [str(s / "sybase_mydb2_backup")])
            return await client.images(keyword=KEYWORD)
        finally:
            await client.close()

    images = asyncio.run(make())
    asyncio.set_event_loop(None)
    assert len(images) == 4, images
    return images


@pytest.fixture
def link(gui_served, made_images, loop):
    lk = EngineLink(Home.resolve(gui_served.home))
    loop.run_until_complete(asyncio.wait_for(lk.connect(start=False), 60))
    yield lk
    loop.run_until_complete(lk.close())


@pytest.fixture
def view(link, loop, qtbot):
    v = RestoreView(link)
    qtbot.addWidget(v)
    v.resize(1000, 700)
    loop.run_until_complete(asyncio.wait_for(v.start(), 60))
    yield v
    loop.run_until_complete(v.aclose())


def _run(loop, coro, timeout=60):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def _search(view, loop, *, database="", type_index=0, keyword=KEYWORD):
    view.database.setText(database)
    view.type.setCurrentIndex(type_index)
    view.keyword.setText(keyword)
    view.search_button.click()
    _run(loop, view.model.fetch_all())


def test_view_lists_images_newest_first(view, loop, made_images):
    _search(view, loop)
    rows = view.model.images()
    assert [r["backup_id"] for r in rows] == [i["backup_id"] for i in made_images]
    times = [r["backup_time_unix"] for r in rows]
    assert times == sorted(times, reverse=True) and len(rows) == 4
    assert view.model.index(0, COL_DATABASE).data() == "mydb2"
    assert "4 images" in view.status.text()
    # the default range is the last two weeks
    assert view.date_from.date().daysTo(view.date_to.date()) == 14


def test_filters_by_database_and_type(view, loop):
    _search(view, loop, database="mydb")
    assert {r["database"] for r in view.model.images()} == {"mydb"} and view.model.rowCount() == 3
    _search(view, loop, database="mydb", type_index=1)      # Full (D)
    assert [r["type"] for r in view.model.images()] == ["D", "D"]
    assert view.model.index(0, COL_TYPE).data() == "Full (D)"
    _search(view, loop, type_index=2)                        # Log (T)
    assert [(r["database"], r["type"]) for r in view.model.images()] == [("mydb", "T")]
    _search(view, loop, keyword="no-such-keyword")
    assert view.model.rowCount() == 0


def test_server_and_client_filters_offer_what_the_catalog_holds(view, loop, made_images):
    server, client = made_images[0]["dataserver"], made_images[0]["client"]
    assert view.server.findText(server) > 0 and view.client.findText(client) > 0   # item 0 is "all"
    assert "mydb2" in view.database_names.stringList()
    view.server.setCurrentText(server)
    view.client.setCurrentText(client)
    _search(view, loop)
    assert view.model.rowCount() == 4 and {r["client"] for r in view.model.images()} == {client}
    view.server.setCurrentText("NO_SUCH_SERVER")
    _search(view, loop)
    assert view.model.rowCount() == 0 and "0 images" in view.status.text()
    view.server.setCurrentText("")
    view.client.setCurrentText("")


def test_model_fetches_the_pages_the_table_paints(link, loop, qtbot, made_images):
    v = RestoreView(link, page=2)
    qtbot.addWidget(v)
    v.resize(1000, 300)
    v.show()
    v.keyword.setText(KEYWORD)
    v.search()            # counts the matches and fetches the first page; the table asks for the rest
    model = v.model
    assert model.loading and model.rowCount() == 0
    _run(loop, model.wait_idle())
    assert model.total == 4 == model.rowCount()      # every row exists once counted
    deadline = time.monotonic() + 30
    while not model.exhausted:                       # the second page comes when its rows are painted
        assert time.monotonic() < deadline
        v.table.scrollToBottom()
        v.table.viewport().repaint()
        _run(loop, model.wait_idle())
        loop.run_until_complete(asyncio.sleep(0.02))
    assert model.pages_fetched == 2
    assert [r["backup_id"] for r in model.images()] == [i["backup_id"] for i in made_images]
    _run(loop, v.aclose())


def test_images_model_holds_only_the_pages_painted_lately(link, loop):
    model = ImagesModel(link, page=1, max_pages=2)
    model.set_filters(keyword=KEYWORD)
    _run(loop, model.wait_idle())
    assert model.rowCount() == 4 and model.pages_fetched == 1 and model.held_rows == 1
    assert model.index(3, 0).data() == "loading …"            # painting a row asks for its page
    _run(loop, model.wait_idle())
    assert model.image(3)["backup_id"] == made_images_ids(link, loop)[3]   # the oldest, asked oldest-first
    assert model.index(3, COL_DATABASE).data() == model.image(3)["database"]
    model.index(2, 0).data()
    _run(loop, model.wait_idle())
    assert model.held_rows == 2 and model.image(0) is None      # the least recently used page went
    assert model.pages_fetched == 3
    model.set_filters(keyword=KEYWORD, database="mydb2")     # a reset
    _run(loop, model.fetch_all())
    assert [r["database"] for r in model.images()] == ["mydb2"]


def made_images_ids(link, loop) -> list[str]:
    return [i["backup_id"] for i in _run(loop, link.client.images(keyword=KEYWORD))]


def test_details_pane_lists_stripes_and_log_chain(view, loop, made_images):
    _search(view, loop, database="mydb", type_index=1)
    view.select_row(0)                                      # the newest full dump of mydb
    image = view.selected_images()[0]
    _run(loop, view.details_task)
    assert view.stripes.topLevelItemCount() == 4 == len(image["stripes"])
    names = [view.stripes.topLevelItem(i).text(1) for i in range(4)]
    assert names == [s["name"] for s in sorted(image["stripes"], key=lambda s: s["stripe"])]
    assert all(view.stripes.topLevelItem(i).text(3) for i in range(4))      # checksums
    log_dump = next(i for i in made_images if i["type"] == "T")
    assert [c["backup_id"] for c in view.chain] == [log_dump["backup_id"]]
    assert view.chain_tree.topLevelItem(1).text(3) == log_dump["backup_id"]
    assert view.restore_button.isEnabled() and view.verify_button.isEnabled()
    # the database's timeline: 2 full dumps and the log dump (no commits in it: each full dump
    # restores to its own instant, the time between is a gap)
    _run(loop, view.timeline_task)
    data = view.timeline.data
    assert data.database == "mydb"
    assert sorted(m.kind for m in data.marks) == ["D", "D", "T"]
    assert all(m.seconds is not None for m in data.marks), data.marks
    assert len(data.spans) == 2 and len(data.gaps) == 1
    assert "D" in data.expected and "mydb: 2 full, 1 log dumps" in view.timeline.summary()
    view.timeline.grab()          # paints


def test_every_restore_control_has_an_accessible_name(view, loop):
    from PySide6.QtWidgets import QAbstractButton, QAbstractItemView, QComboBox, QDateTimeEdit, QLineEdit

    def in_popup(w) -> bool:          # a combo box's or a calendar's own parts
        while w is not None and w is not view:
            if isinstance(w, (QComboBox, QDateTimeEdit)) or w.objectName().startswith("qt_"):
                return True
            w = w.parent()
        return False

    for cls in (QAbstractButton, QAbstractItemView, QComboBox, QLineEdit, QDateTimeEdit):
        for w in view.findChildren(cls):
            if type(w).__name__ in ("QHeaderView",) or in_popup(w.parent()) or w.objectName().startswith("qt_"):
                continue
            if type(w).__name__ == "QAbstractButton":
                continue     # the table's corner button
            assert w.accessibleName(), (type(w).__name__, w.objectName())


def test_dialog_preview_shows_the_plan_and_restores_into_a_new_database(view, loop, qtbot, gui_served):
    _search(view, loop, database="mydb", type_index=1)
    view.select_row(0)
    _run(loop, view.details_task)
    requested = []
    view.restoreRequested.connect(requested.append)
    view.restore_button.click()
    assert requested and requested[0]["backup_id"] == view.selected_images()[0]["backup_id"]
    dlg = view.make_restore_dialog()
    _run(loop, dlg.load())
    assert dlg.database.text() == "mydb"
    assert dlg.use_time.isEnabled()                  # a log dump follows this full dump
    assert dlg.point_in_time.minimumDateTime() <= dlg.point_in_time.dateTime() <= dlg.point_in_time.maximumDateTime()

    target = "mydb_gui_restored"
    dlg.database.setText(target)
    assert "mydb_gui_restored" in dlg.confirm_label.text()
    plan = _run(loop, dlg.preview_plan())
    assert plan is not None, dlg.error.text()
    text = dlg.preview.toPlainText()
    for st in plan["statements"]:
        for line in st.splitlines():
            assert line.strip() in text
    assert any("load database" in s.lower() and target in s for s in plan["statements"])

    # no start without the confirmation naming the database
    assert not dlg.start_button.isEnabled()
    dlg.confirm.setText("mydb")
    assert not dlg.start_button.isEnabled()
    dlg.confirm.setText(target)
    assert dlg.start_button.isEnabled()
    started = []
    dlg.restoreStarted.connect(started.append)
    dlg.start_button.click()
    job_id = _run(loop, dlg.started)
    assert job_id is not None and started == [job_id], dlg.error.text()
    done = _run(loop, _wait_jobs_done(view.link.client, [job_id]), 260)
    job = done[job_id]
    assert job["status"] == 0, (job, _run(loop, view.link.client.job_log(job_id))[-10:])
    r = gui_served.sybar_isql(f"sp_helpdb {target}\ngo\n")
    assert target in r.stdout and "Msg" not in r.stdout, r.stdout + r.stderr
    for table in ("customer", "orders"):
        assert table_digest(gui_served.db_file(target), table) == table_digest(gui_served.db_file("mydb"), table)


def test_dialog_refuses_an_unconfirmed_start(link, loop, qtbot, made_images):
    image = next(i for i in made_images if i["database"] == "mydb2")
    dlg = RestoreDialog(link, image)
    qtbot.addWidget(dlg)
    _run(loop, dlg.load())
    assert not dlg.use_time.isEnabled()              # no log dumps follow mydb2's dump
    from PySide6.QtWidgets import QAbstractButton, QDateTimeEdit, QLineEdit, QPlainTextEdit

    for cls in (QAbstractButton, QLineEdit, QPlainTextEdit, QDateTimeEdit):
        for w in dlg.findChildren(cls):
            if isinstance(w, QLineEdit) and isinstance(w.parent(), QDateTimeEdit) or w.objectName().startswith("qt_"):
                continue
            assert w.accessibleName(), (type(w).__name__, w.objectName())
    assert _run(loop, dlg.start_restore()) is None and "confirm" in dlg.error.text()


def test_picker_ends_at_the_last_commit_not_at_an_empty_log_dump(link, loop, qtbot, made_images):
    # mydb's log dump followed its second full dump with no commit in between: the chain reaches no later
    full = next(i for i in made_images if i["database"] == "mydb" and i["type"] == "D")
    dlg = RestoreDialog(link, full)
    qtbot.addWidget(dlg)
    _run(loop, dlg.load())
    assert dlg.use_time.isEnabled() and "1 log dump" in dlg.chain_label.text()
    start, end = dlg.point_in_time.minimumDateTime(), dlg.point_in_time.maximumDateTime()
    assert abs(start.toMSecsSinceEpoch() - end.toMSecsSinceEpoch()) < 1000
    dlg.use_time.setChecked(True)                   # the latest time offered is one the engine can plan
    plan = _run(loop, dlg.preview_plan())
    assert plan is not None and dlg.error.text() == "", dlg.error.text()
    assert any(s.startswith("load database") for s in plan["statements"])


def test_verify_selected_images(view, loop):
    _search(view, loop, database="mydb", type_index=1)
    view.table.selectAll()
    assert len(view.selected_images()) == 2
    jobs = _run(loop, view.verify_selected())
    assert len(jobs) == 2
    assert view.model.index(0, COL_VERIFY).data() == "not verified"
    ended = _run(loop, asyncio.gather(*(view.verify_watches[j] for j in jobs)), 200)
    assert all(image["verify_status"] == 0 and image["verified_at"] for image in ended), ended
    for row in (0, 1):
        assert view.model.index(row, COL_VERIFY).data().startswith("good")


DEV = '"sybackup::-POL Sybase_ASE"'
TWO = f"to {DEV} stripe on {DEV}"


def _exec(conn, sql: str) -> None:
    errors = [e for e in conn.execute(sql) if getattr(e, "severity", 0) > 10]
    assert not errors, errors


def test_point_in_time_restore_through_the_picker(link, loop, gui_served):
    """A full dump of pitdb, rows committed at known times, a log dump; the picker restores to the middle."""
    from PySide6.QtCore import QDateTime

    from engine.tds.client import Connection

    s = gui_served
    conn = Connection.connect(s.host, s.port, user="sa", password=s.password)
    try:
        _exec(conn, "create database pitdb")
        _exec(conn, "use pitdb")
        _exec(conn, "create table t(n int primary key)")
        _exec(conn, "insert into t values (1)")
        _exec(conn, "use master")
        out = s.sybar_isql(f"dump database pitdb {TWO}\ngo\n").stdout
        assert "DUMP is complete" in out and "Msg" not in out, out
        _exec(conn, "use pitdb")
        time.sleep(0.4)
        _exec(conn, "insert into t values (2)")
        time.sleep(0.6)
        middle = time.time()
        time.sleep(0.6)
        _exec(conn, "insert into t values (3)")
        _exec(conn, "use master")
        out = s.sybar_isql(f"dump transaction pitdb {TWO}\ngo\n").stdout
        assert "DUMP is complete" in out and "Msg" not in out, out
    finally:
        conn.close()

    # the spans endpoint: one full dump, restorable from its time to the last commit of its log dump
    spans = _run(loop, link.client.spans("pitdb"))
    assert len(spans) == 1 and spans[0]["start_unix"] < middle < spans[0]["end_unix"], spans

    full = _run(loop, link.client.images(database="pitdb", type="D"))[0]
    dlg = RestoreDialog(link, full)
    _run(loop, dlg.load())
    assert dlg.use_time.isEnabled() and len(dlg.chain) == 1
    lo, hi = dlg.point_in_time.minimumDateTime(), dlg.point_in_time.maximumDateTime()
    assert lo.toMSecsSinceEpoch() <= middle * 1000 <= hi.toMSecsSinceEpoch()
    assert not dlg.point_in_time.isEnabled()
    dlg.use_time.setChecked(True)
    assert dlg.point_in_time.isEnabled()
    dlg.point_in_time.setDateTime(QDateTime.fromMSecsSinceEpoch(int(middle * 1000)))
    assert dlg.until() is not None
    target = "pitdb_gui"
    dlg.database.setText(target)
    plan = _run(loop, dlg.preview_plan())
    assert plan is not None, dlg.error.text()
    assert any("until_time" in st for st in plan["statements"]), plan["statements"]
    dlg.confirm.setText(target)
    job_id = _run(loop, dlg.start_restore())
    assert job_id is not None, dlg.error.text()
    job = _run(loop, _wait_jobs_done(link.client, [job_id]), 200)[job_id]
    assert job["status"] == 0, (job, _run(loop, link.client.job_log(job_id))[-10:])
    con = sqlite3.connect(f"file:{s.db_file(target)}?mode=ro", uri=True)
    try:
        assert [r[0] for r in con.execute("select n from t order by n")] == [1, 2]
    finally:
        con.close()


def test_verify_marks_a_corrupted_image_bad(view, loop, gui_served):
    _search(view, loop, database="mydb2")
    view.select_row(0)
    image = view.selected_images()[0]
    name = sorted(image["stripes"], key=lambda o: o["stripe"])[1]["name"]
    found = [p for p in gui_served.home.rglob(name) if p.is_file()]
    assert len(found) == 1, found
    data = bytearray(found[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    found[0].write_bytes(bytes(data))
    ended = []
    view.verifyEnded.connect(lambda b, st: ended.append((b, st)))
    view.verify_button.click()
    _run(loop, asyncio.sleep(0.2))
    jobs = list(view.verify_jobs)
    assert len(jobs) == 1
    image = _run(loop, view.verify_watches[jobs[0]], 200)
    assert image["verify_status"] not in (None, 0)
    assert ended == [(image["backup_id"], image["verify_status"])]
    assert view.model.index(0, COL_VERIFY).data().startswith("failed")
    assert "failed" in view.status.text()


def test_a_failed_restore_says_what_failed(view, loop, gui_served):
    """The mydb2 image corrupted above: its restore fails, and the view says so with the engine's words."""
    _search(view, loop, database="mydb2")
    view.select_row(0)
    _run(loop, view.details_task)
    dlg = view.make_restore_dialog()
    _run(loop, dlg.load())
    dlg.database.setText("mydb2_bad")
    dlg.confirm.setText("mydb2_bad")
    job_id = _run(loop, dlg.start_restore())
    assert job_id is not None, dlg.error.text()
    job = _run(loop, view.restore_watches[job_id], 200)
    assert job["status"] != 0, job
    assert "FAILED" in view.status.text() and str(job["status"]) in view.status.text()
    assert job["message"] and job["message"] in view.status.text()


def test_save_as_restore_script_runs_from_select_for_backup(window, loop, made_images, gui_served):
    """The dialog writes a restore script + SQL into the scripts folder; Select for Backup's Restore runs it."""
    import subprocess
    import sys

    # an image of its own: other tests here corrupt mydb2's and change mydb after its dumps
    from engine.dataserver.demo_data import fill_demo_database

    assert "Msg" not in gui_served.sybar_isql("create database scriptsrc\ngo\n").stdout
    fill_demo_database(gui_served.db_file("scriptsrc"), 2)
    out = gui_served.sybar_isql('dump database scriptsrc to "sybackup::-POL Sybase_ASE" '
                                'stripe on "sybackup::-POL Sybase_ASE"\ngo\n').stdout
    assert "DUMP is complete" in out, out
    image = _run(loop, window.link.client.images(database="scriptsrc"))[0]
    dlg = RestoreDialog(window.link, image)
    _run(loop, dlg.load())
    target = "scriptsrc_from_script"
    dlg.database.setText(target)
    path = _run(loop, dlg.save_restore_script())
    assert path, dlg.error.text()
    assert path.startswith(str(gui_served.home / "scripts")) and (gui_served.home / "scripts" / (
        path.rsplit("/", 1)[1] + ".sql")).exists()
    lint = subprocess.run([sys.executable, "-m", "engine.cli", "lint", "--strict", path], capture_output=True,
                          text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert _run(loop, dlg.save_restore_script()) is None and "exists" in dlg.error.text()  # never overwrites

    # Select for Backup lists it; mark it and press Restore
    bv = window.backup_view
    _run(loop, bv.start())
    bv.model.set_checked(path, True)
    assert bv.restore_button.isEnabled()
    jobs = _run(loop, window.run_restore_scripts())
    assert len(jobs) == 1
    done = _run(loop, _wait_jobs_done(window.link.client, jobs), 260)
    assert done[jobs[0]]["status"] == 0, _run(loop, window.link.client.job_log(jobs[0]))[-10:]
    for table in ("customer", "orders"):
        assert table_digest(gui_served.db_file(target), table) == table_digest(gui_served.db_file("scriptsrc"),
                                                                               table)


def test_restore_preview_screenshot_shows_the_dialog_with_its_plan(gui_served, made_images, tmp_path):
    import os
    import struct
    import subprocess
    import sys

    out = tmp_path / "restore-preview.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-m", "gui.app", "--home", str(gui_served.home), "--screenshot", str(out),
                        "--view", "restore", "--dialog", "restore", "--settle", "0.5"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert struct.unpack(">II", data[16:24]) == (900, 620)      # the dialog, not the window
