"""The timeline's data (no daemon): marks, durations, failures, merged spans, gaps, the next estimate."""

from __future__ import annotations

from gui.timeline import TimelineData, TimelineWidget, timeline_data


def _img(bid, t, kind="D", job=None, kb=1000, db="mydb"):
    return {"backup_id": bid, "database": db, "type": kind, "backup_time_unix": t, "kbytes": kb, "job_id": job}


def test_timeline_data_marks_spans_gaps_failures_and_estimate(qtbot):
    images = [_img("a", 100, "D", 1), _img("b", 200, "T", 2, 10), _img("c", 500, "D", 3), _img("x", 150, db="other")]
    jobs = [
        {"job_id": 1, "type": "backup", "state": "done", "status": 0, "elapsed": 10.0, "started": 95},
        {"job_id": 2, "type": "backup", "state": "done", "status": 0, "elapsed": 2.0, "started": 199},
        {"job_id": 3, "type": "backup", "state": "done", "status": 0, "elapsed": 20.0, "started": 490},
        {"job_id": 4, "type": "backup", "state": "done", "status": 2, "elapsed": 1.0, "started": 300,
         "script": "/h/scripts/sybase_mydb_backup"},
        {"job_id": 5, "type": "backup", "state": "done", "status": 2, "elapsed": 1.0, "started": 310,
         "script": "/h/scripts/sybase_mydb2_backup"},            # another database's script
        {"job_id": 6, "type": "restore", "state": "done", "status": 5, "elapsed": 1.0, "started": 320,
         "database": "mydb"},                                     # not a backup
    ]
    spans = [{"start_unix": 100, "end_unix": 250}, {"start_unix": 200, "end_unix": 260},
             {"start_unix": 500, "end_unix": 500}]
    d = timeline_data("mydb", images, spans, jobs)
    assert [(m.kind, m.time) for m in d.marks] == [("D", 100), ("T", 200), ("failed", 300), ("D", 500)]
    assert [m.seconds for m in d.marks if m.kind != "failed"] == [10.0, 2.0, 20.0]
    assert d.spans == [(100, 260), (500, 500)] and d.gaps == [(260, 500)]
    assert d.expected == {"D": 15.0, "T": 2.0}
    w = TimelineWidget()
    qtbot.addWidget(w)
    w.resize(600, 140)
    w.set_data(d)
    assert "2 full, 1 log dumps, 1 failed" in w.summary() and "1 gap" in w.summary()
    assert "next full dump: about 15 s" in w.toolTip()
    assert not w.grab().isNull()
    w.set_data(TimelineData("empty"))
    assert not w.grab().isNull()
