"""`sybar expire`: an image goes when its expiration has passed (a WORM image only
after its unlock time), objects and catalog record together, and `sybar cleanup`
finds nothing left behind."""

from __future__ import annotations

import json
import time

from worm_kit import BRIEF_SECONDS, api, cli, dump, image, lock_record, refused, unit_dir, wait_until


def test_expire_removes_what_is_due_and_nothing_locked(worm_served):
    plain = dump(worm_served, "wdb", "Sybase_ASE")  # two weeks, not WORM
    brief = dump(worm_served, "wdb", "Brief")  # WORM, unlocks a few seconds from its backup time
    assert brief["worm"] and brief["unlock_time_unix"] == brief["expiration_unix"]
    assert brief["expiration_unix"] - brief["backup_time_unix"] == BRIEF_SECONDS
    brief_obj = brief["stripes"][0]["name"]
    plain_obj = plain["stripes"][0]["name"]
    assert lock_record(worm_served, brief_obj)["unlock_time"] == brief["unlock_time_unix"]

    # a plain image's expiration may be moved anywhere, here into the past (bpexpdate -d)
    past = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 60))
    moved = api(worm_served, lambda c: c.set_expiration(plain["backup_id"], past))
    assert moved["expiration_unix"] < time.time()

    # before the WORM image unlocks: expire takes the plain image only; deleting the WORM one is refused
    assert time.time() < brief["unlock_time_unix"], "the dumps took longer than the brief retention"
    first = api(worm_served, lambda c: c.expire())
    assert plain["backup_id"] in first["expired"] and brief["backup_id"] not in first["expired"]
    assert plain_obj in first["objects"] and first["refused"] == []
    assert image(worm_served, plain["backup_id"]) is None
    assert not (unit_dir(worm_served, "disk1") / plain_obj).exists()
    if time.time() < brief["unlock_time_unix"] - 1:
        refused(cli(worm_served, "expire", "--image", brief["backup_id"], "--now"), 88, "locked until")
    assert (unit_dir(worm_served) / brief_obj).exists()

    # after the unlock time: `sybar expire` removes it, objects and lock records too
    wait_until(brief["unlock_time_unix"] + 0.2)
    r = cli(worm_served, "expire", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert brief["backup_id"] in result["expired"] and brief_obj in result["objects"], result
    assert image(worm_served, brief["backup_id"]) is None
    assert not (unit_dir(worm_served) / brief_obj).exists()
    assert not (unit_dir(worm_served) / ".locks" / brief_obj).exists()

    # nothing orphaned: cleanup has nothing to remove
    left = api(worm_served, lambda c: c.cleanup())
    assert left["objects"] == [] and left["images"] == [] and left["kept"] == [], left
    check = api(worm_served, lambda c: c.catalog_check())
    assert check["ok"], check
