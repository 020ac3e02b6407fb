"""TDS 5.0 tokens: encoders for the server side, a decoder for the client side.

Integers inside tokens are little-endian (the login announced a
little-endian client and we never claim otherwise).  Wire formats follow
TDS-NOTES.md; types beyond the notes (FLTN, DATETIMN, LONGCHAR, LONGBINARY,
BIT) were checked against fisql and tsql, see tests/tds/test_freetds.py.
"""

from __future__ import annotations

import datetime as _dt
import functools
import struct
from dataclasses import dataclass
from decimal import Decimal

from .packets import TDSProtocolError

# --- token codes -------------------------------------------------------------------------------

TOKEN_LANGUAGE = 0x21
TOKEN_ROWFMT2 = 0x61
TOKEN_LOGOUT = 0x71
TOKEN_RETURNSTATUS = 0x79
TOKEN_PROCID = 0x7C
TOKEN_ERROR = 0xAA
TOKEN_INFO = 0xAB
TOKEN_LOGINACK = 0xAD
TOKEN_ROW = 0xD1
TOKEN_PARAMS = 0xD7
TOKEN_CAPABILITY = 0xE2
TOKEN_ENVCHANGE = 0xE3
TOKEN_EED = 0xE5
TOKEN_ROWFMT = 0xEE
TOKEN_DONE = 0xFD
TOKEN_DONEPROC = 0xFE
TOKEN_DONEINPROC = 0xFF

ENV_DATABASE = 1
ENV_LANGUAGE = 2
ENV_CHARSET = 3
ENV_PACKETSIZE = 4

DONE_FINAL = 0x00
DONE_MORE = 0x01
DONE_ERROR = 0x02
DONE_INXACT = 0x04
DONE_PROC = 0x08
DONE_COUNT = 0x10
DONE_ATTN = 0x20

LOGINACK_OK = 5
LOGINACK_FAIL = 6

# --- datatypes ---------------------------------------------------------------------------------

SYB_VARBINARY = 0x25
SYB_INTN = 0x26
SYB_VARCHAR = 0x27
SYB_BIT = 0x32
SYB_FLTN = 0x6D
SYB_DATETIMN = 0x6F
SYB_LONGCHAR = 0xAF
SYB_LONGBINARY = 0xE1

ROWFMT_NULLABLE = 0x20

ENCODABLE_TYPES = frozenset({"int", "bigint", "float", "varchar", "binary", "datetime", "bit"})
DEFAULT_VAR_LENGTH = 255  # Column(..., "varchar") with length 0

_EPOCH = _dt.datetime(1900, 1, 1)
_EPOCH_DATE = _EPOCH.date()
_TICKS_PER_DAY = 300 * 86400


@dataclass(frozen=True)
class Column:
    """One result column.  ``length`` matters for varchar/binary (bytes; 0 = 255);
    fixed-size types ignore it and decode with length 0."""

    name: str
    type: str
    length: int = 0


# --- events (client side) ----------------------------------------------------------------------


@dataclass
class LoginAck:
    ok: bool
    server_name: str
    version: tuple


@dataclass
class EnvChange:
    kind: int
    new: str
    old: str


@dataclass
class Message:
    number: int
    severity: int
    state: int
    text: str
    server: str
    proc: str
    line: int


@dataclass
class RowFormat:
    columns: list[Column]


@dataclass
class Row:
    values: tuple


@dataclass
class Done:
    status: int
    count: int
    transtate: int

    @property
    def more(self) -> bool:
        return bool(self.status & DONE_MORE)

    @property
    def error(self) -> bool:
        return bool(self.status & DONE_ERROR)

    @property
    def attention(self) -> bool:
        return bool(self.status & DONE_ATTN)

    @property
    def has_count(self) -> bool:
        return bool(self.status & DONE_COUNT)


@dataclass
class Capability:
    raw: bytes


# --- encoding helpers --------------------------------------------------------------------------


def truncate_utf8(raw: bytes, limit: int) -> bytes:
    """Cut utf-8 bytes to at most ``limit`` without splitting a character."""
    if len(raw) <= limit:
        return raw
    cut = raw[:limit]
    # Step back over continuation bytes (10xxxxxx) to the start of the split char.
    i = len(cut)
    while i > 0 and (cut[i - 1] & 0xC0) == 0x80:
        i -= 1
    if i > 0 and cut[i - 1] >= 0xC0:
        lead = cut[i - 1]
        need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        if len(cut) - (i - 1) < need:
            return cut[: i - 1]
    return cut


def _bstr(text: str, limit: int = 255) -> bytes:
    raw = truncate_utf8(text.encode("utf-8"), limit)
    return bytes([len(raw)]) + raw


def _clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, int(value)))


def _with_len16(token: int, body: bytes) -> bytes:
    if len(body) > 0xFFFF:
        raise ValueError(f"token 0x{token:02x} body of {len(body)} bytes does not fit a 2-byte length")
    return bytes([token]) + struct.pack("<H", len(body)) + body


# --- encoders (server side) --------------------------------------------------------------------


def loginack(ok: bool, server_name: str = "SYBAR", version: tuple = (15, 7, 0, 0)) -> bytes:
    """LOGINACK; the version's top byte stays < 0x80 or FreeTDS assumes Microsoft SQL Server."""
    ver = tuple(version)
    if len(ver) != 4 or not all(0 <= int(v) <= 255 for v in ver):
        raise ValueError(f"version must be 4 bytes, got {version!r}")
    if ver[0] >= 0x80:
        raise ValueError("version major byte must be < 0x80 (FreeTDS would take us for MSSQL)")
    body = (
        bytes([LOGINACK_OK if ok else LOGINACK_FAIL])
        + b"\x05\x00\x00\x00"
        + _bstr(server_name)
        + bytes(int(v) for v in ver)
    )
    return _with_len16(TOKEN_LOGINACK, body)


def envchange(kind: int, new: str, old: str) -> bytes:
    """ENVCHANGE with exactly one change: FreeTDS rejects several in one token."""
    return _with_len16(TOKEN_ENVCHANGE, bytes([kind & 0xFF]) + _bstr(new) + _bstr(old))


def eed(
    number: int,
    severity: int,
    text: str,
    state: int = 1,
    line: int = 1,
    server: str = "SYBAR",
    proc: str = "",
    sqlstate: str = "ZZZZZ",
) -> bytes:
    """Extended error (EED).  Status 0: no parameter tokens follow."""
    head = (
        struct.pack("<i", _clamp(number, -(2**31), 2**31 - 1))
        + bytes([_clamp(state, 0, 255), _clamp(severity, 0, 255)])
        + _bstr(sqlstate)
        + b"\x00"  # status
        + struct.pack("<H", 0)  # transtate
    )
    tail = _bstr(server) + _bstr(proc) + struct.pack("<H", _clamp(line, 0, 0xFFFF))
    room = 0xFFFF - len(head) - 2 - len(tail)
    msg = truncate_utf8(text.encode("utf-8"), room)
    return _with_len16(TOKEN_EED, head + struct.pack("<H", len(msg)) + msg + tail)


def done(status: int = 0, count: int = 0, transtate: int = 0) -> bytes:
    return bytes([TOKEN_DONE]) + struct.pack(
        "<HHi", status & 0xFFFF, transtate & 0xFFFF, _clamp(count, 0, 2**31 - 1)
    )


def capability_reply(client_caps: bytes) -> bytes:
    """Echo the client's capability token (known to satisfy FreeTDS); b"" if it sent none."""
    if len(client_caps) >= 3 and client_caps[0] == TOKEN_CAPABILITY:
        (length,) = struct.unpack_from("<H", client_caps, 1)
        if len(client_caps) == 3 + length:
            return bytes(client_caps)
    return b""


@dataclass(frozen=True)
class _Wire:
    code: int
    lensize: int  # 0 fixed, 1 or 4 bytes of length before each value
    size: int  # declared maximum
    usertype: int
    status: int


@functools.lru_cache(maxsize=4096)
def _wire(col: Column) -> _Wire:
    t = col.type
    if t == "int":
        return _Wire(SYB_INTN, 1, 4, 7, ROWFMT_NULLABLE)
    if t == "bigint":
        return _Wire(SYB_INTN, 1, 8, 43, ROWFMT_NULLABLE)
    if t == "float":
        return _Wire(SYB_FLTN, 1, 8, 8, ROWFMT_NULLABLE)
    if t == "datetime":
        return _Wire(SYB_DATETIMN, 1, 8, 12, ROWFMT_NULLABLE)
    if t == "bit":
        return _Wire(SYB_BIT, 0, 1, 16, 0)
    if t in ("varchar", "binary"):
        n = col.length or DEFAULT_VAR_LENGTH
        if n < 0 or n > 0x7FFFFFFF:
            raise ValueError(f"column {col.name!r}: length {n} out of range")
        if t == "varchar":
            return _Wire(
                SYB_VARCHAR if n <= 255 else SYB_LONGCHAR, 1 if n <= 255 else 4, n, 2, ROWFMT_NULLABLE
            )
        return _Wire(
            SYB_VARBINARY if n <= 255 else SYB_LONGBINARY, 1 if n <= 255 else 4, n, 4, ROWFMT_NULLABLE
        )
    raise ValueError(f"column {col.name!r}: unsupported type {t!r} (one of {sorted(ENCODABLE_TYPES)})")


def rowfmt(columns: list[Column]) -> bytes:
    body = bytearray(struct.pack("<H", len(columns)))
    for col in columns:
        w = _wire(col)
        body += _bstr(col.name)
        body += bytes([w.status]) + struct.pack("<I", w.usertype) + bytes([w.code])
        if w.lensize == 1:
            body.append(w.size)
        elif w.lensize == 4:
            body += struct.pack("<I", w.size)
        body.append(0)  # locale
    return _with_len16(TOKEN_ROWFMT, bytes(body))


def _datetime_to_wire(value: object) -> tuple[int, int]:
    if isinstance(value, _dt.datetime):
        day = value.date()
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    elif isinstance(value, _dt.date):
        day, micros = value, 0
    else:
        raise TypeError(f"expected datetime, got {type(value).__name__}")
    days = (day - _EPOCH_DATE).days
    ticks = (micros * 300 + 500_000) // 1_000_000  # nearest 1/300 s
    if ticks >= _TICKS_PER_DAY:
        days, ticks = days + 1, ticks - _TICKS_PER_DAY
    return days, ticks


def _encode_value(col: Column, w: _Wire, value: object) -> bytes:
    t = col.type
    if t == "bit":
        return b"\x01" if value else b"\x00"
    if value is None:
        return b"\x00" if w.lensize == 1 else b"\x00\x00\x00\x00"
    if t in ("int", "bigint"):
        if isinstance(value, float) or not hasattr(value, "__index__"):
            raise TypeError(f"column {col.name!r}: expected int, got {type(value).__name__}")
        n = int(value)  # type: ignore[call-overload]
        lo, hi = (-(2**31), 2**31 - 1) if w.size == 4 else (-(2**63), 2**63 - 1)
        if not lo <= n <= hi:
            raise OverflowError(f"column {col.name!r}: {n} does not fit {t}")
        return bytes([w.size]) + n.to_bytes(w.size, "little", signed=True)
    if t == "float":
        return b"\x08" + struct.pack("<d", float(value))  # type: ignore[arg-type]
    if t == "datetime":
        return b"\x08" + struct.pack("<iI", *_datetime_to_wire(value))
    if t == "varchar":
        if isinstance(value, str):
            raw = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
        else:
            raw = str(value).encode("utf-8")
        raw = truncate_utf8(raw, w.size) or b" "  # length 0 means NULL: an empty string is one space
    else:  # binary
        if isinstance(value, str):
            raw = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
        else:
            raise TypeError(f"column {col.name!r}: expected bytes, got {type(value).__name__}")
        raw = raw[: w.size] or b"\x00"  # length 0 means NULL: empty binary is one zero byte
    if w.lensize == 1:
        return bytes([len(raw)]) + raw
    return struct.pack("<I", len(raw)) + raw


def row(columns: list[Column], values: tuple | list) -> bytes:
    if len(values) != len(columns):
        raise ValueError(f"row has {len(values)} values for {len(columns)} columns")
    out = bytearray([TOKEN_ROW])
    for col, value in zip(columns, values, strict=True):
        out += _encode_value(col, _wire(col), value)
    return bytes(out)


# --- decoder (client side) ---------------------------------------------------------------------


class _Need(Exception):
    """Internal: the buffer ends inside a token; ``total`` bytes from the start are needed."""

    def __init__(self, total: int) -> None:
        self.total = total


class _Reader:
    """Cursor over a buffer.  Streaming readers raise _Need at the end of data;
    strict readers (inside a length-prefixed token) raise TDSProtocolError."""

    __slots__ = ("buf", "pos", "end", "strict", "what")

    def __init__(self, buf: bytes | bytearray, pos: int, end: int, strict: bool, what: str = "") -> None:
        self.buf, self.pos, self.end, self.strict, self.what = buf, pos, end, strict, what

    def take(self, n: int) -> bytes:
        if n < 0:
            raise TDSProtocolError(f"negative length in {self.what or 'token'}")
        stop = self.pos + n
        if stop > self.end:
            if self.strict:
                raise TDSProtocolError(f"{self.what or 'token'} is shorter than its contents")
            raise _Need(stop)
        data = bytes(self.buf[self.pos : stop])
        self.pos = stop
        return data

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self.take(fmt.size))

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return _U16.unpack(self.take(2))[0]

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def i32(self) -> int:
        return _I32.unpack(self.take(4))[0]

    def bstr(self) -> str:
        return self.take(self.u8()).decode("utf-8", "replace")

    def sub(self, length: int, what: str) -> _Reader:
        """The body of a length-prefixed token, as a strict reader."""
        start = self.pos
        self.take(length)
        return _Reader(self.buf, start, start + length, True, what)


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_DONE = struct.Struct("<HHi")

# datatype code -> (length prefix kind, our type name)
#   "f<n>": fixed n bytes; "v1"/"v4": 1- or 4-byte length; "blob": text/image; "num": numeric
_TYPES: dict[int, tuple[str, str]] = {
    0x30: ("f1", "int"),  # tinyint (unsigned)
    0xB0: ("f1", "int"),  # signed tinyint
    0x34: ("f2", "int"),
    0x38: ("f4", "int"),
    0xBF: ("f8", "bigint"),
    0x40: ("f2", "int"),  # unsigned
    0x41: ("f4", "bigint"),
    0x42: ("f8", "bigint"),
    0x26: ("v1", "int"),  # INTN
    0x44: ("v1", "int"),  # UINTN
    0x3B: ("f4", "float"),
    0x3E: ("f8", "float"),
    0x6D: ("v1", "float"),  # FLTN
    0x32: ("f1", "bit"),
    0x3D: ("f8", "datetime"),
    0x3A: ("f4", "datetime"),  # smalldatetime
    0x6F: ("v1", "datetime"),  # DATETIMN
    0x31: ("f4", "date"),
    0x7B: ("v1", "date"),
    0x33: ("f4", "time"),
    0x93: ("v1", "time"),
    0x3C: ("f8", "money"),
    0x7A: ("f4", "money"),
    0x6E: ("v1", "money"),
    0x2F: ("v1", "varchar"),  # char
    0x27: ("v1", "varchar"),
    0xAF: ("v4", "varchar"),  # LONGCHAR
    0x2D: ("v1", "binary"),
    0x25: ("v1", "binary"),
    0xE1: ("v4", "binary"),  # LONGBINARY
    0x23: ("blob", "varchar"),  # text
    0xAE: ("blob", "varchar"),  # unitext
    0x22: ("blob", "binary"),  # image
    0x3F: ("num", "decimal"),
    0x37: ("num", "decimal"),
    0x6C: ("num", "decimal"),
    0x6A: ("num", "decimal"),
}
_SIGNED = frozenset({0xB0, 0x34, 0x38, 0xBF, 0x26})
_UNICODE_USERTYPES = frozenset({34, 35, 36})  # unichar, univarchar, unitext over LONGBINARY
_FIXED_LENGTH_TYPES = frozenset({"int", "bigint", "float", "datetime", "bit"})

# Tokens we do not interpret but can step over: code -> size of their length prefix.
_SKIP_LEN = {
    0x20: 4,  # PARAMFMT2
    0x22: 4,  # ORDERBY2
    0x62: 4,  # DYNAMIC2
    0x65: 1,  # MSG
    0xA0: 2,  # COLNAME
    0xA1: 2,  # COLFMT
    0xA3: 4,  # DYNAMIC2 (older code)
    0xA4: 2,  # TABNAME
    0xA5: 2,  # COLINFO
    0xA6: 2,  # OPTIONCMD
    0xA7: 2,  # COMPUTE NAMES
    0xA8: 2,  # COMPUTE RESULT
    0xA9: 2,  # ORDERBY
    0xAE: 2,  # CONTROL
    0xE4: 2,  # SESSIONSTATE
    0xE6: 2,  # DBRPC
    0xE7: 2,  # DYNAMIC
    0xEC: 2,  # PARAMFMT
    0xED: 2,  # AUTH
}
_SKIP_FIXED = {TOKEN_RETURNSTATUS: 4, TOKEN_PROCID: 8}


@dataclass(frozen=True)
class _WireCol:
    code: int
    kind: str
    size: int
    usertype: int
    scale: int = 0


class TokenDecoder:
    """Turns reply token streams into events.

    ``feed`` is incremental (a token may straddle packets: the tail is kept
    until the rest arrives); ``decode`` is for one whole message and raises
    on a truncated token.  The current ROWFMT is kept across calls, since rows
    may arrive in a later message than their format.  ``max_token`` bounds
    the bytes buffered for one incomplete token.
    """

    def __init__(self, max_token: int = 64 * 1024 * 1024) -> None:
        self.max_token = max_token
        self._buf = bytearray()
        self._need = 0
        self._cols: list[_WireCol] | None = None

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def decode(self, payload: bytes) -> list:
        events = self.feed(payload)
        self.end()
        return events

    def end(self) -> None:
        """The message ended: anything still buffered is a truncated token."""
        if self._buf:
            tok = self._buf[0]
            self._buf.clear()
            self._need = 0
            raise TDSProtocolError(f"message ends inside a token 0x{tok:02x}")

    def feed(self, data: bytes) -> list:
        self._buf += data
        if len(self._buf) < self._need:
            return []
        buf = self._buf
        events: list = []
        pos = 0
        try:
            while pos < len(buf):
                r = _Reader(buf, pos, len(buf), False)
                self._token(r, events)
                pos = r.pos
            self._need = 0
        except _Need as need:
            self._need = need.total - pos
            if self._need > self.max_token:
                tok, self._need = buf[pos], 0
                buf.clear()
                raise TDSProtocolError(
                    f"token 0x{tok:02x} needs {need.total - pos} bytes, more than {self.max_token}"
                ) from None
        except TDSProtocolError:
            self._buf.clear()
            self._need = 0
            raise
        del buf[:pos]
        return events

    # -- tokens --

    def _token(self, r: _Reader, events: list) -> None:
        tok = r.u8()
        if tok == TOKEN_ROW:
            events.append(self._row(r))
        elif tok in (TOKEN_DONE, TOKEN_DONEPROC, TOKEN_DONEINPROC):
            status, transtate, count = r.unpack(_DONE)
            events.append(Done(status, count, transtate))
        elif tok == TOKEN_ROWFMT:
            events.append(self._rowfmt(r.sub(r.u16(), "ROWFMT"), wide=False))
        elif tok == TOKEN_ROWFMT2:
            events.append(self._rowfmt(r.sub(r.u32(), "ROWFMT2"), wide=True))
        elif tok == TOKEN_EED:
            events.append(self._eed(r.sub(r.u16(), "EED")))
        elif tok in (TOKEN_INFO, TOKEN_ERROR):
            events.append(self._info(r.sub(r.u16(), "INFO/ERROR")))
        elif tok == TOKEN_ENVCHANGE:
            b = r.sub(r.u16(), "ENVCHANGE")
            while b.pos < b.end:
                kind = b.u8()
                new = b.bstr()
                old = b.bstr()
                events.append(EnvChange(kind, new, old))
        elif tok == TOKEN_LOGINACK:
            b = r.sub(r.u16(), "LOGINACK")
            status = b.u8()
            b.take(4)  # TDS version
            name = b.bstr()
            version = tuple(b.take(4))
            events.append(LoginAck(status == LOGINACK_OK, name, version))
        elif tok == TOKEN_CAPABILITY:
            start = r.pos - 1
            r.take(r.u16())
            events.append(Capability(bytes(r.buf[start : r.pos])))
        elif tok in _SKIP_LEN:
            size = _SKIP_LEN[tok]
            length = r.u8() if size == 1 else r.u16() if size == 2 else r.u32()
            r.take(length)
        elif tok in _SKIP_FIXED:
            r.take(_SKIP_FIXED[tok])
        else:
            raise TDSProtocolError(f"unknown token 0x{tok:02x}")

    def _eed(self, b: _Reader) -> Message:
        number = b.i32()
        state = b.u8()
        severity = b.u8()
        b.take(b.u8())  # sqlstate
        status = b.u8()
        b.u16()  # transtate
        text = b.take(b.u16()).decode("utf-8", "replace")
        server = b.bstr()
        proc = b.bstr()
        line = b.u16()
        if status & 0x01:
            raise TDSProtocolError("EED with parameters is not supported")
        return Message(number, severity, state, text, server, proc, line)

    def _info(self, b: _Reader) -> Message:
        number = b.i32()
        state = b.u8()
        severity = b.u8()
        text = b.take(b.u16()).decode("utf-8", "replace")
        server = b.bstr()
        proc = b.bstr()
        line = b.u16()
        return Message(number, severity, state, text, server, proc, line)

    def _rowfmt(self, b: _Reader, wide: bool) -> RowFormat:
        ncols = b.u16()
        wire: list[_WireCol] = []
        columns: list[Column] = []
        for _ in range(ncols):
            if wide:
                label = b.bstr()
                for _part in range(3):  # catalog, schema, table
                    b.take(b.u8())
                colname = b.bstr()
                name = label or colname
                b.u32()  # status
            else:
                name = b.bstr()
                b.u8()  # status
            usertype = b.u32()
            code = b.u8()
            spec = _TYPES.get(code)
            if spec is None:
                raise TDSProtocolError(f"unsupported datatype 0x{code:02x} in column {name!r}")
            kind, tname = spec
            scale = 0
            if kind == "v1":
                size = b.u8()
            elif kind == "v4":
                size = b.u32()
            elif kind == "blob":
                size = b.u32()
                b.take(b.u16())  # table name
            elif kind == "num":
                size = b.u8()
                b.u8()  # precision
                scale = b.u8()
            else:
                size = int(kind[1:])
            b.take(b.u8())  # locale
            if code == SYB_LONGBINARY and usertype in _UNICODE_USERTYPES:
                tname = "varchar"
            if code == 0x26 and size == 8:
                tname = "bigint"
            wire.append(_WireCol(code, kind, size, usertype, scale))
            columns.append(Column(name, tname, 0 if tname in _FIXED_LENGTH_TYPES else size))
        if b.pos != b.end:
            raise TDSProtocolError("ROWFMT has trailing bytes")
        self._cols = wire
        return RowFormat(columns)

    def _row(self, r: _Reader) -> Row:
        if self._cols is None:
            raise TDSProtocolError("ROW token without a preceding ROWFMT")
        return Row(tuple(self._value(r, c) for c in self._cols))

    def _value(self, r: _Reader, c: _WireCol) -> object:
        kind = c.kind
        if kind == "v1":
            n = r.u8()
            if n == 0:
                return None
            raw = r.take(n)
        elif kind == "v4":
            n = r.u32()
            if n == 0:
                return None
            raw = r.take(n)
        elif kind == "blob":
            ptrlen = r.u8()
            if ptrlen == 0:
                return None
            r.take(ptrlen + 8)  # text pointer + timestamp
            raw = r.take(r.u32())
        elif kind == "num":
            n = r.u8()
            if n == 0:
                return None
            raw = r.take(n)
            mag = Decimal(int.from_bytes(raw[1:], "big")).scaleb(-c.scale)
            return -mag if raw[0] else mag
        else:
            raw = r.take(int(kind[1:]))
        try:
            return _convert(c, raw)
        except (ValueError, OverflowError, struct.error) as exc:
            raise TDSProtocolError(f"bad value for datatype 0x{c.code:02x}: {exc}") from None


def _convert(c: _WireCol, raw: bytes) -> object:
    code = c.code
    _kind, tname = _TYPES[code]
    if tname in ("int", "bigint"):
        signed = code in _SIGNED and not (code == 0x26 and len(raw) == 1)  # INTN 1 = tinyint
        return int.from_bytes(raw, "little", signed=signed)
    if tname == "float":
        return struct.unpack("<f" if len(raw) == 4 else "<d", raw)[0]
    if tname == "bit":
        return bool(raw[0])
    if tname == "varchar":
        if code == 0xAE or (code == SYB_LONGBINARY and c.usertype in _UNICODE_USERTYPES):
            return raw.decode("utf-16-le", "replace")
        return raw.decode("utf-8", "replace")
    if tname == "binary":
        if code == SYB_LONGBINARY and c.usertype in _UNICODE_USERTYPES:
            return raw.decode("utf-16-le", "replace")
        return raw
    if tname == "datetime":
        if len(raw) == 4:  # smalldatetime: days, minutes
            days, minutes = struct.unpack("<HH", raw)
            return _EPOCH + _dt.timedelta(days=days, minutes=minutes)
        days, ticks = struct.unpack("<iI", raw)
        return _EPOCH + _dt.timedelta(days=days, microseconds=(ticks * 10_000 + 1) // 3)
    if tname == "date":
        return _EPOCH_DATE + _dt.timedelta(days=struct.unpack("<i", raw)[0])
    if tname == "time":
        ticks = struct.unpack("<I", raw)[0]
        return (_EPOCH + _dt.timedelta(microseconds=(ticks * 10_000 + 1) // 3)).time()
    if tname == "money":
        if len(raw) == 4:
            units = struct.unpack("<i", raw)[0]
        else:
            high, low = struct.unpack("<iI", raw)
            units = (high << 32) | low
        return Decimal(units).scaleb(-4)
    raise TDSProtocolError(f"cannot convert datatype 0x{code:02x}")
