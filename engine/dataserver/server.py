"""The embedded dataserver: logins, sessions and databases behind a TDS 5.0 listener."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import sqlite3

from engine import __version__
from engine.dataserver.backup import BackupServer
from engine.dataserver.databases import Databases
from engine.dataserver.dumpconfig import DumpConfigs
from engine.dataserver.dumphist import DumpHistory
from engine.dataserver.master import Master, check_password
from engine.dataserver.session import Session
from engine.home import Home
from engine.jobs.status import SYSTEM_ERROR, StatusError
from engine.tds.login import LoginRecord
from engine.tds.server import LoginFailed, serve_tds

log = logging.getLogger(__name__)

SA = "sa"


class Dataserver:
    """Implements the TDS server's Handler: one Session per login."""

    def __init__(self, home: Home, name: str = "SYBAR"):
        self.home = home
        self.name = name
        self.version = (
            f"sybar dataserver/{__version__}/Adaptive Server Enterprise compatible/TDS 5.0/"
            f"SQLite {sqlite3.sqlite_version}"
        )
        self.master = Master(home.data)
        self.sessions: dict[int, Session] = {}
        self.busy: dict[str, str] = {}          # database -> "dump" | "load" while one runs
        self.archive = None                     # the sybackup:: archive API, when a master runs here
        # ASE's dump history and named dump configurations (sp_dump_history, sp_config_dump)
        self.dumphist = DumpHistory(home.data / "dumphist.db")
        self.dumpconfigs = DumpConfigs(home.data / "dumphist.db")
        self.databases = Databases(self)
        self.backup = BackupServer(self)
        self._spids = itertools.count(11)
        self._server: asyncio.base_events.Server | None = None

    # -- the sa password ---------------------------------------------------------
    def has_sa_password(self) -> bool:
        return self.master.login_hash(SA) is not None

    def set_sa_password(self, password: str) -> None:
        if not password:
            raise StatusError(SYSTEM_ERROR, "the sa password must not be empty")
        self.master.set_login(SA, password)

    # -- Handler ---------------------------------------------------------------
    async def login(self, record: LoginRecord, peer) -> Session:
        stored = self.master.login_hash(record.user)
        ok = stored is not None and await asyncio.to_thread(check_password, record.password, stored)
        if not ok:
            # same answer for an unknown login and a wrong password: no login enumeration
            log.warning("login failed for %r from %s", record.user, peer[0] if peer else "?")
            raise LoginFailed("Login failed.")
        spid = next(self._spids)
        client_pid = int(record.host_process) if record.host_process.strip().isdigit() else None
        local = bool(peer) and ipaddress.ip_address(peer[0].split("%")[0]).is_loopback
        session = Session(self, spid, record.user, record.host or (peer[0] if peer else ""), record.app,
                          client_pid=client_pid, local_client=local)
        self.sessions[spid] = session
        return session

    def internal_session(self, database: str = "master") -> Session:
        """A session of the daemon's own (restores of an image): no login, never on the wire."""
        spid = next(self._spids)
        session = Session(self, spid, "sa", "localhost", "sybar master")
        session.database = database
        self.sessions[spid] = session
        return session

    def session_ended(self, session: Session) -> None:
        self.sessions.pop(session.spid, None)

    def users_of(self, database: str, besides: Session | None = None) -> list[Session]:
        return [s for s in self.sessions.values() if s.database == database and s is not besides]

    # -- listening -------------------------------------------------------------
    async def start(self, host: str, port: int) -> tuple[str, int]:
        try:
            self._server = await serve_tds(self, host, port, server_name=self.name)
        except OSError as e:
            raise StatusError(SYSTEM_ERROR, f"cannot listen on {host}:{port}: {e.strerror}. "
                                            "Choose another address with --listen HOST:PORT.") from e
        addr = self._server.sockets[0].getsockname()
        return addr[0], addr[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.dumphist.close()
        self.dumpconfigs.close()
        self.master.close()


def write_client_files(home: Home, name: str, host: str, port: int) -> None:
    """interfaces (Sybase clients) and freetds.conf (FreeTDS clients) for this server."""
    from engine.home import write_private_file

    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    write_private_file(
        home.interfaces,
        f"## written by sybar serve: the dataserver of this home\n{name}\n"
        f"\tmaster tcp ether {host} {port}\n\tquery tcp ether {host} {port}\n",
    )
    write_private_file(
        home.freetds_conf,
        "# written by sybar serve; use with FREETDSCONF=this file\n"
        "[global]\n\ttds version = 5.0\n\tclient charset = UTF-8\n\n"
        f"[{name}]\n\thost = {host}\n\tport = {port}\n\ttds version = 5.0\n",
    )
