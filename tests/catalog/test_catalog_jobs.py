"""Jobs and job logs in the catalog."""

from __future__ import annotations

import threading

import pytest

from engine.catalog.catalog import Catalog
from engine.jobs.status import NO_ENTITY, StatusError


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "catalog.db")
    yield c
    c.close()


def test_job_lifecycle(cat):
    parent = cat.create_job(type="backup", client="dbhost", policy="Sybase_ASE", schedule="S", script="/s/b")
    job = cat.get_job(parent)
    assert job.state == "active" and job.status is None and job.started is not None and job.ended is None
    assert job.bytes_done == 0 and job.parent_id is None and job.script == "/s/b"

    kids = [
        cat.create_job(
            type="stripe", parent_id=parent, stripe=s, object_name=f"SYBAR.db.D.{s}.1.x", bytes_expected=100
        )
        for s in range(3)
    ]
    cat.update_job(kids[0], bytes_done=50, pid=1234, backup_id="dbhost_1790000000")
    k0 = cat.get_job(kids[0])
    assert (k0.bytes_done, k0.bytes_expected, k0.pid, k0.backup_id) == (50, 100, 1234, "dbhost_1790000000")
    assert [c.job_id for c in cat.children(parent)] == kids
    assert [c.stripe for c in cat.children(parent)] == [0, 1, 2]

    assert cat.end_job(kids[0], 0, "stored") is True
    assert cat.end_job(kids[0], 84, "late failure") is False  # the first end wins
    k0 = cat.get_job(kids[0])
    assert k0.state == "done" and k0.status == 0 and k0.message == "stored" and k0.ended >= k0.started

    j = k0.to_json()
    assert j["job_id"] == kids[0] and j["parent_id"] == parent and j["type"] == "stripe"
    assert j["status"] == 0 and j["status_text"].startswith("the requested operation")
    assert isinstance(j["elapsed"], float) and j["started_iso"]

    with pytest.raises(ValueError):
        cat.update_job(parent, nonsense=1)
    with pytest.raises(ValueError):
        cat.create_job(type="party")
    assert cat.get_job(99999) is None
    assert cat.end_job(99999, 0) is False


def test_list_jobs(cat):
    p1 = cat.create_job(type="backup")
    c1 = cat.create_job(type="stripe", parent_id=p1, stripe=0)
    p2 = cat.create_job(type="restore")
    q = cat.create_job(type="verify", state="queued")
    assert cat.get_job(q).started is None
    cat.end_job(p2, 2850, "restore error")

    assert [j.job_id for j in cat.list_jobs()] == [q, p2, c1, p1]  # newest first
    assert [j.job_id for j in cat.list_jobs(parent_id=None)] == [q, p2, p1]  # top level only
    assert [j.job_id for j in cat.list_jobs(parent_id=p1)] == [c1]
    assert [j.job_id for j in cat.list_jobs(active_only=True)] == [q, c1, p1]
    assert [j.job_id for j in cat.list_jobs(limit=2)] == [q, p2]
    assert [j.job_id for j in cat.list_jobs(limit=None)] == [q, p2, c1, p1]


def test_job_log(cat):
    job = cat.create_job(type="backup")
    cat.append_log(job, "bphdb: started /s/b", when=10.0)
    cat.append_log_many(job, ["line 2", "line 3"], when=11.0)
    cat.append_log_many(job, [])
    other = cat.create_job(type="backup")
    cat.append_log(other, "other job")
    assert cat.job_log(job) == [(10.0, "bphdb: started /s/b"), (11.0, "line 2"), (11.0, "line 3")]
    assert [line for _, line in cat.job_log(other)] == ["other job"]
    assert cat.job_log(12345) == []
    with pytest.raises(StatusError) as e:
        cat.append_log(12345, "nobody")
    assert e.value.status == NO_ENTITY


def test_job_log_from_many_threads_keeps_every_line(cat):
    job = cat.create_job(type="backup")

    def writer(n):
        for i in range(50):
            cat.append_log(job, f"{n}:{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [line for _, line in cat.job_log(job)]
    assert len(lines) == 200 and len(set(lines)) == 200
    for n in range(4):  # each writer's lines in its order
        mine = [line for line in lines if line.startswith(f"{n}:")]
        assert mine == [f"{n}:{i}" for i in range(50)]
