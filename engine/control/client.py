"""Client of the control API, for the CLI and the GUI (async, aiohttp).

``connect_home(home)`` finds the home's daemon from HOME/control.json and,
when none answers, starts one detached and says so on stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from engine.control.auth import read_token
from engine.frozen import sybar_command
from engine.home import Home
from engine.jobs.status import CANT_CONNECT, SYSTEM_ERROR, StatusError

API = "/api/v1"
STATE_FILE = "control.json"


class ControlClient:
    def __init__(self, url: str, token: str, ssl_context=None):
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._ssl = ssl_context   # an https URL: verify against the home CA (engine.tls.client_context)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
            self._session = aiohttp.ClientSession(headers=self._headers, connector=connector,
                                                  timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None) -> Any:
        try:
            async with self._http().request(method, f"{self.url}{API}{path}", json=json_body,
                                            params={k: str(v) for k, v in (params or {}).items()
                                                    if v is not None}) as resp:
                data = await resp.json(content_type=None)
        except aiohttp.ClientConnectionError as e:
            raise StatusError(CANT_CONNECT, f"can't reach the sybar daemon at {self.url}: {e}") from e
        if resp.status >= 400:
            raise StatusError(int(data.get("status", SYSTEM_ERROR)), data.get("message", f"HTTP {resp.status}"))
        return data

    # -- operations ------------------------------------------------------------
    async def status(self) -> dict:
        return await self._call("GET", "/status")

    async def backup(self, scripts: list[str], *, policy=None, schedule=None, keyword=None) -> list[int]:
        body = {"scripts": scripts, "policy": policy, "schedule": schedule, "keyword": keyword}
        return (await self._call("POST", "/backups", json_body=body))["jobs"]

    async def restore_script(self, script: str) -> int:
        return (await self._call("POST", "/restores", json_body={"script": script}))["job"]

    async def restore_image(self, backup_id: str, database: str | None = None, until: str | None = None) -> int:
        body = {"backup_id": backup_id, "database": database, "until": until}
        return (await self._call("POST", "/restores", json_body=body))["job"]

    async def restore_plan(self, backup_id: str, database: str | None = None, until: str | None = None) -> dict:
        body = {"backup_id": backup_id, "database": database, "until": until, "plan_only": True}
        return await self._call("POST", "/restores", json_body=body)

    async def images(self, **filters) -> list[dict]:
        return await self._call("GET", "/images", params=filters)

    async def image_chain(self, backup_id: str, limit: int = 200) -> dict:
        """A full dump's log chain: ``{"logs": [...], "count": n, "gaps": [...], "end_time_unix": t}``
        (the first ``limit - 1`` log dumps and the last when the chain is longer)."""
        return await self._call("GET", f"/images/{backup_id}/chain", params={"limit": limit})

    async def count_images(self, **filters) -> int:
        """How many images match the filters (as ``images`` takes them, without limit and offset)."""
        return (await self._call("GET", "/catalog/count", params=filters))["count"]

    async def facets(self) -> dict:
        """The catalog's dataservers, clients and databases: ``{"dataservers": [...], ...}``."""
        return await self._call("GET", "/catalog/facets")

    async def image(self, backup_id: str) -> dict:
        return await self._call("GET", f"/images/{backup_id}")

    async def spans(self, database: str, dataserver: str | None = None) -> list[dict]:
        """The times each full dump of a database can restore it to (oldest first)."""
        return await self._call("GET", f"/databases/{database}/spans", params={"dataserver": dataserver})

    async def verify(self, backup_id: str) -> int:
        return (await self._call("POST", f"/images/{backup_id}/verify"))["job"]

    async def jobs(self, *, active=False, parent=None, limit=100) -> list[dict]:
        return await self._call("GET", "/jobs", params={"active": "1" if active else None, "parent": parent,
                                                         "limit": limit})

    async def job(self, job_id: int) -> dict:
        return await self._call("GET", f"/jobs/{job_id}")

    async def job_log(self, job_id: int) -> list:
        return await self._call("GET", f"/jobs/{job_id}/log")

    async def cancel(self, job_id: int) -> bool:
        return (await self._call("POST", f"/jobs/{job_id}/cancel"))["cancelled"]

    async def cleanup(self) -> dict:
        return await self._call("POST", "/cleanup")

    async def expire(self) -> dict:
        """Remove every image whose expiration has passed: {expired, refused, objects}."""
        return await self._call("POST", "/expire")

    async def expire_image(self, backup_id: str) -> dict:
        """Delete one image now (refused, status 88, while it is WORM-locked)."""
        return await self._call("POST", f"/images/{backup_id}/expire")

    async def set_expiration(self, backup_id: str, until: str | float) -> dict:
        """Change one image's expiration (a WORM image's only later); returns the image."""
        return await self._call("POST", f"/images/{backup_id}/expiration", json_body={"until": until})

    async def catalog_check(self) -> dict:
        """Recompute every seal of the catalog: {ok, problems, images, entries, seconds}."""
        return await self._call("GET", "/catalog/check")

    async def events(self, job_id: int | None = None) -> AsyncIterator[dict]:
        """Job events as they happen (server-sent events), until the caller stops."""
        params = {"job": str(job_id)} if job_id is not None else {}
        try:
            async with self._http().get(f"{self.url}{API}/events", params=params) as resp:
                if resp.status >= 400:
                    data = await resp.json(content_type=None)
                    raise StatusError(int(data.get("status", SYSTEM_ERROR)), data.get("message", ""))
                async for raw in resp.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("data: "):
                        yield json.loads(line[6:])
        except aiohttp.ClientConnectionError as e:
            raise StatusError(CANT_CONNECT, f"lost the sybar daemon's event stream: {e}") from e


# -- finding (or starting) the home's daemon -------------------------------------
def read_state(home: Home) -> dict | None:
    try:
        return json.loads((home.root / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:  # kill(0) would ask about our own process group
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


async def _answering(home: Home) -> ControlClient | None:
    state = read_state(home)
    token = read_token(home)
    if not state or not token or not state.get("url") or not _alive(int(state.get("pid", 0))):
        return None
    ssl_context = None
    if str(state.get("url", "")).startswith("https:"):
        from engine.tls import client_context

        ssl_context = client_context(home)   # the home CA: a server with another certificate is refused
    client = ControlClient(state["url"], token, ssl_context)
    try:
        await client.status()
        return client
    except StatusError:
        await client.close()
        return None


def _start_daemon(home: Home) -> subprocess.Popen:
    home.ensure()
    log = open(home.logs / "serve.out", "ab")  # noqa: SIM115 - handed to the child
    os.chmod(home.logs / "serve.out", 0o600)
    state = read_state(home) or {}
    listen = state.get("dataserver", "127.0.0.1:5000")
    cmd = [*sybar_command(), "serve", "--home", str(home.root), "--listen", listen]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                            close_fds=True)


async def connect_home(home: Home, *, start: bool = True, wait_s: float = 60.0) -> ControlClient:
    client = await _answering(home)
    if client is not None or not start:
        if client is None:
            raise StatusError(CANT_CONNECT, f"no sybar daemon is running for {home.root}: start it with "
                                            f"`sybar serve --home {home.root}`")
        return client
    proc = _start_daemon(home)
    print(f"sybar: no daemon was running for {home.root}; started `sybar serve` (pid {proc.pid}, "
          f"log {home.logs / 'serve.out'})", file=sys.stderr, flush=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (home.logs / "serve.out").read_text(errors="replace").strip().splitlines()[-3:]
            raise StatusError(SYSTEM_ERROR, "sybar serve could not start: " + " / ".join(tail))
        client = await _answering(home)
        if client is not None:
            return client
        await asyncio.sleep(0.2)
    raise StatusError(CANT_CONNECT, f"sybar serve for {home.root} did not answer within {wait_s:.0f} s")
