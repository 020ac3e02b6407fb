"""The job manager: the one place jobs start, move, log, end and get cancelled.

It writes every job to the catalog and tells the event bus about it. It is
called from the daemon's loop and from worker threads (stripe writers, script
readers) alike, so every method is thread-safe and none of them blocks for
long: progress reaches the catalog at most once a second per job (and once
more when the job ends), and the bus at most every 0.25 s per job (and always
when a job reaches 100 %).

Rates are bytes per second, smoothed with an exponential moving average
(time constant ``RATE_TAU`` seconds); the ETA is the bytes left at that rate,
None while the rate or the expected size is unknown.

Cancellation: whoever runs a job registers a callback with
``register_cancel``; ``cancel(job_id)`` calls it (and those of the job's
running child jobs). The callback only asks the work to stop; the runner then
ends the job with status 150 (``TERMINATED_BY_ADMIN``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from engine.catalog.catalog import Catalog, Job
from engine.jobs.events import EventBus, JobEnded, JobLog, JobProgress, JobStarted
from engine.jobs.status import CLIENT_ABORTED, MEANING

log = logging.getLogger(__name__)

CancelCallback = Callable[[], Any]


@dataclass
class _Tracker:
    job_id: int
    parent_id: int | None
    stripe: int | None
    sample_t: float
    sample_bytes: int
    bytes_done: int = 0
    bytes_expected: int | None = None
    rate: float = 0.0
    rate_known: bool = False
    published_t: float | None = None
    published_bytes: int | None = None
    persisted_t: float = 0.0
    persisted: tuple[int, int | None] = (0, None)

    def eta(self) -> float | None:
        if self.bytes_expected is None:
            return None
        left = self.bytes_expected - self.bytes_done
        if left <= 0:
            return 0.0
        if not self.rate_known or self.rate <= 0:
            return None
        return left / self.rate

    def event(self) -> JobProgress:
        return JobProgress(
            job_id=self.job_id,
            parent_id=self.parent_id,
            stripe=self.stripe,
            bytes_done=self.bytes_done,
            bytes_expected=self.bytes_expected,
            rate=self.rate,
            eta_s=self.eta(),
        )


class JobManager:
    PUBLISH_INTERVAL = 0.25  # seconds between JobProgress events of one job
    PERSIST_INTERVAL = 1.0  # seconds between catalog writes of one job's bytes
    RATE_TAU = 2.0  # smoothing time constant of the rate, seconds
    RATE_MIN_DT = 0.05  # shorter sample intervals accumulate instead of updating the rate

    def __init__(
        self,
        catalog: Catalog,
        bus: EventBus,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.catalog = catalog
        self.bus = bus
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.RLock()
        self._trackers: dict[int, _Tracker] = {}
        self._cancel_callbacks: dict[int, list[CancelCallback]] = {}
        self._cancel_requested: set[int] = set()
        self._recently_ended: deque[int] = deque(maxlen=1024)
        self._recently_ended_set: set[int] = set()

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Attach the bus to the daemon's loop (default: the running one), so that
        worker threads can publish before anything ran on the loop."""
        self.bus.bind(loop)

    # -- delivery

    def _publish(self, event: Any) -> None:
        if self.bus.on_loop_thread():
            self._deliver(event)
            return
        loop = self.bus.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: Any) -> None:
        # A progress event handed over from a worker thread may reach the loop
        # after its job ended (whose final progress end_job already published).
        if isinstance(event, JobProgress) and event.job_id in self._recently_ended_set:
            return
        self.bus.publish(event)

    def _publish_end(self, job_id: int, events: list[Any]) -> None:
        """The final progress and JobEnded of a job, delivered together, in order
        after whatever the job's threads handed over before."""
        if self.bus.on_loop_thread():
            self._deliver_end(job_id, events)
            return
        loop = self.bus.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._deliver_end, job_id, events)

    def _deliver_end(self, job_id: int, events: list[Any]) -> None:
        self._mark_ended(job_id)
        for event in events:
            self.bus.publish(event)

    def _mark_ended(self, job_id: int) -> None:
        if len(self._recently_ended) == self._recently_ended.maxlen:
            self._recently_ended_set.discard(self._recently_ended[0])
        self._recently_ended.append(job_id)
        self._recently_ended_set.add(job_id)

    # -- lifecycle

    def start_job(self, **fields: Any) -> int:
        """Create an active job in the catalog (fields as ``Catalog.create_job``),
        publish JobStarted, return its id."""
        fields.setdefault("state", "active")
        if fields["state"] == "active":
            fields.setdefault("started", self._wall())
        job_id = self.catalog.create_job(**fields)
        job = self.catalog.get_job(job_id)
        assert job is not None
        with self._lock:
            self._trackers[job_id] = _Tracker(
                job_id=job_id,
                parent_id=job.parent_id,
                stripe=job.stripe,
                sample_t=self._clock(),
                sample_bytes=job.bytes_done,
                bytes_done=job.bytes_done,
                bytes_expected=job.bytes_expected,
                persisted_t=self._clock(),
                persisted=(job.bytes_done, job.bytes_expected),
            )
        self._publish(JobStarted(job.to_json()))
        return job_id

    def _tracker(self, job_id: int) -> _Tracker | None:
        tr = self._trackers.get(job_id)
        if tr is None:
            job = self.catalog.get_job(job_id)
            if job is None or job.state == "done":
                return None
            now = self._clock()
            tr = _Tracker(
                job_id=job_id,
                parent_id=job.parent_id,
                stripe=job.stripe,
                sample_t=now,
                sample_bytes=job.bytes_done,
                bytes_done=job.bytes_done,
                bytes_expected=job.bytes_expected,
                persisted_t=now,
                persisted=(job.bytes_done, job.bytes_expected),
            )
            self._trackers[job_id] = tr
        return tr

    def progress(self, job_id: int, bytes_done: int, bytes_expected: int | None = None) -> None:
        """Report a job's bytes so far (bytes_expected None: unchanged). Thread-safe."""
        publish: JobProgress | None = None
        persist: tuple[int, int | None] | None = None
        with self._lock:
            tr = self._tracker(job_id)
            if tr is None:
                return
            now = self._clock()
            if bytes_expected is not None:
                tr.bytes_expected = bytes_expected
            tr.bytes_done = bytes_done
            dt = now - tr.sample_t
            if dt >= self.RATE_MIN_DT:
                inst = max(0, bytes_done - tr.sample_bytes) / dt
                if tr.rate_known:
                    tr.rate += (1.0 - math.exp(-dt / self.RATE_TAU)) * (inst - tr.rate)
                else:
                    tr.rate, tr.rate_known = inst, True
                tr.sample_t, tr.sample_bytes = now, bytes_done
            complete = tr.bytes_expected is not None and bytes_done >= tr.bytes_expected
            due = tr.published_t is None or now - tr.published_t >= self.PUBLISH_INTERVAL
            if due or (complete and tr.published_bytes != bytes_done):
                publish = tr.event()
                tr.published_t, tr.published_bytes = now, bytes_done
            if now - tr.persisted_t >= self.PERSIST_INTERVAL and tr.persisted != (
                bytes_done,
                tr.bytes_expected,
            ):
                persist = (bytes_done, tr.bytes_expected)
                tr.persisted_t, tr.persisted = now, persist
        if persist is not None:
            try:
                self.catalog.update_job(job_id, bytes_done=persist[0], bytes_expected=persist[1])
            except Exception:  # progress must never break the data path
                log.exception("could not record progress of job %s", job_id)
        if publish is not None:
            self._publish(publish)

    def update(self, job_id: int, **fields: Any) -> None:
        """Record other job fields (pid, object_name, backup_id, message, ...)."""
        self.catalog.update_job(job_id, **fields)

    def snapshot(self, job_id: int) -> JobProgress | None:
        """The latest progress of a running job (for listings)."""
        with self._lock:
            tr = self._trackers.get(job_id)
            return tr.event() if tr is not None else None

    def log(self, job_id: int, line: str) -> None:
        """Append a line to the job's log and publish it. Thread-safe."""
        self.log_many(job_id, [line])

    def log_many(self, job_id: int, lines: Iterable[str]) -> None:
        lines = [line.rstrip("\r\n") for line in lines]
        if not lines:
            return
        t = self._wall()
        self.catalog.append_log_many(job_id, lines, when=t)
        for line in lines:
            self._publish(JobLog(job_id=job_id, time=t, line=line))

    def end_job(self, job_id: int, status: int, message: str | None = None) -> bool:
        """Finish a job with its NetBackup status: final bytes to the catalog, the
        final JobProgress if it was not published, then JobEnded. A second end of
        the same job is ignored (returns False)."""
        if message is None:
            message = MEANING.get(status, "")
        with self._lock:
            tr = self._trackers.pop(job_id, None)
            self._cancel_callbacks.pop(job_id, None)
            self._cancel_requested.discard(job_id)
            final: JobProgress | None = None
            if tr is not None and tr.published_bytes != tr.bytes_done:
                final = tr.event()
        if tr is not None and tr.persisted != (tr.bytes_done, tr.bytes_expected):
            self.catalog.update_job(job_id, bytes_done=tr.bytes_done, bytes_expected=tr.bytes_expected)
        if not self.catalog.end_job(job_id, status, message, when=self._wall()):
            return False
        if tr is not None:
            parent_id = tr.parent_id
        else:
            job = self.catalog.get_job(job_id)
            parent_id = job.parent_id if job is not None else None
        ended = JobEnded(job_id=job_id, parent_id=parent_id, status=status, message=message)
        self._publish_end(job_id, [final, ended] if final is not None else [ended])
        return True

    def active_jobs(self) -> list[Job]:
        """Jobs this manager started that have not ended, oldest first."""
        with self._lock:
            ids = sorted(self._trackers)
        jobs = [self.catalog.get_job(i) for i in ids]
        return [j for j in jobs if j is not None and j.state != "done"]

    def recover_interrupted(self, status: int = CLIENT_ABORTED) -> list[int]:
        """End the jobs a previous daemon left active (call once at daemon start)."""
        ended = []
        for job in self.catalog.list_jobs(active_only=True, limit=None):
            with self._lock:
                if job.job_id in self._trackers:
                    continue
            if self.catalog.end_job(
                job.job_id, status, "the sybar daemon stopped while this job was running", when=self._wall()
            ):
                ended.append(job.job_id)
        return ended

    # -- cancellation

    def register_cancel(self, job_id: int, callback: CancelCallback) -> Callable[[], None]:
        """Call callback when the job is cancelled (at once if it already was).
        Returns a function that unregisters it."""
        with self._lock:
            already = job_id in self._cancel_requested
            if not already:
                self._cancel_callbacks.setdefault(job_id, []).append(callback)
        if already:
            self._invoke(job_id, callback)

        def unregister() -> None:
            with self._lock:
                callbacks = self._cancel_callbacks.get(job_id)
                if callbacks and callback in callbacks:
                    callbacks.remove(callback)

        return unregister

    def cancel_requested(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._cancel_requested

    def cancel(self, job_id: int) -> bool:
        """Ask a running job and its running child jobs to stop. Returns False when
        the job is unknown or has ended. A job whose runner has not registered a
        callback yet gets it called on registration."""
        job = self.catalog.get_job(job_id)
        if job is None or job.state == "done":
            return False
        targets = [job_id]
        seen = {job_id}
        i = 0
        while i < len(targets):
            for child in self.catalog.children(targets[i]):
                if child.state != "done" and child.job_id not in seen:
                    seen.add(child.job_id)
                    targets.append(child.job_id)
            i += 1
        calls: list[tuple[int, CancelCallback]] = []
        with self._lock:
            for t in targets:
                self._cancel_requested.add(t)
                calls.extend((t, cb) for cb in self._cancel_callbacks.pop(t, []))
        with contextlib.suppress(Exception):
            self.log(job_id, "Termination requested by administrator.")
        for t, cb in calls:
            self._invoke(t, cb)
        return True

    def _invoke(self, job_id: int, callback: CancelCallback) -> None:
        try:
            result = callback()
            if inspect.isawaitable(result):
                loop = self.bus.loop
                if self.bus.on_loop_thread():
                    asyncio.ensure_future(result)
                elif loop is not None:
                    asyncio.run_coroutine_threadsafe(result, loop)  # type: ignore[arg-type]
        except Exception:
            log.exception("cancel callback of job %s failed", job_id)
