"""No secret in any sybar process's argv or environment, nor in any file of the home.

While multi-stripe backups run through bphdb -> script -> isql (sybar-isql with sa's password
from the real keyring, then FreeTDS fisql fed by bphdb on its stdin), every process below the
daemon and the CLI is scanned over and over: /proc/PID/cmdline and /proc/PID/environ. Then every
file under the home: logs, catalog.db and its WAL, job logs, scripts, storage objects, serve.out,
control.json, the TLS certificates. The secrets, in raw, hex and base64 forms: the sa password, the
control token, the media HMAC secret, the TLS private keys, and the data (encryption) key and the
catalog seal key the keyring holds for the home.

Some secrets must live in a file of the home (there is no keyring entry for them, by design: the
daemon and the media server read them at start without a desktop session): control.token holds
the token, media.secret the media secret, tls/*.key the private keys, each 0600. Each of those
files is left out of the scan for its own secret only, and scanned for all the others.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import keyring
from accesskit import bad_modes, comm, descendants, find_any, forms, read_proc
from sybar_testkit import SA_PASSWORD, _bin, start_serve, stop_serve

from engine.dataserver.demo_data import fill_demo_database
from engine.demo import install_sample_scripts
from engine.home import Home


class Scanner(threading.Thread):
    """Scans /proc/PID/{cmdline,environ} of every process below the roots until stopped."""

    def __init__(self, roots: set[int], needles: dict[str, set[bytes]]):
        super().__init__(daemon=True)
        self.roots, self.needles = set(roots), needles
        self.leaks: list[str] = []
        self.seen: set[str] = set()   # every command line seen
        self.rounds = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.scan_once()
            time.sleep(0.005)  # leave the machine to the backup

    def scan_once(self) -> None:
        for pid in descendants(self.roots):
            name = comm(pid)   # read each time: a child seen between fork and exec still shows its parent
            if name:
                self.seen.add(name)
            for what in ("cmdline", "environ"):
                data = read_proc(pid, what)
                if data:
                    for secret in find_any(data, self.needles):
                        self.leaks.append(f"{secret} in /proc/{pid}/{what} ({name})")
        self.rounds += 1


def _pem_needles(path: Path) -> set[bytes]:
    """A PEM private key: its DER (all forms), its first base64 line, the raw private scalar."""
    from cryptography.hazmat.primitives import serialization

    pem = path.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    body = [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
    return forms(der) | forms(scalar) | {body[0]}


def _keyring_keys(home: Path) -> dict[str, set[bytes]]:
    """The keys the keyring holds for this home: data (encryption) keys, the catalog seal key."""
    import base64

    out = {}
    service = f"sybar:data-key:{home}"     # engine/archive/keys.py
    kid = keyring.get_password(service, "current")
    value = keyring.get_password(service, kid.strip()) if kid else None
    if value:
        out[f"data key {kid.strip()}"] = forms(base64.b64decode(value))
    seal = keyring.get_password("sybar-catalog-seal", str(home.resolve()))  # engine/catalog/seal.py
    if seal:
        out["catalog seal key"] = forms(bytes.fromhex(seal))
    return out


def _backup(home: Path, script: Path, needles, extra_roots=()) -> Scanner:
    cli = subprocess.Popen([_bin("sybar"), "backup", str(script), "--home", str(home)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           env={k: v for k, v in os.environ.items() if k != "SYBAR_SA_PASSWORD"})
    scanner = Scanner({cli.pid, *extra_roots}, needles)
    scanner.start()
    try:
        while cli.poll() is None:   # the daemon the CLI may start is its child only for a moment: add it
            state = home / "control.json"
            if state.exists():
                try:
                    scanner.roots.add(int(json.loads(state.read_text())["pid"]))
                except (ValueError, KeyError):
                    pass
            time.sleep(0.05)
        out = cli.stdout.read()
    finally:
        scanner.stop.set()
        scanner.join(10)
    assert cli.returncode == 0, out
    return scanner


def _file_leaks(home: Path, needles: dict[str, set[bytes]], own: dict[str, str]) -> tuple[list[str], int]:
    leaks, count = [], 0
    for path in sorted(home.rglob("*")):
        if not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except (FileNotFoundError, PermissionError):
            continue
        count += 1
        rel = str(path.relative_to(home))
        for secret in find_any(data, needles):
            if own.get(rel) != secret:
                leaks.append(f"{secret} in {rel}")
    return leaks, count


def test_no_secret_in_argv_environment_logs_or_files(tmp_path, sa_in_keyring):
    home = tmp_path / "h"
    t0 = time.monotonic()
    # first start: the sa password comes in SYBAR_SA_PASSWORD, the documented way
    s = start_serve(home)
    try:
        r = s.fisql("create database mydb\ngo\n")
        assert "Msg" not in r.stdout, r.stdout + r.stderr
        fill_demo_database(s.db_file("mydb"), 6)
        install_sample_scripts(Home.resolve(home))
        env = read_proc(s.proc.pid, "environ") or b""
        assert b"SYBAR_SA_PASSWORD" in env  # it was given ...
        assert SA_PASSWORD.encode() not in env, "the sa password stays in the daemon's /proc/PID/environ"
    finally:
        stop_serve(s)
    assert keyring.get_password("sybar:SYBAR", "sa") == SA_PASSWORD  # the scripts' isql finds it there

    def needles() -> dict[str, set[bytes]]:
        n = {"sa password": forms(SA_PASSWORD), "control token": forms((home / "control.token").read_text().strip()),
             "media secret": forms((home / "media.secret").read_bytes()),
             "TLS CA key": _pem_needles(home / "tls" / "ca.key"),
             "TLS server key": _pem_needles(home / "tls" / "server.key")}
        n.update(_keyring_keys(home))
        return n

    # the CLI starts the daemon (serve.out), then two backups: sybar-isql, then fisql as the script's isql
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    text = (home / "scripts" / "sybase_mydb_backup").read_text()
    fisql_script = scripts / "sybase_mydb_backup"
    fisql_script.write_text(text.replace("ISQL=${ISQL:-sybar-isql}", "ISQL=fisql"))
    fisql_script.chmod(0o700)
    (scripts / "sybase_mydb_backup.sql").write_text((home / "scripts" / "sybase_mydb_backup.sql").read_text())
    # the daemon the CLI starts listens where the last one did (control.json, gone at its stop): a free
    # port here, not the default 5000 another test on this machine might hold
    (home / "control.json").write_text(json.dumps({"pid": 0, "dataserver": "127.0.0.1:0"}))
    t1 = time.monotonic()
    first = _backup(home, home / "scripts" / "sybase_mydb_backup", needles())
    daemon_pid = int(json.loads((home / "control.json").read_text())["pid"])
    try:
        t2 = time.monotonic()
        second = _backup(home, fisql_script, needles(), extra_roots=(daemon_pid,))
        t3 = time.monotonic()
        found = needles()
        running, n_running = _file_leaks(home, found, OWN)
    finally:
        os.kill(daemon_pid, signal.SIGTERM)
        for _ in range(200):
            if not Path(f"/proc/{daemon_pid}").exists() or b"Z" in (read_proc(daemon_pid, "stat") or b"Z")[:60]:
                break
            time.sleep(0.1)
    stopped, n_stopped = _file_leaks(home, found, OWN)
    print(f"timings: setup {t1 - t0:.1f} s, first backup (daemon started by the CLI) {t2 - t1:.1f} s, "
          f"second {t3 - t2:.1f} s, file scans and stop {time.monotonic() - t3:.1f} s")

    for scan, isql in ((first, "sybar-isql"), (second, "fisql")):
        names = " / ".join(sorted(scan.seen))
        print(f"{isql}: {scan.rounds} scans, {len(scan.seen)} command lines: {names}")
        assert not scan.leaks, "\n".join(sorted(set(scan.leaks)))
        # the scan saw the whole chain: the daemon, the media server, the script, its isql
        assert any("serve" in n for n in scan.seen), names
        assert any("engine.media" in n or "media" in n for n in scan.seen), names
        assert any("sybase_mydb_backup" in n for n in scan.seen), names
        assert any(isql in n for n in scan.seen), names
    print(f"files scanned: {n_running} while serving, {n_stopped} after; secrets: {', '.join(found)}")
    assert (home / "logs" / "serve.out").exists()
    assert not running, "\n".join(running)
    assert not stopped, "\n".join(stopped)
    modes = bad_modes(home)   # and the modes, with the daemon (the CLI started it) stopped
    assert not modes, "\n".join(modes)
    keyring_dir = os.environ.get("SYBAR_KEYRING_DIR")
    if keyring_dir:
        assert not Path(keyring_dir).resolve().is_relative_to(home.resolve())


# the files that are each secret's own storage (0600, see the module's docstring)
OWN = {"control.token": "control token", "media.secret": "media secret", "tls/ca.key": "TLS CA key",
       "tls/server.key": "TLS server key"}

