"""Every file sybar writes in a home is 0600 (0700 for the scripts it installs, 0400 for a committed
backup object), every folder 0700, under the usual umask 022: checked on a home that `sybar demo`
made and backed up, that a restore script loaded from, with its daemon running (WAL and SHM files,
control.json, the lock and the TLS files exist then). tests/access/test_secrets_scan.py checks
another home again after its daemon stopped."""

from __future__ import annotations

from accesskit import bad_modes


def test_every_file_0600_every_folder_0700(used_home):
    home = used_home.home
    kinds = {p.suffix or p.name for p in home.rglob("*")}
    assert {".db-wal", ".db-shm", ".pem", ".key", ".log", ".json", ".lock"} <= kinds, kinds
    assert any(p.name.startswith("SYBAR.mydb.D.") for p in (home / "storage" / "disk1").iterdir())
    bad = bad_modes(home)
    assert not bad, "\n".join(bad)
    print(f"checked {sum(1 for _ in home.rglob('*'))} paths under the home")
