"""The sealed catalog on its own (engine/catalog/seal.py): what each kind of edit made
outside sybar looks like to the checks, migration, the key in the OS keyring, and
how long the checks take on a large catalog (printed, not asserted)."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from engine.catalog.catalog import Catalog
from engine.catalog.seal import HEAD_SERVICE, KEYRING_SERVICE, KeyringHead, catalog_key
from engine.jobs.status import StatusError

KEY = bytes(range(32))
T0 = 1_700_000_000.0


def _image(cat: Catalog, i: int, *, worm: bool = False) -> str:
    t = T0 + i * 60
    im = cat.begin_image(client="h", dataserver="S", database="db", dump_type="D", stripes=2, backup_time=t,
                         expiration=t + 3600, unlock_time=t + 3600 if worm else None, storage_unit="u")
    for s in range(2):
        cat.add_object(im.backup_id, stripe=s, name=f"S.db.D.{s}.{i}", storage_unit="u", bytes=100 + s,
                       checksum=f"{i:08x}{s:08x}")
    cat.commit_image(im.backup_id)
    return im.backup_id


@pytest.fixture
def sealed(tmp_path):
    path = tmp_path / "catalog.db"
    cat = Catalog(path, seal_key=KEY, key_is_new=True)
    ids = [_image(cat, i, worm=(i == 0)) for i in range(4)]
    cat.close()
    return path, ids


def _edit(path, sql: str, *args) -> None:
    con = sqlite3.connect(path)
    with con:
        con.execute(sql, args)
    con.close()


def test_an_intact_catalog_checks_out_and_extension_is_resealed(sealed):
    path, ids = sealed
    with Catalog(path, seal_key=KEY) as cat:
        assert cat.seal_problems == []
        later = cat.set_expiration(ids[0], T0 + 99_999)
        assert later.unlock_time == T0 + 99_999 and all(o.unlock_time == T0 + 99_999 for o in later.objects)
        with pytest.raises(StatusError) as e:
            cat.set_expiration(ids[0], T0 + 5)
        assert e.value.status == 88
        assert cat.deep_check()["ok"]
    with Catalog(path, seal_key=KEY) as cat:
        assert cat.seal_problems == [] and cat.deep_check()["problems"] == []


@pytest.mark.parametrize(
    "edit, expect",
    [
        ("UPDATE images SET expiration = expiration - 1000 WHERE backup_id = ?", "expiration"),
        ("UPDATE images SET unlock_time = NULL WHERE backup_id = ?", "unlock time"),
        ("UPDATE images SET database = 'other' WHERE backup_id = ?", "record"),
        ("UPDATE objects SET checksum = 'ff' WHERE backup_id = ? AND stripe = 1", "object records"),
        ("UPDATE objects SET bytes = 1 WHERE backup_id = ? AND stripe = 0", "object records"),
        ("UPDATE seal_log SET expiration = expiration - 1000 WHERE backup_id = ?", "edited or forged"),
    ],
)
def test_each_kind_of_edit_is_named(sealed, edit, expect):
    path, ids = sealed
    _edit(path, edit, ids[0])
    with Catalog(path, seal_key=KEY) as cat:
        problems = cat.image_seal_problems(ids[0])
        assert problems and ids[0] in problems[0] and expect in " ".join(problems), problems
        assert cat.image_seal_problems(ids[1]) == []
        deep = cat.deep_check()
        assert not deep["ok"] and any(ids[0] in p or "seal entry" in p for p in deep["problems"]), deep
        # nothing is removed or changed on a catalog that failed its check, not even a sound image
        with pytest.raises(StatusError) as e:
            cat.remove_image(ids[1])
        assert e.value.status == 220
        with pytest.raises(StatusError) as e:
            cat.set_expiration(ids[1], T0 + 10**6)
        assert e.value.status == 220


def test_a_deleted_row_an_inserted_row_and_a_cut_chain_are_found_at_open(sealed):
    path, ids = sealed
    _edit(path, "DELETE FROM objects WHERE backup_id = ?", ids[2])
    _edit(path, "DELETE FROM images WHERE backup_id = ?", ids[2])
    with Catalog(path, seal_key=KEY) as cat:
        assert any(ids[2] in p and "deleted" in p for p in cat.seal_problems), cat.seal_problems
        with pytest.raises(StatusError) as e:
            cat.remove_image(ids[1])
        assert e.value.status == 220

    path2 = path.with_name("c2.db")
    cat = Catalog(path2, seal_key=KEY, key_is_new=True)
    first = _image(cat, 10)
    cat.close()
    con = sqlite3.connect(path2)
    with con:  # a copy of a sealed row under a new id: not in the chain
        cols = [r[1] for r in con.execute("PRAGMA table_info(images)")]
        row = dict(zip(cols, con.execute("SELECT * FROM images WHERE backup_id = ?", (first,)).fetchone(), strict=True))
        row["backup_id"] = "h_0000000001"
        row["seal_seq"] = None
        con.execute(f"INSERT INTO images ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", list(row.values()))
    con.close()
    with Catalog(path2, seal_key=KEY) as cat:
        assert any("h_0000000001" in p and "not sealed" in p for p in cat.seal_problems), cat.seal_problems

    path3 = path.with_name("c3.db")
    cat = Catalog(path3, seal_key=KEY, key_is_new=True)
    kept = _image(cat, 20)
    gone = _image(cat, 21)
    cat.close()
    _edit(path3, "DELETE FROM seal_log WHERE backup_id = ?", gone)  # the newest entry and its row
    _edit(path3, "DELETE FROM objects WHERE backup_id = ?", gone)
    _edit(path3, "DELETE FROM images WHERE backup_id = ?", gone)
    with Catalog(path3, seal_key=KEY) as cat:
        assert any("signed head" in p for p in cat.seal_problems), cat.seal_problems
        assert cat.image_seal_problems(kept) == []


def test_a_put_back_old_record_and_the_wrong_key(sealed):
    path, ids = sealed
    con = sqlite3.connect(path)
    old = con.execute("SELECT expiration, seal_seq FROM images WHERE backup_id = ?", (ids[1],)).fetchone()
    con.close()
    with Catalog(path, seal_key=KEY) as cat:
        cat.set_expiration(ids[1], T0 + 10)  # legitimately shortened (not WORM), sealed again
    _edit(path, "UPDATE images SET expiration = ?, seal_seq = ? WHERE backup_id = ?", old[0], old[1], ids[1])
    with Catalog(path, seal_key=KEY) as cat:
        assert any("later seal entry" in p for p in cat.image_seal_problems(ids[1]))
    with Catalog(path, seal_key=os.urandom(32)) as cat:
        assert any("another key" in p for p in cat.seal_problems)


def test_an_unsealed_catalog_is_sealed_once_by_the_migration(tmp_path):
    path = tmp_path / "catalog.db"
    with Catalog(path) as cat:  # written without a key, as every catalog before schema 3
        ids = [_image(cat, i) for i in range(3)]
    with Catalog(path, seal_key=KEY, key_is_new=True) as cat:
        assert cat.seal_stats["sealed_on_open"] == 3 and cat.seal_problems == []
        assert all(cat.image_seal_problems(b) == [] for b in ids)
        assert cat.deep_check()["ok"]
    with Catalog(path) as cat, pytest.raises(StatusError):  # now only the key holder may change images
        _image(cat, 9)


def test_a_large_unsealed_catalog_is_sealed_after_the_open(tmp_path, monkeypatch):
    import engine.catalog.catalog as catalog_module

    path = tmp_path / "catalog.db"
    with Catalog(path) as cat:
        ids = [_image(cat, i) for i in range(5)]
    monkeypatch.setattr(catalog_module, "SEAL_AT_OPEN", 2)
    with Catalog(path, seal_key=KEY, key_is_new=True) as cat:
        assert cat.migration_pending and cat.seal_stats["sealed_on_open"] == 0 and cat.seal_problems == []
        assert cat.image_seal_problems(ids[0]) == []  # awaiting the migration, not tampered with
        new = _image(cat, 7)  # backups go on meanwhile, sealed at once
        assert cat.seal_migration(chunk=2) == 5 and not cat.migration_pending
        assert cat.deep_check()["ok"] and cat.image_seal_problems(new) == []
    with Catalog(path, seal_key=KEY) as cat:
        assert cat.seal_problems == [] and all(cat.image_seal_problems(b) == [] for b in ids)


def test_an_older_copy_of_the_catalog_is_found_by_the_head_in_the_keyring(tmp_path):
    import shutil

    import keyring

    home = tmp_path / "home"
    home.mkdir()
    keeper = KeyringHead(home)
    path = home / "catalog.db"
    with Catalog(path, seal_key=KEY, key_is_new=True, head_keeper=keeper) as cat:
        _image(cat, 1)
    shutil.copyfile(path, tmp_path / "old.db")  # closed: the WAL is folded into the file
    with Catalog(path, seal_key=KEY, head_keeper=keeper) as cat:
        assert cat.seal_problems == []
        _image(cat, 2)
    assert keeper.read()[0] == 2
    shutil.copyfile(tmp_path / "old.db", path)
    with Catalog(path, seal_key=KEY, head_keeper=keeper) as cat:
        assert any("older copy" in p for p in cat.seal_problems), cat.seal_problems
    keyring.delete_password(HEAD_SERVICE, str(home.resolve()))


def test_seal_key_lives_in_the_keyring_per_home(tmp_path):
    import keyring

    key, new = catalog_key(tmp_path / "a")
    again, new2 = catalog_key(tmp_path / "a")
    other, _ = catalog_key(tmp_path / "b")
    assert new and not new2 and key == again and key != other and len(key) == 32
    assert keyring.get_password(KEYRING_SERVICE, str((tmp_path / "a").resolve())) == key.hex()
    keyring.delete_password(KEYRING_SERVICE, str((tmp_path / "a").resolve()))
    keyring.delete_password(KEYRING_SERVICE, str((tmp_path / "b").resolve()))


def test_seal_checks_on_a_large_catalog(tmp_path):
    """N images written straight into the file (as test_catalog_scale does), sealed by the
    migration at the first keyed open; then the times of the open check and the deep check."""
    n = int(os.environ.get("SYBAR_SEAL_SCALE", "10000"))  # the figures for 1,000,000: docs/ARCHITECTURE.md
    path = tmp_path / "catalog.db"
    Catalog(path).close()
    con = sqlite3.connect(path)
    with con:
        con.executemany(
            "INSERT INTO images (backup_id, client, dataserver, database, dump_type, backup_time, expiration,"
            " stripes, kbytes, state, storage_unit, created, committed) VALUES (?, 'h', 'S', ?, 'D', ?, ?, 1, 1,"
            " 'complete', 'u', ?, ?)",
            ((f"h_{i:010d}", f"db{i % 200}", T0 + i, T0 + i + 86400, T0 + i, T0 + i) for i in range(n)),
        )
        con.executemany(
            "INSERT INTO objects (backup_id, stripe, name, storage_unit, bytes, checksum, created)"
            " VALUES (?, 0, ?, 'u', 1024, 'ab', ?)",
            ((f"h_{i:010d}", f"S.db.D.0.{i}", T0 + i) for i in range(n)),
        )
    con.close()
    t = time.perf_counter()
    with Catalog(path, seal_key=KEY, key_is_new=True) as cat:
        cat.seal_migration()  # a large catalog is sealed after the open, in the background
        migrate = time.perf_counter() - t
        assert cat.seal_stats["sealed_on_open"] + cat.seal_stats.get("sealed_in_background", 0) == n
        assert not cat.migration_pending
    t = time.perf_counter()
    with Catalog(path, seal_key=KEY) as cat:
        first_open = time.perf_counter() - t  # walks the n entries once (then remembers them)
    t = time.perf_counter()
    cat = Catalog(path, seal_key=KEY)
    open_s = time.perf_counter() - t
    assert cat.seal_problems == []
    one = time.perf_counter()
    assert cat.image_seal_problems(f"h_{n // 2:010d}") == []
    one = time.perf_counter() - one
    cpu = time.process_time()
    deep = cat.deep_check()
    cpu = time.process_time() - cpu
    assert deep["ok"] and deep["images"] == n and deep["entries"] == n
    print(f"\n{n} images: sealing (migration) {migrate:.1f} s, first keyed open {first_open:.2f} s, "
          f"later open {open_s * 1000:.0f} ms, one image's check {one * 1000:.2f} ms, deep check "
          f"{deep['seconds']:.1f} s ({cpu:.1f} s CPU)")
    cat.close()
    _edit(path, "UPDATE images SET expiration = 0 WHERE backup_id = ?", f"h_{n - 7:010d}")
    with Catalog(path, seal_key=KEY) as cat:
        deep = cat.deep_check()
        assert [p for p in deep["problems"] if f"h_{n - 7:010d}" in p and "expiration" in p], deep["problems"]
