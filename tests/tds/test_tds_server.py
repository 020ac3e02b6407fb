"""serve_tds over real sockets, driven by our blocking client and by raw bytes."""

from __future__ import annotations

import datetime as dt
import socket
import struct
import threading
import time

import pytest

from engine.tds import tokens as t
from engine.tds.client import Connection, LoginError, TDSClientError
from engine.tds.connection import ClientConnection, EndOfMessage
from engine.tds.login import LoginRecord
from engine.tds.packets import PacketType, encode_message
from engine.tds.tokens import Done, EnvChange, Message, Row, RowFormat

pytestmark = pytest.mark.timeout(60)


def connect(srv, **kw) -> Connection:
    kw.setdefault("user", "sa")
    kw.setdefault("password", "pw")
    return Connection.connect(srv.host, srv.port, timeout=20, **kw)


def wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_login_ok(tds_server):
    with connect(tds_server, app="pytest") as c:
        assert c.database == "master"
        assert c.server_name == "SYBAR"
        assert c.server_version == (15, 7, 0, 0)
    assert tds_server.handler.logins[-1].app == "pytest"


def test_login_options_and_settimeout(tds_server):
    with connect(tds_server, hostname="dbahost", charset="iso_1", language="french") as c:
        rec = tds_server.handler.logins[-1]
        assert (rec.host, rec.charset, rec.language) == ("dbahost", "iso_1", "french")
        c.settimeout(0.3)
        with pytest.raises(TDSClientError, match="timed out"):
            list(c.execute("sleep 2"))
        assert c.closed  # a timed-out connection is out of step: it is dropped


def test_password_too_long_is_a_login_error(tds_server):
    with pytest.raises(LoginError, match="password longer"):
        connect(tds_server, password="x" * 300)


def test_login_failed(tds_server):
    with pytest.raises(LoginError) as info:
        connect(tds_server, password="wrong")
    assert str(info.value) == "Login failed."
    assert [(m.number, m.severity) for m in info.value.messages] == [(4002, 14)]


def test_login_handler_bug_is_a_failed_login(tds_server):
    with pytest.raises(LoginError, match="Login failed."):
        connect(tds_server, user="broken")


def test_connect_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TDSClientError, match="cannot connect"):
        Connection.connect("127.0.0.1", port, user="sa", password="pw", timeout=5)


def test_select_typed_rows(tds_server):
    with connect(tds_server) as c:
        events = list(c.execute("select * from t"))
    assert isinstance(events[0], RowFormat)
    assert [col.name for col in events[0].columns] == [
        "id",
        "name",
        "big",
        "ratio",
        "created",
        "flag",
        "data",
    ]
    rows = [e.values for e in events if isinstance(e, Row)]
    assert rows[0] == (1, "alpha", 2**40, 1.5, dt.datetime(2024, 1, 2, 3, 4, 5, 500000), True, b"\x01\x02")
    assert rows[1] == (2, None, None, None, None, False, None)
    assert rows[2][1] == "ünïcødé"
    assert events[-1] == Done(t.DONE_COUNT, 3, 0)


def test_several_statements_done_bits(tds_server):
    with connect(tds_server) as c:
        events = list(c.execute("multi"))
    dones = [e for e in events if isinstance(e, Done)]
    assert [d.more for d in dones] == [True, True, True, False]
    assert [d.error for d in dones] == [False, False, True, False]
    assert dones[1].has_count and dones[1].count == 1
    texts = [e.text for e in events if isinstance(e, Message)]
    assert texts == ["statement one", "Attempt to insert duplicate key row.", "statement four"]


def test_error_statement(tds_server):
    with connect(tds_server) as c:
        events = list(c.execute("fail"))
        assert events[0].number == 208 and events[0].severity == 16
        assert events[-1].error and not events[-1].more
        # The connection goes on after an error.
        assert [e.text for e in c.execute("print still here") if isinstance(e, Message)] == ["still here"]


def test_handler_exception_becomes_internal_error(tds_server):
    with connect(tds_server) as c:
        events = list(c.execute("boom"))
        assert events[0].text == "about to fail"
        assert events[1].number == 7777 and events[1].severity == 16
        assert "internal error" in events[1].text and "kaboom" in events[1].text
        assert events[-1].error and not events[-1].more
        events = list(c.execute("badrow"))
        assert events[-2].number == 7777 and events[-1].error
        assert [e.text for e in c.execute("print alive") if isinstance(e, Message)] == ["alive"]


def test_empty_batch_still_gets_done(tds_server):
    with connect(tds_server) as c:
        assert list(c.execute("   ")) == [Done(0, 0, 0)]


def test_use_database_tracks_envchange(tds_server):
    with connect(tds_server) as c:
        events = list(c.execute("use salesdb"))
        assert EnvChange(1, "salesdb", "master") in events
        assert c.database == "salesdb"


def test_long_values_and_big_packets(tds_server):
    with connect(tds_server, packet_size=4096) as c:
        assert c._conn.packet_size == 4096
        rows = [e.values for e in c.execute("long") if isinstance(e, Row)]
        assert rows == [("é" * 350, bytes(range(256)) * 2), (" ", None)]
        many = [e.values for e in c.execute("many") if isinstance(e, Row)]
        assert len(many) == 2000 and many[-1] == (1999, "row 1999")


def test_progress_arrives_while_the_batch_runs(tds_server):
    with connect(tds_server) as c:
        start = time.monotonic()
        it = c.execute("slow")
        first = next(it)
        assert first.text == "progress 0"
        second = next(it)
        assert second.text == "progress 1"
        assert time.monotonic() - start < 2.0  # the whole batch takes 5 s
        c.cancel()


def test_cancel_a_slow_batch(tds_server):
    handler = tds_server.handler
    before = handler.cancelled
    with connect(tds_server) as c:
        seen = []
        start = time.monotonic()
        for event in c.execute("slow"):
            seen.append(event)
            if len(seen) == 3:
                c.cancel()
        assert time.monotonic() - start < 3.0
        assert [e.text for e in seen] == ["progress 0", "progress 1", "progress 2"]
        assert wait_for(lambda: handler.cancelled == before + 1)
        # The connection is back in step.
        assert [e.text for e in c.execute("print after") if isinstance(e, Message)] == ["after"]


def test_leaving_the_loop_early_cancels(tds_server):
    with connect(tds_server) as c:
        for _event in c.execute("slow"):
            break
        assert [e.text for e in c.execute("print next") if isinstance(e, Message)] == ["next"]


def test_reply_never_iterated_is_skipped(tds_server):
    with connect(tds_server) as c:
        c.execute("print ignored")
        assert [e.text for e in c.execute("print seen") if isinstance(e, Message)] == ["seen"]


def test_attention_when_idle_is_acknowledged(tds_server):
    with connect(tds_server) as c:
        list(c.execute("print done"))
        c.cancel()  # returns only once DONE with the attention bit arrived
        assert [e.text for e in c.execute("print ok") if isinstance(e, Message)] == ["ok"]


def test_twenty_concurrent_connections(tds_server):
    handler = tds_server.handler
    closed_before = handler.closed
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with connect(tds_server) as c:
                for _ in range(3):
                    events = list(c.execute(f"print worker {n}"))
                    assert events[0].text == f"worker {n}"
                    rows = [e for e in c.execute("select") if isinstance(e, Row)]
                    assert len(rows) == 3
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors
    assert wait_for(lambda: handler.closed >= closed_before + 20)


# --- raw sockets: what the client library would never send ---------------------------------------


def raw_login(srv) -> tuple[socket.socket, ClientConnection]:
    sock = socket.create_connection((srv.host, srv.port), timeout=10)
    client = ClientConnection()
    sock.sendall(client.login(LoginRecord(user="sa", password="pw")))
    read_until_eom(sock, client)
    return sock, client


def read_until_eom(sock, client) -> list:
    events: list = []
    while not events or not isinstance(events[-1], EndOfMessage):
        data = sock.recv(65536)
        if not data:
            raise EOFError
        events += client.receive_data(data)
    return events


def read_to_eof(sock) -> bytes:
    out = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return out
        out += data


def test_prelogin_closes_the_socket(tds_server):
    with socket.create_connection((tds_server.host, tds_server.port), timeout=10) as sock:
        sock.sendall(encode_message(PacketType.PRELOGIN, bytes(30)))
        assert read_to_eof(sock) == b""


def test_garbage_before_login_closes_without_reply(tds_server):
    with socket.create_connection((tds_server.host, tds_server.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert read_to_eof(sock) == b""


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (bytes.fromhex("0f01000300000000"), "shorter than the 8-byte header"),
        (encode_message(PacketType.NORMAL, b"\x99junk"), "unknown request token 0x99"),
        (encode_message(PacketType.RESPONSE, b"\xfd"), "unexpected packet type 0x04"),
        (bytes.fromhex("7701000800000000"), "unknown packet type 0x77"),
    ],
)
def test_violation_after_login_answers_then_closes(tds_server, data, says):
    closed_before = tds_server.handler.closed
    sock, client = raw_login(tds_server)
    with sock:
        sock.sendall(data)
        events = read_until_eom(sock, client)
        assert events[0].number == 7778 and events[0].severity == 16 and says in events[0].text
        assert events[1].error
        assert read_to_eof(sock) == b""
    assert wait_for(lambda: tds_server.handler.closed > closed_before)


def test_violation_during_a_running_batch(tds_server):
    before = tds_server.handler.cancelled
    sock, client = raw_login(tds_server)
    with sock:
        sock.sendall(client.language("slow"))
        time.sleep(0.3)
        sock.sendall(encode_message(PacketType.NORMAL, b"\x99"))
        events = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            events += client.receive_data(data)
        messages = [e for e in events if isinstance(e, Message)]
        assert messages[-1].number == 7778
        assert isinstance(events[-1], EndOfMessage)
    assert wait_for(lambda: tds_server.handler.cancelled == before + 1)


def test_logout_answers_done_and_closes(tds_server):
    sock, client = raw_login(tds_server)
    with sock:
        sock.sendall(client.logout())
        events = read_until_eom(sock, client)
        assert events == [Done(0, 0, 0), EndOfMessage()]
        assert read_to_eof(sock) == b""


def test_unsupported_request_gets_an_error(tds_server):
    sock, client = raw_login(tds_server)
    with sock:
        rpc = bytes([0xE6]) + struct.pack("<H", 3) + b"\x02sp"
        sock.sendall(encode_message(PacketType.NORMAL, rpc))
        events = read_until_eom(sock, client)
        assert events[0].number == 7779 and events[1].error
        sock.sendall(client.language("print fine"))
        assert read_until_eom(sock, client)[0].text == "fine"


def test_abrupt_disconnect_mid_batch_closes_session(tds_server):
    handler = tds_server.handler
    closed_before, cancelled_before = handler.closed, handler.cancelled
    sock, client = raw_login(tds_server)
    sock.sendall(client.language("slow"))
    time.sleep(0.3)
    sock.close()
    assert wait_for(lambda: handler.closed == closed_before + 1)
    assert wait_for(lambda: handler.cancelled == cancelled_before + 1)


def test_client_reports_server_garbage():
    """Our client against a fake server that answers the login with nonsense."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def fake() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(encode_message(PacketType.RESPONSE, b"\x99\x00\x00"))
            time.sleep(0.5)

    th = threading.Thread(target=fake)
    th.start()
    try:
        with pytest.raises(TDSClientError, match="protocol error"):
            Connection.connect("127.0.0.1", port, user="sa", password="pw", timeout=5)
    finally:
        th.join(5)
        listener.close()


def test_client_timeout():
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        with pytest.raises(TDSClientError, match="timed out"):
            Connection.connect("127.0.0.1", listener.getsockname()[1], user="sa", password="pw", timeout=0.5)
    finally:
        listener.close()


def test_messages_travel_in_their_own_packets(tds_server):
    """Each EED goes out at once in a packet of its own (status 0); EOM only on the last packet."""
    from engine.tds.packets import MessageAssembler
    from engine.tds.tokens import TokenDecoder

    sock, client = raw_login(tds_server)
    with sock:
        sock.sendall(client.language("multi"))
        asm, packets = MessageAssembler(), []
        while not packets or not packets[-1][1]:
            packets += asm.feed_packets(sock.recv(65536))
    assert [eom for _t, eom, _b in packets] == [False] * (len(packets) - 1) + [True]
    decoder = TokenDecoder()
    kinds = [[type(e).__name__ for e in decoder.feed(body)] for _t, _eom, body in packets]
    # info | DONE(more), rowfmt, row, DONE(more) | error | DONE(more) | info | final DONE
    assert kinds == [
        ["Message"],
        ["Done", "RowFormat", "Row", "Done"],
        ["Message"],
        ["Done"],
        ["Message"],
        ["Done"],
    ]


def test_serve_tds_in_the_callers_loop(echo_handler_class):
    """serve_tds on port 0 with a ready callback, driven from the same event loop."""
    import asyncio

    from engine.tds.server import serve_tds

    async def main() -> list:
        seen: list[tuple] = []
        server = await serve_tds(
            echo_handler_class(), "127.0.0.1", 0, server_name="TESTSRV", ready=seen.append
        )
        host, port = server.sockets[0].getsockname()[:2]
        assert seen and seen[0][1] == port
        reader, writer = await asyncio.open_connection(host, port)
        client = ClientConnection()
        events: list = []

        async def until_eom() -> None:
            got: list = []
            while not got or not isinstance(got[-1], EndOfMessage):
                got += client.receive_data(await reader.read(65536))
            events.extend(got)

        writer.write(client.login(LoginRecord(user="sa", password="pw")))
        await until_eom()
        writer.write(client.language("print in loop"))
        await until_eom()
        writer.write(client.logout())
        await until_eom()
        writer.close()
        server.close()
        await server.wait_closed()
        return events

    events = asyncio.run(main())
    assert events[0].server_name == "TESTSRV"
    texts = [(e.text, e.server) for e in events if isinstance(e, Message)]
    assert texts == [("in loop", "TESTSRV")]


def test_random_garbage_over_sockets_never_hangs_or_crashes(tds_server, caplog, capture):
    import logging
    import random

    rng = random.Random(2024)
    caplog.set_level(logging.WARNING, logger="engine.tds.server")
    for i in range(30):
        with socket.create_connection((tds_server.host, tds_server.port), timeout=10) as sock:
            if i % 2:
                sock.sendall(
                    capture.login[:-107] + ClientConnection().login(LoginRecord(password="pw"))[-107:]
                )
            garbage = bytearray(rng.randbytes(rng.randint(1, 300)))
            if i % 3 == 0:
                garbage[0] = rng.choice([0x01, 0x02, 0x06, 0x0F])
            try:
                sock.sendall(bytes(garbage))
                sock.shutdown(socket.SHUT_WR)  # a partial packet must not keep the server waiting
                read_to_eof(sock)
            except TimeoutError:
                raise AssertionError(f"server did not close connection {i}") from None
            except OSError:
                pass  # the server already hung up (reset): that is an answer too
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    with connect(tds_server) as c:
        assert [e.text for e in c.execute("print still serving") if isinstance(e, Message)] == [
            "still serving"
        ]
