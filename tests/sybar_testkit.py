"""Test kit: a real `sybar serve` on a free port, real clients to drive it, file-level checks."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SA_PASSWORD = "Test-sa-Pa55word"


def _bin(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).with_name(name))
    return found


@dataclass
class Served:
    home: Path
    host: str
    port: int
    proc: subprocess.Popen
    password: str = SA_PASSWORD

    @property
    def env(self) -> dict:
        return dict(os.environ, FREETDSCONF=str(self.home / "freetds.conf"), SYBAR_HOME=str(self.home))

    def db_file(self, name: str) -> Path:
        return self.home / "data" / f"{name}.db"

    def fisql(self, sql: str, *, password: str | None = None, timeout: float = 120,
              extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """Run FreeTDS fisql with `sql` on stdin; output is text (stdout+stderr)."""
        return subprocess.run(
            ["fisql", "-S", "SYBAR", "-U", "sa", "-P", password or self.password, *extra],
            input=sql, text=True, capture_output=True, env=self.env, timeout=timeout,
        )

    def tsql(self, sql: str, *, password: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["tsql", "-S", "SYBAR", "-U", "sa", "-P", password or self.password],
            input=sql, text=True, capture_output=True, env=self.env, timeout=timeout,
        )

    def isql(self, args: list[str], sql: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_bin("sybar-isql"), *args], input=sql, text=True, capture_output=True, env=self.env, timeout=timeout,
        )

    def sybar_isql(self, sql: str, *, password: str | None = None, timeout: float = 120,
                   extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """Our isql with `sql` on stdin; without a password it takes sa's from the OS keyring."""
        pw = ("-P", password) if password else ()
        return self.isql(["-Usa", "-SSYBAR", "-w", "250", *pw, *extra], sql, timeout=timeout)

    def run(self, client: str, sql: str, **kw) -> subprocess.CompletedProcess:
        return self.fisql(sql, **kw) if client == "fisql" else self.sybar_isql(sql, **kw)


def keep_sa_password_in_keyring(password: str = SA_PASSWORD) -> None:
    """`sybar password set SYBAR sa`, the password on stdin as a DBA's script would pipe it."""
    r = subprocess.run([_bin("sybar"), "password", "set", "SYBAR", "sa"], input=password + "\n", text=True,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def start_serve(home: Path, *, password: str | None = SA_PASSWORD, extra: tuple[str, ...] = (),
                wait: bool = True) -> Served | subprocess.Popen:
    env = dict(os.environ)
    env.pop("SYBAR_SA_PASSWORD", None)
    if password is not None:
        env["SYBAR_SA_PASSWORD"] = password
    proc = subprocess.Popen(
        [_bin("sybar"), "serve", "--home", str(home), "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    if not wait:
        return proc
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on (\S+):(\d+)", line)
        if m:
            return Served(home, m.group(1), int(m.group(2)), proc, password or SA_PASSWORD)
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(f"sybar serve did not start: {out} {err}")


def stop_serve(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        try:
            served.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait()


def table_digest(path: Path, table: str, where: str = "") -> tuple[int, str]:
    """Row count and a content hash of one table, read straight from a database file."""
    import hashlib

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        h = hashlib.sha256()
        n = 0
        for row in con.execute(f"select * from {table} {where} order by 1"):
            h.update(repr(row).encode())
            n += 1
        return n, h.hexdigest()
    finally:
        con.close()


def integrity(path: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("pragma integrity_check").fetchone()[0]
    finally:
        con.close()


def sybar(home, *args, timeout=300, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([_bin("sybar"), *args, "--home", str(home)], capture_output=True, text=True,
                          timeout=timeout, env=env or {k: v for k, v in os.environ.items()
                                                       if k != "SYBAR_SA_PASSWORD"})


def sybar_json(home, *args, **kw):
    r = sybar(home, *args, "--json", **kw)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


@contextlib.contextmanager
def served_home(home: Path, databases: dict[str, int]):
    """A real daemon on a fresh home with demo databases {name: size in MB} and the sample scripts."""
    from engine.dataserver.demo_data import fill_demo_database
    from engine.demo import install_sample_scripts
    from engine.home import Home

    s = start_serve(home)
    try:
        for name, size_mb in databases.items():
            r = s.sybar_isql(f"create database {name}\ngo\n")
            assert "Msg" not in r.stdout, r.stdout + r.stderr
            fill_demo_database(s.db_file(name), size_mb)
        install_sample_scripts(Home.resolve(home))
        yield s
    finally:
        stop_serve(s)
