"""Packet framing: byte-exact splitting, reassembly under any chunking, malformed input."""

from __future__ import annotations

import random

import pytest

from engine.tds.packets import (
    MessageAssembler,
    PacketType,
    TDSProtocolError,
    encode_message,
)


def test_capture_is_what_the_notes_describe(capture):
    assert len(capture.login_payload) == 603
    assert [len(p) for p in capture.login_packets] == [512, 107]


def test_encode_splits_byte_exact_like_freetds(capture):
    assert encode_message(PacketType.LOGIN, capture.login_payload, 512) == capture.login


def test_encode_small_message_single_packet(capture):
    assert encode_message(PacketType.NORMAL, b"\x71\x00") == capture.logout


def test_encode_empty_payload_still_one_packet():
    assert encode_message(PacketType.ATTENTION, b"") == bytes.fromhex("0601000800000000")
    assert encode_message(PacketType.RESPONSE, b"", last=False) == bytes.fromhex("0400000800000000")


@pytest.mark.parametrize(("size", "npackets"), [(504, 1), (505, 2), (1008, 2), (1009, 3)])
def test_encode_boundaries(size, npackets):
    data = encode_message(PacketType.RESPONSE, bytes(size), 512)
    asm = MessageAssembler()
    packets = asm.feed_packets(data)
    assert len(packets) == npackets
    assert [eom for _t, eom, _b in packets] == [False] * (npackets - 1) + [True]
    assert all(len(b) <= 504 for _t, _e, b in packets)


def test_encode_not_last_has_no_eom():
    data = encode_message(PacketType.RESPONSE, bytes(2000), 512, last=False)
    assert [eom for _t, eom, _b in MessageAssembler().feed_packets(data)] == [False] * 4


def test_encode_rejects_bad_packet_size():
    with pytest.raises(ValueError):
        encode_message(PacketType.RESPONSE, b"x", 8)
    with pytest.raises(ValueError):
        encode_message(PacketType.RESPONSE, b"x", 65536)


def test_reassembly_one_byte_at_a_time(capture):
    asm = MessageAssembler()
    out = []
    for i in range(len(capture.login)):
        out += asm.feed(capture.login[i : i + 1])
        if i < len(capture.login) - 1:
            assert out == []
    assert out == [(PacketType.LOGIN, capture.login_payload)]
    assert not asm.pending


def test_reassembly_several_messages_in_one_chunk(capture):
    asm = MessageAssembler()
    out = asm.feed(capture.login + capture.spid_request + capture.logout)
    assert [t for t, _ in out] == [PacketType.LOGIN, PacketType.NORMAL, PacketType.NORMAL]
    assert out[2][1] == b"\x71\x00"


def test_reassembly_random_chunking(capture):
    rng = random.Random(7)
    stream = capture.login + capture.spid_request + encode_message(PacketType.NORMAL, bytes(3000), 512)
    for _ in range(50):
        asm = MessageAssembler()
        out, pos = [], 0
        while pos < len(stream):
            n = rng.randint(1, 700)
            out += asm.feed(stream[pos : pos + n])
            pos += n
        assert [len(p) for _t, p in out] == [603, 20, 3000]


def _header(ptype, status, length):
    return bytes([ptype, status]) + length.to_bytes(2, "big") + b"\x00\x00\x00\x00"


@pytest.mark.parametrize("length", [0, 1, 7])
def test_length_shorter_than_header(length):
    with pytest.raises(TDSProtocolError, match="shorter than the 8-byte header"):
        MessageAssembler().feed(_header(0x0F, 1, length))


def test_unknown_packet_type():
    with pytest.raises(TDSProtocolError, match="unknown packet type 0x55"):
        MessageAssembler().feed(_header(0x55, 1, 8))


def test_type_change_mid_message():
    asm = MessageAssembler()
    assert asm.feed(_header(0x0F, 0, 10) + b"ab") == []
    with pytest.raises(TDSProtocolError, match="changed"):
        asm.feed(_header(0x02, 1, 10) + b"cd")


def test_oversized_message_refused_before_buffering():
    asm = MessageAssembler(max_message=1000)
    assert asm.feed(_header(0x0F, 0, 508) + bytes(500)) == []
    assert asm.feed(_header(0x0F, 0, 508) + bytes(500)) == []
    # The third packet's header alone is enough to refuse: its body is never buffered.
    with pytest.raises(TDSProtocolError, match="larger than 1000"):
        asm.feed(_header(0x0F, 1, 508))


def test_packet_larger_than_max_packet():
    with pytest.raises(TDSProtocolError, match="exceeds"):
        MessageAssembler(max_packet=512).feed(_header(0x0F, 1, 600))


def test_assembler_stays_broken_after_error(capture):
    asm = MessageAssembler()
    with pytest.raises(TDSProtocolError):
        asm.feed(_header(0x55, 1, 8))
    with pytest.raises(TDSProtocolError):
        asm.feed(capture.logout)


def test_short_data_waits_for_more(capture):
    asm = MessageAssembler()
    assert asm.feed(b"\x0f\x01") == []
    assert asm.pending
    assert asm.feed(capture.logout[2:]) == [(PacketType.NORMAL, b"\x71\x00")]


def test_random_bytes_never_crash():
    rng = random.Random(1234)
    for _ in range(3000):
        asm = MessageAssembler(max_message=4096)
        data = rng.randbytes(rng.randint(0, 200))
        if rng.random() < 0.5:  # a plausible header makes the body parsing reachable
            data = bytes([rng.choice([1, 2, 4, 6, 15, 18]), rng.randint(0, 1)]) + data
        try:
            pos = 0
            while pos < len(data):
                n = rng.randint(1, 40)
                asm.feed(data[pos : pos + n])
                pos += n
        except TDSProtocolError:
            pass
