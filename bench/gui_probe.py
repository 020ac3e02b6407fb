"""The GUI cases' child process: python -m bench.gui_probe {stall,launch} --home HOME ...

Runs the real window (gui.main_window.MainWindow, offscreen) on the bench's home, connected to its
running daemon, and prints one line `GUI-PROBE {json}` with what it measured. The bench process
itself never imports Qt: it starts this module and reads that line.

stall  --script S   Task Progress shown, a backup of script S started through the control API, and
                    the event loop's turns recorded for the whole backup: a coroutine sleeping 5 ms
                    notes the wall gap between its turns and the main thread's CPU time in that gap.
launch --t0 T       Timestamps (time.monotonic(), the system-wide CLOCK_MONOTONIC, so comparable
                    with the parent's T taken just before it spawned this process) of: Qt and the
                    window's modules imported, the window built, its first show event, its first
                    paint, window.start() returned (daemon connected, Task Progress' job list and
                    Select for Restore's first page loaded), and the first paint of the window after
                    that ("shown": the window on screen with its data).
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any Qt import

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

MARK = "GUI-PROBE "
INTERVAL_S = 0.005


class LoopWatch:
    """Turns of the loop: wall time and the main thread's CPU time between consecutive ones (ms)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        last_wall, last_cpu = time.monotonic(), time.thread_time()
        while True:
            await asyncio.sleep(INTERVAL_S)
            wall, cpu = time.monotonic(), time.thread_time()
            self.wall.append((wall - last_wall) * 1000)
            self.cpu.append((cpu - last_cpu) * 1000)
            last_wall, last_cpu = wall, cpu

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def emit(data: dict) -> None:
    sys.stdout.write(MARK + json.dumps(data) + "\n")
    sys.stdout.flush()


async def wait_until(pred, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(step)


def stall(home_dir: str, script: str, timeout: float) -> dict:
    import qasync

    from engine.home import Home
    from gui.app import MainThreadGC, make_app
    from gui.main_window import MainWindow

    app = make_app()
    app._sybar_gc = MainThreadGC(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = MainWindow(Home.resolve(home_dir))
    window.quitting = True

    async def scenario() -> dict:
        window.show()
        await asyncio.wait_for(window.start(), 120)
        if not window.link.is_connected:
            raise RuntimeError(f"the window did not connect to the daemon of {home_dir}")
        window.show_view("progress")
        view = window.progress_view
        await asyncio.sleep(0.3)  # let the view settle before sampling
        watch = LoopWatch()
        t0 = time.monotonic()
        [parent] = await window.link.client.backup([script])
        await wait_until(lambda: view.model.job(parent) is not None, 60, "the job to show in Task Progress")
        view.select_job(parent)
        await wait_until(lambda: not view.model.job(parent).active, timeout, "the backup to end", step=0.1)
        duration = time.monotonic() - t0
        await watch.stop()
        job = await window.link.client.job(parent)
        kids = await window.link.client.jobs(parent=parent, limit=100)
        stripes = [k for k in kids if k.get("type") == "stripe"]
        return {"wall_ms": watch.wall, "cpu_ms": watch.cpu, "duration_s": duration, "job": parent,
                "status": job.get("status"), "message": job.get("message"), "stripes": len(stripes),
                "events_seen": view.events_seen}

    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.run_until_complete(window.aclose())
        window.close()


def launch(home_dir: str, t0: float) -> dict:
    marks: dict[str, float] = {"t0": t0, "process": time.monotonic()}
    import qasync
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QWidget

    from engine.home import Home
    from gui.app import MainThreadGC, make_app, sybar_icon
    from gui.main_window import MainWindow, app_icon

    marks["imported"] = time.monotonic()

    # as gui/app.py's main() does it
    app = make_app()
    app.setWindowIcon(sybar_icon() or app_icon())
    app._sybar_gc = MainThreadGC(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = MainWindow(Home.resolve(home_dir))
    window.quitting = True
    marks["built"] = time.monotonic()
    shown = asyncio.Event()

    class Watch(QObject):
        """The window's first show event and paints (its own or any widget inside it)."""

        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            kind = event.type()
            if kind == QEvent.Type.Show and obj is window and "first_show" not in marks:
                marks["first_show"] = time.monotonic()
            elif kind == QEvent.Type.Paint and isinstance(obj, QWidget) and obj.window() is window:
                now = time.monotonic()
                marks.setdefault("first_paint", now)
                if "data" in marks and "shown" not in marks:
                    marks["shown"] = now
                    shown.set()
            return False

    watch = Watch()
    app.installEventFilter(watch)

    async def run() -> None:
        window.show()
        await asyncio.wait_for(window.start(), 120)
        if not window.link.is_connected:
            raise RuntimeError(f"the window did not connect to the daemon of {home_dir}")
        marks["data"] = time.monotonic()
        window.update()  # the frame with the data: painted on the loop's next turn
        await asyncio.wait_for(shown.wait(), 30)

    try:
        loop.run_until_complete(run())
    finally:
        app.removeEventFilter(watch)
        loop.run_until_complete(window.aclose())
        window.close()
    return {"marks": marks, "since_t0_s": {k: v - t0 for k, v in marks.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gui_probe")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stall")
    s.add_argument("--home", required=True)
    s.add_argument("--script", required=True)
    s.add_argument("--timeout", type=float, default=1800)
    la = sub.add_parser("launch")
    la.add_argument("--home", required=True)
    la.add_argument("--t0", type=float, required=True)
    a = p.parse_args(argv)
    try:
        data = stall(a.home, a.script, a.timeout) if a.cmd == "stall" else launch(a.home, a.t0)
    except Exception as e:  # noqa: BLE001 - said to the parent, which puts it in the table
        emit({"error": f"{type(e).__name__}: {e}"})
        sys.stdout.flush()
        os._exit(1)
    emit(data)
    # skip Qt's and the interpreter's teardown: it is not part of what is measured
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
