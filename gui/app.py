"""`sybar gui` (and bare `sybar`): the Backup, Archive, and Restore window on a qasync loop."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys

from engine.home import Home


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sybar gui", description="sybar's Backup, Archive, and Restore window")
    p.add_argument("--home", help="the sybar home (default: $SYBAR_HOME or the platform's data folder)")
    p.add_argument("--screenshot", metavar="OUT.png", help="render the window to a PNG and exit")
    p.add_argument("--view", choices=("backup", "restore", "progress"), default="backup",
                   help="the view to show (default: backup)")
    p.add_argument("--select", metavar="FILE", help="with --screenshot: the script to preview in Select for Backup")
    p.add_argument("--settle", type=float, default=1.5, help="with --screenshot: seconds to let the view fill in")
    p.add_argument("--dialog", choices=("restore",),
                   help="with --screenshot --view restore: open the Restore dialog for the newest full dump, "
                        "preview its plan and save the dialog")
    return p.parse_args(argv)


def make_app(argv: list[str] | None = None):
    """The QApplication (Qt 6: high DPI by default; the desktop's own palette and style)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(["sybar", *(argv or [])])
    app.setApplicationName("sybar")
    app.setApplicationDisplayName("sybar")
    app.setOrganizationName("sybar")
    app.setDesktopFileName("io.github.sybar.Sybar")   # resources/io.github.sybar.Sybar.desktop (packaging/)
    return app


def sybar_icon():
    """The application icon (resources/icons/sybar.svg and its PNG sizes), or None without it."""
    from PySide6.QtGui import QIcon

    from gui.script_model import ICONS

    icon = QIcon()
    for png in sorted(ICONS.glob("sybar-*.png")):
        icon.addFile(str(png))
    if (ICONS / "sybar.svg").is_file():
        icon.addFile(str(ICONS / "sybar.svg"))
    return None if icon.isNull() else icon


class MainThreadGC:
    """Python's cyclic GC only on the UI thread (as Anki does).

    Left automatic, a collection can start on an executor thread (keyring, TDS, file analysis)
    and free Qt objects there; a QObject deleted off its thread leaves its timers registered
    and the next one to fire calls into freed memory.
    """

    def __init__(self, app, interval_ms: int = 5000):
        from PySide6.QtCore import QTimer

        gc.disable()
        self.timer = QTimer(app)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.collect)
        self.timer.start()

    def collect(self) -> None:
        gc.collect()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gui"]:   # `sybar gui ...` handed over whole
        argv = argv[1:]
    args = parse_args(argv)
    import qasync

    from gui.main_window import MainWindow, app_icon

    app = make_app()
    app.setWindowIcon(sybar_icon() or app_icon())
    app._sybar_gc = MainThreadGC(app)
    home = Home.resolve(args.home)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = MainWindow(home)
    if args.screenshot:
        from gui import screenshot

        async def shoot() -> int:
            await window.start()
            out = await screenshot.take(window, args.screenshot, args.view, settle_s=args.settle,
                                        select=args.select, dialog=args.dialog)
            print(f"sybar gui: wrote {out}")
            return 0

        try:
            return loop.run_until_complete(shoot())
        finally:
            window.quitting = True
            loop.run_until_complete(window.aclose())
            window.close()
            loop.close()

    closed = asyncio.Event()
    window.closed.connect(closed.set)
    app.aboutToQuit.connect(closed.set)
    app.setQuitOnLastWindowClosed(window.tray is None)

    async def run() -> int:
        window.show()
        window.spawn(window.start())
        await closed.wait()
        await window.aclose()
        return 0

    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
