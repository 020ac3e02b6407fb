"""Helpers of the WORM tests: a home with a WORM storage unit, dumps through sybackup::, file checks."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from pathlib import Path

from sybar_testkit import Served, start_serve, sybar

from engine.control.client import connect_home
from engine.home import Home

BRIEF_SECONDS = 8

WORM_TOML = f"""
[policies.Locked]
type = "Sybase"
storage_unit = "worm1"

[policies.Locked.schedules.Default-Application-Backup]
type = "application_backup"
retention = "1 hours"

[policies.Brief]
type = "Sybase"
storage_unit = "worm1"

[policies.Brief.schedules.Default-Application-Backup]
type = "application_backup"
retention = "{BRIEF_SECONDS} seconds"

[storage_units.worm1]
type = "disk"
path = "storage/worm1"
worm = true
"""


def start_worm_home(home: Path, toml: str) -> Served:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / "sybar.toml").write_text(toml)
    (home / "sybar.toml").chmod(0o600)
    return start_serve(home)


def make_database(served: Served, name: str) -> None:
    rows = "".join(f"insert into t values ({i}, 'row {i}')\n" for i in range(200))
    r = served.fisql(f"create database {name}\ngo\nuse {name}\ngo\ncreate table t(id int, s varchar(40))\ngo\n"
                     + rows + "go\n")
    assert "Msg" not in r.stdout, r.stdout + r.stderr


def api(served: Served, call):
    """Run call(control client) against the daemon (the control API, in this process: no CLI start-up)."""

    async def go():
        client = await connect_home(Home.resolve(served.home), start=False)
        try:
            return await call(client)
        finally:
            await client.close()

    return asyncio.run(go())


def dump(served: Served, database: str, policy: str, stripes: int = 1) -> dict:
    """dump database through sybackup:: with a policy; returns the new image."""
    before = {i["backup_id"] for i in api(served, lambda c: c.images(database=database))}
    dev = f'"sybackup::-POL {policy}"'
    devs = f"to {dev}" + "".join(f" stripe on {dev}" for _ in range(stripes - 1))
    r = served.fisql(f"dump database {database} {devs}\ngo\n")
    assert "DUMP is complete" in r.stdout, r.stdout + r.stderr
    new = [i for i in api(served, lambda c: c.images(database=database)) if i["backup_id"] not in before]
    assert len(new) == 1, new
    return new[0]


def image(served: Served, backup_id: str) -> dict | None:
    from engine.jobs.status import StatusError

    try:
        return api(served, lambda c: c.image(backup_id))
    except StatusError as e:
        if e.status == 227:
            return None
        raise


def unit_dir(served: Served, unit: str = "worm1") -> Path:
    return served.home / "storage" / unit


def lock_record(served: Served, name: str, unit: str = "worm1") -> dict:
    path = unit_dir(served, unit) / ".locks" / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return json.loads(path.read_text())


def refused(r, status: int, *words: str) -> str:
    """The CLI failed with this NetBackup status and a sentence holding every word."""
    text = r.stdout + r.stderr
    assert r.returncode == status, (r.returncode, text)
    for w in words:
        assert w in text, (w, text)
    return text


def cli(served: Served, *args):
    return sybar(served.home, *args)


def wait_until(t: float) -> None:
    while time.time() < t:
        time.sleep(min(0.2, max(0.0, t - time.time())))
