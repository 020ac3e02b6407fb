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
    from engine.cli import home_lock, parse_listen
    from engine.dataserver.server import Dataserver

    home = Home.resolve(args.home).ensure()
    host, port = parse_listen(args.listen)
    with home_lock(home):
        server = Dataserver(home)
        sa_password_for_demo(server)
        ensure_demo_databases(server, args.size_mb)
        install_sample_scripts(home)
        return asyncio.run(_demo(server, home, host, port, args.once))


async def _demo(server, home: Home, host: str, port: int, once: bool) -> int:
    from engine.dataserver.server import write_client_files

    real_host, real_port = await server.start(host, port)
    write_client_files(home, server.name, real_host, real_port)
    print(f"sybar demo: dataserver {server.name} listening on {real_host}:{real_port} (home {home.root})",
          flush=True)
    script = home.scripts / "sybase_mydb_backup"
    print(f"sybar demo: running the sample backup script by hand: {script}", flush=True)
    env = dict(os.environ, ISQL=isql_program(), SYBAR_HOME=str(home.root))
    proc = await asyncio.create_subprocess_exec(str(script), env=env)
    rc = await proc.wait()
    print(f"sybar demo: the backup script exited with status {rc}; its dump is in {home.root / 'dumps'}",
          flush=True)
    if not once:
        print(
            "sybar demo: try it yourself:\n"
            f"    SYBAR_HOME={home.root} sybar isql -Usa -S{server.name}    (password from the keyring)\n"
            f"    FREETDSCONF={home.freetds_conf} fisql -S {server.name} -U sa -P ...\n"
            f"    {home.scripts / 'sybase_mydb_restore'}\n"
            + _private_keyring_hint()
            + "Press Ctrl-C to stop.",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    await server.stop()
    return 0 if rc == 0 else 1
