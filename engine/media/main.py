"""``python -m engine.media``: the media server as a process of its own.

    python -m engine.media --home DIR --listen HOST:PORT --unit NAME=PATH [--unit ...]

Prints ``sybar media server listening on HOST:PORT (storage units: ...)``
on stdout once it accepts connections (port 0 picks a free port; the line
gives the real one), logs to stderr, and stops cleanly on SIGTERM or SIGINT
(stores in progress are aborted, their temporaries removed). The secret is
read from HOME/media.secret (created on first use), never from argv. Off
loopback it speaks TLS only, with HOME/tls/server.pem (engine/tls.py).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import os
import signal
import sys
import threading

from engine.home import Home
from engine.jobs.status import StatusError
from engine.media.secret import ensure_media_secret
from engine.media.server import MediaServer
from engine.storage.base import StorageUnit, validate_unit_name
from engine.storage.disk import DiskStorageUnit
from engine.tls import is_loopback, server_context

log = logging.getLogger("sybar.media")


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT or [V6HOST]:PORT."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{text!r} is not [HOST]:PORT")
        port_s = rest[1:]
    else:
        host, sep, port_s = text.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r} is not HOST:PORT")
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"port {port_s!r} in {text!r} is not a number") from None
    if not 0 <= port <= 65535 or not host:
        raise ValueError(f"{text!r} is not HOST:PORT with a port from 0 to 65535")
    return host, port


def parse_unit(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not path:
        raise ValueError(f"--unit {text!r} is not NAME=PATH")
    try:
        validate_unit_name(name)
    except StatusError as e:
        raise ValueError(str(e)) from None
    return name, path


def _fmt_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Stop when the daemon that started us is gone (a kill -9 leaves no one to send SIGTERM)."""
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("the daemon (pid %d) that started this media server is gone: stopping", parent)
            stop.set()
            # and out within seconds even if a store cannot unwind (its temporary is left for cleanup)
            timer = threading.Timer(10.0, os._exit, (1,))
            timer.daemon = True
            timer.start()
            return
        await asyncio.sleep(0.5)


async def run(home: Home, host: str, port: int, units: dict[str, StorageUnit], ready=print,
              parent: int | None = None) -> int:
    loop = asyncio.get_running_loop()
    # one worker per stripe in flight (32) plus room: verifying and hashing run there
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="media")
    )
    secret = ensure_media_secret(home)
    for unit in units.values():  # a unit that cannot work is said at start, not at the first backup
        prepare = getattr(unit, "prepare", None)
        if prepare is not None:
            await prepare()
    media = MediaServer(units, secret)
    # off loopback the media server speaks TLS only (the home's certificate, engine/tls.py)
    ssl_context = None if is_loopback(host) else server_context(home)
    try:
        await media.start(host, port, ssl=ssl_context)
    except OSError as e:
        print(f"sybar media: can't listen on {_fmt_addr(host, port)}: {e.strerror or e}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.create_task(_watch_parent(parent, stop)) if parent else None
    bound_host, bound_port = media.address
    listing = ", ".join(f"{u.name}={getattr(u, 'path', '?')}" for u in units.values())
    tls = " with TLS" if ssl_context is not None else ""
    ready(f"sybar media server listening on {_fmt_addr(bound_host, bound_port)}{tls} (storage units: {listing})")
    log.info("listening on %s; storage units: %s", _fmt_addr(bound_host, bound_port), listing)
    await stop.wait()
    if watch is not None:
        watch.cancel()
    log.info("stopping: %d connections open", media.active_connections)
    await media.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.media", description="sybar media server")
    ap.add_argument(
        "--home", help="the sybar home (holds media.secret); default SYBAR_HOME or the user data dir"
    )
    ap.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="address to listen on")
    ap.add_argument(
        "--unit", action="append", default=[], metavar="NAME=PATH", help="a disk storage unit (repeatable)"
    )
    ap.add_argument("--parent-pid", type=int, metavar="PID",
                    help="stop when process PID (the daemon that started this media server) is gone")
    ap.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = ap.parse_args(argv)
    try:
        host, port = parse_listen(args.listen)
        units: dict[str, StorageUnit] = {}
        for spec in args.unit:
            name, path = parse_unit(spec)
            if name in units:
                raise ValueError(f"storage unit {name} is given twice")
            units[name] = DiskStorageUnit(name, path)
        if not units:
            raise ValueError("give at least one storage unit: --unit NAME=PATH")
    except ValueError as e:
        ap.error(str(e))
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level),
        format="%(asctime)s media[%(process)d] %(levelname)s %(message)s",
    )
    home = Home.resolve(args.home)

    def ready(line: str) -> None:
        print(line, flush=True)

    try:
        return asyncio.run(run(home, host, port, units, ready, parent=args.parent_pid))
    except StatusError as e:
        print(f"sybar media: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
