"""The images model over a huge catalog (a fake control client serving 1,000,000 virtual images):
only the pages scrolled to are fetched and held, and the event loop is never blocked for long."""

from __future__ import annotations

import asyncio
import time

from gui.restore_view import RestoreView

TOTAL = 1_000_000


class FakeClient:
    """``images(limit, offset)`` over TOTAL virtual images, newest first, as the control API answers."""

    def __init__(self):
        self.calls: list[tuple[int, int]] = []

    async def images(self, *, limit=None, offset=0, **_filters):
        self.calls.append((offset, limit))
        await asyncio.sleep(0.001)
        end = min(TOTAL, offset + (limit or TOTAL))
        return [{"backup_id": f"vm_{TOTAL - i}", "database": "bigdb", "type": "D" if i % 7 == 0 else "T",
                 "backup_time": "2026-11-25T02:00:00+00:00", "backup_time_unix": 1.8e9 - i * 60,
                 "kbytes": 1000 + i % 100, "stripe_count": 4, "stripes": [], "policy": "Sybase_ASE",
                 "schedule": "Default-Application-Backup", "expiration": None, "keyword": None,
                 "compression": 0, "verify_status": None}
                for i in range(offset, end)]


class FakeLink:
    is_connected = True

    def __init__(self):
        self.client = FakeClient()


def test_a_million_images_page_lazily_without_blocking_the_loop(loop, qtbot):
    link = FakeLink()
    view = RestoreView(link, page=500)
    qtbot.addWidget(view)
    view.resize(1000, 600)
    view.show()
    gaps = []

    async def watch():
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    watcher = asyncio.ensure_future(watch())
    loop.run_until_complete(asyncio.wait_for(view.start(), 30))
    model = view.model
    first = model.rowCount()
    assert 0 < first < 5000 and not model.exhausted
    bar = view.table.verticalScrollBar()
    for _ in range(40):                       # 40 scrolls to the bottom: the view asks for more each time
        view.table.scrollToBottom()
        bar.setValue(bar.maximum())
        loop.run_until_complete(asyncio.sleep(0.02))
        loop.run_until_complete(model.wait_idle())
    watcher.cancel()
    loop.run_until_complete(asyncio.gather(watcher, return_exceptions=True))
    held = model.rowCount()
    assert first < held <= 60 * 500                 # more than the first page, far from everything
    assert held == len(link.client.calls) * 500     # exactly the pages asked for, none skipped or repeated
    assert [o for o, _ in link.client.calls] == list(range(0, held, 500))
    assert model.image(held - 1)["backup_id"] == f"vm_{TOTAL - held + 1}"
    worst = max(gaps)
    # The 100 ms goal is printed, not asserted: timings on a shared 2-core machine are noise (the benchmark
    # issue holds timing targets). Loading pages synchronously would block for seconds: that is what fails.
    print(f"\nevent-loop gaps while paging 1,000,000 images: max {worst * 1000:.0f} ms "
          f"(goal < 100 ms), {sum(g > 0.1 for g in gaps)} of {len(gaps)} over 100 ms")
    assert worst < 1.0, f"the event loop was blocked for {worst * 1000:.0f} ms"
    loop.run_until_complete(view.aclose())
