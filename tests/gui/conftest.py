"""GUI test fixtures: offscreen Qt, a fresh qasync loop per test, a real `sybar serve` with scripts."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")   # before any Qt import

import asyncio  # noqa: E402
import shutil  # noqa: E402

import pytest  # noqa: E402
from sybar_testkit import served_home  # noqa: E402

from engine.home import Home  # noqa: E402


def require_secret_service() -> None:
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        pytest.fail("DBUS_SESSION_BUS_ADDRESS is unset: the GUI tests need a real Secret Service. Run them as "
                    "`dbus-run-session -- tools/with-keyring .venv/bin/python -m pytest tests/gui` "
                    "(or tools/test).", pytrace=False)


# Closed loops are kept alive: a qasync loop's timer object collected later by the cyclic GC on
# some worker thread would leave its Qt timers registered (Qt cannot kill them from another
# thread) and the next one to fire would call into freed memory.
# The same goes for every loop a GUI test closes, ours or not: close() keeps the loop.
_CLOSED_LOOPS: list = []


def _keep_closed_loops() -> None:
    import qasync

    close = qasync.QEventLoop.close
    if getattr(close, "_sybar_keeps", False):
        return

    def close_and_keep(self):
        close(self)
        _CLOSED_LOOPS.append(self)

    close_and_keep._sybar_keeps = True
    qasync.QEventLoop.close = close_and_keep


_keep_closed_loops()


@pytest.fixture
def loop(qapp):
    """A fresh qasync loop on the test's QApplication, driven with run_until_complete."""
    import qasync

    lp = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(lp) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                lp.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            lp.close()
            _CLOSED_LOOPS.append(lp)
            asyncio.set_event_loop(None)


def copy_script_for(home: Home, src_db: str, dst_db: str) -> str:
    """sybase_<src>_backup (+ its SQL) copied for another database; returns the new script's path."""
    src = home.scripts / f"sybase_{src_db}_backup"
    dst = home.scripts / f"sybase_{dst_db}_backup"
    dst.write_text(src.read_text().replace(src_db, dst_db))
    dst.chmod(0o700)
    sql = home.scripts / f"sybase_{src_db}_backup.sql"
    (home.scripts / f"sybase_{dst_db}_backup.sql").write_text(sql.read_text().replace(src_db, dst_db))
    shutil.copymode(sql, home.scripts / f"sybase_{dst_db}_backup.sql")
    return str(dst)


@pytest.fixture(scope="module")
def gui_served(tmp_path_factory, sa_in_keyring):
    """A real daemon whose home has mydb and mydb2 (8 MB each) and the sample scripts (+ one for mydb2)."""
    require_secret_service()
    home_dir = tmp_path_factory.mktemp("guihome")
    with served_home(home_dir, {"mydb": 8, "mydb2": 8}) as s:
        copy_script_for(Home.resolve(home_dir), "mydb", "mydb2")
        yield s


@pytest.fixture
def window(gui_served, loop, qtbot):
    """The real main window on the served home, started (connected, scripts listed)."""
    from gui.main_window import MainWindow

    w = MainWindow(Home.resolve(gui_served.home))
    w.quitting = True
    loop.run_until_complete(asyncio.wait_for(w.start(), 60))
    yield w
    # tear the window down while its loop still runs: no Qt object outlives the loop it calls into
    loop.run_until_complete(w.aclose())
    w.close()
    w.deleteLater()
    loop.run_until_complete(asyncio.sleep(0.2))
