"""The event bus: fan-out, filters, coalescing for slow readers, bounded memory."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from engine.jobs.events import (
    EventBus,
    JobEnded,
    JobLog,
    JobProgress,
    JobStarted,
    Lagged,
    event_from_json,
)


def progress(job_id, done, parent=None, expected=1000):
    return JobProgress(job_id, parent, 0, done, expected, 10.0, None)


def drain(sub):
    out = []
    while (e := sub.get_nowait()) is not None:
        out.append(e)
    return out


def test_events_to_json_and_back():
    events = [
        JobStarted({"job_id": 1, "parent_id": None, "type": "backup"}),
        JobProgress(2, 1, 3, 500, 1000, 250.0, 2.0),
        JobLog(1, 12.5, "bphdb: started"),
        JobEnded(2, 1, 0, "ok"),
        Lagged(7),
    ]
    kinds = [e.to_json()["event"] for e in events]
    assert kinds == ["job_started", "job_progress", "job_log", "job_ended", "lagged"]
    for e in events:
        j = json.loads(json.dumps(e.to_json()))
        assert event_from_json(j) == e
    assert events[1].to_json() == {
        "event": "job_progress", "job_id": 2, "parent_id": 1, "stripe": 3, "bytes_done": 500,
        "bytes_expected": 1000, "rate": 250.0, "eta_s": 2.0,
    }  # fmt: skip
    assert events[0].job_id == 1 and events[0].parent_id is None


def test_every_subscriber_gets_every_event_in_order():
    async def main():
        bus = EventBus()
        a, b = bus.subscribe(), bus.subscribe()
        evs = [JobStarted({"job_id": 1, "parent_id": None}), JobLog(1, 1.0, "x"), JobEnded(1, None, 0, "ok")]
        for e in evs:
            bus.publish(e)
        got_a = [await a.get() for _ in evs]
        assert got_a == evs and drain(b) == evs
        a.close()
        with pytest.raises(StopAsyncIteration):
            await a.get()
        assert bus.subscriber_count == 1
        bus.publish(JobLog(1, 2.0, "after"))
        assert drain(b) == [JobLog(1, 2.0, "after")]

    asyncio.run(main())


def test_async_iteration_wakes_up_and_ends_on_close():
    async def main():
        bus = EventBus()
        sub = bus.subscribe()
        got = []

        async def reader():
            async for e in sub:
                got.append(e)

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        bus.publish(JobLog(1, 1.0, "one"))
        await asyncio.sleep(0)
        bus.publish(JobLog(1, 2.0, "two"))
        await asyncio.sleep(0.01)
        sub.close()
        await asyncio.wait_for(task, 1)
        assert [e.line for e in got] == ["one", "two"]

    asyncio.run(main())


def test_a_fast_reader_sees_every_progress_event():
    async def main():
        bus = EventBus()
        sub = bus.subscribe()
        seen = []
        for done in range(0, 1001, 100):
            bus.publish(progress(5, done))
            seen.append((await sub.get()).bytes_done)
        assert seen == list(range(0, 1001, 100))

    asyncio.run(main())


def test_slow_subscriber_coalesces_progress_and_never_loses_ends_or_logs():
    async def main():
        bus = EventBus()
        slow = bus.subscribe(max_pending=1000)
        jobs = list(range(1, 33))  # 32 stripes
        for j in jobs:
            bus.publish(JobStarted({"job_id": j, "parent_id": None}))
        for step in range(1, 2001):  # 64,000 progress events, 200 log lines
            for j in jobs:
                bus.publish(progress(j, step, expected=2000))
            if step % 10 == 0:
                bus.publish(JobLog(1, float(step), f"line {step}"))
            # memory stays bounded: at most one progress slot per job plus the rest
            assert len(slow) <= len(jobs) * 2 + 200
        for j in jobs:
            bus.publish(JobEnded(j, None, 0, "ok"))
        assert len(slow) <= 32 + 32 + 200 + 32
        events = drain(slow)
        assert not slow.lagged
        assert [e.job_id for e in events if isinstance(e, JobStarted)] == jobs
        assert [e.job_id for e in events if isinstance(e, JobEnded)] == jobs
        assert [e.line for e in events if isinstance(e, JobLog)] == [f"line {s}" for s in range(10, 2001, 10)]
        last = {}
        for e in events:
            if isinstance(e, JobProgress):
                last[e.job_id] = e.bytes_done
        assert last == {j: 2000 for j in jobs}  # the latest progress of every job survives
        assert slow.coalesced > 60_000
        # every job's progress comes before its end
        for j in jobs:
            idx = [i for i, e in enumerate(events) if e.job_id == j]
            assert isinstance(events[idx[-1]], JobEnded)

    asyncio.run(main())


def test_a_subscriber_too_far_behind_is_closed_with_lagged():
    async def main():
        bus = EventBus()
        laggard = bus.subscribe(max_pending=100)
        healthy = bus.subscribe(max_pending=100)
        for i in range(150):
            bus.publish(JobLog(1, float(i), f"line {i}"))
            assert len(laggard) <= 101
            assert healthy.get_nowait().line == f"line {i}"  # keeps up
        assert laggard.lagged and laggard.closed and len(laggard) == 1
        assert bus.subscriber_count == 1
        end = await laggard.get()
        assert isinstance(end, Lagged) and end.dropped == 101
        with pytest.raises(StopAsyncIteration):
            await laggard.get()
        bus.publish(JobEnded(1, None, 0, "ok"))  # publishing goes on for the others
        assert isinstance(healthy.get_nowait(), JobEnded)

    asyncio.run(main())


def test_subscribe_to_one_job_and_its_children():
    async def main():
        bus = EventBus()
        mine = bus.subscribe(job_id=10)
        bus.publish(JobStarted({"job_id": 10, "parent_id": None}))
        bus.publish(JobStarted({"job_id": 11, "parent_id": 10}))
        bus.publish(JobStarted({"job_id": 20, "parent_id": None}))
        bus.publish(JobStarted({"job_id": 21, "parent_id": 20}))
        bus.publish(JobLog(11, 1.0, "child log"))  # JobLog has no parent: the bus knows it
        bus.publish(JobLog(21, 1.0, "other log"))
        bus.publish(progress(11, 5, parent=10))
        bus.publish(progress(21, 5, parent=20))
        bus.publish(JobEnded(11, 10, 0, "ok"))
        bus.publish(JobEnded(21, 20, 0, "ok"))
        bus.publish(JobEnded(10, None, 0, "ok"))
        got = drain(mine)
        assert {e.job_id for e in got} == {10, 11}
        assert [type(e).__name__ for e in got] == [
            "JobStarted", "JobStarted", "JobLog", "JobProgress", "JobEnded", "JobEnded",
        ]  # fmt: skip

    asyncio.run(main())


def test_publish_threadsafe_from_worker_threads():
    async def main():
        bus = EventBus()
        bus.bind()
        sub = bus.subscribe()

        def worker(n):
            for i in range(100):
                bus.publish_threadsafe(JobLog(n, float(i), f"{n}:{i}"))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        got = []
        while len(got) < 400:
            got.append(await asyncio.wait_for(sub.get(), 5))
        for t in threads:
            t.join()
        for n in range(4):
            assert [e.line for e in got if e.job_id == n] == [f"{n}:{i}" for i in range(100)]
        # from the loop's own thread it publishes at once
        bus.publish_threadsafe(JobLog(9, 0.0, "direct"))
        assert sub.get_nowait().line == "direct"

    asyncio.run(main())


def test_context_manager_closes():
    async def main():
        bus = EventBus()
        async with bus.subscribe() as sub:
            bus.publish(JobLog(1, 0.0, "x"))
            assert (await sub.get()).line == "x"
        assert sub.closed and bus.subscriber_count == 0

    asyncio.run(main())
