"""Catalog images on a real SQLite file: visibility, ids, lookups, filters, leftovers."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading

import pytest

from engine.catalog.catalog import INFINITE_EXPIRATION, SCHEMA_VERSION, Catalog
from engine.jobs.status import BACKUP_FAILED, DATABASE_ERROR, NO_ENTITY, StatusError

T0 = 1_790_000_000.0  # 2026-09-21


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "home" / "catalog.db")
    yield c
    c.close()


def name(
    db: str, t: str, stripe: int, pid: int = 4242, when: str = "25-11-2026.10:00:00", server="SYBAR"
) -> str:
    return f"{server}.{db}.{t}.{stripe}.{pid}.{when}"


def backup(cat, database="mydb", dump_type="D", stripes=2, when=T0, commit=True, pid=4242, **kw):
    """A whole image with `stripes` objects, committed unless commit=False."""
    stamp = f"{int(when) % 100:02d}-11-2026.10:00:00"
    im = cat.begin_image(
        client=kw.pop("client", "dbhost"),
        dataserver=kw.pop("dataserver", "SYBAR"),
        database=database,
        dump_type=dump_type,
        stripes=stripes,
        backup_time=when,
        policy=kw.pop("policy", "Sybase_ASE"),
        schedule="Default-Application-Backup",
        schedule_type=2,
        expiration=when + 14 * 86400,
        storage_unit="disk1",
        **kw,
    )
    for s in range(stripes):
        cat.add_object(
            im.backup_id,
            stripe=s,
            name=name(database, dump_type, s, pid, stamp),
            storage_unit="disk1",
            bytes=1000 + s,
            raw_bytes=4000,
            checksum=f"{s:016x}",
        )
    return cat.commit_image(im.backup_id) if commit else cat.get_image(im.backup_id, include_pending=True)


def test_file_modes_wal_and_schema_version(tmp_path):
    path = tmp_path / "h" / "catalog.db"
    with Catalog(path) as cat:
        backup(cat)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        wal = path.with_name("catalog.db-wal")
        assert wal.exists() and stat.S_IMODE(os.stat(wal).st_mode) == 0o600
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.close()
    # reopening keeps the data and does not re-create the schema
    with Catalog(path) as cat:
        assert cat.count_images() == 1


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "catalog.db"
    Catalog(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StatusError) as e:
        Catalog(path)
    assert e.value.status == DATABASE_ERROR and "newer" in str(e.value)


def test_pending_image_is_invisible_until_commit(cat):
    im = backup(cat, stripes=3, commit=False)
    assert im.state == "pending" and im.stripes == 3 and len(im.objects) == 3
    bid = im.backup_id
    assert cat.get_image(bid) is None
    assert cat.get_image(bid, include_pending=True).state == "pending"
    assert cat.list_images() == [] and cat.count_images() == 0
    assert cat.find_dump("SYBAR.mydb.D") is None
    assert cat.find_dump(im.objects[0].name) is None
    assert cat.find_dump(bid) is None

    done = cat.commit_image(bid)
    assert done.state == "complete" and done.committed is not None
    assert done.kbytes == 3  # 1000+1001+1002 bytes, rounded up to KB
    assert [i.backup_id for i in cat.list_images()] == [bid]
    assert cat.find_dump("SYBAR.mydb.D").backup_id == bid
    # committing again is harmless
    assert cat.commit_image(bid).state == "complete"


def test_commit_with_a_missing_stripe_raises_and_stays_invisible(cat):
    im = cat.begin_image(
        client="c", dataserver="SYBAR", database="mydb", dump_type="D", stripes=4, backup_time=T0
    )
    for s in (0, 1, 3):
        cat.add_object(im.backup_id, stripe=s, name=name("mydb", "D", s), storage_unit="disk1", bytes=10)
    with pytest.raises(StatusError) as e:
        cat.commit_image(im.backup_id)
    assert e.value.status == BACKUP_FAILED
    assert "stripe 2 of 4" in str(e.value)
    assert cat.get_image(im.backup_id) is None
    assert cat.get_image(im.backup_id, include_pending=True).state == "pending"
    assert cat.list_images() == [] and cat.find_dump("SYBAR.mydb") is None

    assert cat.fail_image(im.backup_id, "stripe 2 lost") is True
    assert cat.fail_image(im.backup_id, "again") is False
    failed = cat.get_image(im.backup_id, include_pending=True)
    assert failed.state == "failed" and failed.reason == "stripe 2 lost"
    with pytest.raises(StatusError):
        cat.commit_image(im.backup_id)  # a failed image never becomes visible
    with pytest.raises(StatusError):
        cat.add_object(im.backup_id, stripe=2, name=name("mydb", "D", 2), storage_unit="disk1", bytes=1)


def test_add_object_checks(cat):
    im = cat.begin_image(
        client="c", dataserver="SYBAR", database="db", dump_type="T", stripes=2, backup_time=T0
    )
    cat.add_object(im.backup_id, stripe=0, name="SYBAR.db.T.0.1.x", storage_unit="u", bytes=1)
    with pytest.raises(StatusError, match="already has an object for stripe 0"):
        cat.add_object(im.backup_id, stripe=0, name="SYBAR.db.T.0.1.y", storage_unit="u", bytes=1)
    with pytest.raises(StatusError, match="already has an object named"):
        cat.add_object(im.backup_id, stripe=1, name="SYBAR.db.T.0.1.x", storage_unit="u", bytes=1)
    with pytest.raises(StatusError, match="not stripe 2"):
        cat.add_object(im.backup_id, stripe=2, name="SYBAR.db.T.2.1.x", storage_unit="u", bytes=1)
    with pytest.raises(StatusError) as e:
        cat.add_object("nobody_0000000001", stripe=0, name="n", storage_unit="u", bytes=1)
    assert e.value.status == NO_ENTITY
    with pytest.raises(ValueError):
        cat.begin_image(client="c", dataserver="S", database="db", dump_type="X", stripes=1)


def test_a_crash_before_commit_leaves_no_image(tmp_path):
    path = tmp_path / "catalog.db"
    cat = Catalog(path)
    im = backup(cat, commit=False)
    cat.close()  # the process "dies" here
    with Catalog(path) as again:
        assert again.list_images() == [] and again.get_image(im.backup_id) is None
        assert [i.backup_id for i in again.leftovers(older_than=T0 * 2)] == [im.backup_id]


def test_backup_ids_are_unique_and_bump_the_seconds(cat):
    assert cat.new_backup_id("dbhost", T0 + 0.7) == f"dbhost_{int(T0)}"
    a = backup(cat, when=T0)
    b = backup(cat, when=T0 + 0.5, pid=1)  # the same second
    c = backup(cat, when=T0, pid=2, commit=False)  # pending ones count too
    assert a.backup_id == f"dbhost_{int(T0)}"
    assert b.backup_id == f"dbhost_{int(T0) + 1}"
    assert c.backup_id == f"dbhost_{int(T0) + 2}"
    assert cat.new_backup_id("dbhost", T0) == f"dbhost_{int(T0) + 3}"
    assert cat.new_backup_id("other", T0) == f"other_{int(T0)}"
    assert len(f"{int(T0)}") == 10
    with pytest.raises(StatusError):
        cat.begin_image(
            backup_id=a.backup_id, client="dbhost", dataserver="S", database="d", dump_type="D", stripes=1
        )


def test_concurrent_begin_image_never_shares_an_id(cat):
    ids: list[str] = []
    lock = threading.Lock()

    def worker():
        for _ in range(20):
            im = cat.begin_image(
                client="c", dataserver="S", database="d", dump_type="D", stripes=1, backup_time=T0
            )
            with lock:
                ids.append(im.backup_id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == len(set(ids)) == 80


def test_find_dump_by_exact_name_prefix_and_backup_id(cat):
    old_full = backup(cat, when=T0, pid=100)
    log1 = backup(cat, dump_type="T", when=T0 + 10, pid=101)
    new_full = backup(cat, when=T0 + 20, pid=102)
    other_db = backup(cat, database="salesdb", when=T0 + 30, pid=103)
    pending = backup(cat, when=T0 + 40, pid=104, commit=False)

    # an exact name (any stripe's) returns its own image, even an older one
    assert cat.find_dump(old_full.objects[1].name).backup_id == old_full.backup_id
    assert cat.find_dump(new_full.objects[0].name).backup_id == new_full.backup_id
    # a prefix returns the newest complete image (the pending one is ignored)
    assert cat.find_dump("SYBAR.mydb.D").backup_id == new_full.backup_id
    assert cat.find_dump("SYBAR.mydb.D.").backup_id == new_full.backup_id
    assert cat.find_dump("SYBAR.mydb.T").backup_id == log1.backup_id
    assert cat.find_dump("SYBAR.mydb").backup_id == new_full.backup_id
    assert cat.find_dump("SYBAR.").backup_id == other_db.backup_id
    assert cat.find_dump("SYBAR.mydb.D.0.100").backup_id == old_full.backup_id
    assert cat.find_dump("SYBAR.salesdb.D").backup_id == other_db.backup_id
    # a database filter
    assert cat.find_dump("SYBAR.", database="mydb").backup_id == new_full.backup_id
    assert cat.find_dump(other_db.objects[0].name, database="mydb") is None
    assert cat.find_dump("SYBAR.salesdb.D", database="mydb") is None
    # backup ids work too
    assert cat.find_dump(log1.backup_id).backup_id == log1.backup_id
    # misses
    assert cat.find_dump("SYBAR.nodb.D") is None
    assert cat.find_dump("OTHER.mydb.D") is None
    assert cat.find_dump(pending.objects[0].name) is None
    assert cat.find_dump("") is None
    # the image comes with all of its stripes
    found = cat.find_dump("SYBAR.mydb.D")
    assert [o.stripe for o in found.objects] == [0, 1]


def test_find_dump_when_names_do_not_follow_the_columns(cat):
    """The prefix search does not depend on the name agreeing with the database column."""
    im = cat.begin_image(
        client="c", dataserver="SYBAR", database="real", dump_type="D", stripes=1, backup_time=T0
    )
    cat.add_object(im.backup_id, stripe=0, name="SYBAR.alias.D.0.1.x", storage_unit="u", bytes=5)
    cat.commit_image(im.backup_id)
    assert cat.find_dump("SYBAR.alias.D").backup_id == im.backup_id


def test_list_images_filters_order_and_paging(cat):
    a = backup(cat, database="mydb", when=T0, keyword="before upgrade", pid=1)
    b = backup(cat, database="mydb", dump_type="T", when=T0 + 100, pid=2)
    c = backup(cat, database="salesdb", when=T0 + 200, client="other", policy="Other", pid=3)
    d = backup(cat, database="mydb", when=T0 + 300, dataserver="SYB2", pid=4)
    backup(cat, database="mydb", when=T0 + 400, pid=5, commit=False)

    def ids(**kw):
        return [i.backup_id for i in cat.list_images(**kw)]

    assert ids() == [d.backup_id, c.backup_id, b.backup_id, a.backup_id]
    assert ids(newest_first=False) == [a.backup_id, b.backup_id, c.backup_id, d.backup_id]
    assert ids(database="mydb") == [d.backup_id, b.backup_id, a.backup_id]
    assert ids(database="mydb", dump_type="T") == [b.backup_id]
    assert ids(client="other") == [c.backup_id]
    assert ids(dataserver="SYB2") == [d.backup_id]
    assert ids(policy="Other") == [c.backup_id]
    assert ids(keyword="before upgrade") == [a.backup_id]
    assert ids(since=T0 + 100, until=T0 + 200) == [c.backup_id, b.backup_id]  # both ends inclusive
    assert ids(since=T0 + 150) == [d.backup_id, c.backup_id]
    assert ids(until=T0 + 50) == [a.backup_id]
    assert ids(limit=2) == [d.backup_id, c.backup_id]
    assert ids(limit=2, offset=2) == [b.backup_id, a.backup_id]
    assert ids(offset=3) == [a.backup_id]
    assert ids(database="nodb") == []
    assert cat.count_images() == 4
    assert cat.count_images(database="mydb") == 3
    assert cat.count_images(database="mydb", since=T0 + 50) == 2
    assert cat.count_images(keyword="nope") == 0
    assert cat.list_images(with_objects=False)[0].objects == []


def test_image_json(cat):
    im = backup(cat, stripes=2, keyword="kw", compression=101, job_id=7, dump_id="ab" * 16)
    j = im.to_json()
    for key in ("backup_id", "database", "type", "backup_time", "expiration", "keyword", "stripes"):
        assert key in j
    assert j["type"] == "D" and j["database"] == "mydb" and j["keyword"] == "kw"
    assert j["backup_time_unix"] == T0
    assert j["backup_time"].startswith("2026-09-")  # ISO 8601, local time with offset
    assert "T" in j["backup_time"] and ("+" in j["backup_time"][10:] or "-" in j["backup_time"][10:])
    assert j["policy"] == "Sybase_ASE" and j["schedule"] == "Default-Application-Backup"
    assert j["client"] == "dbhost" and j["dataserver"] == "SYBAR"
    assert j["compression"] == 101 and j["job_id"] == 7 and j["kbytes"] == 2
    assert j["stripes"] == [
        {
            "name": im.objects[s].name,
            "bytes": 1000 + s,
            "checksum": f"{s:016x}",
            "stripe": s,
            "raw_bytes": 4000,
            "storage_unit": "disk1",
            "unlock_time": None,
            "unlock_time_unix": None,
        }
        for s in range(2)
    ]
    import json

    json.dumps(j)  # serialisable as is


def test_infinite_expiration_is_netbackups_infinity(cat):
    im = cat.begin_image(
        client="c",
        dataserver="S",
        database="d",
        dump_type="D",
        stripes=1,
        backup_time=T0,
        expiration=float("inf"),
    )
    assert im.expiration == INFINITE_EXPIRATION
    assert im.to_json()["expiration"].startswith("2038-01-")


def test_commit_records_dump_id_and_compression(cat):
    im = backup(cat, commit=False)
    done = cat.commit_image(im.backup_id, dump_id="cafe", compression=3)
    assert done.dump_id == "cafe" and done.compression == 3


def test_leftovers_remove_object_names_and_verify(cat):
    ok = backup(cat, when=T0, pid=1)
    pend = backup(cat, when=T0 + 1, pid=2, commit=False)
    bad = backup(cat, when=T0 + 2, pid=3, commit=False)
    cat.fail_image(bad.backup_id, "media server died")
    future = 4_000_000_000.0
    left = cat.leftovers(older_than=future)
    assert sorted(i.backup_id for i in left) == sorted([pend.backup_id, bad.backup_id])
    assert all(len(i.objects) == 2 for i in left)
    assert cat.leftovers(older_than=0) == []

    names = cat.object_names()
    assert len(names) == 6 and ok.objects[0].name in names and pend.objects[1].name in names

    assert cat.remove_image(bad.backup_id) is True
    assert cat.remove_image(bad.backup_id) is False
    assert bad.objects[0].name not in cat.object_names()
    assert cat.get_image(bad.backup_id, include_pending=True) is None

    cat.set_verified(ok.backup_id, 0, T0 + 99)
    v = cat.get_image(ok.backup_id)
    assert v.verified_at == T0 + 99 and v.verify_status == 0
    with pytest.raises(StatusError):
        cat.set_verified("none_0000000000", 0)


def test_readers_in_other_connections_see_only_committed_images(tmp_path):
    path = tmp_path / "catalog.db"
    writer = Catalog(path)
    reader = Catalog(path)  # like the CLI reading while the daemon writes
    im = backup(writer, commit=False)
    assert reader.list_images() == []
    writer.commit_image(im.backup_id)
    assert [i.backup_id for i in reader.list_images()] == [im.backup_id]
    writer.close()
    reader.close()


def test_thread_safety_of_one_catalog(cat):
    errors: list[BaseException] = []

    def work(n):
        try:
            for i in range(15):
                backup(cat, database=f"db{n}", when=T0 + n * 1000 + i, pid=n * 100 + i)
                cat.list_images(database=f"db{n}", limit=5)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cat.count_images() == 90


def test_import_images_bulk(tmp_path):
    with Catalog(tmp_path / "a.db") as src:
        made = [backup(src, when=T0 + i, pid=i, stripes=2) for i in range(5)]
    with Catalog(tmp_path / "b.db") as dst:
        assert dst.import_images(made) == 5
        assert [i.backup_id for i in dst.list_images(newest_first=False)] == [m.backup_id for m in made]
        assert dst.find_dump(made[2].objects[1].name).backup_id == made[2].backup_id
        assert dst.get_image(made[0].backup_id).to_json() == made[0].to_json()
