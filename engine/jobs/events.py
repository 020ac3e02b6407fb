"""Job events and the bus that carries them to subscribers.

Every change to a job is an event: ``JobStarted``, ``JobProgress``,
``JobLog``, ``JobEnded``. The daemon's ``EventBus`` hands each event to every
subscriber (the control API's event stream, ``sybar jobs --follow``, the GUI).

A subscriber that reads slowly must never slow down a backup nor make the
daemon's memory grow, so each subscription has its own bounded queue:

- ``JobProgress`` coalesces: while a progress event of a job waits unread in a
  queue, a newer one for the same job replaces it in place. A slow reader sees
  fewer, never stale, progress events.
- ``JobStarted``, ``JobLog`` and ``JobEnded`` are never dropped. If a reader
  falls so far behind that its queue reaches ``max_pending`` events, the
  subscription is closed: its queue is emptied and it yields one ``Lagged``
  event, then ends. The reader re-reads the job list and subscribes again.

The bus lives on one asyncio loop. ``publish`` is called on that loop's
thread; worker threads use ``publish_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class JobStarted:
    kind: ClassVar[str] = "job_started"
    job: dict[str, Any]

    @property
    def job_id(self) -> int:
        return self.job["job_id"]

    @property
    def parent_id(self) -> int | None:
        return self.job.get("parent_id")

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "job": dict(self.job)}


@dataclass(frozen=True)
class JobProgress:
    kind: ClassVar[str] = "job_progress"
    job_id: int
    parent_id: int | None
    stripe: int | None
    bytes_done: int
    bytes_expected: int | None
    rate: float  # bytes per second, smoothed
    eta_s: float | None  # None while unknown

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class JobLog:
    kind: ClassVar[str] = "job_log"
    job_id: int
    time: float
    line: str

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class JobEnded:
    kind: ClassVar[str] = "job_ended"
    job_id: int
    parent_id: int | None
    status: int
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Lagged:
    """The last event of a subscription that fell too far behind."""

    kind: ClassVar[str] = "lagged"
    dropped: int

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "dropped": self.dropped}


Event = JobStarted | JobProgress | JobLog | JobEnded
_EVENT_TYPES = {cls.kind: cls for cls in (JobStarted, JobProgress, JobLog, JobEnded, Lagged)}


def event_from_json(d: dict[str, Any]) -> Event | Lagged:
    """The inverse of ``to_json`` (for clients reading an event stream)."""
    d = dict(d)
    cls = _EVENT_TYPES[d.pop("event")]
    return cls(**d)


# ---------------------------------------------------------------- subscription


class _Slot:
    """A queue entry whose progress event can be replaced while it waits."""

    __slots__ = ("event",)

    def __init__(self, event: Any):
        self.event = event


class Subscription:
    """An async iterator of events; ``close()`` ends it. Also an async context manager."""

    def __init__(self, bus: EventBus, job_id: int | None, max_pending: int):
        self._bus = bus
        self.job_id = job_id
        self.max_pending = max_pending
        self._queue: deque[_Slot] = deque()
        self._progress: dict[int, _Slot] = {}  # job_id -> its unread progress slot
        self._wakeup = asyncio.Event()
        self.closed = False
        self.lagged = False
        self.coalesced = 0  # progress events replaced before they were read

    # called by the bus, on the loop thread
    def _push(self, event: Any) -> None:
        if self.closed:
            return
        if isinstance(event, JobProgress):
            slot = self._progress.get(event.job_id)
            if slot is not None:
                slot.event = event
                self.coalesced += 1
                return
            slot = _Slot(event)
            self._progress[event.job_id] = slot
            self._queue.append(slot)
        else:
            self._queue.append(_Slot(event))
        if len(self._queue) > self.max_pending:
            dropped = len(self._queue)
            self._queue.clear()
            self._progress.clear()
            self._queue.append(_Slot(Lagged(dropped)))
            self.lagged = True
            self._finish()
        self._wakeup.set()

    def _finish(self) -> None:
        self.closed = True
        self._bus._remove(self)
        self._wakeup.set()

    def __len__(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop receiving; events already queued are discarded."""
        self._queue.clear()
        self._progress.clear()
        self._finish()

    def get_nowait(self) -> Event | Lagged | None:
        """The next queued event, or None when none is waiting."""
        if not self._queue:
            return None
        slot = self._queue.popleft()
        event = slot.event
        if isinstance(event, JobProgress) and self._progress.get(event.job_id) is slot:
            del self._progress[event.job_id]
        return event

    async def get(self) -> Event | Lagged:
        """The next event; raises StopAsyncIteration once closed and drained."""
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self.closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event | Lagged:
        return await self.get()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- bus


class EventBus:
    """Fan-out of job events to subscriptions, on one asyncio loop."""

    DEFAULT_MAX_PENDING = 10_000

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop
        self._subs: list[Subscription] = []
        self._parents: dict[int, int | None] = {}  # running job -> its parent

    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Attach to a loop (default: the running one); done on first use otherwise."""
        self._loop = loop or asyncio.get_running_loop()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def _ensure_loop(self) -> None:
        if self._loop is None:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()

    def on_loop_thread(self) -> bool:
        """True when running inside the bus's loop (or when no loop is known yet)."""
        self._ensure_loop()
        if self._loop is None:
            return True
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def subscribe(self, *, job_id: int | None = None, max_pending: int | None = None) -> Subscription:
        """Events from now on: all of them, or those of job_id and its descendants."""
        self._ensure_loop()
        sub = Subscription(self, job_id, max_pending or self.DEFAULT_MAX_PENDING)
        self._subs.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def _lineage(self, event: Any) -> set[int]:
        """The event's job id and its known ancestors."""
        ids = {event.job_id}
        parent = getattr(event, "parent_id", None)
        if parent is None:
            parent = self._parents.get(event.job_id)
        while parent is not None and parent not in ids:
            ids.add(parent)
            parent = self._parents.get(parent)
        return ids

    def publish(self, event: Event) -> None:
        """Deliver to every subscriber; never blocks. Call on the loop's thread."""
        self._ensure_loop()
        if isinstance(event, JobStarted):
            self._parents[event.job_id] = event.parent_id
        lineage = self._lineage(event) if any(s.job_id is not None for s in self._subs) else set()
        if isinstance(event, JobEnded):
            self._parents.pop(event.job_id, None)
        for sub in list(self._subs):
            if sub.job_id is None or sub.job_id in lineage:
                sub._push(event)

    def publish_threadsafe(self, event: Event) -> None:
        """``publish`` from any thread (hands the event to the loop's thread)."""
        if self.on_loop_thread():
            self.publish(event)
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # nobody can be listening
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self.publish, event)
