"""Memory stays flat whatever the database size: a 200 MB dump and load in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bs_util import make_db

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys, threading
from pathlib import Path
from engine.backupserver import dump_database, file_sinks, load_database, FileSource

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])

mode, db, folder, stripes, comp = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
comp = None if comp == "none" else int(comp)
paths = [folder / f"s{i}.dmp" for i in range(stripes)]
# warm up: threads, zstd and xxhash contexts, sqlite, the modules' code
tiny = folder / "tiny.db"
import sqlite3
con = sqlite3.connect(tiny); con.execute("pragma journal_mode=wal"); con.execute("create table if not exists t(x)"); con.commit(); con.close()
warm = [folder / f"w{i}" for i in range(stripes)]
dump_database(server="S", database="w", db_path=tiny, sinks=file_sinks(warm), compression=comp)
load_database(sources=[FileSource(p) for p in warm], target_tmp=folder / "w.out")
base = status("VmRSS")
if mode == "dump":
    r = dump_database(server="S", database="big", db_path=db, sinks=file_sinks(paths), compression=comp)
    raw, seconds = r.raw_bytes, r.seconds
else:
    r = load_database(sources=[FileSource(p) for p in paths], target_tmp=folder / "big.out")
    raw, seconds = r.raw_bytes, r.seconds
print(json.dumps({"base_kb": base, "peak_kb": status("VmHWM"), "raw": raw, "seconds": seconds}))
"""


def run_child(mode: str, db: Path, folder: Path, stripes: int, comp) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(db), str(folder), str(stripes), str(comp).lower()],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def big_db(tmp_path_factory) -> Path:
    db = make_db(tmp_path_factory.mktemp("big") / "big.db", mb=160)
    assert os.path.getsize(db) > 200e6
    return db


@pytest.mark.parametrize("stripes,comp", [(4, 1), (1, None), (8, 9)])
def test_rss_stays_flat_for_a_200mb_dump_and_load(big_db, tmp_path, stripes, comp):
    folder = tmp_path / "d"
    folder.mkdir()
    d = run_child("dump", big_db, folder, stripes, comp)
    grown = (d["peak_kb"] - d["base_kb"]) / 1024
    assert d["raw"] > 200e6
    assert grown < 64, f"dump grew RSS by {grown:.1f} MB"
    ld = run_child("load", big_db, folder, stripes, comp)
    grown = (ld["peak_kb"] - ld["base_kb"]) / 1024
    assert grown < 64, f"load grew RSS by {grown:.1f} MB"
    assert os.path.getsize(folder / "big.out") == os.path.getsize(big_db)
