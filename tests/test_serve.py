"""`sybar serve`: start-up, client files, the sa password's life."""

from __future__ import annotations

import os
import stat

from sybar_testkit import SA_PASSWORD, start_serve, stop_serve


def test_refuses_to_start_without_a_password(tmp_path):
    proc = start_serve(tmp_path / "h", password=None, wait=False)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "SYBAR_SA_PASSWORD" in err
    assert "listening" not in out


def test_client_files_and_password_kept_only_as_a_hash(tmp_path):
    home = tmp_path / "h"
    s = start_serve(home)
    try:
        interfaces = (home / "interfaces").read_text()
        assert f"master tcp ether 127.0.0.1 {s.port}" in interfaces
        assert interfaces.splitlines()[1] == "SYBAR"
        conf = (home / "freetds.conf").read_text()
        assert "[SYBAR]" in conf and f"port = {s.port}" in conf and "tds version = 5.0" in conf
        assert "SYBAR" in s.fisql("select @@servername\ngo\n").stdout
        assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(home / "data" / "master.db").st_mode) == 0o600
    finally:
        stop_serve(s)
    for path in home.rglob("*"):
        if path.is_file():
            assert SA_PASSWORD.encode() not in path.read_bytes(), path


def test_later_starts_ignore_the_variable_unless_reset(tmp_path):
    home = tmp_path / "h"
    stop_serve(start_serve(home))
    s = start_serve(home, password="another-password")
    try:
        assert "Login failed" in s.fisql("select 1\ngo\n", password="another-password").stdout + \
            s.fisql("select 1\ngo\n", password="another-password").stderr
        assert "Msg" not in s.fisql("select 1\ngo\n", password=SA_PASSWORD).stdout
    finally:
        stop_serve(s)
    s = start_serve(home, password="another-password", extra=("--reset-sa-password",))
    try:
        ok = s.fisql("select 1\ngo\n", password="another-password")
        assert "Login failed" not in ok.stdout + ok.stderr
    finally:
        stop_serve(s)


def test_one_daemon_per_home(tmp_path):
    home = tmp_path / "h"
    s = start_serve(home)
    try:
        second = start_serve(home, wait=False)
        out, err = second.communicate(timeout=30)
        assert second.returncode != 0
        assert "another sybar serve" in err
    finally:
        stop_serve(s)


def test_bad_listen_address(tmp_path):
    proc = start_serve(tmp_path / "h", extra=("--listen", "nonsense"), wait=False)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "HOST:PORT" in err
