"""`sybar ...`: the command line.

Each subcommand is a thin shell over the engine: argument parsing, a
StatusError turned into a sentence on stderr and the NetBackup status as the
exit code (252 with the code printed when it does not fit in 8 bits, as
NetBackup's own commands do).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import sys

from engine import __version__
from engine.home import DEFAULT_PORT, SERVER_NAME, Home
from engine.jobs.status import SYSTEM_ERROR, StatusError

log = logging.getLogger("sybar")


def parse_listen(text: str, option: str = "--listen") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise StatusError(SYSTEM_ERROR, f"{option} {text!r} is not HOST:PORT (for example 127.0.0.1:5000; port 0 "
                                        "picks a free port)")
    return host.strip("[]") or "127.0.0.1", int(port)


def _add_home(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", metavar="DIR", help="sybar home (default: $SYBAR_HOME or the user data dir)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sybar", description="Sybase Backup, Archive, and Restore")
    parser.add_argument("--version", action="version", version=f"sybar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the engine daemon: master, dataserver and media server of a home")
    _add_home(serve)
    serve.add_argument("--listen", metavar="HOST:PORT", default=f"127.0.0.1:{DEFAULT_PORT}",
                       help="TDS listener address (port 0 picks a free port)")
    serve.add_argument("--name", default=SERVER_NAME, help="dataserver name (default SYBAR)")
    serve.add_argument("--reset-sa-password", action="store_true",
                       help="set the sa password again from SYBAR_SA_PASSWORD")
    serve.add_argument("--control-listen", metavar="HOST:PORT", default="127.0.0.1:0",
                       help="control API address (default loopback, a free port; TLS when not loopback)")
    serve.add_argument("--media-listen", metavar="HOST:PORT", default="127.0.0.1:0",
                       help="media server address (default loopback, a free port; TLS when not loopback)")
    serve.add_argument("--no-tls", action="store_true",
                       help="never use TLS: then every listener must be on loopback")
    serve.add_argument("--insecure-tds", action="store_true",
                       help="allow --listen off loopback: TDS 5.0 has no TLS, logins and data cross in clear")

    isql = sub.add_parser("isql", help="Sybase-compatible isql client", add_help=False)
    isql.add_argument("args", nargs=argparse.REMAINDER)

    pw = sub.add_parser("password", help="keep a dataserver login's password in the OS keyring")
    pw_sub = pw.add_subparsers(dest="action", metavar="ACTION", required=True)
    pw_set = pw_sub.add_parser("set", help="store a password (read from a prompt or stdin, never argv)")
    pw_set.add_argument("server")
    pw_set.add_argument("user")
    pw_del = pw_sub.add_parser("delete", help="remove a stored password")
    pw_del.add_argument("server")
    pw_del.add_argument("user")

    from engine import cli_lint, cli_ops

    cli_ops.add_parsers(sub, _add_home)
    cli_lint.add_parser(sub, _add_home)
    from engine import cli_expire

    cli_expire.add_parsers(sub, _add_home)
    from engine import cli_key

    cli_key.add_parser(sub, _add_home)
    sub.add_parser("gui", help="the Backup, Archive, and Restore window (the default with no command)")

    demo = sub.add_parser("demo", help="make a ready demo home (databases, scripts) and serve it")
    _add_home(demo)
    demo.add_argument("--listen", metavar="HOST:PORT", default=f"127.0.0.1:{DEFAULT_PORT}")
    demo.add_argument("--size-mb", type=int, default=32, help="size of the demo database mydb")
    demo.add_argument("--once", action="store_true", help="set up, run the sample backup once, then stop")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["isql"]:  # isql owns its flags (-U -P -S ...), argparse must not touch them
        from engine.isql.main import main as isql_main
        return isql_main(argv[1:])
    if not argv or argv[0] == "gui":  # the window (gui/ parses its own flags: --home, --screenshot, --view)
        return _gui(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "password":
            from engine import secrets
            if args.action == "set":
                return secrets.password_set_command(args.server, args.user)
            secrets.delete_password(args.server, args.user)
            return 0
        if args.command in ("backup", "restore", "list", "verify", "jobs", "cleanup"):
            from engine import cli_ops
            return cli_ops.main_for(args)
        if args.command in ("expire", "catalog"):
            from engine import cli_expire
            return cli_expire.main_for(args)
        if args.command == "key":
            from engine import cli_key
            return cli_key.run(args)
        if args.command == "lint":
            from engine import cli_lint
            return cli_lint.run(args)
        if args.command == "demo":
            from engine.demo import run_demo
            return run_demo(args)
        build_parser().print_help()
        return 0
    except StatusError as e:
        print(f"sybar: {e} (status {e.status})", file=sys.stderr)
        return e.status if e.status < 256 else 252
    except KeyboardInterrupt:
        return 130


def _gui(argv: list[str]) -> int:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")):
        print("sybar: no display for the window (DISPLAY and WAYLAND_DISPLAY are unset). Run it in a desktop "
              "session, or use the command line: `sybar --help`. For a picture of the window without a display: "
              "QT_QPA_PLATFORM=offscreen sybar gui --screenshot OUT.png", file=sys.stderr)
        return 1
    from gui.app import main as gui_main
    return gui_main(argv)


@contextlib.contextmanager
def home_lock(home: Home):
    """One daemon per home: a second `sybar serve` says who holds it."""
    fd = os.open(home.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise StatusError(SYSTEM_ERROR, f"another sybar serve (pid {other}) is running for {home.root}; "
                                            "stop it first or use another --home") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def take_sa_password(server, reset: bool) -> None:
    """Set sa's password from SYBAR_SA_PASSWORD on first start (or when told to reset).

    The variable is removed from our environment either way, so no child
    process (scripts, isql) ever inherits it.
    """
    from engine.environ import take_secret

    password = take_secret("SYBAR_SA_PASSWORD")  # also wiped from /proc/PID/environ
    if server.has_sa_password() and not reset:
        if password:
            print("sybar serve: SYBAR_SA_PASSWORD ignored: the sa password is already set "
                  "(use --reset-sa-password to change it)", file=sys.stderr)
        return
    if not password:
        raise StatusError(
            SYSTEM_ERROR,
            "no sa password: set SYBAR_SA_PASSWORD in the environment for the first start "
            "(it is stored only as a salted hash)" + (" and rerun with --reset-sa-password" if reset else ""),
        )
    server.set_sa_password(password)


def serve(args) -> int:
    from engine.tls import Network, check_listeners

    home = Home.resolve(args.home).ensure()
    host, port = parse_listen(args.listen)
    network = Network(control=parse_listen(args.control_listen, "--control-listen"),
                      media=parse_listen(args.media_listen, "--media-listen"), tls=not args.no_tls,
                      insecure_tds=args.insecure_tds)
    check_listeners(network, host)  # off loopback only with TLS: refused before anything starts (or imports)
    import asyncio

    from engine.daemon import Daemon

    with home_lock(home):
        _file_logging(home)
        daemon = Daemon(home, args.name, network=network)
        take_sa_password(daemon.dataserver, args.reset_sa_password)
        return asyncio.run(_serve_forever(daemon, host, port))


def _file_logging(home: Home) -> None:
    handler = logging.FileHandler(home.logs / "serve.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for h in root.handlers:
        if h is not handler:
            h.setLevel(logging.WARNING)
    os.chmod(home.logs / "serve.log", 0o600)


async def _serve_forever(daemon, host: str, port: int) -> int:
    import asyncio  # not at import time: `sybar --version` and `--help` need none of it

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await daemon.start(host, port)
    a = daemon.addresses
    print(f"sybar serve: dataserver {daemon.dataserver.name} listening on {a['dataserver']}; media server on "
          f"{a['media']}; control API on {a['control']} (home {daemon.home.root})", flush=True)
    await stop.wait()
    print("sybar serve: stopping", flush=True)
    await daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
