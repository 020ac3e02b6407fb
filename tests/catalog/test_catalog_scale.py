"""A 200,000-image catalog: the browser's queries stay fast (indexes, not scans).

Timings are printed; the assertions are generous (the real targets are
benchmarked under bench/)."""

from __future__ import annotations

import sqlite3
import time

from engine.catalog.catalog import Catalog

N = 200_000
T0 = 1_600_000_000.0
DATABASES = [f"db{i:03d}" for i in range(200)]


def _build(path, n: int) -> None:
    """Write n complete one-stripe images straight into the catalog file."""
    Catalog(path).close()  # the schema
    images, objects = [], []
    for i in range(n):
        db = DATABASES[i % len(DATABASES)]
        t = T0 + i * 60.0  # one image a minute, ~139 days
        dump_type = "T" if i % 4 else "D"
        bid = f"host{i % 7}_{int(t):010d}"
        keyword = "weekly" if i % 1000 == 0 else None
        images.append(
            (bid, f"host{i % 7}", "SYBAR", db, dump_type, "Sybase_ASE", "Default-Application-Backup", 2,
             keyword, t, t + 14 * 86400, i, 1, 1, "complete", "disk1", t, t)
        )  # fmt: skip
        objects.append((bid, 0, f"SYBAR.{db}.{dump_type}.0.{i}.x", "disk1", 1024, 4096, "00", t))
    con = sqlite3.connect(path)
    with con:
        con.executemany(
            "INSERT INTO images (backup_id, client, dataserver, database, dump_type, policy, schedule,"
            " schedule_type, keyword, backup_time, expiration, job_id, stripes, kbytes, state, storage_unit,"
            " created, committed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            images,
        )
        con.executemany(
            "INSERT INTO objects (backup_id, stripe, name, storage_unit, bytes, raw_bytes, checksum, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            objects,
        )
    con.close()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t) * 1000


def test_200k_images_filter_in_milliseconds(tmp_path):
    path = tmp_path / "catalog.db"
    t = time.perf_counter()
    _build(path, N)
    print(f"\nbuilt {N} images in {time.perf_counter() - t:.1f} s")
    cat = Catalog(path)
    assert cat.count_images() == N

    cat.list_images(database="db007", limit=1)  # warm the page cache
    rows, ms = timed(lambda: cat.list_images(database="db007", limit=50))
    print(f"list_images(database=..., limit=50): {ms:.2f} ms")
    assert len(rows) == 50 and all(r.database == "db007" for r in rows)
    assert rows[0].backup_time > rows[-1].backup_time
    assert ms < 500

    since, until = T0 + 50_000 * 60, T0 + 50_500 * 60
    rows, ms = timed(lambda: cat.list_images(since=since, until=until))
    print(f"list_images(date range of 501 images): {ms:.2f} ms")
    assert len(rows) == 501 and all(since <= r.backup_time <= until for r in rows)
    assert ms < 500

    rows, ms = timed(lambda: cat.list_images(database="db042", since=since, until=until, limit=50))
    print(f"list_images(database + date range): {ms:.2f} ms")
    assert all(r.database == "db042" for r in rows) and len(rows) == 3
    assert ms < 500

    n, ms = timed(lambda: cat.count_images(database="db007"))
    print(f"count_images(database=...): {ms:.2f} ms")
    assert n == N // len(DATABASES)
    assert ms < 500

    im, ms = timed(lambda: cat.find_dump("SYBAR.db008.D"))
    print(f"find_dump(prefix): {ms:.2f} ms")
    assert im is not None and im.database == "db008" and im.dump_type == "D"
    assert ms < 500

    im, ms = timed(lambda: cat.find_dump("SYBAR.db008.D.0.8.x"))
    print(f"find_dump(exact name): {ms:.2f} ms")
    assert im is not None and im.job_id == 8
    assert ms < 500

    rows, ms = timed(lambda: cat.list_images(limit=50, offset=1000))
    print(f"list_images(page 21 of everything): {ms:.2f} ms")
    assert len(rows) == 50
    assert ms < 500
    cat.close()
