"""The login record: parse the real fisql capture, build byte-exact, round trips, garbage."""

from __future__ import annotations

import random

import pytest

from engine.tds.login import (
    DEFAULT_CAPABILITIES,
    MAX_PASSWORD,
    RECORD_SIZE,
    LoginRecord,
    build_login,
    parse_login,
)
from engine.tds.packets import TDSProtocolError


def test_parse_fisql_capture(capture):
    rec = parse_login(capture.login_payload)
    assert rec.user == "sa"
    assert rec.password == "secretpw"
    assert rec.app == "fisql"
    assert rec.server == "SYBAR"
    assert rec.packet_size == 512
    assert rec.host == "vm"
    assert rec.host_process == "4694"
    assert rec.library == "DB-Library"
    assert rec.language == "us_english"
    assert rec.charset == ""
    assert rec.tds_version == b"\x05\x00\x00\x00"
    assert rec.capabilities[0] == 0xE2 and len(rec.capabilities) == 35


def test_build_is_byte_exact_with_freetds(capture):
    assert build_login(parse_login(capture.login_payload)) == capture.login_payload


def test_default_capabilities_are_freetds_ones(capture):
    assert capture.login_payload[RECORD_SIZE:] == DEFAULT_CAPABILITIES


def test_round_trip_long_password_and_unicode():
    rec = LoginRecord(
        host="workstation-1",
        user="dbä",
        password="p" * 200 + "é",
        host_process="4242",
        app="sybar-isql",
        server="PROD_ASE",
        library="sybar",
        language="us_english",
        charset="utf8",
        packet_size=4096,
    )
    payload = build_login(rec)
    assert len(payload) == RECORD_SIZE + len(DEFAULT_CAPABILITIES)
    back = parse_login(payload)
    assert back.password == rec.password  # the long copy, not the 30-byte one
    assert (back.host, back.user, back.app, back.server, back.charset, back.packet_size) == (
        rec.host,
        rec.user,
        rec.app,
        rec.server,
        rec.charset,
        4096,
    )
    assert back.capabilities == DEFAULT_CAPABILITIES


def test_max_password_length():
    rec = LoginRecord(user="sa", password="x" * MAX_PASSWORD)
    assert parse_login(build_login(rec)).password == "x" * MAX_PASSWORD
    with pytest.raises(ValueError):
        build_login(LoginRecord(user="sa", password="x" * (MAX_PASSWORD + 1)))


def test_long_user_is_truncated_like_freetds():
    assert parse_login(build_login(LoginRecord(user="u" * 40))).user == "u" * 30


def test_explicit_capabilities_are_kept():
    caps = bytes.fromhex("e20400" + "01020304")
    assert parse_login(build_login(LoginRecord(capabilities=caps))).capabilities == caps


def test_packet_size_out_of_range_is_sent_as_512():
    assert parse_login(build_login(LoginRecord(packet_size=100))).packet_size == 512


def test_repr_hides_password():
    text = repr(LoginRecord(user="sa", password="topsecret"))
    assert "topsecret" not in text and "sa" in text


def test_short_record():
    with pytest.raises(TDSProtocolError, match="expected at least 568"):
        parse_login(bytes(100))


def test_field_length_beyond_its_width(capture):
    bad = bytearray(capture.login_payload)
    bad[61] = 31  # user length byte
    with pytest.raises(TDSProtocolError, match="user name"):
        parse_login(bytes(bad))


def test_garbled_long_password(capture):
    bad = bytearray(capture.login_payload)
    bad[203] = 20  # disagrees with the length byte at 457
    with pytest.raises(TDSProtocolError, match="password"):
        parse_login(bytes(bad))


def test_bad_capability_token(capture):
    with pytest.raises(TDSProtocolError, match="capability"):
        parse_login(capture.login_payload[:RECORD_SIZE] + b"\x99\x00\x00")
    with pytest.raises(TDSProtocolError, match="truncated capability"):
        parse_login(capture.login_payload[:-5])


def test_bad_packet_size_text(capture):
    bad = bytearray(capture.login_payload)
    bad[557:560] = b"5x2"
    with pytest.raises(TDSProtocolError, match="packet size"):
        parse_login(bytes(bad))


def test_random_records_never_crash(capture):
    rng = random.Random(99)
    for _ in range(2000):
        data = bytearray(capture.login_payload)
        for _flip in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        try:
            parse_login(bytes(data))
        except TDSProtocolError:
            pass
