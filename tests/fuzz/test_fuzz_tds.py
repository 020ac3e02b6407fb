"""TDS decoder fuzzing: packet reassembly, the login record and reply tokens from arbitrary bytes.

Only the project's own TDSProtocolError may escape (never IndexError, struct.error, UnicodeError,
MemoryError), whatever the bytes and however TCP cuts them; the server half turns every fault into a
ProtocolViolation event. Long mode: ``SYBAR_FUZZ=long .venv/bin/python -m pytest -q tests/fuzz/``.
"""

from __future__ import annotations

import datetime as dt

from fuzzing import FUZZ, chunks, mutate
from hypothesis import given
from hypothesis import strategies as st

from engine.tds.connection import ClientConnection, ProtocolViolation, ServerConnection
from engine.tds.login import RECORD_SIZE, LoginRecord, build_login, parse_login
from engine.tds.packets import HEADER_SIZE, MessageAssembler, PacketType, TDSProtocolError, encode_message
from engine.tds.tokens import (
    DONE_COUNT,
    DONE_FINAL,
    ENV_DATABASE,
    ENV_PACKETSIZE,
    Column,
    TokenDecoder,
    done,
    eed,
    envchange,
    loginack,
    row,
    rowfmt,
)

LOGIN = build_login(LoginRecord(host="h", user="sa", password="pw", host_process="42", app="fisql",
                                server="SYBAR", library="ct", language="us_english", charset="utf8",
                                packet_size=4096))
COLUMNS = [Column("id", "int"), Column("name", "varchar", 40), Column("blob", "binary", 8),
           Column("at", "datetime"), Column("f", "float"), Column("ok", "bit"), Column("big", "bigint")]
REPLY = (loginack(True, "SYBAR") + envchange(ENV_DATABASE, "master", "") + envchange(ENV_PACKETSIZE, "4096", "512")
         + rowfmt(COLUMNS) + row(COLUMNS, (1, "a" * 30, b"\x01\x02", dt.datetime(2024, 5, 1, 10, 0), 1.5, 1, 2**40))
         + row(COLUMNS, (None, None, None, None, None, 0, None))
         + eed(8009, 16, "Error encountered by Backup Server", server="SYBAR") + done(DONE_COUNT, 2)
         + done(DONE_FINAL))
REQUEST_STREAM = (encode_message(PacketType.LOGIN, LOGIN, 512)
                  + ClientConnection().language("select 1\ngo") + ClientConnection().logout())
SIZES = st.lists(st.integers(1, 600), min_size=1, max_size=8)


def _assemble(data: bytes, sizes: list[int]) -> None:
    a = MessageAssembler(max_message=1 << 20)
    try:
        for part in chunks(data, sizes):
            for _ptype, payload in a.feed(part):
                assert len(payload) <= 1 << 20
    except TDSProtocolError as e:
        assert str(e)


@FUZZ
@given(st.binary(max_size=3000), SIZES)
def test_packet_reassembly_of_random_bytes(data, sizes):
    _assemble(data, sizes)


@FUZZ
@given(mutate(REQUEST_STREAM), SIZES)
def test_packet_reassembly_of_mutated_requests(data, sizes):
    _assemble(data, sizes)


def _login(payload: bytes) -> None:
    try:
        rec = parse_login(payload)
    except TDSProtocolError as e:
        assert str(e)
    else:
        assert isinstance(rec.user, str) and isinstance(rec.password, str) and rec.packet_size >= 0
        assert "pw" not in repr(rec) or rec.password != "pw"


@FUZZ
@given(st.binary(min_size=RECORD_SIZE - 8, max_size=RECORD_SIZE + 80))
def test_login_record_of_random_bytes(payload):
    _login(payload)


@FUZZ
@given(mutate(LOGIN, max_ops=6))
def test_login_record_mutated(payload):
    _login(payload)


def _server(data: bytes, sizes: list[int]) -> None:
    conn = ServerConnection(max_message=1 << 20)
    for part in chunks(data, sizes):
        events = conn.receive_data(part)  # never raises: faults are events
        for e in events:
            if isinstance(e, ProtocolViolation):
                assert e.message and conn.closed


@FUZZ
@given(st.binary(max_size=3000), SIZES)
def test_server_connection_random_bytes(data, sizes):
    _server(data, sizes)


@FUZZ
@given(mutate(REQUEST_STREAM, max_ops=6), SIZES)
def test_server_connection_mutated_requests(data, sizes):
    _server(data, sizes)


def _tokens(payload: bytes, sizes: list[int]) -> None:
    dec = TokenDecoder(max_token=1 << 20)
    try:
        for part in chunks(payload, sizes):
            dec.feed(part)
        dec.end()
    except TDSProtocolError as e:
        assert str(e)


@FUZZ
@given(st.binary(max_size=2000), SIZES)
def test_reply_tokens_of_random_bytes(payload, sizes):
    _tokens(payload, sizes)


@FUZZ
@given(mutate(REPLY, max_ops=6), SIZES)
def test_reply_tokens_mutated(payload, sizes):
    _tokens(payload, sizes)


@FUZZ
@given(mutate(encode_message(PacketType.RESPONSE, REPLY, 512), max_ops=6), SIZES)
def test_client_connection_mutated_replies(data, sizes):
    conn = ClientConnection(max_token=1 << 20)
    try:
        for part in chunks(data, sizes):
            conn.receive_data(part)
    except TDSProtocolError as e:
        assert str(e)


def test_the_seeds_are_valid():
    """The mutations start from real traffic: unmutated, it decodes without a fault."""
    _server(REQUEST_STREAM, [len(REQUEST_STREAM)])
    assert len(MessageAssembler().feed(REQUEST_STREAM)) == 3
    assert parse_login(LOGIN).user == "sa"
    events = TokenDecoder().decode(REPLY)
    assert len(events) >= 8
    assert HEADER_SIZE == 8
