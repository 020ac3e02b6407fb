"""WORM: an image on a WORM storage unit cannot be deleted, overwritten or have its
expiration shortened before its unlock time, through the CLI, the control API,
the media server or the storage unit itself; extending is allowed; plain images
can be deleted."""

from __future__ import annotations

import asyncio
import stat
import time

import pytest
from worm_kit import api, cli, dump, image, lock_record, refused, unit_dir

from engine.archive.client import MediaClient
from engine.home import Home
from engine.jobs.status import StatusError
from engine.storage.disk import DiskStorageUnit


@pytest.fixture(scope="module")
def locked(worm_served):
    return dump(worm_served, "wdb", "Locked", stripes=2)


def _media(served) -> MediaClient:
    import json

    state = json.loads((served.home / "control.json").read_text())
    host, port = state["media"].rsplit(":", 1)
    return MediaClient.for_home(Home.resolve(served.home), host, int(port))


def test_a_worm_image_carries_its_unlock_time_in_the_catalog_and_on_the_unit(worm_served, locked):
    assert locked["worm"] is True and locked["storage_unit"] == "worm1"
    assert locked["unlock_time_unix"] == locked["expiration_unix"]
    assert 3500 < locked["expiration_unix"] - time.time() <= 3600
    assert len(locked["stripes"]) == 2
    for obj in locked["stripes"]:
        assert obj["unlock_time_unix"] == locked["unlock_time_unix"]  # each fragment record carries it
        path = unit_dir(worm_served) / obj["name"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o400  # read-only once locked
        record = lock_record(worm_served, obj["name"])
        assert record["object"] == obj["name"] and record["unlock_time"] == locked["unlock_time_unix"]


def test_delete_is_refused_through_the_cli_and_the_control_api(worm_served, locked):
    bid = locked["backup_id"]
    refused(cli(worm_served, "expire", "--image", bid, "--now"), 88, bid, "WORM", "locked until")
    with pytest.raises(StatusError) as e:
        api(worm_served, lambda c: c.expire_image(bid))
    assert e.value.status == 88 and bid in str(e.value)
    assert image(worm_served, bid) is not None
    for obj in locked["stripes"]:
        assert (unit_dir(worm_served) / obj["name"]).exists()


def test_shortening_is_refused_and_extending_is_accepted(worm_served, locked):
    bid = locked["backup_id"]
    sooner = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(locked["expiration_unix"] - 600))
    refused(cli(worm_served, "expire", "--image", bid, "--until", sooner), 88, bid, "only be extended")
    with pytest.raises(StatusError) as e:
        api(worm_served, lambda c: c.set_expiration(bid, locked["expiration_unix"] - 1))
    assert e.value.status == 88
    assert image(worm_served, bid)["expiration_unix"] == locked["expiration_unix"]

    later = int(locked["expiration_unix"]) + 86400
    later_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(later))
    r = cli(worm_served, "expire", "--image", bid, "--until", later_text, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    now = image(worm_served, bid)
    assert now["expiration_unix"] == later and now["unlock_time_unix"] == later
    assert all(o["unlock_time_unix"] == later for o in now["stripes"])
    for obj in locked["stripes"]:  # the storage unit's own locks were extended with it
        assert lock_record(worm_served, obj["name"])["unlock_time"] == later
    # and the extension is sealed legitimately: the catalog still checks out
    check = api(worm_served, lambda c: c.catalog_check())
    assert check["ok"] and check["problems"] == [], check


def test_the_media_server_and_the_storage_unit_refuse_on_their_own(worm_served, locked):
    name = locked["stripes"][0]["name"]
    media = _media(worm_served)
    with pytest.raises(StatusError) as e:
        media.remove(name, "worm1")
    assert e.value.status == 88 and name in str(e.value) and "locked until" in str(e.value)
    info = media.stat(name, "worm1")
    assert info is not None and info.locked_until is not None and info.locked_until > time.time() + 3000

    unit = DiskStorageUnit("worm1", unit_dir(worm_served))

    async def direct():
        with pytest.raises(StatusError) as rm:
            await unit.remove(name)
        with pytest.raises(StatusError) as over:
            await unit.create(name)
        with pytest.raises(StatusError) as shorter:
            await unit.lock(name, time.time() + 60)
        return rm.value, over.value, shorter.value

    rm, over, shorter = asyncio.run(direct())
    assert rm.status == over.status == shorter.status == 88
    assert "cannot be removed" in str(rm) and "cannot be overwritten" in str(over)
    assert (unit_dir(worm_served) / name).exists()


def test_a_plain_image_can_be_deleted(worm_served):
    plain = dump(worm_served, "wdb", "Sybase_ASE")
    assert plain["worm"] is False and plain["unlock_time_unix"] is None
    name = plain["stripes"][0]["name"]
    assert (unit_dir(worm_served, "disk1") / name).exists()
    r = api(worm_served, lambda c: c.expire_image(plain["backup_id"]))
    assert r["expired"] == [plain["backup_id"]] and r["objects"] == [name]
    assert image(worm_served, plain["backup_id"]) is None
    assert not (unit_dir(worm_served, "disk1") / name).exists()
