"""What the benchmarks run on: the machine, the peer tools, the test database, a served sybar home."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_MAKE_DB = REPO.parent / "shared" / "bench" / "make_db.py"
LOCAL_MAKE_DB = Path(__file__).with_name("make_db.py")
VENV_BIN = Path(sys.executable).parent

PEERS = {"restic": "restic", "borg": "borgbackup", "zstd": "zstd"}  # command -> Debian package


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- peers -------------------------------------------------------------------------------


def ensure_peers(install: bool = True) -> dict[str, bool]:
    """Which peer commands exist; as root, apt-get install the missing ones first."""
    missing = [cmd for cmd in PEERS if shutil.which(cmd) is None]
    if missing and install and os.geteuid() == 0 and shutil.which("apt-get"):
        pkgs = [PEERS[c] for c in missing]
        log(f"installing {' '.join(pkgs)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", *pkgs], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", *pkgs], env=env, capture_output=True)
    have = {cmd: shutil.which(cmd) is not None for cmd in PEERS}
    gone = [c for c, ok in have.items() if not ok]
    if gone:
        log(f"missing peers, skipped: {', '.join(gone)} (install: apt-get install {' '.join(PEERS[c] for c in gone)})")
    return have


def _version(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (r.stdout or r.stderr).strip().splitlines()
    return out[0] if out else None


def machine(workdir: Path) -> dict:
    cpu = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = None
    with contextlib.suppress(OSError):
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem_kb = int(m.group(1)) if m else None
    try:
        sybar_version = metadata.version("sybar")
    except metadata.PackageNotFoundError:
        sybar_version = None
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_mib": mem_kb // 1024 if mem_kb else None,
        "disk_free_gib": round(shutil.disk_usage(workdir).free / 2**30, 1),
        "workdir": str(workdir),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sybar": sybar_version,
        "restic": _version(["restic", "version"]),
        "borg": _version(["borg", "--version"]),
        "zstd": _version(["zstd", "--version"]),
    }


# -- the test database -------------------------------------------------------------------


def make_db(path: Path, size_mib: int) -> Path:
    """The shared make_db.py when present, else bench/make_db.py (the same shape)."""
    script = SHARED_MAKE_DB if SHARED_MAKE_DB.exists() else LOCAL_MAKE_DB
    log(f"making a {size_mib} MiB test database with {script}")
    subprocess.run([sys.executable, str(script), str(path), str(size_mib)], check=True, stdout=subprocess.DEVNULL)
    # the dataserver runs every database in WAL mode; convert once here rather than in the first dump
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("pragma journal_mode = wal")
    con.execute("pragma wal_checkpoint(truncate)")
    con.close()
    return path


# -- a served sybar home -----------------------------------------------------------------


def _bin(name: str) -> str:
    local = VENV_BIN / name
    return str(local) if local.exists() else (shutil.which(name) or name)


BACKUP_SCRIPT = """#!/bin/sh
# {name}: written by the benchmark harness (python -m bench)
HERE=`dirname "$0"`
OUT=${{TMPDIR:-/tmp}}/{name}.$$.out
"${{ISQL:-sybar-isql}}" -Usa -SSYBAR -w 200 -i "$HERE/{name}.sql" -o "$OUT"
RC=$?
cat "$OUT"
if [ $RC -ne 0 ] || grep -q "^Msg" "$OUT" || ! grep -q "DUMP is complete" "$OUT"; then
    rm -f "$OUT"
    exit 1
fi
rm -f "$OUT"
exit 0
"""


def dump_sql(database: str, stripes: int, compression: int, encryption: str | None = None) -> str:
    enc = f" -ENCRYPT {encryption}" if encryption else ""
    dev = f'"sybackup::-SERV localhost -POLICY Sybase_ASE -SCHED Default-Application-Backup{enc}"'
    lines = ["use master", "go", f"dump database {database}", f"    to {dev}"]
    lines += [f"    stripe on {dev}"] * (stripes - 1)
    lines += [f"    with compression = {compression}", "go", ""]
    return "\n".join(lines)


class SybarHome:
    """`sybar serve` on a temp home, with sa's password in the (bench's own) keyring."""

    def __init__(self, root: Path):
        self.root = root
        self.password = "Bench-" + secrets.token_urlsafe(12)
        self.proc: subprocess.Popen | None = None
        self.serve_log = root.parent / "serve.log"

    # environment for clients: no sa password in it, the venv first on PATH
    @property
    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "SYBAR_SA_PASSWORD"}
        env.update(SYBAR_HOME=str(self.root), FREETDSCONF=str(self.root / "freetds.conf"),
                   PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
        return env

    def db_file(self, name: str) -> Path:
        return self.root / "data" / f"{name}.db"

    def start(self) -> None:
        env = dict(self.env, SYBAR_SA_PASSWORD=self.password)
        logf = open(self.serve_log, "a")  # noqa: SIM115 - the daemon keeps writing to it
        start = self.serve_log.stat().st_size
        self.proc = subprocess.Popen(
            [_bin("sybar"), "serve", "--home", str(self.root), "--listen", "127.0.0.1:0"],
            stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        logf.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(self.serve_log) as f:
                f.seek(start)
                if re.search(r"listening on (\S+):(\d+)", f.read()):
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sybar serve did not start; see {self.serve_log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def sybar(self, *args: str, timeout: float = 3600, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([_bin("sybar"), *args, "--home", str(self.root)], capture_output=True, text=True,
                           timeout=timeout, env=self.env)
        if check and r.returncode != 0:
            raise RuntimeError(f"sybar {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
        return r

    def isql(self, sql: str, timeout: float = 600) -> str:
        r = subprocess.run([_bin("sybar-isql"), "-Usa", "-SSYBAR", "-w", "250"], input=sql, text=True,
                           capture_output=True, env=self.env, timeout=timeout)
        out = r.stdout + r.stderr
        if r.returncode != 0 or re.search(r"^Msg", out, re.M):
            raise RuntimeError(f"isql failed: {out}")
        return out

    def keep_password_in_keyring(self) -> None:
        r = subprocess.run([_bin("sybar"), "password", "set", "SYBAR", "sa"], input=self.password + "\n",
                           text=True, capture_output=True, timeout=60, env=self.env)
        if r.returncode != 0:
            raise RuntimeError(f"sybar password set failed (is a Secret Service running?): {r.stdout}{r.stderr}")

    def place_database(self, name: str, source: Path) -> Path:
        """create database NAME, then put the test database's file in its place before any session opens it."""
        self.isql(f"create database {name}\ngo\n")
        target = self.db_file(name)
        tmp = target.with_name(target.name + ".bench-tmp")
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o600)
        for suffix in ("-wal", "-shm"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(tmp, target)
        return target

    def write_backup_script(self, name: str, database: str, stripes: int, compression: int = 1,
                            encryption: str | None = None) -> Path:
        scripts = self.root / "scripts"
        scripts.mkdir(mode=0o700, exist_ok=True)
        sql = scripts / f"{name}.sql"
        sql.write_text(dump_sql(database, stripes, compression, encryption))
        os.chmod(sql, 0o600)
        script = scripts / name
        script.write_text(BACKUP_SCRIPT.format(name=name))
        os.chmod(script, 0o700)
        return script

    def latest_backup_id(self, database: str) -> str:
        import json

        r = self.sybar("list", "--json", "--database", database, "--limit", "1")
        return json.loads(r.stdout)[0]["backup_id"]

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.isql(f"drop database {name}\ngo\n")
