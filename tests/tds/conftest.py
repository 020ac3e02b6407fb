"""Shared fixtures for the TDS tests: an echo handler and a serve_tds running in a thread.

The server runs on its own event loop in a background thread so that the
tests can drive it with blocking peers: real FreeTDS programs as
subprocesses, and our own blocking client.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.tds.login import LoginRecord
from engine.tds.packets import HEADER_SIZE
from engine.tds.server import (
    DatabaseChanged,
    Done,
    Error,
    Info,
    LoginFailed,
    ResultFormat,
    ResultRow,
    serve_tds,
)
from engine.tds.tokens import Column

# What `fisql -S SYBAR -U sa -P secretpw` (FreeTDS 1.3.17, tds version = 5.0) really sent:
# a 603-byte login in two packets (512 + 107 bytes), captured with a throw-away listener.
FISQL_LOGIN_PACKETS = [
    bytes.fromhex(
        "0200020000000000766d0000000000000000000000000000000000000000000000000000000002736100000000000000"
        "000000000000000000000000000000000000000000027365637265747077000000000000000000000000000000000000"
        "0000000008343639340000000000000000000000000000000000000000000000000000040301060a0901000000000000"
        "00000000666973716c000000000000000000000000000000000000000000000000000553594241520000000000000000"
        "000000000000000000000000000000000005000873656372657470770000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000000a0500000044422d4c696272617279"
        "0a05000000000d1175735f656e676c6973680000000000000000000000000000"
    ),
    bytes.fromhex(
        "0201006b000000000000000000000a000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000013531320000000300000000e22000010e000060088181e80f6d7ffffffffe020e000000"
        "0000000000000268000000"
    ),
]
FISQL_LOGIN = b"".join(FISQL_LOGIN_PACKETS)
FISQL_LOGIN_PAYLOAD = b"".join(p[HEADER_SIZE:] for p in FISQL_LOGIN_PACKETS)
# The request that followed the login, and the logout at exit.
FISQL_SPID_REQUEST = bytes.fromhex("0f01001c00000000210f0000000073656c6563742040407370696420")
FISQL_LOGOUT = bytes.fromhex("0f01000a000000007100")


class Capture:
    """The fisql capture above, handed to tests through the ``capture`` fixture."""

    login_packets = FISQL_LOGIN_PACKETS
    login = FISQL_LOGIN
    login_payload = FISQL_LOGIN_PAYLOAD
    spid_request = FISQL_SPID_REQUEST
    logout = FISQL_LOGOUT


@pytest.fixture
def capture() -> type[Capture]:
    return Capture


PASSWORD = "pw"

SELECT_COLUMNS = [
    Column("id", "int"),
    Column("name", "varchar", 30),
    Column("big", "bigint"),
    Column("ratio", "float"),
    Column("created", "datetime"),
    Column("flag", "bit"),
    Column("data", "binary", 4),
]
SELECT_ROWS = [
    (1, "alpha", 2**40, 1.5, datetime.datetime(2024, 1, 2, 3, 4, 5, 500000), True, b"\x01\x02"),
    (2, None, None, None, None, False, None),
    (-3, "ünïcødé", -(2**40), -0.25, datetime.datetime(1999, 12, 31, 23, 59, 59), False, b""),
]


class EchoSession:
    def __init__(self, handler: EchoHandler, user: str) -> None:
        self.handler = handler
        self.user = user
        self.database = "master"

    async def execute(self, sql: str):
        text = sql.strip()
        word = text.split(None, 1)[0].lower() if text else ""
        if text.lower().startswith("select @@spid"):
            yield ResultFormat([Column("", "int")])
            yield ResultRow((17,))
            yield Done(1)
        elif word == "select":
            yield ResultFormat(SELECT_COLUMNS)
            for r in SELECT_ROWS:
                yield ResultRow(r)
            yield Done(len(SELECT_ROWS))
        elif word == "fail":
            yield Error(208, 16, "nosuch not found. Specify owner.objectname.", state=1, line=1)
            yield Done(error=True)
        elif word == "print":
            yield Info(text[len("print") :].strip())
            yield Done()
        elif word == "multi":
            yield Info("statement one")
            yield Done()
            yield ResultFormat([Column("word", "varchar", 10)])
            yield ResultRow(("two",))
            yield Done(1)
            yield Error(2601, 14, "Attempt to insert duplicate key row.", line=3)
            yield Done(error=True)
            yield Info("statement four")
            yield Done(count=0)
        elif word == "slow":
            try:
                for i in range(50):
                    yield Info(f"progress {i}")
                    await asyncio.sleep(0.1)
                yield Done()
            except (asyncio.CancelledError, GeneratorExit):
                self.handler.cancelled += 1
                raise
        elif word == "sleep":
            await asyncio.sleep(float(text.split()[1]))
            yield Info("slept")
            yield Done()
        elif word == "long":
            yield ResultFormat([Column("txt", "varchar", 1000), Column("blob", "binary", 600)])
            yield ResultRow(("é" * 350, bytes(range(256)) * 2))
            yield ResultRow(("", None))
            yield Done(2)
        elif word == "many":
            yield ResultFormat([Column("n", "int"), Column("s", "varchar", 40)])
            for i in range(2000):
                yield ResultRow((i, f"row {i}"))
            yield Done(2000)
        elif word == "boom":
            yield Info("about to fail")
            raise ValueError("kaboom")
        elif word == "badrow":
            yield ResultFormat([Column("n", "int")])
            yield ResultRow(("not an int",))
            yield Done(1)
        elif word == "use":
            new = text.split()[1]
            old, self.database = self.database, new
            yield DatabaseChanged(new, old)
            yield Done()
        elif word == "":
            return  # an empty batch: the server still owes a DONE
        else:
            yield Info(f"echo: {text}")
            yield Done()

    async def close(self) -> None:
        self.handler.closed += 1


class EchoHandler:
    def __init__(self) -> None:
        self.logins: list[LoginRecord] = []
        self.closed = 0
        self.cancelled = 0

    async def login(self, record: LoginRecord, peer: tuple) -> EchoSession:
        self.logins.append(record)
        if record.user == "broken":
            raise RuntimeError("handler bug during login")
        if record.password != PASSWORD:
            raise LoginFailed("Login failed.")
        return EchoSession(self, record.user)


class ServerThread:
    def __init__(self, handler: EchoHandler) -> None:
        self.handler = handler
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tds-test-server", daemon=True)
        self.server: asyncio.Server | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def start(self) -> None:
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(serve_tds(self.handler, self.host, 0), self.loop)
        self.server = fut.result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self.server is not None
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def echo_handler_class() -> type[EchoHandler]:
    return EchoHandler


@pytest.fixture(scope="session")
def tds_server() -> Iterator[ServerThread]:
    srv = ServerThread(EchoHandler())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def freetds_conf(tds_server: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("freetds") / "freetds.conf"
    path.write_text(
        "[global]\n"
        "\ttds version = 5.0\n"
        "[SYBAR]\n"
        f"\thost = {tds_server.host}\n"
        f"\tport = {tds_server.port}\n"
        "\ttds version = 5.0\n"
        "[SYBARAUTO]\n"
        f"\thost = {tds_server.host}\n"
        f"\tport = {tds_server.port}\n"
        "\ttds version = auto\n"
    )
    return path
