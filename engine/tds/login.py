"""The TDS 5.0 login record (packet type 0x02), parse and build.

The record is 568 bytes of fixed-width fields, each text field followed by a
one-byte length, then the capability token (0xE2).  Offsets below were taken
from what FreeTDS 1.3.17 really sends (see TDS-NOTES.md and the capture in
tests/tds/test_codec.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .packets import TDSProtocolError

RECORD_SIZE = 568
MAX_PASSWORD = 253  # the long password copy at 202: 255 bytes minus its 2-byte prefix

# (offset, width) of each fixed-width text field; the length byte follows at offset + width.
_HOST = (0, 30)
_USER = (31, 30)
_PASSWORD = (62, 30)
_HOSTPROC = (93, 30)
_APP = (140, 30)
_SERVER = (171, 30)
_LIBRARY = (462, 10)
_LANGUAGE = (480, 30)
_CHARSET = (525, 30)
_PACKETSIZE = (557, 6)

_BYTE_ORDER_OFFSET = 124
_BYTE_ORDER = bytes([0x03, 0x01, 0x06, 0x0A, 0x09, 0x01])  # int2/int4 LE, ASCII, IEEE float, datetime...
_LONGPW_OFFSET = 202  # 00, len, password ...; length byte at 457 = len + 2
_LONGPW_LENBYTE = 457
_TDS_VERSION_OFFSET = 458
_LIBVERSION_OFFSET = 473
_MAGIC3_OFFSET = 477
_SETCHARSET_OFFSET = 556

# The capability token FreeTDS 1.3.17 sends (request and response bitmaps,
# 14 bytes each).  Used when a LoginRecord carries no capabilities.
DEFAULT_CAPABILITIES = bytes.fromhex("e22000010e000060088181e80f6d7ffffffffe020e0000000000000000000268000000")


@dataclass
class LoginRecord:
    host: str = ""
    user: str = ""
    password: str = ""
    host_process: str = ""
    app: str = ""
    server: str = ""
    library: str = ""
    language: str = ""
    charset: str = ""
    packet_size: int = 512
    tds_version: bytes = b"\x05\x00\x00\x00"
    capabilities: bytes = b""

    def __repr__(self) -> str:  # never let a password reach a log line
        fields = ", ".join(
            f"{k}={v!r}" for k, v in self.__dict__.items() if k not in ("password", "capabilities")
        )
        return f"LoginRecord({fields}, password=***)"


def _text(raw: bytes) -> str:
    """Login strings are in the client's charset; utf-8 first, latin-1 never fails."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _field(payload: bytes, spec: tuple[int, int], name: str) -> str:
    offset, width = spec
    length = payload[offset + width]
    if length > width:
        raise TDSProtocolError(f"login record: {name} length {length} exceeds its {width}-byte field")
    return _text(payload[offset : offset + length])


def parse_login(payload: bytes) -> LoginRecord:
    """Decode a reassembled login message; TDSProtocolError if it is short or garbled."""
    if len(payload) < RECORD_SIZE:
        raise TDSProtocolError(f"login record is {len(payload)} bytes, expected at least {RECORD_SIZE}")
    rec = LoginRecord(
        host=_field(payload, _HOST, "host name"),
        user=_field(payload, _USER, "user name"),
        password=_field(payload, _PASSWORD, "password"),
        host_process=_field(payload, _HOSTPROC, "host process"),
        app=_field(payload, _APP, "application name"),
        server=_field(payload, _SERVER, "server name"),
        library=_field(payload, _LIBRARY, "library name"),
        language=_field(payload, _LANGUAGE, "language"),
        charset=_field(payload, _CHARSET, "charset"),
        tds_version=bytes(payload[_TDS_VERSION_OFFSET : _TDS_VERSION_OFFSET + 4]),
    )
    # The short copy truncates at 30 bytes; the long copy (remote password
    # pair with an empty server name) holds up to 253.
    total = payload[_LONGPW_LENBYTE]
    if total >= 2:
        pwlen = payload[_LONGPW_OFFSET + 1]
        if payload[_LONGPW_OFFSET] != 0 or pwlen != total - 2:
            raise TDSProtocolError("login record: garbled long password field")
        rec.password = _text(payload[_LONGPW_OFFSET + 2 : _LONGPW_OFFSET + 2 + pwlen])
    size_text = _field(payload, _PACKETSIZE, "packet size")
    if size_text and not (size_text.isascii() and size_text.isdigit()):
        raise TDSProtocolError(f"login record: packet size {size_text!r} is not a number")
    rec.packet_size = int(size_text) if size_text else 512
    rest = payload[RECORD_SIZE:]
    if rest:
        if rest[0] != 0xE2 or len(rest) < 3:
            raise TDSProtocolError(f"login record: expected a capability token, got 0x{rest[0]:02x}")
        (caplen,) = struct.unpack_from("<H", rest, 1)
        if len(rest) < 3 + caplen:
            raise TDSProtocolError("login record: truncated capability token")
        rec.capabilities = bytes(rest[: 3 + caplen])
    return rec


def _put(buf: bytearray, spec: tuple[int, int], value: str) -> None:
    offset, width = spec
    raw = value.encode("utf-8")[:width]  # FreeTDS truncates the same way
    buf[offset : offset + len(raw)] = raw
    buf[offset + width] = len(raw)


def build_login(rec: LoginRecord) -> bytes:
    """Encode a login message the way FreeTDS does (568-byte record + capability token)."""
    pw = rec.password.encode("utf-8")
    if len(pw) > MAX_PASSWORD:
        raise ValueError(f"password longer than {MAX_PASSWORD} bytes")
    if len(rec.tds_version) != 4:
        raise ValueError("tds_version must be 4 bytes")
    buf = bytearray(RECORD_SIZE)
    _put(buf, _HOST, rec.host)
    _put(buf, _USER, rec.user)
    _put(buf, _PASSWORD, rec.password)
    _put(buf, _HOSTPROC, rec.host_process)
    buf[_BYTE_ORDER_OFFSET : _BYTE_ORDER_OFFSET + 6] = _BYTE_ORDER
    _put(buf, _APP, rec.app)
    _put(buf, _SERVER, rec.server)
    buf[_LONGPW_OFFSET] = 0
    buf[_LONGPW_OFFSET + 1] = len(pw)
    buf[_LONGPW_OFFSET + 2 : _LONGPW_OFFSET + 2 + len(pw)] = pw
    buf[_LONGPW_LENBYTE] = len(pw) + 2
    buf[_TDS_VERSION_OFFSET : _TDS_VERSION_OFFSET + 4] = rec.tds_version
    _put(buf, _LIBRARY, rec.library)
    buf[_LIBVERSION_OFFSET : _LIBVERSION_OFFSET + 4] = b"\x05\x00\x00\x00"
    buf[_MAGIC3_OFFSET : _MAGIC3_OFFSET + 3] = b"\x00\x0d\x11"
    _put(buf, _LANGUAGE, rec.language)
    _put(buf, _CHARSET, rec.charset)
    buf[_SETCHARSET_OFFSET] = 1
    size = rec.packet_size if 512 <= rec.packet_size <= 65535 else 512
    _put(buf, _PACKETSIZE, str(size))
    caps = rec.capabilities or DEFAULT_CAPABILITIES
    return bytes(buf) + caps
