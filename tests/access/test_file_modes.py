"""Every file sybar writes in a home is 0600 (0700 for the scripts it installs, 0400 for a committed
backup object), every folder 0700:
checked after a demo home was made, a backup and a restore ran, while the daemon runs and after."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from sybar_testkit import _bin, start_serve, stop_serve, sybar


def _bad_modes(home: Path) -> list[str]:
    bad = []
    for root, dirs, files in os.walk(home):
        for d in dirs:
            path = Path(root) / d
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            if mode != 0o700:
                bad.append(f"folder {path.relative_to(home)} is {mode:o}")
        for f in files:
            path = Path(root) / f
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # a temporary that came and went
                continue
            mode = stat.S_IMODE(st.st_mode)
            allowed = {0o600}
            if path.parent.name == "scripts":
                allowed.add(0o700)    # the sample scripts it installs run
            if "storage" in path.relative_to(home).parts:
                allowed.add(0o400)    # a committed backup object is read-only (WORM)
            if not stat.S_ISREG(st.st_mode) or mode not in allowed:
                bad.append(f"file {path.relative_to(home)} is {mode:o}")
    mode = stat.S_IMODE(os.stat(home).st_mode)
    if mode != 0o700:
        bad.append(f"the home itself is {mode:o}")
    return bad


def test_every_file_0600_every_folder_0700(tmp_path, sa_in_keyring):
    home = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "SYBAR_SA_PASSWORD"}
    env["SYBAR_HOME"] = str(home)
    old_umask = os.umask(0o022)  # the usual umask: sybar must not depend on a strict one
    try:
        r = subprocess.run([_bin("sybar"), "demo", "--once", "--home", str(home), "--listen", "127.0.0.1:0",
                            "--size-mb", "4"], capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        s = start_serve(home, password=None)
        try:
            # the demo ran a backup (bphdb, script, isql, stripes, catalog); now a restore the same way
            r = sybar(home, "restore", str(home / "scripts" / "sybase_mydb_restore"))
            assert r.returncode == 0, r.stdout + r.stderr
            running = _bad_modes(home)   # the WAL and SHM files, control.json, the lock exist now
            kinds = {p.suffix or p.name for p in home.rglob("*")}
            assert {".db-wal", ".db-shm", ".pem", ".key", ".log"} <= kinds, kinds
        finally:
            stop_serve(s)
    finally:
        os.umask(old_umask)
    assert not running, "while serving:\n" + "\n".join(running)
    after = _bad_modes(home)
    assert not after, "after stopping:\n" + "\n".join(after)
    print(f"checked {sum(1 for _ in home.rglob('*'))} paths under the home")
