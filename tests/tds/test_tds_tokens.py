"""Token encoders (byte layouts from TDS-NOTES.md) and the decoder, round trip for every type."""

from __future__ import annotations

import datetime as dt
import random
import struct

import pytest

from engine.tds import tokens as t
from engine.tds.packets import TDSProtocolError
from engine.tds.tokens import (
    Capability,
    Column,
    Done,
    EnvChange,
    LoginAck,
    Message,
    Row,
    RowFormat,
    TokenDecoder,
)

# --- byte layouts ------------------------------------------------------------------------------


def test_loginack_layout():
    assert t.loginack(True, "SYBAR") == bytes.fromhex("ad0f00 05 05000000 05 5359424152 0f070000")
    assert t.loginack(False, "X", (1, 2, 3, 4))[3] == 6


def test_loginack_refuses_microsoft_looking_version():
    with pytest.raises(ValueError):
        t.loginack(True, "SYBAR", (0x80, 0, 0, 0))


def test_envchange_layout():
    assert t.envchange(t.ENV_DATABASE, "master", "") == bytes.fromhex("e30900 01 066d6173746572 00")


def test_done_layout():
    assert t.done() == bytes.fromhex("fd 0000 0000 00000000")
    assert t.done(t.DONE_MORE | t.DONE_COUNT, 3) == bytes.fromhex("fd 1100 0000 03000000")


def test_eed_layout():
    token = t.eed(4002, 14, "Login failed.", server="SYBAR")
    body = token[3:]
    assert token[0] == 0xE5 and struct.unpack("<H", token[1:3])[0] == len(body)
    assert struct.unpack("<i", body[:4])[0] == 4002
    assert body[4] == 1 and body[5] == 14  # state, severity
    assert body[6] == 5 and body[7:12] == b"ZZZZZ"
    assert body[12] == 0  # status: no parameters follow
    assert body[13:15] == b"\x00\x00"  # transtate
    assert struct.unpack("<H", body[15:17])[0] == len("Login failed.")


def test_rowfmt_layout():
    token = t.rowfmt([Column("n", "int")])
    assert token == bytes.fromhex("ee0c00 0100 016e 20 07000000 26 04 00")


def test_row_layout():
    cols = [Column("n", "int"), Column("s", "varchar", 10)]
    assert t.row(cols, (7, "ab")) == bytes.fromhex("d1 0407000000 026162")
    assert t.row(cols, (None, None)) == bytes.fromhex("d1 00 00")
    assert t.row(cols, (0, "")) == bytes.fromhex("d1 0400000000 0120")  # empty string -> one space


def test_capability_reply_echoes():
    caps = bytes.fromhex("e20400" + "01020304")
    assert t.capability_reply(caps) == caps
    assert t.capability_reply(b"") == b""
    assert t.capability_reply(b"\xe2\x09\x00") == b""  # inconsistent length: send none


# --- round trips -------------------------------------------------------------------------------


def roundtrip(columns, rows):
    payload = t.rowfmt(columns) + b"".join(t.row(columns, r) for r in rows) + t.done(t.DONE_COUNT, len(rows))
    events = TokenDecoder().decode(payload)
    assert isinstance(events[0], RowFormat)
    assert isinstance(events[-1], Done) and events[-1].count == len(rows)
    return events[0].columns, [e.values for e in events[1:-1]]


ALL_TYPES = [
    Column("i", "int"),
    Column("b", "bigint"),
    Column("f", "float"),
    Column("v", "varchar", 40),
    Column("lv", "varchar", 1000),
    Column("bin", "binary", 16),
    Column("lbin", "binary", 700),
    Column("d", "datetime"),
    Column("bit", "bit"),
]


def test_round_trip_every_type():
    rows = [
        (
            1,
            2**40,
            3.25,
            "hello",
            "x" * 600,
            b"\x00\x01",
            b"\xff" * 600,
            dt.datetime(2024, 5, 6, 7, 8, 9),
            True,
        ),
        (
            -(2**31),
            -(2**63),
            -1e300,
            "ünïcødé ✓",
            "日本語" * 100,
            b"\x7f",
            b"z",
            dt.datetime(1753, 1, 1),
            False,
        ),
        (2**31 - 1, 2**63 - 1, 0.0, "a", "b", b"c", b"d", dt.datetime(9999, 12, 31, 23, 59, 59), True),
    ]
    cols, values = roundtrip(ALL_TYPES, rows)
    assert [(c.name, c.type) for c in cols] == [(c.name, c.type) for c in ALL_TYPES]
    assert [c.length for c in cols] == [0, 0, 0, 40, 1000, 16, 700, 0, 0]
    assert values == rows


def test_round_trip_nulls():
    _cols, values = roundtrip(ALL_TYPES, [(None,) * len(ALL_TYPES)])
    # BIT is not nullable in TDS 5: None goes out as 0.
    assert values == [(None,) * 8 + (False,)]


def test_round_trip_empty_values():
    _cols, values = roundtrip(ALL_TYPES, [(0, 0, 0.0, "", "", b"", b"", dt.datetime(1900, 1, 1), False)])
    # Length 0 means NULL in TDS 5, so empties travel as one space / one zero byte.
    assert values == [(0, 0, 0.0, " ", " ", b"\x00", b"\x00", dt.datetime(1900, 1, 1), False)]


def test_default_varchar_length_is_255():
    cols, values = roundtrip([Column("v", "varchar")], [("y" * 300,)])
    assert cols[0].length == 255 and values == [("y" * 255,)]


@pytest.mark.parametrize(
    ("micro", "expected"),
    [
        (0, 0),
        (3333, 3333),  # 1 tick
        (123456, 123333),  # 37.04 ticks -> 37
        (1666, 0),  # 0.4998 tick -> 0
        (1667, 3333),  # 0.5001 tick -> 1
        (998000, 996667),  # .998 -> 299.4 ticks -> 299
    ],
)
def test_datetime_rounds_to_300ths(micro, expected):
    value = dt.datetime(2020, 2, 29, 12, 0, 0, micro)
    _c, values = roundtrip([Column("d", "datetime")], [(value,)])
    assert values[0][0] == value.replace(microsecond=expected)


def test_datetime_rounding_rolls_into_next_day():
    _c, values = roundtrip([Column("d", "datetime")], [(dt.datetime(2020, 12, 31, 23, 59, 59, 999999),)])
    assert values[0][0] == dt.datetime(2021, 1, 1)


def test_date_value_for_datetime_column():
    _c, values = roundtrip([Column("d", "datetime")], [(dt.date(2001, 2, 3),)])
    assert values[0][0] == dt.datetime(2001, 2, 3)


def test_varchar_truncation_never_splits_utf8():
    _c, values = roundtrip([Column("v", "varchar", 5)], [("héllo wörld",), ("aaaaé",), ("✓✓",)])
    assert values == [("héll",), ("aaaa",), ("✓",)]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abc", 5, "abc"),
        ("abé", 3, "ab"),
        ("ab✓", 4, "ab"),
        ("ab✓", 5, "ab✓"),
        ("a😀", 4, "a"),
        ("😀", 4, "😀"),
    ],
)
def test_truncate_utf8(text, limit, expected):
    assert t.truncate_utf8(text.encode(), limit).decode() == expected


def test_long_binary_truncated():
    _c, values = roundtrip([Column("b", "binary", 300)], [(bytes(400),)])
    assert values == [(bytes(300),)]


def test_bad_values():
    with pytest.raises(OverflowError):
        t.row([Column("n", "int")], (2**31,))
    with pytest.raises(TypeError):
        t.row([Column("n", "int")], ("7",))
    with pytest.raises(TypeError):
        t.row([Column("n", "int")], (1.5,))
    with pytest.raises(TypeError):
        t.row([Column("d", "datetime")], ("2024-01-01",))
    with pytest.raises(ValueError):
        t.row([Column("n", "int")], (1, 2))
    with pytest.raises(ValueError):
        t.rowfmt([Column("n", "money")])


def test_non_string_in_varchar_is_str():
    _c, values = roundtrip([Column("v", "varchar", 10)], [(42,)])
    assert values == [("42",)]


# --- decoder -----------------------------------------------------------------------------------


def test_decode_login_reply():
    caps = bytes.fromhex("e20400" + "01020304")
    payload = (
        t.loginack(True, "SYBAR")
        + t.envchange(t.ENV_DATABASE, "master", "")
        + t.envchange(t.ENV_PACKETSIZE, "4096", "512")
        + caps
        + t.done()
    )
    assert TokenDecoder().decode(payload) == [
        LoginAck(True, "SYBAR", (15, 7, 0, 0)),
        EnvChange(1, "master", ""),
        EnvChange(4, "4096", "512"),
        Capability(caps),
        Done(0, 0, 0),
    ]


def test_decode_eed():
    events = TokenDecoder().decode(t.eed(208, 16, "nosuch not found.", state=2, line=9, proc="p1"))
    assert events == [Message(208, 16, 2, "nosuch not found.", "SYBAR", "p1", 9)]


def test_decode_info_and_error_tokens():
    def info(token, number, severity, text):
        body = struct.pack("<iBB", number, 1, severity)
        body += struct.pack("<H", len(text)) + text.encode() + b"\x03ASE" + b"\x00" + struct.pack("<H", 4)
        return bytes([token]) + struct.pack("<H", len(body)) + body

    events = TokenDecoder().decode(info(0xAB, 5701, 10, "changed db") + info(0xAA, 102, 15, "syntax"))
    assert events == [
        Message(5701, 10, 1, "changed db", "ASE", "", 4),
        Message(102, 15, 1, "syntax", "ASE", "", 4),
    ]


def test_decode_doneproc_and_doneinproc():
    payload = bytes([0xFF]) + struct.pack("<HHi", 0x11, 0, 5) + bytes([0xFE]) + struct.pack("<HHi", 0, 0, 0)
    assert TokenDecoder().decode(payload) == [Done(0x11, 5, 0), Done(0, 0, 0)]


def test_decode_rowfmt2():
    body = struct.pack("<H", 2)
    # label, catalog, schema, table, column name, status(4), usertype(4), type, length, locale
    body += b"\x05label" + b"\x00\x00\x00" + b"\x03col" + struct.pack("<II", 0x20, 7) + b"\x26\x04" + b"\x00"
    body += b"\x00" + b"\x00\x00\x00" + b"\x04name" + struct.pack("<II", 0x20, 2) + b"\x27\x10" + b"\x00"
    token = bytes([0x61]) + struct.pack("<I", len(body)) + body
    row = bytes([0xD1]) + b"\x04" + struct.pack("<i", -9) + b"\x02hi"
    events = TokenDecoder().decode(token + row)
    assert events == [RowFormat([Column("label", "int"), Column("name", "varchar", 16)]), Row((-9, "hi"))]


def test_decode_foreign_fixed_types():
    cols = [
        (b"\x38", b"", struct.pack("<i", -5)),  # INT4
        (b"\x34", b"", struct.pack("<h", -2)),  # INT2
        (b"\x30", b"", b"\xff"),  # INT1 (unsigned)
        (b"\x3e", b"", struct.pack("<d", 2.5)),  # FLT8
        (b"\x3d", b"", struct.pack("<iI", 1, 300)),  # DATETIME: 1900-01-02 00:00:01
        (b"\x3a", b"", struct.pack("<HH", 2, 61)),  # SMALLDATETIME
        (b"\x3c", b"", struct.pack("<iI", 0, 12345)),  # MONEY 1.2345
        (b"\x6c", b"\x05\x0a\x02", b"\x05\x01\x00\x00\x30\x39"),  # NUMERIC(10,2) -123.45
    ]
    body = struct.pack("<H", len(cols))
    row = bytearray([0xD1])
    for code, info, value in cols:
        body += b"\x01c\x00" + struct.pack("<I", 0) + code + info + b"\x00"
        row += value
    token = bytes([0xEE]) + struct.pack("<H", len(body)) + body
    events = TokenDecoder().decode(token + bytes(row))
    from decimal import Decimal

    assert events[1] == Row(
        (
            -5,
            -2,
            255,
            2.5,
            dt.datetime(1900, 1, 2, 0, 0, 1),
            dt.datetime(1900, 1, 3, 1, 1),
            Decimal("1.2345"),
            Decimal("-123.45"),
        )
    )


def test_rows_in_a_later_message_than_their_format():
    cols = [Column("n", "int")]
    dec = TokenDecoder()
    assert len(dec.decode(t.rowfmt(cols))) == 1
    assert dec.decode(t.row(cols, (5,)) + t.done()) == [Row((5,)), Done(0, 0, 0)]


def test_incremental_feed_matches_whole_decode():
    payload = (
        t.rowfmt(ALL_TYPES)
        + t.row(ALL_TYPES, (1, 2, 3.0, "x", "y" * 900, b"z", b"w" * 650, dt.datetime(2000, 1, 1), True))
        + t.eed(1, 10, "hello")
        + t.done(t.DONE_COUNT, 1)
    )
    whole = TokenDecoder().decode(payload)
    dec = TokenDecoder()
    pieces = []
    for i in range(len(payload)):
        pieces += dec.feed(payload[i : i + 1])
    dec.end()
    assert pieces == whole and len(whole) == 4


def test_multiple_changes_in_one_envchange():
    body = b"\x01\x03new\x03old" + b"\x02\x02en\x00"
    events = TokenDecoder().decode(bytes([0xE3]) + struct.pack("<H", len(body)) + body)
    assert events == [EnvChange(1, "new", "old"), EnvChange(2, "en", "")]


def test_skips_known_length_prefixed_tokens():
    orderby = bytes([0xA9]) + struct.pack("<H", 2) + b"\x01\x02"
    retstatus = bytes([0x79]) + struct.pack("<i", 0)
    assert TokenDecoder().decode(orderby + retstatus + t.done()) == [Done(0, 0, 0)]


def test_unknown_token():
    with pytest.raises(TDSProtocolError, match="unknown token 0x99"):
        TokenDecoder().decode(b"\x99\x00\x00")


def test_row_without_format():
    with pytest.raises(TDSProtocolError, match="without a preceding ROWFMT"):
        TokenDecoder().decode(b"\xd1\x00")


def test_truncated_tokens():
    for token in (t.done(), t.eed(1, 16, "x"), t.rowfmt(ALL_TYPES), t.loginack(True)):
        for cut in range(1, len(token)):
            with pytest.raises(TDSProtocolError):
                TokenDecoder().decode(token[:cut])


def test_length_prefix_shorter_than_contents():
    token = t.eed(1, 16, "hello")
    bad = token[:1] + struct.pack("<H", 10) + token[3:13]
    with pytest.raises(TDSProtocolError, match="shorter than its contents"):
        TokenDecoder().decode(bad)


def test_token_larger_than_max_token():
    cols = [Column("v", "varchar", 100000)]
    dec = TokenDecoder(max_token=1000)
    dec.feed(t.rowfmt(cols))
    with pytest.raises(TDSProtocolError, match="more than 1000"):
        dec.feed(b"\xd1" + struct.pack("<I", 50000) + b"abc")


def test_random_bytes_never_crash():
    rng = random.Random(42)
    seeds = [t.rowfmt(ALL_TYPES), t.eed(1, 2, "x"), t.envchange(1, "a", "b"), t.loginack(True), t.done()]
    for _ in range(3000):
        if rng.random() < 0.5:
            data = rng.randbytes(rng.randint(0, 64))
        else:
            data = bytearray(rng.choice(seeds) + rng.randbytes(rng.randint(0, 64)))
            for _flip in range(rng.randint(0, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        try:
            TokenDecoder(max_token=1 << 20).decode(data)
        except TDSProtocolError:
            pass
