"""A disk storage unit's WORM locks on their own: the unit keeps its lock records and
enforces them whatever a catalog says."""

from __future__ import annotations

import asyncio
import json
import stat
import time

import pytest

from engine.jobs.status import StatusError
from engine.storage.disk import DiskStorageUnit


async def _store(unit: DiskStorageUnit, name: str, data: bytes = b"stripe bytes") -> None:
    w = await unit.create(name)
    await w.write(data)
    await w.commit()


def _status(coro) -> StatusError:
    with pytest.raises(StatusError) as e:
        asyncio.run(coro)
    return e.value


def test_lock_extend_refuse_then_remove_after_the_unlock_time(tmp_path):
    unit = DiskStorageUnit("w1", tmp_path / "w1")
    name = "SYBAR.db.D.0.1.25-11-2026.10:00:00"
    asyncio.run(_store(unit, name))
    until = time.time() + 1.0
    assert asyncio.run(unit.lock(name, until)) == until
    record = tmp_path / "w1" / ".locks" / name
    assert stat.S_IMODE(record.stat().st_mode) == 0o600 and json.loads(record.read_text())["unlock_time"] == until
    assert stat.S_IMODE((tmp_path / "w1" / name).stat().st_mode) == 0o400
    assert asyncio.run(unit.stat(name)).locked_until == until

    e = _status(unit.remove(name))
    assert e.status == 88 and name in str(e) and "cannot be removed" in str(e)
    e = _status(unit.create(name))
    assert e.status == 88 and "cannot be overwritten" in str(e)
    e = _status(unit.lock(name, until - 1))
    assert e.status == 88 and "cannot be shortened" in str(e)
    assert asyncio.run(unit.lock(name, until + 0.5)) == until + 0.5  # extending is allowed
    assert asyncio.run(unit.lock(name, until + 0.5)) == until + 0.5  # the same time again changes nothing
    assert _status(unit.lock(name, until)).status == 88  # the old time is now a shortening
    while time.time() < until + 0.6:
        time.sleep(0.05)
    assert asyncio.run(unit.remove(name)) is True
    assert not (tmp_path / "w1" / name).exists() and not record.exists()


def test_an_unreadable_lock_record_keeps_the_object_locked(tmp_path):
    unit = DiskStorageUnit("w1", tmp_path / "w1")
    name = "SYBAR.db.D.0.2.25-11-2026.10:00:00"
    asyncio.run(_store(unit, name))
    asyncio.run(unit.lock(name, time.time() - 10))  # an expired lock
    (tmp_path / "w1" / ".locks" / name).write_text("not json")
    e = _status(unit.remove(name))
    assert e.status == 88 and "cannot be read" in str(e)
    assert (tmp_path / "w1" / name).exists()
