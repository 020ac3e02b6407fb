"""Helpers for the Task Progress tests: synthetic job events, a qasync loop per test,
a link to a real `sybar serve`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import qasync

from engine.control.client import ControlClient


def started(job_id, parent_id=None, type_="backup", stripe=None, database="mydb", **extra):
    job = {"job_id": job_id, "parent_id": parent_id, "type": type_, "state": "active", "status": None,
           "database": database, "stripe": stripe, "object_name": None, "script": None,
           "started": time.time(), "ended": None, "bytes_done": 0, "bytes_expected": None, "message": None}
    job.update(extra)
    return {"event": "job_started", "job": job}


def progress(job_id, parent_id, stripe, done, expected, rate=1e6, eta=None):
    return {"event": "job_progress", "job_id": job_id, "parent_id": parent_id, "stripe": stripe,
            "bytes_done": done, "bytes_expected": expected, "rate": rate, "eta_s": eta}


def ended(job_id, parent_id=None, status=0, message=""):
    return {"event": "job_ended", "job_id": job_id, "parent_id": parent_id, "status": status, "message": message}


def log_line(job_id, line, t=None):
    return {"event": "job_log", "job_id": job_id, "time": t or time.time(), "line": line}


def new_loop(qapp) -> qasync.QEventLoop:
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    return loop


def close_loop(loop) -> None:
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        loop.run_until_complete(asyncio.gather(*pending, asyncio.sleep(0), return_exceptions=True))
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def control_client(home: Path) -> ControlClient:
    state = json.loads((home / "control.json").read_text())
    return ControlClient(state["url"], (home / "control.token").read_text().strip())


class Link:
    """What ProgressView needs of the app's EngineLink: a ControlClient as .client."""

    def __init__(self, client):
        self.client = client

    async def run_blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def backup_script_for(served, name: str, size_mb: int, *, compression: int = 101, folder: Path | None = None) -> Path:
    """The sample backup script, for database `name` (made here, size_mb of demo data)."""
    from engine.dataserver.demo_data import fill_demo_database

    r = served.sybar_isql(f"create database {name}\ngo\n")
    assert "Msg" not in r.stdout or "already exists" in r.stdout, r.stdout
    if "already exists" not in r.stdout:
        fill_demo_database(served.db_file(name), size_mb)
    folder = folder or served.home / "scripts"
    script = folder / f"sybase_{name}_backup"
    sample = served.home / "scripts" / "sybase_mydb_backup"
    script.write_text(sample.read_text().replace("sybase_mydb_backup", f"sybase_{name}_backup")
                      .replace("mydb", name))
    script.chmod(0o700)
    (folder / f"sybase_{name}_backup.sql").write_text(
        (served.home / "scripts" / "sybase_mydb_backup.sql").read_text()
        .replace("dump database mydb", f"dump database {name}")
        .replace("compression = 101", f"compression = {compression}"))
    return script


async def wait_for(predicate, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
