"""`sybar demo`: a ready home to try sybar on, served until Ctrl-C.

It makes (once) the demo databases mydb and salesdb, the restore target
mydb_restore, copies the sample scripts into HOME/scripts, keeps a random sa
password in the OS keyring (never on screen or disk), starts the dataserver and
runs the sample backup script by hand, as a DBA would the first time.
"""

from __future__ import annotations

import asyncio
import os
import secrets as pysecrets
import shutil
import signal
import sys
from pathlib import Path

from engine import secrets
from engine.dataserver.demo_data import fill_demo_database
from engine.dataserver.master import FOR_LOAD, ONLINE, check_password
from engine.home import SERVER_NAME, Home, make_private_dir

RESOURCES = Path(__file__).resolve().parents[1] / "resources"


def isql_program() -> str:
    from engine.frozen import is_frozen

    if is_frozen():  # the bundle's own sybar-isql, beside its sybar, whatever else is on PATH
        return str(Path(sys.executable).with_name("sybar-isql"))
    found = shutil.which("sybar-isql") or str(Path(sys.executable).with_name("sybar-isql"))
    return found


def install_sample_scripts(home: Home) -> list[Path]:
    make_private_dir(home.scripts)
    installed = []
    for src in sorted((RESOURCES / "scripts").iterdir()):
        dst = home.scripts / src.name
        if not dst.exists():
            shutil.copyfile(src, dst)
            # scripts must not be world-writable (bphdb refuses those); SQL is data
            os.chmod(dst, 0o700 if os.access(src, os.X_OK) else 0o600)
        installed.append(dst)
    return installed


def sa_password_for_demo(server) -> str:
    password = secrets.get_password(SERVER_NAME, "sa")
    if password is None:
        password = pysecrets.token_urlsafe(18)
        secrets.set_password(SERVER_NAME, "sa", password)
    stored = server.master.login_hash("sa")
    if stored is None or not check_password(password, stored):
        server.set_sa_password(password)
    return password


def ensure_demo_databases(server, size_mb: int) -> None:
    master = server.master
    for name, size, state in (("mydb", size_mb, ONLINE), ("salesdb", max(size_mb // 4, 4), ONLINE),
                              ("mydb_restore", None, FOR_LOAD)):
        if master.get(name) is not None:
            continue
        path = master.db_path(name)
        for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            f.unlink(missing_ok=True)
        if state == ONLINE:
            print(f"sybar demo: making database {name} (about {size} MB) ...", flush=True)
            fill_demo_database(path, size)
        else:
            path.touch(mode=0o600)
        os.chmod(path, 0o600)
        master.add(name, None, state)


def _private_keyring_hint() -> str:
    """Headless, tools/demo runs a private keyring: other shells reach it through this bus."""
    bus = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if not (bus and os.environ.get("SYBAR_KEYRING_DIR")):
        return ""
    return f"In another shell, reach the demo's keyring first:\n    export DBUS_SESSION_BUS_ADDRESS='{bus}'\n"


def run_demo(args) -> int:
    from engine.cli import _file_logging, home_lock, parse_listen
    from engine.daemon import Daemon

    home = Home.resolve(args.home).ensure()
    host, port = parse_listen(args.listen)
    from engine.tls import Network, check_listeners

    check_listeners(Network(), host)  # the demo's TDS stays on loopback (no TLS in TDS 5.0)
    if args.once and (home.root / "control.json").exists():
        from engine.control.client import read_state

        state = read_state(home) or {}
        try:
            pid = int(state.get("pid", 0))
            if pid <= 0:
                raise ValueError("no pid")
            os.kill(pid, 0)
            print(f"sybar demo: a daemon (pid {state['pid']}) already serves {home.root}; using the home as it is",
                  flush=True)
            return 0
        except (ProcessLookupError, ValueError, PermissionError):
            pass
    with home_lock(home):
        _file_logging(home)
        daemon = Daemon(home)
        sa_password_for_demo(daemon.dataserver)
        ensure_demo_databases(daemon.dataserver, args.size_mb)
        install_sample_scripts(home)
        return asyncio.run(_demo(daemon, home, host, port, args.once))


async def _demo(daemon, home: Home, host: str, port: int, once: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await daemon.start(host, port)
    a = daemon.addresses
    print(f"sybar demo: dataserver {daemon.dataserver.name} listening on {a['dataserver']}; media server on "
          f"{a['media']}; control API on {a['control']} (home {home.root})", flush=True)
    script = home.scripts / "sybase_mydb_backup"
    print(f"sybar demo: a user-directed backup with the sample script: sybar backup {script}", flush=True)
    status = await _follow_backup(daemon, script)
    print(f"sybar demo: the backup ended with status {status}", flush=True)
    if not once:
        print(
            "sybar demo: try it yourself:\n"
            + _private_keyring_hint()
            + f"    export SYBAR_HOME={home.root} PATH={Path(sys.executable).parent}:$PATH\n"
            "    sybar list                     the images in the catalog\n"
            f"    sybar backup {script}\n"
            f"    sybar restore {home.scripts / 'sybase_mydb_restore'}\n"
            "    sybar jobs                     the activity monitor\n"
            f"    sybar isql -Usa -S{daemon.dataserver.name}          (password from the keyring)\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        await stop.wait()
    await daemon.stop()
    return 0 if status == 0 else 1


async def _follow_backup(daemon, script: Path) -> int:
    """Run one backup job through bphdb and print its log and stripe progress as they come."""
    sub = daemon.bus.subscribe()
    try:
        parent = (await daemon.start_backup([str(script)]))[0]
        async for event in sub:
            e = event.to_json()
            kind = e.get("event")
            if kind == "job_log" and e.get("job_id") == parent:
                print(f"  {e['line']}", flush=True)
            elif kind == "job_progress" and e.get("bytes_done") == e.get("bytes_expected"):
                print(f"  stripe {(e.get('stripe') or 0) + 1}: {e['bytes_done'] // 1024} KB stored", flush=True)
            elif kind == "job_ended" and e.get("job_id") == parent:
                return int(e["status"])
    finally:
        sub.close()
    return 1
