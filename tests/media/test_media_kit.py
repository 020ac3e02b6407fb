"""Helpers shared by the media tests (this module holds no tests).

A media server on its own event loop thread (in-process) or as a real
`python -m engine.media` process, synthetic stripe streams of any size, and
the Backup Server test helpers (a real SQLite database, per-table digests).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.backupserver import dumpformat as fmt
from engine.media.server import MediaLimits, MediaServer
from engine.storage import DiskStorageUnit

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "backupserver"))

from bs_util import digest_tables, make_db  # noqa: E402

__all__ = ["digest_tables", "make_db"]

SECRET = bytes(range(32))


class MediaThread:
    """An in-process media server on an event loop of its own thread."""

    def __init__(self, units: dict, secret: bytes = SECRET, limits: MediaLimits | None = None):
        self.units = units
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="media-loop", daemon=True)
        self.thread.start()
        self.media: MediaServer = self.call(self._start(units, secret, limits))
        self.host, self.port = self.media.address

    async def _start(self, units, secret, limits) -> MediaServer:
        m = MediaServer(units, secret, limits=limits)
        await m.start("127.0.0.1", 0)
        return m

    def call(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.call(self.media.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def disk_units(root: Path, *names: str) -> dict[str, DiskStorageUnit]:
    return {n: DiskStorageUnit(n, root / n) for n in names}


def temp_files(unit_path: Path) -> list[str]:
    inc = unit_path / ".incoming"
    return sorted(os.listdir(inc)) if inc.exists() else []


def objects(unit_path: Path) -> list[str]:
    return sorted(n for n in os.listdir(unit_path) if not n.startswith(".")) if unit_path.exists() else []


def wait_until(pred, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stripe_stream(mb: float, *, page_size: int = 4096, random_blocks: bool = True) -> Iterator[bytes]:
    """One complete stripe of about `mb` megabytes (a one-stripe dump), frame by frame.

    The same random 1 MiB is reused for every block: cheap to make, incompressible.
    """
    pages = max(1, int(mb * 1e6) // page_size)
    header = fmt.StripeHeader(
        server="SYBAR",
        database="big",
        dump_type="D",
        dump_id=uuid.uuid4().hex,
        stripe=0,
        stripes=1,
        page_size=page_size,
        page_count=pages,
        stripe_first_page=0,
        stripe_page_count=pages,
        created=_dt.datetime.now(_dt.UTC).isoformat(),
        compression=None,
    )
    enc = fmt.StripeEncoder(header)
    yield enc.header()
    per = fmt.BLOCK_TARGET // page_size
    block = os.urandom(per * page_size) if random_blocks else bytes(per * page_size)
    page = 0
    while page < pages:
        k = min(per, pages - page)
        yield enc.block(page, block[: k * page_size])
        page += k
    yield enc.trailer(fmt.dump_digest(enc.block_hashes))


def stripe_bytes(mb: float) -> bytes:
    return b"".join(stripe_stream(mb))


# -- the media server as a process ----------------------------------------------------------


@dataclass
class MediaProcess:
    proc: subprocess.Popen
    home: Path
    units: dict[str, Path]
    host: str
    port: int
    line: str

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return self.proc.returncode

    def stderr(self) -> str:
        self.stop()
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def status(self, key: str) -> int:
        """A /proc/PID/status field in kB (VmRSS, VmHWM)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)


def start_media_process(home: Path, units: dict[str, Path], listen: str = "127.0.0.1:0") -> MediaProcess:
    args = [sys.executable, "-m", "engine.media", "--home", str(home), "--listen", listen]
    for n, p in units.items():
        args += ["--unit", f"{n}={p}"]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"listening on (\S+):(\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError(
            f"media server did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        )
    return MediaProcess(proc, home, units, m[1], int(m[2]), line)
