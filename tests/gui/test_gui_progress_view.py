"""ProgressView against a scripted stand-in for the control client: reconnecting after the
event stream drops, the live log, the failure banner, the throughput chart, Cancel.
(The real daemon is in test_gui_progress_e2e.py.)"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402
from progress_fixtures import (  # noqa: E402
    Link,
    close_loop,
    log_line,
    new_loop,
    progress,
    started,
    wait_for,
)
from PySide6.QtWidgets import QWidget  # noqa: E402

from engine.jobs.status import CANT_CONNECT, StatusError  # noqa: E402
from gui.jobs_model import COL_STATUS  # noqa: E402
from gui.progress_view import ProgressView  # noqa: E402
from gui.throughput_chart import MB, ThroughputChart, nice_ceiling  # noqa: E402


class ScriptedClient:
    """Answers like ControlClient; each events() call plays the next scripted stream."""

    def __init__(self, streams, jobs_lists, logs=None):
        self.streams = list(streams)
        self.jobs_lists = list(jobs_lists)
        self.logs = logs or {}
        self.known: dict[int, dict] = {}
        self.cancelled: list[int] = []
        self.connections = 0

    async def events(self, job_id=None):
        self.connections += 1
        script = self.streams.pop(0) if self.streams else []
        yield {"event": "connected"}
        for item in script:
            await asyncio.sleep(0.01)
            if isinstance(item, Exception):
                raise item
            if item["event"] == "job_started":
                self.known[item["job"]["job_id"]] = item["job"]
            yield item
        await asyncio.Event().wait()  # a live stream with nothing more to say

    async def jobs(self, *, active=False, parent=None, limit=100):
        return self.jobs_lists.pop(0) if self.jobs_lists else []

    async def job(self, job_id):
        if job_id not in self.known:
            raise StatusError(227, f"no job {job_id}")
        kids = [j for j in self.known.values() if j.get("parent_id") == job_id]
        return {**self.known[job_id], "children": kids}

    async def job_log(self, job_id):
        return [{"time": t, "line": line} for t, line in self.logs.get(job_id, [])]

    async def cancel(self, job_id):
        self.cancelled.append(job_id)
        return True


@pytest.fixture
def loop(qapp):
    lp = new_loop(qapp)
    yield lp
    close_loop(lp)


def test_reconnects_resyncs_logs_and_shows_the_failure(loop, qtbot):
    t0 = time.time() - 10
    parent = started(1, script="/s/sybase_mydb_backup")
    stripe = started(2, 1, "stripe", stripe=0)
    done_parent = {**parent["job"], "state": "done", "status": 84, "message": "media write error",
                   "ended": time.time()}
    done_stripe = {**stripe["job"], "state": "done", "status": 84, "bytes_done": 50, "bytes_expected": 100}
    client = ScriptedClient(
        streams=[[parent, stripe, progress(2, 1, 0, 50, 100, rate=3 * MB, eta=2.0),
                  log_line(1, "dump of mydb started"),
                  StatusError(CANT_CONNECT, "lost the sybar daemon's event stream")],
                 [log_line(2, "stripe 1: write failed: No space left on device")]],
        jobs_lists=[[], [done_stripe, done_parent]],
        logs={1: [(t0, "Backup started"), (t0 + 1, "Msg 3201, Level 16: Write on dump device failed")]})
    view = ProgressView(Link(client))
    qtbot.addWidget(view)
    view.show()
    states = []
    view.connectionChanged.connect(lambda ok, text: states.append(ok))

    async def scenario():
        try:
            await view.start()
            await wait_for(lambda: view.model.job(2) is not None, 5, "the stripe")
            view.select_job(1)
            await wait_for(lambda: client.connections >= 2 and not view.model.job(1).active, 10, "resync")
            await wait_for(lambda: "No space left" in view.log_view.toPlainText(), 5, "the live log line")
            await wait_for(view.banner.isVisible, 5, "the banner")
        finally:
            await view.stop()

    loop.run_until_complete(scenario())
    assert states[:3] == [True, False, True]
    m = view.model
    assert m.job(1).status == 84 and m.index_of(1, COL_STATUS).data() == "84"
    assert m.job(2).bytes_done == 50  # a failed stripe keeps what it really wrote
    text = view.log_view.toPlainText()
    assert "Backup started" in text and "[job 2] stripe 1: write failed" in text
    banner = view.banner.text()
    assert "status 84 (media write error)" in banner
    assert "Msg 3201" in banner and "No space left" in banner
    assert not view.cancel_button.isEnabled()


def test_selecting_a_job_before_it_shows_up_and_cancel(loop, qtbot):
    client = ScriptedClient(streams=[[started(5), started(6, 5, "stripe", stripe=0),
                                      progress(6, 5, 0, 10, 100, rate=4 * MB, eta=9.0)]],
                            jobs_lists=[[]])
    view = ProgressView(Link(client))
    qtbot.addWidget(view)

    async def scenario():
        try:
            await view.start()
            view.select_job(5)  # the app selects a job it just started: no row yet
            await wait_for(lambda: view.model.job(6) is not None, 5, "the jobs")
            view.model.flush()
            assert view.model.job_at(view.tree.currentIndex()) == 5
            await wait_for(view.cancel_button.isEnabled, 5, "Cancel to be enabled")
            await wait_for(lambda: len(view.chart.samples()) >= 2, 5, "throughput samples")
            view.cancel_button.click()
            await wait_for(lambda: client.cancelled == [5], 5, "the cancel call")
        finally:
            await view.stop()

    loop.run_until_complete(scenario())
    assert view.chart.samples()[-1][1] == pytest.approx(4 * MB)
    assert view.cancel_button.accessibleName() and view.tree.accessibleName()
    for w in view.findChildren(QWidget):
        if w.focusPolicy() != w.focusPolicy().NoFocus and w.isVisibleTo(view):
            assert w.accessibleName() or w.objectName().startswith("qt_") or not w.isWidgetType(), w


def test_start_returns_when_the_daemon_is_away(loop, qtbot):
    class Away(ScriptedClient):
        async def events(self, job_id=None):
            self.connections += 1
            raise StatusError(CANT_CONNECT, "can't reach the sybar daemon")
            yield  # pragma: no cover

    client = Away([], [])
    view = ProgressView(Link(client))
    qtbot.addWidget(view)

    async def scenario():
        try:
            await asyncio.wait_for(view.start(), 5)
            assert not view.connected and "Reconnecting" in view.connection_label.text()
            await wait_for(lambda: client.connections >= 2, 5, "a second try")
        finally:
            await view.stop()

    loop.run_until_complete(scenario())


def test_chart_paints_and_scales(qtbot):
    chart = ThroughputChart(clock=lambda: 1000.0)
    qtbot.addWidget(chart)
    chart.resize(500, 200)
    chart.set_samples([(850.0, 1.0 * MB), (900.0, 2.0 * MB), (1000.0, 7.5 * MB)])
    assert [t for t, _ in chart.samples()] == [900.0, 1000.0]  # a rolling two-minute window
    assert chart.peak_mb_s() == pytest.approx(7.5)
    assert nice_ceiling(8.25) == 10 and nice_ceiling(1.5) == 2 and nice_ceiling(0.3) == pytest.approx(0.5)
    image = chart.grab()
    assert not image.isNull()
    chart.clear()
    assert chart.grab().width() == 500
