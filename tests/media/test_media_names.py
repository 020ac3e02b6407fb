"""Object names, protocol frames and the media secret: the parts without a network."""

from __future__ import annotations

import datetime as _dt
import os
import stat
import threading

import pytest

from engine.archive import ObjectName, object_name, parse_object_name
from engine.jobs.status import BACKUP_FAILED, CANT_CONNECT, StatusError
from engine.media import ensure_media_secret, read_media_secret
from engine.media import protocol as p

WHEN = _dt.datetime(2003, 12, 17, 14, 5, 25)


def test_object_name_is_netbackups():
    assert (
        object_name("SYBASE11", "mydb", "D", 0, 24312, WHEN) == "SYBASE11.mydb.D.0.24312.17-12-2003.14:05:25"
    )
    assert object_name("SYBAR", "sales_db", "T", 31, 7, WHEN) == "SYBAR.sales_db.T.31.7.17-12-2003.14:05:25"


def test_aware_times_are_shown_in_local_time():
    aware = WHEN.astimezone()  # the same instant, with the local offset
    assert object_name("S", "d", "D", 0, 1, aware) == object_name("S", "d", "D", 0, 1, WHEN)
    utc = aware.astimezone(_dt.UTC)
    assert object_name("S", "d", "D", 0, 1, utc) == object_name("S", "d", "D", 0, 1, WHEN)


def test_parse_round_trip_and_fields():
    n = parse_object_name("SYBASE11.mydb.D.0.24312.17-12-2003.14:05:25")
    assert n == ObjectName("SYBASE11", "mydb", "D", 0, 24312, WHEN)
    assert str(n) == n.name == "SYBASE11.mydb.D.0.24312.17-12-2003.14:05:25"
    other = n.with_stripe(3)
    assert str(other) == "SYBASE11.mydb.D.3.24312.17-12-2003.14:05:25"
    assert other.same_dump(n) and other.dump_key == n.dump_key
    assert not parse_object_name("SYBASE11.mydb.D.0.24313.17-12-2003.14:05:25").same_dump(n)
    for s in range(0, 40):
        name = object_name("SRV", "db", "T", s, 99, WHEN)
        assert parse_object_name(name).stripe == s


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "SYBASE11.mydb.X.0.24312.17-12-2003.14:05:25",
        "SYBASE11.mydb.D.0.24312.32-12-2003.14:05:25",
        "SYBASE11.mydb.D.0.24312.29-02-2003.14:05:25",
        "SYBASE11.mydb.D.0.24312.17-12-2003.25:05:25",
        "SYBASE11.mydb.D.01.24312.17-12-2003.14:05:25",
        "SYBASE11.mydb.D.0.24312.17-12-2003",
        "../../etc.mydb.D.0.24312.17-12-2003.14:05:25",
        "SYBASE11.my.db.D.0.24312.17-12-2003.14:05:25",
        "SYBASE11.mydb.D.0.24312.17-12-2003.14:05:25.extra",
        "SYBASE11.mydb.D.0.24312.17-12-2003.14:05:25\n",
    ],
)
def test_parse_refuses_what_is_not_a_stripe_name(bad):
    with pytest.raises(StatusError) as ei:
        parse_object_name(bad)
    assert ei.value.status == BACKUP_FAILED


@pytest.mark.parametrize(
    "args,match",
    [
        (("SYB.X", "db", "D", 0, 1, WHEN), "dataserver name"),
        (("SYB", "../db", "D", 0, 1, WHEN), "database name"),
        (("SYB", "db", "Z", 0, 1, WHEN), "dump type"),
        (("SYB", "db", "D", -1, 1, WHEN), "stripe number"),
        (("SYB", "db", "D", 0, -5, WHEN), "process id"),
        (("SYB", "db", "D", 0, 1, "today"), "dump time"),
    ],
)
def test_object_name_refuses_bad_parts(args, match):
    with pytest.raises(StatusError, match=match):
        object_name(*args)


def test_frame_header_limits():
    assert p.parse_frame_header(p.frame_header(p.DATA, 5)) == (p.DATA, 5)
    assert p.parse_frame_header(p.frame_header(p.DATA, p.MAX_PAYLOAD)) == (p.DATA, p.MAX_PAYLOAD)
    with pytest.raises(p.ProtocolError, match="limit"):
        p.parse_frame_header(p.FRAME_HEADER.pack(p.DATA, p.MAX_PAYLOAD + 1))
    with pytest.raises(p.ProtocolError, match="limit"):
        p.parse_frame_header(p.FRAME_HEADER.pack(p.JSON, 0xFFFFFFFF))
    with pytest.raises(p.ProtocolError, match="unknown frame type 0x47"):
        p.parse_frame_header(b"GET /")
    with pytest.raises(p.ProtocolError, match="limit here is 32"):
        p.parse_frame_header(p.FRAME_HEADER.pack(p.AUTH, 33), 32)
    with pytest.raises(ValueError):
        p.frame_header(p.DATA, p.MAX_PAYLOAD + 1)


def test_json_frames():
    assert p.decode_json(p.encode_json({"op": "stat", "name": "x"})) == {"op": "stat", "name": "x"}
    for bad in (b"[1]", b"\xff", b"{", b"null"):
        with pytest.raises(p.ProtocolError):
            p.decode_json(bad)


def test_auth_proof():
    secret = os.urandom(32)
    nonce = os.urandom(32)
    proof = p.auth_proof(secret, nonce)
    assert len(proof) == p.PROOF_LEN
    assert p.check_proof(secret, nonce, proof)
    assert not p.check_proof(secret, os.urandom(32), proof)
    assert not p.check_proof(os.urandom(32), nonce, proof)
    assert p.parse_challenge(p.challenge_payload(nonce)) == nonce
    with pytest.raises(p.ProtocolError):
        p.parse_challenge(b"x" * 45)


def test_media_secret_is_made_once_0600(tmp_path):
    home = tmp_path / "home"
    with pytest.raises(StatusError) as ei:
        read_media_secret(home)
    assert ei.value.status == CANT_CONNECT and "media.secret" in str(ei.value)
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_media_secret(home))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results[0]) == 32
    path = home / "media.secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert read_media_secret(home) == results[0] == ensure_media_secret(home)
    assert sorted(os.listdir(home)) == ["media.secret"]  # no temporaries left


def test_media_secret_mode_is_tightened_and_damage_is_reported(tmp_path):
    secret = ensure_media_secret(tmp_path)
    path = tmp_path / "media.secret"
    os.chmod(path, 0o644)
    assert read_media_secret(tmp_path) == secret
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.write_bytes(b"short")
    with pytest.raises(StatusError, match="damaged"):
        ensure_media_secret(tmp_path)


def test_store_result_reads_like_the_answer():
    from engine.archive import StoreResult

    r = StoreResult("n", "disk1", 10, "ab", 8192, "cd", 1, "0" * 32, 0, 1)
    assert r["bytes"] == 10 and r.get("raw_bytes") == 8192 and r.get("nope", 5) == 5
    assert r.to_json()["checksum"] == "ab"
    with pytest.raises(KeyError):
        r["nope"]
    from engine.media.server import ensure_media_secret as again

    assert again is ensure_media_secret
