"""PySide6 6.12.0's QObject.killTimer leaked a reference to None per call and crashed qasync
programs on Python 3.11 (DESIGN.md §6): drive the loop through tens of thousands of callbacks
and timer starts/kills, and pin the installed version."""

from __future__ import annotations

import asyncio
import gc
import sys

import PySide6
from PySide6.QtCore import QObject, QTimer


def test_pyside6_is_the_pinned_version():
    assert PySide6.__version__ == "6.11.3", PySide6.__version__


def test_qasync_loop_survives_many_callbacks_and_timers(loop):
    n_chain = 20_000
    count = {"soon": 0, "later": 0, "timer": 0}
    finished = loop.create_future()

    def chain(i: int) -> None:
        count["soon"] += 1
        if i < n_chain:
            loop.call_soon(chain, i + 1)
        elif not finished.done():
            finished.set_result(None)

    async def timers() -> None:
        # QTimer start/stop thousands of times (each stop is a killTimer) ...
        t = QTimer()
        t.timeout.connect(lambda: count.__setitem__("timer", count["timer"] + 1))
        for _ in range(5_000):
            t.start(1000)
            t.stop()
        # ... and asyncio timers made and cancelled (qasync backs them with Qt timers)
        for i in range(5_000):
            h = loop.call_later(10, lambda: None)
            h.cancel()
            if i % 500 == 0:
                await asyncio.sleep(0)
        fired = []
        for _ in range(2_000):
            loop.call_later(0.001, fired.append, 1)
        while len(fired) < 2_000:
            await asyncio.sleep(0.01)
        count["later"] = len(fired)

    async def main() -> None:
        loop.call_soon(chain, 1)
        await asyncio.gather(finished, timers())

    loop.run_until_complete(asyncio.wait_for(main(), 120))
    assert count["soon"] == n_chain and count["later"] == 2_000 and count["timer"] == 0


def test_killtimer_does_not_leak_references_to_none(qapp):
    # 6.12.0 leaked one reference to None per QObject.killTimer call: 5,000 here
    obj = QObject()
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(5_000):
        obj.killTimer(obj.startTimer(1000))
    gc.collect()
    assert sys.getrefcount(None) - before < 500
