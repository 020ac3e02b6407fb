"""Select for Restore over a real daemon whose catalog holds 1,000,000 images: the view opens, counts
them, jumps to the end and around, and the event loop never stalls; memory stays bounded (only the
pages painted lately are held).

What "blocked" means here: the main thread spending more than 100 ms of its own CPU time between two
turns of the loop. Wall-clock gaps are printed too, but on a shared 2-core machine they also count the
time other processes held the CPU, so only a gap of a whole second fails on wall time.
"""

from __future__ import annotations

import asyncio
import gc
import random
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from catalog_fill import fill_catalog, image_id
from PySide6.QtCore import QDate
from sybar_testkit import start_serve, stop_serve

from engine.home import Home
from gui.engine_link import EngineLink
from gui.images_model import COL_DATABASE
from gui.restore_view import RestoreView

TOTAL = 1_000_000
CPU_BLOCK_LIMIT_S = 0.100
WALL_BLOCK_LIMIT_S = 1.0


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture(scope="module")
def million_served(sa_in_keyring):
    # in memory when the machine has /dev/shm: the test measures the window, not the disk
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    root = Path(tempfile.mkdtemp(prefix="sybar-million-", dir=base))
    try:
        t = time.perf_counter()
        fill_catalog(root / "catalog.db", TOTAL, newest=time.time() - 3600)
        print(f"\ncatalog of {TOTAL:,} images written in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        served = start_serve(root)
        print(f"daemon up on it in {time.perf_counter() - t:.1f} s")
        try:
            yield served
        finally:
            stop_serve(served)
    finally:
        shutil.rmtree(root, ignore_errors=True)


class LoopWatch:
    """Turns of the loop: the wall time and the main thread's CPU time between consecutive ones."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        last_wall, last_cpu = time.monotonic(), time.thread_time()
        while True:
            await asyncio.sleep(0.005)
            wall, cpu = time.monotonic(), time.thread_time()
            self.wall.append(wall - last_wall)
            self.cpu.append(cpu - last_cpu)
            last_wall, last_cpu = wall, cpu

    async def stop(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def test_a_million_images_open_and_scroll_to_the_end_without_blocking(million_served, loop, qtbot):
    link = EngineLink(Home.resolve(million_served.home))
    loop.run_until_complete(asyncio.wait_for(link.connect(start=False), 60))
    view = RestoreView(link)
    qtbot.addWidget(view)
    view.resize(1100, 700)
    view.show()
    view.date_from.setDate(QDate.currentDate().addYears(-3))     # every image: about two years of them
    # the pytest process holds every earlier test's objects: a full collection of that heap is pytest's
    # cost, not the window's (the app itself collects on the UI thread every few seconds, a small heap)
    gc.collect()
    gc.freeze()
    rss_before = rss_kb()
    watch = LoopWatch()
    model, bar = view.model, view.table.verticalScrollBar()
    fetch_s: list[float] = []

    def settle(what: str) -> None:
        t = time.monotonic()
        view.table.viewport().repaint()                # paint the rows now showing: their pages are asked for
        loop.run_until_complete(asyncio.wait_for(model.wait_idle(), 60))
        loop.run_until_complete(asyncio.sleep(0.01))
        fetch_s.append(time.monotonic() - t)
        row = view.table.rowAt(view.table.viewport().height() // 2)
        assert row >= 0 and model.image(row) is not None, f"{what}: row {row} not filled in"

    t_open = time.monotonic()
    loop.run_until_complete(asyncio.wait_for(view.start(), 120))
    opened_s = time.monotonic() - t_open
    assert model.total == TOTAL == model.rowCount()
    assert model.image(0)["backup_id"] == image_id(0)            # newest first
    assert f"{TOTAL:,} images" in view.status.text()

    bar.setValue(bar.maximum())                                   # the end, in one move
    settle("the end")
    last = TOTAL - 1
    assert view.table.rowAt(view.table.viewport().height() - 2) == last
    assert model.image(last)["backup_id"] == image_id(last)      # the oldest image, fetched oldest-first
    assert model.index(last, COL_DATABASE).data() == f"db{last % 20:02d}"

    rng = random.Random(7)
    for n in range(30):                                           # a DBA dragging the scroll bar about
        bar.setValue(rng.randrange(bar.maximum()))
        settle(f"jump {n}")
    for n in range(60):                                           # and paging down from one spot
        bar.setValue(min(bar.maximum(), bar.value() + bar.pageStep()))
        settle(f"page down {n}")
    bar.setValue(bar.maximum())
    settle("the end again")
    row = view.table.rowAt(0)
    assert model.image(row)["backup_id"] == image_id(row)        # rows land where they belong

    loop.run_until_complete(watch.stop())
    gc.unfreeze()
    grown_mb = (rss_kb() - rss_before) / 1024
    worst_cpu, worst_wall = max(watch.cpu), max(watch.wall)
    fetch_s.sort()
    print(f"\n{TOTAL:,} images: opened (count + first page) in {opened_s * 1000:.0f} ms; "
          f"{len(fetch_s)} moves, page arrival p50 {fetch_s[len(fetch_s) // 2] * 1000:.0f} ms, "
          f"max {fetch_s[-1] * 1000:.0f} ms; {model.pages_fetched} pages fetched, {model.held_rows} rows held; "
          f"RSS +{grown_mb:.1f} MB")
    print(f"loop turns: {len(watch.wall)}; longest main-thread CPU between turns {worst_cpu * 1000:.0f} ms "
          f"(limit {CPU_BLOCK_LIMIT_S * 1000:.0f}); longest wall gap {worst_wall * 1000:.0f} ms "
          f"({sum(g > 0.1 for g in watch.wall)} over 100 ms)")
    assert model.held_rows <= model.max_pages * model.page          # bounded, whatever the catalog's size
    assert model.pages_fetched < 400                               # only what was painted, never the lot
    assert grown_mb < 64, f"the window grew by {grown_mb:.0f} MB browsing the catalog"
    assert worst_cpu < CPU_BLOCK_LIMIT_S, f"the event loop was blocked for {worst_cpu * 1000:.0f} ms of CPU"
    assert worst_wall < WALL_BLOCK_LIMIT_S, f"the event loop did not turn for {worst_wall * 1000:.0f} ms"
    loop.run_until_complete(view.aclose())
    loop.run_until_complete(link.close())
