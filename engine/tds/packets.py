"""TDS packet framing, sans-I/O.

Every TDS message travels as one or more packets, each with an 8-byte header:
type, status (0x01 = last packet of the message), length (BIG-endian, header
included), channel, packet number, window.  This module only splits and
joins; it never touches a socket, so the asyncio server, the blocking client
and the tests all share it.
"""

from __future__ import annotations

import struct
from enum import IntEnum

HEADER = struct.Struct(">BBHHBB")
HEADER_SIZE = HEADER.size  # 8

STATUS_EOM = 0x01
MAX_PACKET_SIZE = 65535  # the header's length field is 16 bits


class PacketType(IntEnum):
    """Packet types seen on a TDS 5.0 connection."""

    QUERY = 0x01  # TDS 4.2 language request; accepted but unused by FreeTDS 5.0
    LOGIN = 0x02
    RESPONSE = 0x04
    ATTENTION = 0x06
    NORMAL = 0x0F  # token stream: language requests, logout
    PRELOGIN = 0x12  # TDS 7 prelogin: sent by FreeTDS with `tds version = auto`


_KNOWN_TYPES = frozenset(int(t) for t in PacketType)


class TDSProtocolError(Exception):
    """The peer sent something that is not valid TDS; the message says what."""


class MessageAssembler:
    """Reassembles packets into whole messages, whatever the TCP chunking.

    Memory is bounded: a message growing past ``max_message`` bytes, or a
    packet claiming more than ``max_packet`` bytes, is refused before its body
    is buffered.  After a TDSProtocolError the assembler stays broken (every
    later feed raises again): the stream has lost its framing.
    """

    def __init__(self, max_message: int = 16 * 1024 * 1024, max_packet: int = MAX_PACKET_SIZE) -> None:
        self.max_message = max_message
        self.max_packet = max_packet
        self._buf = bytearray()
        self._type: int | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._error: TDSProtocolError | None = None

    @property
    def pending(self) -> bool:
        """True while part of a message (or a packet) is buffered."""
        return bool(self._buf) or self._type is not None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Return each message completed by ``data`` as (packet type, payload)."""
        out: list[tuple[int, bytes]] = []
        for ptype, eom, body in self.feed_packets(data):
            self._parts.append(body)
            if eom:
                out.append((ptype, b"".join(self._parts)))
                self._parts = []
        return out

    def feed_packets(self, data: bytes) -> list[tuple[int, bool, bytes]]:
        """Return each packet completed by ``data`` as (packet type, EOM, body).

        For readers that act on a message before it ends (a client showing
        progress messages); the same checks as ``feed`` apply.
        """
        if self._error is not None:
            raise self._error
        self._buf += data
        out: list[tuple[int, bool, bytes]] = []
        try:
            while len(self._buf) >= HEADER_SIZE:
                ptype, status, length, _chan, _num, _win = HEADER.unpack_from(self._buf)
                self._check_header(ptype, length)
                if len(self._buf) < length:
                    break
                body = bytes(self._buf[HEADER_SIZE:length])
                del self._buf[:length]
                eom = bool(status & STATUS_EOM)
                self._size += len(body)
                self._type = None if eom else ptype
                if eom:
                    self._size = 0
                out.append((ptype, eom, body))
        except TDSProtocolError as exc:
            self._error = exc
            self._buf.clear()
            self._parts = []
            raise
        return out

    def _check_header(self, ptype: int, length: int) -> None:
        if ptype not in _KNOWN_TYPES:
            raise TDSProtocolError(f"unknown packet type 0x{ptype:02x}")
        if length < HEADER_SIZE:
            raise TDSProtocolError(f"packet length {length} is shorter than the 8-byte header")
        if length > self.max_packet:
            raise TDSProtocolError(f"packet length {length} exceeds the maximum of {self.max_packet}")
        if self._type is not None and ptype != self._type:
            raise TDSProtocolError(
                f"packet type changed from 0x{self._type:02x} to 0x{ptype:02x} in the middle of a message"
            )
        if self._size + length - HEADER_SIZE > self.max_message:
            raise TDSProtocolError(f"message larger than {self.max_message} bytes (type 0x{ptype:02x})")


def encode_message(ptype: int, payload: bytes, packet_size: int = 512, last: bool = True) -> bytes:
    """Split ``payload`` into packets of at most ``packet_size`` bytes (header included).

    Only the final packet carries EOM, and only when ``last``: a server
    flushing a progress message mid-reply sends it with status 0.
    """
    if not HEADER_SIZE < packet_size <= MAX_PACKET_SIZE:
        raise ValueError(f"packet size {packet_size} out of range")
    chunk = packet_size - HEADER_SIZE
    view = memoryview(payload)
    out = bytearray()
    pos = 0
    while True:
        part = view[pos : pos + chunk]
        pos += len(part)
        final = pos >= len(view)
        status = STATUS_EOM if (final and last) else 0
        out += HEADER.pack(ptype, status, HEADER_SIZE + len(part), 0, 0, 0)
        out += part
        if final:
            return bytes(out)
