"""The media protocol's frames and authentication, without any I/O.

Shared by the asyncio media server (engine.media.server) and the blocking
archive-API client (engine.archive.client); the wire format is described in
engine.media's module docstring.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from typing import Any

#: Protocol name: in the server's challenge and in every authentication proof.
PROTOCOL_TAG = b"sybar-media-1"
PROTOCOL_VERSION = 1
NONCE_LEN = 32
PROOF_LEN = 32

#: frame := kind u8, length u32 big-endian, payload
FRAME_HEADER = struct.Struct(">BI")
#: The largest payload either side accepts; a bigger length is a protocol error.
MAX_PAYLOAD = 4 << 20
#: The largest request (JSON) a server accepts.
MAX_REQUEST = 64 << 10
#: Data frames carry about this many bytes.
DATA_FRAME = 1 << 20

CHALLENGE = ord("C")  # server -> client: PROTOCOL_TAG + 32-byte nonce
AUTH = ord("A")  # client -> server: HMAC-SHA256(secret, nonce + PROTOCOL_TAG)
JSON = ord("J")  # a JSON object (request, answer, listing batch)
DATA = ord("D")  # object bytes
END = ord("Z")  # end of a byte stream or listing; payload empty or a JSON object
ERROR = ord("E")  # {"ok": false, "status": N, "message": "..."}; the sender closes next

KINDS = {CHALLENGE, AUTH, JSON, DATA, END, ERROR}
NAMES = {CHALLENGE: "challenge", AUTH: "auth", JSON: "json", DATA: "data", END: "end", ERROR: "error"}


class ProtocolError(Exception):
    """Bytes that are not a valid frame of the media protocol."""


def frame_header(kind: int, length: int) -> bytes:
    if kind not in KINDS:
        raise ValueError(f"unknown frame kind {kind!r}")
    if not 0 <= length <= MAX_PAYLOAD:
        raise ValueError(f"frame payload of {length} bytes exceeds {MAX_PAYLOAD}")
    return FRAME_HEADER.pack(kind, length)


def parse_frame_header(header: bytes, max_payload: int = MAX_PAYLOAD) -> tuple[int, int]:
    """(kind, payload length) of a 5-byte frame header; ProtocolError for anything
    else. The length is checked before anyone allocates for it."""
    if len(header) != FRAME_HEADER.size:
        raise ProtocolError(f"a frame header is {FRAME_HEADER.size} bytes, not {len(header)}")
    kind, length = FRAME_HEADER.unpack(header)
    if kind not in KINDS:
        raise ProtocolError(f"unknown frame type 0x{kind:02x} (not the sybar media protocol)")
    if length > max_payload:
        raise ProtocolError(
            f"{NAMES[kind]} frame announces {length} bytes; the limit here is {max_payload} bytes"
        )
    return kind, length


def frame(kind: int, payload: bytes = b"") -> bytes:
    return frame_header(kind, len(payload)) + payload


def encode_json(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > MAX_PAYLOAD:
        raise ValueError("JSON frame too large")
    return data


def json_frame(obj: dict[str, Any], kind: int = JSON) -> bytes:
    return frame(kind, encode_json(obj))


def decode_json(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("a JSON frame does not hold valid UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a JSON frame does not hold a JSON object")
    return obj


def error_frame(status: int, message: str) -> bytes:
    return json_frame({"ok": False, "status": status, "message": message}, ERROR)


def challenge_payload(nonce: bytes) -> bytes:
    if len(nonce) != NONCE_LEN:
        raise ValueError("nonce must be 32 bytes")
    return PROTOCOL_TAG + nonce


def parse_challenge(payload: bytes) -> bytes:
    """The nonce of a challenge; ProtocolError when it is not one of ours."""
    if len(payload) != len(PROTOCOL_TAG) + NONCE_LEN or not payload.startswith(PROTOCOL_TAG):
        raise ProtocolError("the greeting is not a sybar-media-1 challenge")
    return payload[len(PROTOCOL_TAG) :]


def auth_proof(secret: bytes, nonce: bytes) -> bytes:
    return hmac.new(secret, nonce + PROTOCOL_TAG, hashlib.sha256).digest()


def check_proof(secret: bytes, nonce: bytes, proof: bytes) -> bool:
    return hmac.compare_digest(auth_proof(secret, nonce), proof)
