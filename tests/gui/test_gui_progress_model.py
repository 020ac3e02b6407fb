"""JobsModel with synthetic event streams: the tree, coalesced updates, final numbers."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402
from progress_fixtures import close_loop, ended, log_line, new_loop, progress, started  # noqa: E402
from PySide6.QtCore import QModelIndex, Qt  # noqa: E402
from PySide6.QtTest import QAbstractItemModelTester  # noqa: E402

from gui.jobs_model import (  # noqa: E402
    COL_BYTES,
    COL_ETA,
    COL_PROGRESS,
    COL_STATUS,
    COL_STRIPE,
    JobsModel,
    ProgressRole,
    human_bytes,
)


@pytest.fixture
def loop(qapp):
    lp = new_loop(qapp)
    yield lp
    close_loop(lp)


def text(model, job_id, col):
    return model.index_of(job_id, col).data(Qt.ItemDataRole.DisplayRole)


def test_tree_shape_and_columns(qapp):
    m = JobsModel()
    QAbstractItemModelTester(m, QAbstractItemModelTester.FailureReportingMode.Fatal)
    m.apply(started(10, script="/s/sybase_mydb_backup"))
    for s in range(4):
        m.apply(started(11 + s, 10, "stripe", stripe=s, object_name=f"SYBAR.mydb.D.{s}"))
    m.apply(started(20))  # a newer script job goes on top
    assert m.rowCount() == 2
    assert [m.job_at(m.index(r, 0)) for r in range(2)] == [20, 10]
    parent = m.index_of(10)
    assert m.rowCount(parent) == 4
    assert [m.job_at(m.index(r, 0, parent)) for r in range(4)] == [11, 12, 13, 14]
    assert m.parent(m.index(2, 0, parent)) == parent
    assert not m.parent(parent).isValid()
    assert text(m, 13, COL_STRIPE) == "3"  # stripes are counted from 1 for people
    # progress of stripes adds up in the parent row
    for s in range(4):
        m.apply(progress(11 + s, 10, s, 512 * 1024, 1024 * 1024, rate=2e6, eta=0.25))
    m.flush()
    assert m.index_of(12, COL_PROGRESS).data(ProgressRole) == 50
    assert m.index_of(10, COL_PROGRESS).data(ProgressRole) == 50
    assert text(m, 10, COL_BYTES) == "2.0 MB / 4.0 MB"
    assert m.rate_of(10) == pytest.approx(8e6)
    # end: final numbers, ETA blank, status and its meaning, failed rows tinted
    for s in range(3):
        m.apply(ended(11 + s, 10, 0))
    m.apply(ended(14, 10, 84, "media write error"))
    m.apply(progress(11, 10, 0, 100, 1024 * 1024))  # late: ignored
    m.apply(ended(10, None, 84))
    m.flush()
    assert m.index_of(11, COL_PROGRESS).data(ProgressRole) == 100
    assert text(m, 11, COL_BYTES) == "1.0 MB / 1.0 MB"
    assert text(m, 11, COL_ETA) == ""
    assert text(m, 14, COL_STATUS) == "84"
    assert "media write error" in m.index_of(14, COL_STATUS).data(Qt.ItemDataRole.ToolTipRole)
    assert m.index_of(14, 0).data(Qt.ItemDataRole.BackgroundRole) is not None
    assert m.index_of(11, 0).data(Qt.ItemDataRole.BackgroundRole) is None


def test_children_before_parent_and_loaded_jobs(qapp):
    m = JobsModel()
    QAbstractItemModelTester(m, QAbstractItemModelTester.FailureReportingMode.Fatal)
    missing = []
    m.missingJob.connect(missing.append)
    # we joined mid-job: progress of a stripe whose job we never saw
    m.apply(progress(31, 30, 1, 10, 100))
    assert sorted(missing) == [30, 31]
    assert m.rowCount() == 1 and m.rowCount(m.index_of(30)) == 1
    # the fetched jobs fill the placeholders in
    m.load_jobs([{**started(30)["job"], "children": [started(31, 30, "stripe", stripe=1)["job"]]}])
    assert m.job(30).type == "backup" and not m.job(30).placeholder
    assert m.job(31).bytes_done == 10  # a lagging snapshot never undoes live progress
    # a list from client.jobs(): newest first, children mixed in; done jobs keep final numbers
    done = {**started(40)["job"], "state": "done", "status": 0, "ended": time.time()}
    kid = {**started(41, 40, "stripe", stripe=0)["job"], "state": "done", "status": 0, "bytes_done": 5,
           "bytes_expected": 5}
    m.load_jobs([kid, done])
    assert [m.job_at(m.index(r, 0)) for r in range(m.rowCount())] == [40, 30]
    assert m.percent(40) == 100
    # an older snapshot never reopens an ended job
    m.load_jobs([started(41, 40, "stripe", stripe=0)["job"]])
    assert not m.job(41).active


def test_orphan_placeholder_moves_under_its_parent(qapp):
    m = JobsModel()
    QAbstractItemModelTester(m, QAbstractItemModelTester.FailureReportingMode.Fatal)
    m.apply(ended(51, None, 0))  # parent unknown in the event
    assert m.rowCount() == 1
    m.load_jobs([started(50)["job"], {**started(51, 50, "stripe", stripe=0)["job"], "state": "done",
                                      "status": 0}])
    assert m.rowCount() == 1 and m.job_at(m.index(0, 0)) == 50
    assert m.rowCount(m.index_of(50)) == 1


def test_log_events_are_passed_on(qapp):
    m = JobsModel()
    got = []
    m.jobLog.connect(lambda j, t, line: got.append((j, line)))
    m.apply(started(1))
    m.apply(log_line(1, "DUMP is complete"))
    assert got == [(1, "DUMP is complete")]


def test_human_units():
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KB"
    assert human_bytes(3 * 1024 ** 3) == "3.0 GB"


def test_coalescing_10000_events_of_32_stripes(loop):
    m = JobsModel()
    emitted: list[tuple[float, int, int]] = []
    m.dataChanged.connect(lambda tl, br, roles=(): emitted.append((time.monotonic(), tl.row(), br.row())))
    stripes = 32
    expected = 64 * 1024 * 1024
    m.apply(started(1000, script="/s/sybase_big_backup"))
    for s in range(stripes):
        m.apply(started(1001 + s, 1000, "stripe", stripe=s))
    n_events = 10_000
    per_stripe = n_events // stripes
    step = expected // per_stripe

    async def feed():
        t0 = time.monotonic()
        sent = 0
        for k in range(per_stripe):
            for s in range(stripes):
                done = expected if k == per_stripe - 1 else (k + 1) * step
                m.apply(progress(1001 + s, 1000, s, done, expected, rate=50e6 + s, eta=1.0))
                sent += 1
            if k % 10 == 9:  # spread the burst over about a second, letting the loop run
                await asyncio.sleep(max(0.0, t0 + (k + 1) / per_stripe - time.monotonic()))
        for s in range(stripes):
            m.apply(ended(1001 + s, 1000, 0))
        m.apply(ended(1000, None, 0))
        elapsed = time.monotonic() - t0
        await asyncio.sleep(0.6)  # the last coalesced round
        return sent, elapsed

    sent, elapsed = loop.run_until_complete(feed())
    assert sent == per_stripe * stripes and sent >= 9984
    assert elapsed < 3.0
    assert emitted, "no dataChanged at all"
    # at most ~10 emissions in any one-second window (4 rounds x {stripe range, parent row})
    times = [e[0] for e in emitted]
    worst = max(sum(1 for t in times if t0 <= t < t0 + 1.0) for t0 in times)
    print(f"\n{sent} progress events in {elapsed:.2f} s -> {len(emitted)} dataChanged "
          f"({m.flushes} rounds), worst 1 s window {worst}")
    assert worst <= 10
    # one signal per contiguous range: the 32 stripes come as one range, never row by row
    assert all(br - tl == stripes - 1 for _, tl, br in emitted if br != tl) or stripes == 1
    # final values exact
    for s in range(stripes):
        assert m.job(1001 + s).bytes_done == expected
        assert m.index_of(1001 + s, COL_PROGRESS).data(ProgressRole) == 100
        assert text(m, 1001 + s, COL_ETA) == ""
    assert m.percent(1000) == 100
    assert m.totals(1000)[:2] == (stripes * expected, stripes * expected)
    assert text(m, 1000, COL_STATUS) == "0"


def test_elapsed_ticks_for_active_jobs(loop):
    m = JobsModel()
    m.apply({**started(7), "job": {**started(7)["job"], "started": time.time() - 5}})
    m.apply(started(8))
    m.apply(ended(8))
    m.flush()
    changed = []
    m.dataChanged.connect(lambda tl, br, roles=(): changed.append(m.job_at(tl)))
    loop.run_until_complete(asyncio.sleep(1.4))
    assert 7 in changed and 8 not in changed
    assert text(m, 7, 10).startswith("0:0")


def test_invalid_indexes_are_harmless(qapp):
    m = JobsModel()
    assert m.rowCount(QModelIndex()) == 0
    assert m.data(QModelIndex()) is None
    assert not m.index(5, 0).isValid()
