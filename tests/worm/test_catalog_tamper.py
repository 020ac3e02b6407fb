"""The tamper-evident catalog against a real daemon: records edited in catalog.db with
the sqlite3 shell are detected, named, and never delete or restore anything; the
storage unit refuses on its own when the catalog lies."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from sybar_testkit import start_serve, stop_serve
from worm_kit import WORM_TOML, api, cli, dump, make_database, refused, start_worm_home, unit_dir

from engine.archive.client import MediaClient
from engine.home import Home
from engine.jobs.status import StatusError


@pytest.fixture(scope="module")
def tampered_home(tmp_path_factory):
    served = start_worm_home(tmp_path_factory.mktemp("tamperhome"), WORM_TOML)
    state = {"served": served}
    try:
        make_database(served, "tdb")
        yield state
    finally:
        stop_serve(state["served"])


def _sql(home, sql: str) -> None:
    """The sqlite3 shell on the live catalog, as someone with the account's rights would use it."""
    r = subprocess.run(["sqlite3", str(home / "catalog.db"), sql], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def _status(call) -> StatusError:
    with pytest.raises(StatusError) as e:
        call()
    return e.value


def test_edited_records_are_detected_and_nothing_is_deleted(tampered_home):
    served = tampered_home["served"]
    home = served.home
    worm = dump(served, "tdb", "Locked")
    plain = dump(served, "tdb", "Sybase_ASE")
    other = dump(served, "tdb", "Sybase_ASE")
    assert api(served, lambda c: c.catalog_check())["ok"]
    # a plain image legitimately due: expire would take it, were the catalog intact
    api(served, lambda c: c.set_expiration(plain["backup_id"], time.time() - 30))

    # shorten the WORM image's expiration and unlock time behind sybar's back
    past = time.time() - 3600
    _sql(home, f"UPDATE images SET expiration = {past}, unlock_time = {past} WHERE backup_id = '{worm['backup_id']}';"
               f"UPDATE objects SET unlock_time = {past} WHERE backup_id = '{worm['backup_id']}';")
    # and change an object checksum of another image
    _sql(home, f"UPDATE objects SET checksum = '00000000000000000000000000000000' "
               f"WHERE backup_id = '{other['backup_id']}';")

    # deleting it: refused, and the refusal says which image and what changed
    text = refused(cli(served, "expire", "--image", worm["backup_id"], "--now"), 220, worm["backup_id"],
                   "expiration")
    assert "sealed" in text
    e = _status(lambda: api(served, lambda c: c.expire_image(worm["backup_id"])))
    assert e.status == 220 and worm["backup_id"] in str(e)
    # expire of everything due: refused as a whole, the plain due image stays too
    e = _status(lambda: api(served, lambda c: c.expire()))
    assert e.status == 220 and worm["backup_id"] in str(e)
    assert all((unit_dir(served, "worm1") / o["name"]).exists() for o in worm["stripes"])
    assert all((unit_dir(served, "disk1") / o["name"]).exists() for o in plain["stripes"])
    ids = {i["backup_id"] for i in api(served, lambda c: c.images())}
    assert {worm["backup_id"], plain["backup_id"], other["backup_id"]} <= ids
    # restoring from a tampered record: refused
    e = _status(lambda: api(served, lambda c: c.restore_plan(other["backup_id"], database="tdb_copy")))
    assert e.status == 220 and "object records" in str(e)

    # the lying catalog cannot make the storage unit give the object up
    state = json.loads((home / "control.json").read_text())
    host, port = state["media"].rsplit(":", 1)
    media = MediaClient.for_home(Home.resolve(home), host, int(port))
    e = _status(lambda: media.remove(worm["stripes"][0]["name"], "worm1"))
    assert e.status == 88 and "locked until" in str(e)
    assert (unit_dir(served) / worm["stripes"][0]["name"]).exists()

    # sybar catalog check lists both
    r = cli(served, "catalog", "check")
    assert r.returncode == 220, r.stdout + r.stderr
    assert f"image {worm['backup_id']} has its expiration changed" in r.stdout
    assert f"image {other['backup_id']} has its object records" in r.stdout


def test_a_deleted_image_row_and_an_older_copy_are_found_at_daemon_start(tampered_home):
    served = tampered_home["served"]
    home = served.home
    _sql(home, f".backup '{home / 'old-catalog.db'}'")  # a consistent copy, taken live
    victim = dump(served, "tdb", "Sybase_ASE")
    _sql(home, f"DELETE FROM objects WHERE backup_id = '{victim['backup_id']}';"
               f"DELETE FROM images WHERE backup_id = '{victim['backup_id']}';")
    stop_serve(served)
    served = tampered_home["served"] = start_serve(home)
    seal = api(served, lambda c: c.status())["catalog_seal"]
    assert not seal["ok"]
    assert any(victim["backup_id"] in p and "deleted" in p for p in seal["problems"]), seal
    # its objects now look orphaned: cleanup keeps them, as the catalog cannot be trusted
    kept = api(served, lambda c: c.cleanup())
    assert victim["stripes"][0]["name"] in kept["kept"] and kept["objects"] == []
    assert (unit_dir(served, "disk1") / victim["stripes"][0]["name"]).exists()
    e = _status(lambda: api(served, lambda c: c.expire()))
    assert e.status == 220 and victim["backup_id"] in str(e)

    # the older copy put back in place of catalog.db: its chain ends before the head the keyring recorded
    stop_serve(served)
    for suffix in ("-wal", "-shm"):
        (home / f"catalog.db{suffix}").unlink(missing_ok=True)
    (home / "old-catalog.db").replace(home / "catalog.db")
    served = tampered_home["served"] = start_serve(home)
    seal = api(served, lambda c: c.status())["catalog_seal"]
    assert any("older copy" in p for p in seal["problems"]), seal
    e = _status(lambda: api(served, lambda c: c.expire()))
    assert e.status == 220 and "older copy" in str(e)
