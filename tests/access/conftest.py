"""One used home for the access tests: made by `sybar demo --once` (demo databases, sample
scripts, a backup), then served with the control API and the media server off loopback (TLS)
and restored into with the sample restore script, all under the usual umask 022."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess

import pytest
from accesskit import non_loopback_ipv4
from sybar_testkit import _bin, start_serve, stop_serve, sybar


@contextlib.contextmanager
def usual_umask():
    """Processes started here get umask 022: sybar must not depend on a strict one."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(scope="session")
def used_home(tmp_path_factory, sa_in_keyring):
    ip = non_loopback_ipv4()
    home = tmp_path_factory.mktemp("access") / "demo"
    env = {k: v for k, v in os.environ.items() if k != "SYBAR_SA_PASSWORD"}
    with usual_umask():
        r = subprocess.run([_bin("sybar"), "demo", "--once", "--home", str(home), "--listen", "127.0.0.1:0",
                            "--size-mb", "4"], capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        s = start_serve(home, password=None, extra=("--control-listen", f"{ip}:0", "--media-listen", f"{ip}:0"))
    try:
        s.ip = ip
        s.state = json.loads((home / "control.json").read_text())
        # a restore the NetBackup way (bphdb -> script -> isql -> load from sybackup::), over TLS
        r = sybar(home, "restore", str(home / "scripts" / "sybase_mydb_restore"))
        assert r.returncode == 0, r.stdout + r.stderr
        yield s
    finally:
        stop_serve(s)
