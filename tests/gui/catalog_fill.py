"""A catalog of N complete images, written inside SQLite in one statement per table (no Python per
row), so a million images take seconds: the scale tests' stand-in for years of backups.

Images are one a minute back from ``newest`` (newest first is row 0 in the browser), one stripe
each, over a few clients and databases, every fifth a full dump. ``image_id(k)`` names the k-th newest.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.catalog.catalog import Catalog

CLIENTS = 3
DATABASES = 20
STEP_S = 60.0


def image_id(k: int) -> str:
    return f"fill_{k:07d}"


def fill_catalog(path: Path, count: int, newest: float) -> None:
    """Write ``count`` images into the catalog file at ``path`` (made here, with the real schema)."""
    Catalog(path).close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous = OFF")        # test data: made again if the machine dies meanwhile
    con.execute("PRAGMA cache_size = -262144")     # 256 MiB: the indexes stay in memory while they grow
    # oldest first, so every time-ordered index grows at its end
    series = f"WITH RECURSIVE n(k) AS (SELECT {count - 1} UNION ALL SELECT k - 1 FROM n WHERE k > 0)"
    t = f"({newest} - k * {STEP_S})"
    db = f"'db' || printf('%02d', k % {DATABASES})"
    kind = "CASE WHEN k % 5 = 0 THEN 'D' ELSE 'T' END"
    with con:
        # indexes made after the rows: one sort each instead of a million B-tree inserts
        indexes = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                              " AND tbl_name IN ('images', 'objects')").fetchall()
        for name, _sql in indexes:
            con.execute(f"DROP INDEX {name}")
        con.execute(
            f"{series} INSERT INTO images (backup_id, client, dataserver, database, dump_type, policy, schedule,"
            " schedule_type, keyword, backup_time, expiration, compression, stripes, kbytes, state,"
            " storage_unit, created, committed)"
            f" SELECT 'fill_' || printf('%07d', k), 'host' || (k % {CLIENTS}), 'SYBAR',"
            f" {db}, {kind}, 'Sybase_ASE', 'Default-Application-Backup', 2, NULL, {t}, {t} + 1209600, 1,"
            f" 1, 1024 + k % 4096, 'complete', 'disk1', {t}, {t} FROM n"
        )
        con.execute(
            f"{series} INSERT INTO objects (backup_id, stripe, name, storage_unit, bytes, raw_bytes, checksum,"
            " created)"
            f" SELECT 'fill_' || printf('%07d', k), 0, 'fill_' || printf('%07d', k) || '.SYBAR.' || {db} || '.'"
            f" || {kind} || '.0', 'disk1', 512 * (1024 + k % 4096), 1024 * (1024 + k % 4096),"
            f" printf('%016x', k), {t} FROM n"
        )
        for _name, sql in indexes:
            con.execute(sql)
    con.close()
