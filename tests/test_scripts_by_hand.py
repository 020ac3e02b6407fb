"""Sybase scripts run by hand with sybar isql: the samples, real-world examples, and the demo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sybar_testkit import _bin, integrity, start_serve, stop_serve, table_digest

from engine.demo import install_sample_scripts
from engine.home import Home

EXAMPLES = Path(__file__).parent / "dataserver" / "data" / "scripts"


@pytest.fixture(scope="module")
def home_served(tmp_path_factory, sa_in_keyring):
    s = start_serve(tmp_path_factory.mktemp("scripthome"))
    try:
        r = s.sybar_isql("create database mydb\ngo\nuse mydb\ngo\ncreate table t(id int, s varchar(40))\ngo\n"
                         + "".join(f"insert into t values ({i}, 'row {i}')\n" for i in range(500)) + "go\n"
                         "create database salesdb\ngo\nuse salesdb\ngo\ncreate table sales(id int, amt float)\ngo\n"
                         "insert into sales values (1, 9.5)\ninsert into sales values (2, 10.25)\ngo\n")
        assert "Msg" not in r.stdout, r.stdout
        yield s
    finally:
        stop_serve(s)


def _script_env(s, **extra) -> dict:
    env = dict(s.env, ISQL=_bin("sybar-isql"), **extra)
    env.pop("SYBAR_SA_PASSWORD", None)
    return env


def test_sample_backup_and_restore_scripts_by_hand(home_served, tmp_path):
    s = home_served
    scripts = install_sample_scripts(Home.resolve(s.home))
    backup = s.home / "scripts" / "sybase_mydb_dump_to_files"
    assert backup in scripts and os.stat(backup).st_mode & 0o777 == 0o700
    r = subprocess.run([str(backup)], capture_output=True, text=True, env=_script_env(s, TMPDIR=str(tmp_path)),
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "DUMP is complete (database mydb)" in r.stdout
    stripes = sorted((s.home / "dumps").glob("mydb.full.stripe*.dmp"))
    assert len(stripes) == 2

    assert "Msg" not in s.sybar_isql("create database mydb_restore for load\ngo\n").stdout
    restore = s.home / "scripts" / "sybase_mydb_load_from_files"
    r = subprocess.run([str(restore)], capture_output=True, text=True, env=_script_env(s, TMPDIR=str(tmp_path)),
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "LOAD is complete (database mydb_restore)" in r.stdout
    assert "1> load database mydb_restore" in r.stdout  # -e echoes the SQL it runs
    assert table_digest(s.db_file("mydb_restore"), "t") == table_digest(s.db_file("mydb"), "t")
    assert integrity(s.db_file("mydb_restore")) == "ok"


def test_failed_dump_makes_the_backup_script_fail(home_served, tmp_path):
    s = home_served
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(s.home / "scripts" / "sybase_mydb_dump_to_files", scripts)
    (scripts / "sybase_mydb_dump_to_files.sql").write_text('dump database nosuchdb to "x.dmp"\ngo\n')
    r = subprocess.run([str(scripts / "sybase_mydb_dump_to_files")], capture_output=True, text=True,
                       env=_script_env(s, TMPDIR=str(tmp_path)), timeout=120)
    assert r.returncode == 1
    assert "Msg 911" in r.stdout and "FAILED" in r.stderr


def test_example_heredoc_dump_script(home_served, tmp_path):
    s = home_served
    script = EXAMPLES / "01-heredoc-file-dump" / "dump_salesdb.sh"
    r = subprocess.run(["sh", str(script)], capture_output=True, text=True,
                       env=_script_env(s, DUMPDIR=str(tmp_path)), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "dump of salesdb written to" in r.stdout
    log = next(tmp_path.glob("salesdb_full_*.log")).read_text()
    assert "DUMP is complete (database salesdb)" in log
    assert "salesdb" in log and "no options set" in log  # sp_helpdb ran first ('go   ' ended its batch)


def test_example_restore_script_with_device_on_next_line(home_served, tmp_path):
    s = home_served
    dumps = Path("/tmp/sybar-dumps")
    dumps.mkdir(exist_ok=True)
    r = s.sybar_isql("create database salesdb_test for load\ngo\n"
                     f'dump database salesdb to "{dumps}/salesdb.nightly.s1" stripe on "{dumps}/salesdb.nightly.s2"\n'
                     "go\n")
    assert "DUMP is complete" in r.stdout, r.stdout
    script = EXAMPLES / "07-restore-file-stripes" / "load_salesdb_test.sh"
    r = subprocess.run(["sh", str(script)], capture_output=True, text=True,
                       env=_script_env(s, TMPDIR=str(tmp_path)), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # one load (the one inside /* */ is a comment), two stripes, then online
    assert r.stdout.count("LOAD is complete (database salesdb_test)") == 1
    assert "is now online" in r.stdout
    assert table_digest(s.db_file("salesdb_test"), "sales") == table_digest(s.db_file("salesdb"), "sales")


def test_example_missing_sql_file_fails(home_served):
    s = home_served
    script = EXAMPLES / "11-missing-sql-file" / "sybase_hrdb_backup"
    r = subprocess.run(["sh", str(script)], capture_output=True, text=True, env=_script_env(s), timeout=60)
    assert r.returncode != 0
    assert "sybase_hrdb_backup.sql" in r.stderr


def test_demo_once_makes_a_home_and_backs_up_mydb(tmp_path, sa_in_keyring):
    home = tmp_path / "demo"
    r = subprocess.run(
        [_bin("sybar"), "demo", "--once", "--home", str(home), "--listen", "127.0.0.1:0", "--size-mb", "4"],
        capture_output=True, text=True, timeout=300, env={k: v for k, v in os.environ.items()
                                                         if k != "SYBAR_SA_PASSWORD"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"listening on 127\.0\.0\.1:\d+", r.stdout)
    assert "DUMP is complete (database mydb)" in r.stdout
    assert "ended with status 0" in r.stdout
    # four sybackup:: stripes, four backup objects on the storage unit
    assert len([p for p in (home / "storage" / "disk1").iterdir() if p.name.startswith("SYBAR.mydb.D.")]) == 4
    for name in ("mydb", "salesdb", "mydb_restore"):
        assert (home / "data" / f"{name}.db").exists()
    assert (home / "scripts" / "sybase_mydb_load_from_files").exists()
    # a second start reuses the home as it is
    s = start_serve(home, password=None)
    try:
        out = s.sybar_isql("sp_helpdb\ngo\nuse mydb\ngo\nselect count(*) from orders\ngo\n").stdout
        assert "mydb_restore" in out and "for load" in out and "Msg" not in out, out
        listed = subprocess.run([_bin("sybar"), "list", "--json", "--home", str(home)], capture_output=True,
                                text=True, timeout=60)
        assert [i["database"] for i in json.loads(listed.stdout)] == ["mydb"]
    finally:
        stop_serve(s)
