"""The daemon's side of the media server role: a child process it starts and restarts.

The media server runs in its own process (``python -m engine.media``), so a
crash or a kill there ends the stripes it was moving but never the daemon,
the catalog or other jobs; the next backup gets a fresh media server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re

from engine.frozen import module_command
from engine.home import Home
from engine.jobs.status import CANT_CONNECT, StatusError

log = logging.getLogger(__name__)


class MediaSupervisor:
    def __init__(self, home: Home, units: dict[str, str], host: str = "127.0.0.1", on_start=None, port: int = 0):
        self.home = home
        self.on_start = on_start      # called with the new address after every (re)start
        self.units = units  # storage unit name -> path
        self.host = host
        self.port = port    # 0: a free port each (re)start; off loopback it speaks TLS (engine/media/main.py)
        self.proc: asyncio.subprocess.Process | None = None
        self.address: tuple[str, int] | None = None
        self._lock = asyncio.Lock()
        self._stderr_task: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.returncode is None else None

    async def ensure_running(self) -> tuple[str, int]:
        async with self._lock:
            if self.proc is not None and self.proc.returncode is None and self.address:
                return self.address
            if self.proc is not None:
                log.warning(
                    "media server (pid %s) ended with status %s; starting a new one",
                    self.proc.pid,
                    self.proc.returncode,
                )
            return await self._start()

    async def _start(self) -> tuple[str, int]:
        args = [
            *module_command("engine.media"),   # `python -m engine.media`, or the bundle's own executable
            "--home",
            str(self.home.root),
            "--listen",
            f"{self.host}:{self.port}",
            "--parent-pid",             # a daemon killed with -9 must not leave its media server behind
            str(os.getpid()),
        ]
        for name, path in self.units.items():
            args += ["--unit", f"{name}={path}"]
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            line = await asyncio.wait_for(self._listening_line(), 30)
        except (TimeoutError, StatusError):
            err = b""
            with contextlib.suppress(Exception):
                self.proc.kill()
                err = await asyncio.wait_for(self.proc.stderr.read(), 5)
            raise StatusError(
                CANT_CONNECT,
                "the media server did not start: "
                + (err.decode(errors="replace").strip()[-300:] or "no output"),
            ) from None
        m = re.search(r"listening on (\S+):(\d+)", line)
        self.address = (m.group(1), int(m.group(2)))
        self._stderr_task = asyncio.create_task(self._log_stderr(self.proc))
        log.info("media server pid %s listening on %s:%s", self.proc.pid, *self.address)
        if self.on_start is not None:
            self.on_start(self.address)
        return self.address

    async def _listening_line(self) -> str:
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                raise StatusError(CANT_CONNECT, "media server exited")
            line = raw.decode(errors="replace")
            if "listening on" in line:
                return line

    async def _log_stderr(self, proc) -> None:
        async def drain(stream):
            while True:
                raw = await stream.readline()
                if not raw:
                    return
                line = raw.decode(errors="replace").rstrip()
                # the media server logs with its own levels: keep them (its INFO is not our WARNING)
                level = next((lv for name, lv in (("ERROR", logging.ERROR), ("WARNING", logging.WARNING))
                              if f" {name} " in line), logging.INFO)
                log.log(level, "media: %s", line)

        await asyncio.gather(drain(proc.stdout), drain(proc.stderr))

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._stderr_task:
            self._stderr_task.cancel()
