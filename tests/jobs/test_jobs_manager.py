"""The job manager: jobs in the catalog, throttled progress with rate and ETA,
logs, idempotent ends, cancellation."""

from __future__ import annotations

import asyncio
import threading

import pytest

from engine.catalog.catalog import Catalog
from engine.jobs.events import EventBus, JobEnded, JobLog, JobProgress, JobStarted
from engine.jobs.manager import JobManager
from engine.jobs.status import CLIENT_ABORTED, TERMINATED_BY_ADMIN


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


class CountingCatalog(Catalog):
    def __init__(self, path):
        super().__init__(path)
        self.progress_writes = 0

    def update_job(self, job_id, **fields):
        if "bytes_done" in fields:
            self.progress_writes += 1
        super().update_job(job_id, **fields)


@pytest.fixture
def cat(tmp_path):
    c = CountingCatalog(tmp_path / "catalog.db")
    yield c
    c.close()


def drain(sub):
    out = []
    while (e := sub.get_nowait()) is not None:
        out.append(e)
    return out


def run(coro):
    return asyncio.run(coro)


def test_start_progress_end(cat):
    async def main():
        clock = Clock()
        bus = EventBus()
        jm = JobManager(cat, bus, clock=clock)
        sub = bus.subscribe()
        parent = jm.start_job(type="backup", client="dbhost", script="/s/b")
        child = jm.start_job(type="stripe", parent_id=parent, stripe=2, bytes_expected=10_000_000)
        started = drain(sub)
        assert [type(e) for e in started] == [JobStarted, JobStarted]
        assert started[1].job["job_id"] == child and started[1].job["parent_id"] == parent
        assert started[1].job["state"] == "active" and started[1].job["stripe"] == 2
        assert cat.get_job(child).state == "active"
        assert {j.job_id for j in jm.active_jobs()} == {parent, child}

        # 1 MB/s for 10 s, reported every 10 ms
        published = []
        for step in range(1, 1001):
            clock.t += 0.01
            jm.progress(child, step * 10_000)
            published += [e for e in drain(sub) if isinstance(e, JobProgress)]
        assert 38 <= len(published) <= 42  # every 0.25 s, not every call
        last = published[-1]
        assert last.job_id == child and last.parent_id == parent and last.stripe == 2
        assert last.bytes_done == 10_000_000 and last.bytes_expected == 10_000_000  # 100% is always published
        assert last.eta_s == 0.0
        mid = published[len(published) // 2]
        assert mid.rate == pytest.approx(1_000_000, rel=0.02)
        assert mid.eta_s == pytest.approx((10_000_000 - mid.bytes_done) / mid.rate, rel=1e-6)
        assert 9 <= cat.progress_writes <= 11  # about once a second
        assert cat.get_job(child).bytes_done >= 9_000_000

        assert jm.end_job(child, 0, "stored") is True
        ended = drain(sub)
        assert ended == [JobEnded(child, parent, 0, "stored")]
        assert cat.get_job(child).bytes_done == 10_000_000 and cat.get_job(child).status == 0
        assert jm.end_job(child, 84, "again") is False  # idempotent: ignored
        assert drain(sub) == [] and cat.get_job(child).status == 0
        assert [j.job_id for j in jm.active_jobs()] == [parent]

    run(main())


def test_end_publishes_and_persists_unpublished_final_bytes(cat):
    async def main():
        clock = Clock()
        bus = EventBus()
        jm = JobManager(cat, bus, clock=clock)
        job = jm.start_job(type="stripe", stripe=0)  # size unknown
        sub = bus.subscribe()
        jm.progress(job, 100)
        clock.t += 0.1
        jm.progress(job, 5000)  # throttled
        events = drain(sub)
        assert [e.bytes_done for e in events] == [100] and events[0].eta_s is None
        jm.end_job(job, 0, "done")
        events = drain(sub)
        assert isinstance(events[0], JobProgress) and events[0].bytes_done == 5000
        assert isinstance(events[1], JobEnded)
        assert cat.get_job(job).bytes_done == 5000
        jm.progress(job, 9999)  # after the end: ignored
        assert drain(sub) == [] and cat.get_job(job).bytes_done == 5000

    run(main())


def test_rate_is_smoothed_and_eta_unknown_until_measured(cat):
    async def main():
        clock = Clock()
        bus = EventBus()
        jm = JobManager(cat, bus, clock=clock)
        job = jm.start_job(type="stripe", bytes_expected=100_000_000)
        snap = jm.snapshot(job)
        assert snap.rate == 0 and snap.eta_s is None
        done = 0
        for _ in range(40):  # 10 s at 1 MB/s
            clock.t += 0.25
            done += 250_000
            jm.progress(job, done)
        assert jm.snapshot(job).rate == pytest.approx(1_000_000, rel=0.01)
        rates = []
        for _ in range(8):  # then 2 s at 3 MB/s: the rate moves towards it, smoothly
            clock.t += 0.25
            done += 750_000
            jm.progress(job, done)
            rates.append(jm.snapshot(job).rate)
        assert all(a < b for a, b in zip(rates, rates[1:], strict=False))
        assert 1_500_000 < rates[-1] < 3_000_000
        assert jm.snapshot(job).eta_s == pytest.approx((100_000_000 - done) / rates[-1])

    run(main())


def test_log_persists_and_publishes(cat):
    async def main():
        bus = EventBus()
        jm = JobManager(cat, bus, wall_clock=lambda: 42.0)
        job = jm.start_job(type="backup")
        sub = bus.subscribe()
        jm.log(job, "bphdb: started\n")
        jm.log_many(job, ["a", "b"])
        assert drain(sub) == [
            JobLog(job, 42.0, "bphdb: started"),
            JobLog(job, 42.0, "a"),
            JobLog(job, 42.0, "b"),
        ]
        assert cat.job_log(job) == [(42.0, "bphdb: started"), (42.0, "a"), (42.0, "b")]

    run(main())


def test_progress_and_logs_from_worker_threads(cat):
    async def main():
        bus = EventBus()
        jm = JobManager(cat, bus)
        jm.bind_loop()
        sub = bus.subscribe()
        parent = jm.start_job(type="backup")
        stripes = [
            jm.start_job(type="stripe", parent_id=parent, stripe=s, bytes_expected=1000) for s in range(4)
        ]
        drain(sub)

        def worker(job):
            for b in range(0, 1001, 10):
                jm.progress(job, b)
            jm.log(job, "stripe done")
            jm.end_job(job, 0, "stored")

        threads = [threading.Thread(target=worker, args=(j,)) for j in stripes]
        for t in threads:
            t.start()
        ended = set()
        got = []
        while len(ended) < 4:
            e = await asyncio.wait_for(sub.get(), 5)
            got.append(e)
            if isinstance(e, JobEnded):
                ended.add(e.job_id)
        for t in threads:
            t.join()
        assert ended == set(stripes)
        for j in stripes:
            mine = [e for e in got if e.job_id == j]
            prog = [e for e in mine if isinstance(e, JobProgress)]
            assert prog and prog[-1].bytes_done == 1000
            assert isinstance(mine[-1], JobEnded)  # nothing of a job after its end
            assert cat.get_job(j).bytes_done == 1000 and cat.get_job(j).state == "done"
            assert cat.job_log(j)[-1][1] == "stripe done"

    run(main())


def test_cancel_reaches_the_job_and_its_running_children(cat):
    async def main():
        bus = EventBus()
        jm = JobManager(cat, bus)
        parent = jm.start_job(type="backup")
        kids = [jm.start_job(type="stripe", parent_id=parent, stripe=s) for s in range(3)]
        jm.end_job(kids[2], 0, "already stored")
        calls = []
        jm.register_cancel(parent, lambda: calls.append("script"))
        jm.register_cancel(kids[0], lambda: calls.append("stripe 0"))
        unregister = jm.register_cancel(kids[1], lambda: calls.append("never"))
        unregister()
        woke = asyncio.Event()

        async def async_cb():
            woke.set()

        jm.register_cancel(kids[1], async_cb)
        jm.register_cancel(kids[2], lambda: calls.append("ended job"))

        assert jm.cancel(parent) is True
        await asyncio.wait_for(woke.wait(), 1)
        assert calls == ["script", "stripe 0"]
        assert jm.cancel_requested(parent) and jm.cancel_requested(kids[1])
        assert not jm.cancel_requested(kids[2])
        assert "Termination requested by administrator." in [line for _, line in cat.job_log(parent)]

        # a runner that registers after the request is told at once
        late = []
        jm.register_cancel(kids[0], lambda: late.append(True))
        assert late == [True]

        # whoever runs the job ends it with 150
        for j in (kids[0], kids[1], parent):
            jm.end_job(j, TERMINATED_BY_ADMIN, "termination requested by administrator")
        assert cat.get_job(parent).status == 150
        assert jm.cancel(parent) is False  # ended
        assert jm.cancel(424242) is False  # unknown

    run(main())


def test_a_failing_cancel_callback_does_not_stop_the_others(cat):
    async def main():
        jm = JobManager(cat, EventBus())
        job = jm.start_job(type="backup")
        calls = []

        def bad():
            raise RuntimeError("boom")

        jm.register_cancel(job, bad)
        jm.register_cancel(job, lambda: calls.append(1))
        assert jm.cancel(job) is True and calls == [1]

    run(main())


def test_recover_interrupted_jobs(cat):
    stale = cat.create_job(type="backup")
    done = cat.create_job(type="backup")
    cat.end_job(done, 0, "ok")

    async def main():
        jm = JobManager(cat, EventBus())
        mine = jm.start_job(type="backup")
        assert jm.recover_interrupted() == [stale]
        assert cat.get_job(stale).status == CLIENT_ABORTED and cat.get_job(stale).state == "done"
        assert cat.get_job(mine).state == "active" and cat.get_job(done).status == 0

    run(main())


def test_manager_without_a_running_loop(cat):
    """Usable from plain code too (tests, tools): events go nowhere, the catalog gets it all."""
    jm = JobManager(cat, EventBus())
    job = jm.start_job(type="verify")
    jm.progress(job, 10, 10)
    jm.log(job, "checked")
    assert jm.end_job(job, 0, "ok")
    assert cat.get_job(job).bytes_done == 10 and cat.job_log(job)[0][1] == "checked"
