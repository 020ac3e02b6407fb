"""Media protocol frame fuzzing (engine/media/protocol.py): frame headers, JSON requests, challenges.

Only ProtocolError may escape, a length above the limit is refused from the 5 header bytes alone
(nothing is allocated for it), and valid frames round-trip. A byte stream of frames is split with the
same checks the server's reader makes. Long mode: ``SYBAR_FUZZ=long .venv/bin/python -m pytest -q
tests/fuzz/``.
"""

from __future__ import annotations

from fuzzing import FUZZ, mutate
from hypothesis import given
from hypothesis import strategies as st

from engine.media import protocol as p

STREAM = (p.frame(p.CHALLENGE, p.challenge_payload(b"n" * 32)) + p.frame(p.AUTH, b"x" * 32)
          + p.json_frame({"op": "store", "name": "SYBAR.db.D.0.1.01-01-2024.00:00:00", "unit": None})
          + p.frame(p.DATA, b"SYBARDMP" + b"\x00" * 200) + p.frame(p.END)
          + p.error_frame(84, "media write error"))


def split_frames(data: bytes, max_payload: int = p.MAX_PAYLOAD) -> list[tuple[int, bytes]]:
    """What the server's reader does with a byte stream (without the socket)."""
    out, pos = [], 0
    while pos + p.FRAME_HEADER.size <= len(data):
        kind, length = p.parse_frame_header(data[pos:pos + p.FRAME_HEADER.size], max_payload)
        assert 0 <= length <= max_payload
        pos += p.FRAME_HEADER.size
        payload = data[pos:pos + length]
        pos += length
        out.append((kind, payload))
        if kind in (p.JSON, p.ERROR) and len(payload) == length:
            p.decode_json(payload)
        if kind == p.CHALLENGE and len(payload) == length:
            p.parse_challenge(payload)
    return out


def _split(data: bytes, max_payload: int) -> None:
    try:
        split_frames(data, max_payload)
    except p.ProtocolError as e:
        assert str(e)


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from([p.PROOF_LEN, p.MAX_REQUEST, p.MAX_PAYLOAD]))
def test_random_bytes(data, max_payload):
    _split(data, max_payload)


@FUZZ
@given(mutate(STREAM, max_ops=6), st.sampled_from([p.PROOF_LEN, p.MAX_REQUEST, p.MAX_PAYLOAD]))
def test_mutated_stream(data, max_payload):
    _split(data, max_payload)


@FUZZ
@given(st.integers(0, 255), st.integers(0, 2**32 - 1))
def test_any_header_is_checked_before_allocation(kind, length):
    header = p.FRAME_HEADER.pack(kind, length)
    try:
        k, n = p.parse_frame_header(header)
    except p.ProtocolError as e:
        assert kind not in p.KINDS or length > p.MAX_PAYLOAD, e
    else:
        assert k == kind and n == length <= p.MAX_PAYLOAD


@FUZZ
@given(st.binary(max_size=300))
def test_json_payloads(payload):
    try:
        obj = p.decode_json(payload)
    except p.ProtocolError:
        return
    assert isinstance(obj, dict)


@FUZZ
@given(st.dictionaries(st.text(max_size=10), st.one_of(st.none(), st.integers(), st.text(max_size=30)),
                       max_size=5), st.sampled_from([p.JSON, p.ERROR, p.END]))
def test_json_frames_round_trip(obj, kind):
    data = p.json_frame(obj, kind)
    assert split_frames(data) == [(kind, p.encode_json(obj))]
    assert p.decode_json(split_frames(data)[0][1]) == obj


def test_seed_stream_is_valid():
    assert [k for k, _ in split_frames(STREAM)] == [p.CHALLENGE, p.AUTH, p.JSON, p.DATA, p.END, p.ERROR]
