"""Sans-I/O connection state machines, fed with the real fisql capture and with garbage."""

from __future__ import annotations

import random
import struct

import pytest

from engine.tds import tokens as t
from engine.tds.connection import (
    Attention,
    ClientConnection,
    EndOfMessage,
    LanguageRequest,
    LoginRequest,
    Logout,
    PreLogin,
    ProtocolViolation,
    ServerConnection,
    UnsupportedRequest,
)
from engine.tds.login import LoginRecord, build_login
from engine.tds.packets import MessageAssembler, PacketType, TDSProtocolError, encode_message
from engine.tds.tokens import Done, LoginAck, Message, Row, RowFormat


def logged_in(capture) -> ServerConnection:
    conn = ServerConnection()
    assert isinstance(conn.receive_data(capture.login)[0], LoginRequest)
    return conn


def test_fisql_session_byte_by_byte(capture):
    conn = ServerConnection()
    events = []
    for b in capture.login + capture.spid_request + capture.logout:
        events += conn.receive_data(bytes([b]))
    assert [type(e) for e in events] == [LoginRequest, LanguageRequest, Logout]
    assert events[0].record.user == "sa" and events[0].record.password == "secretpw"
    assert events[1].sql == "select @@spid "
    assert conn.packet_size == 512
    assert conn.closed
    assert conn.receive_data(capture.spid_request) == []


@pytest.mark.parametrize(("asked", "got"), [(4096, 4096), (512, 512), (100000, 65535), (0, 512)])
def test_packet_size_negotiation(asked, got):
    rec = LoginRecord(user="sa")
    payload = bytearray(build_login(rec))
    payload[557:564] = bytes(7)
    text = str(asked).encode() if asked else b""
    payload[557 : 557 + len(text)] = text
    payload[563] = len(text)
    conn = ServerConnection()
    conn.receive_data(encode_message(PacketType.LOGIN, bytes(payload)))
    assert conn.packet_size == got


def test_attention(capture):
    conn = logged_in(capture)
    assert conn.receive_data(ClientConnection().attention()) == [Attention()]


def test_prelogin_before_login():
    conn = ServerConnection()
    assert conn.receive_data(encode_message(PacketType.PRELOGIN, b"\x00" * 20)) == [PreLogin()]
    assert conn.closed


def test_language_decodes_utf8_and_replaces_garbage(capture):
    conn = logged_in(capture)
    sql = "select 'é✓'"
    assert conn.receive_data(ClientConnection().language(sql)) == [LanguageRequest(sql)]
    bad = bytes([0x21]) + struct.pack("<I", 3) + b"\x00\xff\xfe"
    assert conn.receive_data(encode_message(PacketType.NORMAL, bad)) == [LanguageRequest("\ufffd\ufffd")]


def test_unsupported_request(capture):
    conn = logged_in(capture)
    rpc = bytes([0xE6]) + struct.pack("<H", 3) + b"\x02sp"
    assert conn.receive_data(encode_message(PacketType.NORMAL, rpc)) == [UnsupportedRequest(0xE6)]
    assert not conn.closed


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (bytes.fromhex("0f01000500000000"), "shorter than the 8-byte header"),
        (bytes.fromhex("9901000800000000"), "unknown packet type"),
        (encode_message(PacketType.RESPONSE, t.done()), "unexpected packet type 0x04"),
        (encode_message(PacketType.NORMAL, b"\x99garbage"), "unknown request token 0x99"),
        (encode_message(PacketType.NORMAL, b""), "empty request"),
        (encode_message(PacketType.NORMAL, b"\x21\x10\x00\x00\x00\x00ab"), "LANGUAGE token length"),
        (encode_message(PacketType.NORMAL, b"\x21\x01"), "truncated LANGUAGE"),
        (encode_message(PacketType.LOGIN, bytes(600)), "second login"),
    ],
)
def test_violations_after_login(capture, data, match):
    conn = logged_in(capture)
    events = conn.receive_data(data)
    assert len(events) == 1 and isinstance(events[0], ProtocolViolation)
    assert match in events[0].message
    assert conn.closed
    assert conn.receive_data(capture.spid_request) == []


def test_request_before_login(capture):
    conn = ServerConnection()
    [event] = conn.receive_data(capture.spid_request)
    assert isinstance(event, ProtocolViolation) and "before login" in event.message


def test_garbled_login():
    conn = ServerConnection()
    [event] = conn.receive_data(encode_message(PacketType.LOGIN, bytes(100)))
    assert isinstance(event, ProtocolViolation) and "login record" in event.message


def test_oversized_message(capture):
    conn = ServerConnection(max_message=1000)
    conn.receive_data(capture.login)
    [event] = conn.receive_data(encode_message(PacketType.NORMAL, b"\x21" + bytes(2000), 512)[:520])
    assert isinstance(event, ProtocolViolation) and "larger than 1000" in event.message


def test_violation_in_the_same_chunk_as_a_request(capture):
    conn = logged_in(capture)
    events = conn.receive_data(capture.spid_request + bytes.fromhex("0f01000300000000"))
    # The whole chunk is refused: the connection is dead, so the request would go unanswered anyway.
    assert events == [ProtocolViolation("packet length 3 is shorter than the 8-byte header")]


def test_reply_uses_negotiated_packet_size(capture):
    conn = logged_in(capture)
    data = conn.reply(bytes(1200))
    packets = MessageAssembler().feed_packets(data)
    assert [(ptype, eom, len(body)) for ptype, eom, body in packets] == [
        (PacketType.RESPONSE, False, 504),
        (PacketType.RESPONSE, False, 504),
        (PacketType.RESPONSE, True, 192),
    ]
    assert not MessageAssembler().feed_packets(conn.reply(b"x", last=False))[0][1]


def test_random_bytes_never_crash_the_server_connection(capture):
    rng = random.Random(5)
    for i in range(2000):
        conn = ServerConnection(max_message=8192)
        if i % 2:
            conn.receive_data(capture.login)
        data = bytearray(
            rng.choice([capture.spid_request, capture.logout, b""]) + rng.randbytes(rng.randint(0, 80))
        )
        for _flip in range(rng.randint(0, 3)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        pos = 0
        while pos < len(data):
            n = rng.randint(1, 30)
            for event in conn.receive_data(bytes(data[pos : pos + n])):
                assert not isinstance(event, Exception)
            pos += n


# --- client side -------------------------------------------------------------------------------


def test_client_requests_match_freetds(capture):
    client = ClientConnection()
    assert client.language("select @@spid ") == capture.spid_request
    assert client.logout() == capture.logout
    assert client.attention() == bytes.fromhex("0601000800000000")


def test_client_login_is_understood_by_server():
    rec = LoginRecord(user="sa", password="pw" * 60, app="sybar-isql", server="SYBAR", packet_size=2048)
    data = ClientConnection().login(rec)
    assert [len(p) for p in _split(data)] == [512, 8 + 568 + 35 - 504]
    [event] = ServerConnection().receive_data(data)
    assert event.record.password == "pw" * 60 and event.record.packet_size == 2048


def _split(data):
    out, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        out.append(data[pos : pos + length])
        pos += length
    return out


def test_client_decodes_streamed_reply_and_follows_packet_size():
    client = ClientConnection()
    login_reply = encode_message(
        PacketType.RESPONSE,
        t.loginack(True) + t.envchange(t.ENV_PACKETSIZE, "2048", "512") + t.done(),
    )
    events = client.receive_data(login_reply)
    assert isinstance(events[0], LoginAck) and isinstance(events[-1], EndOfMessage)
    assert client.packet_size == 2048

    cols = [t.Column("s", "varchar", 600)]
    progress = encode_message(PacketType.RESPONSE, t.eed(0, 10, "step 1"), 2048, last=False)
    rest = encode_message(
        PacketType.RESPONSE,
        t.rowfmt(cols) + t.row(cols, ("x" * 600,)) + t.done(t.DONE_COUNT, 1),
        512,  # a row split across packets
    )
    # The progress message is decoded as soon as its packet arrives, before the EOM.
    assert client.receive_data(progress) == [Message(0, 10, 1, "step 1", "SYBAR", "", 1)]
    events = []
    for i in range(0, len(rest), 100):
        events += client.receive_data(rest[i : i + 100])
    assert [type(e) for e in events] == [RowFormat, Row, Done, EndOfMessage]
    assert events[1].values == ("x" * 600,)


def test_client_rejects_non_response_packets(capture):
    with pytest.raises(TDSProtocolError, match="expected a response"):
        ClientConnection().receive_data(capture.spid_request)


def test_client_truncated_token_at_end_of_message():
    with pytest.raises(TDSProtocolError, match="ends inside a token"):
        ClientConnection().receive_data(encode_message(PacketType.RESPONSE, t.done()[:5]))
