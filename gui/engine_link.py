"""The window's one link to the engine daemon: the control API client, on the qasync loop.

Every engine call is a coroutine awaited on the qasync loop; blocking calls
(the OS keyring, a TDS login test, reading files) go through ``run_blocking``,
which runs them in the loop's default executor so the UI thread never waits.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.control.client import ControlClient, connect_home
from engine.home import Home
from engine.jobs.status import CANT_CONNECT, StatusError


async def run_blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in the running loop's executor (off the UI thread)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


class EngineLink(QObject):
    """The home's daemon as the window sees it: ``client``, ``status``, messages."""

    message = Signal(str)          # a line for the status bar
    connected = Signal(dict)       # the daemon's status, once connected
    disconnected = Signal(str)     # why the link was lost

    def __init__(self, home: Home, parent: QObject | None = None):
        super().__init__(parent)
        self.home = home
        self._client: ControlClient | None = None
        self.status: dict = {}
        self.started_daemon = False

    @property
    def client(self) -> ControlClient:
        if self._client is None:
            raise StatusError(CANT_CONNECT, "not connected to the sybar daemon yet")
        return self._client

    @property
    def is_connected(self) -> bool:
        return self._client is not None

    async def connect(self, *, start: bool = True) -> dict:
        """Find the home's daemon, or start one detached (and say so)."""
        try:
            self._client = await connect_home(self.home, start=False)
        except StatusError:
            if not start:
                raise
            self.message.emit(f"No sybar daemon was running for {self.home.root}; starting `sybar serve` …")
            self._client = await connect_home(self.home, start=True)
            self.started_daemon = True
        self.status = await self._client.status()
        if self.started_daemon:
            self.message.emit(f"Started the sybar daemon for {self.home.root} (pid {self.status.get('pid')}); "
                              "it keeps running when this window closes.")
        else:
            self.message.emit(f"Connected to the sybar daemon (pid {self.status.get('pid')}).")
        self.connected.emit(self.status)
        return self.status

    async def refresh_status(self) -> dict:
        self.status = await self.client.status()
        return self.status

    async def events(self, job_id: int | None = None):
        """The daemon's job events (the first one is ``{"event": "connected"}``)."""
        async for event in self.client.events(job_id):
            yield event

    async def run_blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_blocking(fn, *args, **kwargs)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
