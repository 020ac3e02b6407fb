"""Sans-I/O TDS 5.0 connection state machines: bytes in, events out.

``ServerConnection`` turns what a client sends into request events and
frames replies; ``ClientConnection`` is its mirror for our own client.  No
sockets here: the asyncio server (server.py), the blocking client
(client.py) and the tests all drive these with plain bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .login import LoginRecord, build_login, parse_login
from .packets import MAX_PACKET_SIZE, MessageAssembler, PacketType, TDSProtocolError, encode_message
from .tokens import (
    ENV_PACKETSIZE,
    TOKEN_LANGUAGE,
    TOKEN_LOGOUT,
    EnvChange,
    TokenDecoder,
)

MIN_PACKET_SIZE = 512

# --- server-side events ------------------------------------------------------------------------


@dataclass
class LoginRequest:
    record: LoginRecord


@dataclass
class LanguageRequest:
    sql: str


@dataclass
class Attention:
    pass


@dataclass
class Logout:
    pass


@dataclass
class PreLogin:
    """A TDS 7 prelogin: close the socket and FreeTDS retries with a 5.0 login."""


@dataclass
class UnsupportedRequest:
    """A well-formed request we do not implement (RPC, dynamic SQL, ...): answer an error."""

    token: int


@dataclass
class ProtocolViolation:
    message: str


# --- client-side event (the others come from tokens.TokenDecoder) -------------------------------


@dataclass
class EndOfMessage:
    pass


# Request tokens other clients may send that we answer with an error instead of a hang-up.
_UNSUPPORTED_REQUESTS = frozenset(
    {0xE6, 0xE7, 0x62, 0xA6, 0x20, 0xEC, 0x80, 0x81, 0x82, 0x83, 0x84, 0x86, 0x87}
)


#: The largest message accepted before a login (a login record is 568 bytes plus its capabilities).
MAX_LOGIN_MESSAGE = 64 * 1024


def clamp_packet_size(size: int) -> int:
    """What we accept for a client's packet size: 0 or junk means the 512 default."""
    if size <= 0:
        return MIN_PACKET_SIZE
    return max(MIN_PACKET_SIZE, min(MAX_PACKET_SIZE, size))


class ServerConnection:
    """Server half of a TDS 5.0 connection.

    States: waiting for the login, logged in, closed.  A ProtocolViolation,
    PreLogin or Logout ends the connection; later bytes are ignored.
    """

    def __init__(self, max_message: int = 16 * 1024 * 1024) -> None:
        # before the login only a login record (568 bytes + capabilities) may arrive: a peer announcing
        # more is not a TDS client, and is refused before megabytes are buffered for it
        self._max_message = max_message
        self._assembler = MessageAssembler(max_message=min(max_message, MAX_LOGIN_MESSAGE))
        self.packet_size = MIN_PACKET_SIZE
        self.logged_in = False
        self.closed = False

    def receive_data(self, data: bytes) -> list:
        if self.closed:
            return []
        try:
            messages = self._assembler.feed(data)
        except TDSProtocolError as exc:
            return self._violation(str(exc))
        events: list = []
        for ptype, payload in messages:
            try:
                event = self._message(ptype, payload)
            except TDSProtocolError as exc:
                events += self._violation(str(exc))
                break
            events.append(event)
            if isinstance(event, (Logout, PreLogin)):
                self.closed = True
                break
        return events

    def _violation(self, message: str) -> list:
        self.closed = True
        return [ProtocolViolation(message)]

    def _message(self, ptype: int, payload: bytes) -> object:
        if ptype == PacketType.PRELOGIN and not self.logged_in:
            return PreLogin()
        if ptype == PacketType.LOGIN:
            if self.logged_in:
                raise TDSProtocolError("second login on a connection")
            record = parse_login(payload)
            self.packet_size = clamp_packet_size(record.packet_size)
            self.logged_in = True
            self._assembler.max_message = self._max_message
            return LoginRequest(record)
        if not self.logged_in:
            raise TDSProtocolError(f"packet type 0x{ptype:02x} before login")
        if ptype == PacketType.ATTENTION:
            return Attention()
        if ptype == PacketType.QUERY:  # TDS 4.2 style: the payload is the SQL text
            return LanguageRequest(payload.decode("utf-8", "replace"))
        if ptype == PacketType.NORMAL:
            return self._token_request(payload)
        raise TDSProtocolError(f"unexpected packet type 0x{ptype:02x} from a client")

    def _token_request(self, payload: bytes) -> object:
        if not payload:
            raise TDSProtocolError("empty request")
        tok = payload[0]
        if tok == TOKEN_LANGUAGE:
            if len(payload) < 6:
                raise TDSProtocolError("truncated LANGUAGE token")
            (length,) = struct.unpack_from("<I", payload, 1)
            if length < 1 or 5 + length > len(payload):
                raise TDSProtocolError(f"LANGUAGE token length {length} does not match the message")
            status = payload[5]
            if status & 0x01 or 5 + length != len(payload):
                return UnsupportedRequest(tok)  # language with parameters
            return LanguageRequest(payload[6 : 5 + length].decode("utf-8", "replace"))
        if tok == TOKEN_LOGOUT:
            return Logout()
        if tok in _UNSUPPORTED_REQUESTS:
            return UnsupportedRequest(tok)
        raise TDSProtocolError(f"unknown request token 0x{tok:02x}")

    def reply(self, tokens: bytes, last: bool = True) -> bytes:
        return encode_message(PacketType.RESPONSE, tokens, self.packet_size, last)


class ClientConnection:
    """Client half: builds requests, decodes replies packet by packet.

    Events are those of tokens.TokenDecoder plus EndOfMessage after the last
    token of a message carrying EOM.  ``packet_size`` follows the server's
    ENVCHANGE.
    """

    def __init__(self, max_token: int = 64 * 1024 * 1024) -> None:
        # Replies stream through as packets arrive: the assembler only frames,
        # and the decoder bounds what one incomplete token may buffer.
        self._assembler = MessageAssembler(max_message=2**62)
        self._decoder = TokenDecoder(max_token=max_token)
        self.packet_size = MIN_PACKET_SIZE

    def login(self, rec: LoginRecord) -> bytes:
        # The login always travels in 512-byte packets: the size is negotiated by it.
        return encode_message(PacketType.LOGIN, build_login(rec), MIN_PACKET_SIZE)

    def language(self, sql: str) -> bytes:
        raw = sql.encode("utf-8")
        token = bytes([TOKEN_LANGUAGE]) + struct.pack("<I", len(raw) + 1) + b"\x00" + raw
        return encode_message(PacketType.NORMAL, token, self.packet_size)

    def attention(self) -> bytes:
        return encode_message(PacketType.ATTENTION, b"", MIN_PACKET_SIZE)

    def logout(self) -> bytes:
        return encode_message(PacketType.NORMAL, bytes([TOKEN_LOGOUT, 0]), self.packet_size)

    def receive_data(self, data: bytes) -> list:
        events: list = []
        for ptype, eom, body in self._assembler.feed_packets(data):
            if ptype != PacketType.RESPONSE:
                raise TDSProtocolError(f"server sent packet type 0x{ptype:02x}, expected a response")
            decoded = self._decoder.feed(body)
            for ev in decoded:
                if (
                    isinstance(ev, EnvChange)
                    and ev.kind == ENV_PACKETSIZE
                    and ev.new.isascii()
                    and ev.new.isdigit()
                ):
                    self.packet_size = clamp_packet_size(int(ev.new))
            events += decoded
            if eom:
                self._decoder.end()
                events.append(EndOfMessage())
        return events
