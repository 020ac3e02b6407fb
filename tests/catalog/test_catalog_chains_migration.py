"""A version-1 catalog (written by hand, as sybar 0.1 left it) opens as version
2 with every image, object and job kept; old images restore as dumped."""

from __future__ import annotations

import sqlite3

from test_catalog_chains import Lineage

from engine.catalog.catalog import SCHEMA_VERSION, Catalog
from engine.catalog.chains import log_chain, restorable_spans, restore_chain

T0 = 1_780_000_000.0

# The version-1 schema, verbatim.
V1_SCHEMA = """
CREATE TABLE images (
    backup_id     TEXT PRIMARY KEY,
    client        TEXT NOT NULL,
    dataserver    TEXT NOT NULL,
    database      TEXT NOT NULL,
    dump_type     TEXT NOT NULL CHECK (dump_type IN ('D', 'T')),
    policy        TEXT,
    schedule      TEXT,
    schedule_type INTEGER,
    keyword       TEXT,
    backup_time   REAL NOT NULL,
    expiration    REAL,
    compression   INTEGER,
    job_id        INTEGER,
    dump_id       TEXT,
    stripes       INTEGER NOT NULL CHECK (stripes >= 1),
    kbytes        INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'complete', 'failed')),
    storage_unit  TEXT,
    reason        TEXT,
    created       REAL NOT NULL,
    committed     REAL,
    verified_at   REAL,
    verify_status INTEGER
);
-- Partial indexes: every listing is of complete images only.
CREATE INDEX images_time ON images (backup_time) WHERE state = 'complete';
CREATE INDEX images_db_time ON images (database, backup_time) WHERE state = 'complete';
CREATE INDEX images_client_time ON images (client, backup_time) WHERE state = 'complete';
CREATE INDEX images_server_time ON images (dataserver, backup_time) WHERE state = 'complete';
CREATE INDEX images_unfinished ON images (state, created) WHERE state != 'complete';

CREATE TABLE objects (
    backup_id     TEXT NOT NULL REFERENCES images (backup_id) ON DELETE CASCADE,
    stripe        INTEGER NOT NULL CHECK (stripe >= 0),
    name          TEXT NOT NULL UNIQUE,
    storage_unit  TEXT,
    bytes         INTEGER NOT NULL,
    raw_bytes     INTEGER,
    checksum      TEXT,
    created       REAL NOT NULL,
    PRIMARY KEY (backup_id, stripe)
);

CREATE TABLE jobs (
    job_id         INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id      INTEGER,
    type           TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('queued', 'active', 'done')),
    status         INTEGER,
    client         TEXT,
    dataserver     TEXT,
    database       TEXT,
    policy         TEXT,
    schedule       TEXT,
    script         TEXT,
    stripe         INTEGER,
    object_name    TEXT,
    backup_id      TEXT,
    started        REAL,
    ended          REAL,
    bytes_done     INTEGER NOT NULL DEFAULT 0,
    bytes_expected INTEGER,
    message        TEXT,
    pid            INTEGER
);
CREATE INDEX jobs_parent ON jobs (parent_id);
CREATE INDEX jobs_unfinished ON jobs (state) WHERE state != 'done';

CREATE TABLE job_log (
    job_id  INTEGER NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    time    REAL NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
"""


def write_v1_catalog(path) -> None:
    """A version-1 catalog file: two complete images of mydb (a 2-stripe full
    dump and a log dump), one pending image, a job with a log line."""
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA)
    images = [
        ("dbhost_1780000000", "dbhost", "SYBAR", "mydb", "D", "Sybase_ASE", "Default-Application-Backup", 2,
         "weekly", T0, T0 + 14 * 86400, 1, 7, "dump-1", 2, 3, "complete", "disk1", None, T0, T0 + 5, None, None),
        ("dbhost_1780000600", "dbhost", "SYBAR", "mydb", "T", "Sybase_ASE", "Default-Application-Backup", 2,
         None, T0 + 600, T0 + 600 + 14 * 86400, None, 8, "dump-2", 1, 1, "complete", "disk1", None, T0 + 600,
         T0 + 605, T0 + 700, 0),
        ("dbhost_1780001200", "dbhost", "SYBAR", "mydb", "D", None, None, None, None, T0 + 1200, None, None, 9,
         None, 1, 0, "pending", "disk1", None, T0 + 1200, None, None, None),
    ]  # fmt: skip
    con.executemany(f"INSERT INTO images VALUES ({', '.join('?' * 23)})", images)
    con.executemany(
        "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ("dbhost_1780000000", 0, "SYBAR.mydb.D.0.1.x", "disk1", 1500, 4096, "aa", T0),
            ("dbhost_1780000000", 1, "SYBAR.mydb.D.1.1.x", "disk1", 1500, 4096, "bb", T0),
            ("dbhost_1780000600", 0, "SYBAR.mydb.T.0.2.x", "disk1", 900, 2048, "cc", T0 + 600),
        ],
    )
    con.execute(
        "INSERT INTO jobs (job_id, type, state, status, database, started, ended) VALUES (7, 'backup', 'done', 0,"
        " 'mydb', ?, ?)",
        (T0, T0 + 5),
    )
    con.execute("INSERT INTO job_log VALUES (7, 1, ?, 'dump database mydb')", (T0,))
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()


def test_a_version_1_catalog_migrates_and_keeps_its_images(tmp_path):
    path = tmp_path / "catalog.db"
    write_v1_catalog(path)
    with Catalog(path) as cat:
        con = sqlite3.connect(path)
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        columns = {r[1] for r in con.execute("PRAGMA table_info(images)")}
        assert {"lsn", "first_lsn", "last_lsn", "first_commit", "last_commit", "instance_id", "follows",
                "standby"} <= columns  # fmt: skip
        indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"images_db_type_time", "images_instance_lsn", "images_db_time"} <= indexes
        con.close()

        images = cat.list_images(newest_first=False)
        assert [i.backup_id for i in images] == ["dbhost_1780000000", "dbhost_1780000600"]
        d, t = images
        assert (d.keyword, d.job_id, d.dump_id, d.stripes, d.kbytes, d.compression) == (
            "weekly",
            7,
            "dump-1",
            2,
            3,
            1,
        )
        assert d.object_names() == ["SYBAR.mydb.D.0.1.x", "SYBAR.mydb.D.1.1.x"]
        assert (t.verified_at, t.verify_status) == (T0 + 700, 0)
        for im in images:
            assert (im.lsn, im.first_lsn, im.last_lsn, im.first_commit, im.last_commit) == (None,) * 5
            assert (im.instance_id, im.follows, im.standby) == (None, None, False)
            j = im.to_json()
            assert j["standby"] is False and j["follows"] is None and j["backup_id"] == im.backup_id
        assert cat.get_image("dbhost_1780001200", include_pending=True).state == "pending"
        assert cat.find_dump("SYBAR.mydb.D").backup_id == "dbhost_1780000000"
        assert cat.job_log(7)[0][1] == "dump database mydb"

        # old images restore as they were dumped; their log dumps link to nothing
        assert log_chain(cat, d.backup_id).logs == []
        assert [i.backup_id for i in restore_chain(cat, d.backup_id)] == [d.backup_id]
        assert [(s.full_backup_id, s.start, s.end) for s in restorable_spans(cat, "mydb")] == [
            (d.backup_id, T0, T0)
        ]

        # new dumps chain as usual next to them
        db = Lineage(cat, t=T0 + 5000)
        db.commit(3)
        d2 = db.full()
        db.commit(3)
        t2 = db.log()
        assert t2.follows == d2.backup_id
        assert [i.backup_id for i in restore_chain(cat, d2.backup_id)] == [d2.backup_id, t2.backup_id]

    # reopening a version-2 catalog changes nothing
    with Catalog(path) as cat:
        assert cat.count_images() == 4
