"""The archive API's client: a stripe worker thread talking to the media server.

Blocking sockets, no asyncio: the Backup Server runs one thread per stripe
and each holds one connection (protocol in engine.media). ``MediaClient``
holds where the media server is and the secret; every call opens its own
connection, so one client serves all stripe threads at once.

- ``store(name, unit)`` -> :class:`ArchiveSink` (a StripeSink): ``write``
  sends ~1 MiB data frames (the socket's flow control is the back-pressure),
  ``commit`` sends the end and waits for the stored object's details
  (``.result``), ``abort`` drops the connection so the server discards the
  object, or removes it when it was already committed (a dump whose other
  stripes failed leaves nothing).
- ``fetch(name)`` -> :class:`ArchiveSource` (a StripeSource) reading the
  object back; the server verifies every block before sending it.
- ``verify``, ``remove``, ``stat``, ``list``, ``temporaries``, ``remove_temporary``.

Failures are StatusError: 58 can't connect, 57 refused (wrong secret), 41
timed out, 84 a store that broke, 2850 a fetch that broke, or the status and
sentence the media server sent. The secret never appears in a message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import select
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.home import Home
from engine.jobs.status import (
    CANT_CONNECT,
    CONNECTION_REFUSED,
    MEDIA_WRITE_ERROR,
    NETWORK_TIMEOUT,
    RESTORE_ERROR,
    StatusError,
)
from engine.media import protocol as p
from engine.media.secret import read_media_secret
from engine.storage.base import ObjectInfo, TemporaryInfo, validate_object_name

log = logging.getLogger("sybar.archive")

DEFAULT_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 15.0
#: For answers that come only after the server has worked through a whole
#: object: a store's commit (fsync) and a verify (reads every block).
DEFAULT_LONG_TIMEOUT = 3600.0


@dataclass(frozen=True)
class StoreResult:
    """What the media server reports for a committed object."""

    name: str
    unit: str
    bytes: int
    checksum: str  # xxh3_128 hex of the whole object
    raw_bytes: int
    stripe_digest: str
    blocks: int
    dump_id: str
    stripe: int
    stripes: int

    # read like the server's answer too: result["bytes"], result.get("raw_bytes")
    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.__dataclass_fields__ else default

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_reply(cls, r: dict[str, Any]) -> StoreResult:
        try:
            return cls(
                name=str(r["name"]),
                unit=str(r["unit"]),
                bytes=int(r["bytes"]),
                checksum=str(r["checksum"]),
                raw_bytes=int(r["raw_bytes"]),
                stripe_digest=str(r["stripe_digest"]),
                blocks=int(r["blocks"]),
                dump_id=str(r["dump_id"]),
                stripe=int(r["stripe"]),
                stripes=int(r["stripes"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise p.ProtocolError(f"the store answer lacks or garbles {e}") from None


class _Channel:
    """One authenticated connection; maps every failure to a StatusError."""

    def __init__(self, client: MediaClient, doing: str, status: int):
        self.client = client
        self.doing = doing  # "storing object X": for messages
        self.status = status  # for a connection that breaks
        self.sock: socket.socket | None = None
        self.timeout = client.connect_timeout

    def set_timeout(self, seconds: float) -> None:
        self.timeout = seconds
        if self.sock is not None:
            self.sock.settimeout(seconds)

    # -- errors
    def _timeout(self) -> StatusError:
        return StatusError(
            NETWORK_TIMEOUT,
            f"the media server at {self.client.address} did not answer within {self.timeout:g} s "
            f"while {self.doing}: check that it is running and reachable",
        )

    def _broken(self, reason: str) -> StatusError:
        return StatusError(
            self.status,
            f"the connection to the media server at {self.client.address} broke while {self.doing}: {reason}",
        )

    def _server_error(self, payload: bytes | bytearray) -> StatusError:
        try:
            obj = p.decode_json(payload)
        except p.ProtocolError:
            obj = {}
        status = obj.get("status")
        message = obj.get("message")
        if not isinstance(status, int) or isinstance(status, bool):
            status = self.status
        if not isinstance(message, str) or not message:
            message = f"the media server at {self.client.address} failed while {self.doing} (no reason given)"
        return StatusError(status, message)

    # -- connection
    def open(self) -> _Channel:
        c = self.client
        try:
            sock = socket.create_connection((c.host, c.port), timeout=c.connect_timeout)
            if c.ssl_context is not None:
                from engine.tls import wrap_client_socket

                sock = wrap_client_socket(c.ssl_context, sock, c.host, f"the media server at {c.address}")
        except TimeoutError:
            raise StatusError(
                NETWORK_TIMEOUT,
                f"connecting to the media server at {c.address} timed out after {c.connect_timeout:g} s "
                f"while {self.doing}: check the host, the port and any firewall between",
            ) from None
        except socket.gaierror as e:
            raise StatusError(
                CANT_CONNECT, f"can't connect to the media server at {c.address}: unknown host ({e.strerror})"
            ) from None
        except OSError as e:
            raise StatusError(
                CANT_CONNECT,
                f"can't connect to the media server at {c.address}: {e.strerror or e}; check that "
                "sybar serve (the media server role) runs there and listens on that port",
            ) from None
        self.sock = sock
        status, self.status = self.status, CANT_CONNECT
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            kind, payload = self.recv(len(p.PROTOCOL_TAG) + p.NONCE_LEN)
            if kind == p.ERROR:
                raise self._server_error(payload)
            if kind != p.CHALLENGE:
                raise p.ProtocolError(f"a {p.NAMES[kind]} frame instead of a challenge")
            nonce = p.parse_challenge(bytes(payload))
            self.send(p.AUTH, p.auth_proof(c._secret, nonce))
            self.reply(CONNECTION_REFUSED)
            self.set_timeout(c.timeout)
        except p.ProtocolError as e:
            self.close()
            raise StatusError(
                CANT_CONNECT,
                f"{c.address} does not speak the sybar media protocol ({e}): is that the media server's port?",
            ) from None
        except BaseException:
            self.close()
            raise
        self.status = status
        return self

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None

    # -- frames
    def _recv_exactly(self, n: int) -> bytearray:
        assert self.sock is not None
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            try:
                k = self.sock.recv_into(view[got:])
            except TimeoutError:
                raise self._timeout() from None
            except OSError as e:
                raise self._broken(e.strerror or str(e)) from None
            if k == 0:
                raise self._broken("the media server closed the connection")
            got += k
        return buf

    def recv(self, max_payload: int = p.MAX_PAYLOAD) -> tuple[int, bytearray]:
        if self.sock is None:
            raise self._broken("the connection is closed")
        kind, n = p.parse_frame_header(bytes(self._recv_exactly(p.FRAME_HEADER.size)), max_payload)
        return kind, (self._recv_exactly(n) if n else bytearray())

    def send(self, kind: int, payload: bytes | bytearray | memoryview = b"") -> None:
        self.send_parts(kind, [payload])

    def send_parts(self, kind: int, payloads: list) -> None:
        """One frame whose payload is the parts joined, sent without joining them (sendmsg)."""
        if self.sock is None:
            raise self._broken("the connection is closed")
        views = [memoryview(x).cast("B") for x in payloads]
        parts = [memoryview(p.frame_header(kind, sum(len(v) for v in views)))] + [v for v in views if len(v)]
        try:
            if isinstance(self.sock, ssl.SSLSocket):  # TLS sockets have no sendmsg
                for part in parts:
                    self.sock.sendall(part)
                parts = []
            while parts:
                n = self.sock.sendmsg(parts)
                while n and parts:
                    if n >= len(parts[0]):
                        n -= len(parts[0])
                        parts.pop(0)
                    else:
                        parts[0] = parts[0][n:]
                        n = 0
                if parts and not len(parts[0]):
                    parts.pop(0)
        except TimeoutError:
            raise self._timeout() from None
        except OSError as e:
            raise self._reason_for_break(e.strerror or str(e)) from None

    def _reason_for_break(self, reason: str) -> StatusError:
        """The server's error frame if it sent one before closing, else a broken connection."""
        if self.sock is not None:
            with contextlib.suppress(Exception):
                self.sock.settimeout(1.0)
                kind, payload = self.recv()
                if kind == p.ERROR:
                    return self._server_error(payload)
        return self._broken(reason)

    def poll_error(self) -> None:
        """Raise at once if the server has said something (an error) while we stream."""
        if self.sock is None:
            return
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        if poller.poll(0):
            kind, payload = self.recv()
            if kind == p.ERROR:
                raise self._server_error(payload)
            raise self._broken(f"the media server sent an unexpected {p.NAMES[kind]} frame")

    def reply(self, refuse_status: int | None = None) -> dict[str, Any]:
        """The next J frame as a dict; an E frame raises its StatusError."""
        try:
            kind, payload = self.recv()
        except p.ProtocolError as e:
            raise self._broken(f"the media server sent a malformed frame ({e})") from None
        if kind == p.ERROR:
            err = self._server_error(payload)
            if refuse_status is not None and err.status == CONNECTION_REFUSED:
                raise StatusError(
                    CONNECTION_REFUSED,
                    f"the media server at {self.client.address} refused the connection: {err}",
                )
            raise err
        if kind not in (p.JSON, p.END):
            raise self._broken(f"the media server sent a {p.NAMES[kind]} frame where an answer belongs")
        try:
            return p.decode_json(payload)
        except p.ProtocolError as e:
            raise self._broken(str(e)) from None

    def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.send(p.JSON, p.encode_json(obj))
        return self.reply()


class MediaClient:
    """Where the media server is and how to prove who we are. Thread-safe: every
    call opens its own connection."""

    def __init__(
        self,
        host: str,
        port: int,
        secret: bytes,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        long_timeout: float = DEFAULT_LONG_TIMEOUT,
        ssl_context: Any = None,
    ):
        if not isinstance(secret, bytes | bytearray) or len(secret) < 16:
            raise ValueError("the media secret must be at least 16 bytes")
        self.host = host
        self.port = int(port)
        self._secret = bytes(secret)
        self.ssl_context = ssl_context  # a media server off loopback speaks TLS (engine.tls.client_context)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.long_timeout = max(long_timeout, timeout)

    @classmethod
    def for_home(cls, home: Home | str | os.PathLike, host: str, port: int, **kw: Any) -> MediaClient:
        """A client using the secret of a sybar home (HOME/media.secret)."""
        return cls(host, port, read_media_secret(home), **kw)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __repr__(self) -> str:  # never the secret
        return f"MediaClient({self.address})"

    def _open(self, doing: str, status: int) -> _Channel:
        return _Channel(self, doing, status).open()

    def _one(self, doing: str, status: int, req: dict[str, Any], long: bool = False) -> dict[str, Any]:
        ch = self._open(doing, status)
        try:
            if long:
                ch.set_timeout(self.long_timeout)
            return ch.request(req)
        finally:
            ch.close()

    # -- streams
    def store(
        self,
        name: str,
        unit: str | None = None,
        job_id: int | str | None = None,
        expected_bytes: int | None = None,
    ) -> ArchiveSink:
        """Start storing object `name` on storage unit `unit` (None: the server's only unit)."""
        return ArchiveSink(self, name, unit, job_id, expected_bytes)

    def store_all(
        self, names: list[str], unit: str | None = None, job_id: int | str | None = None
    ) -> list[ArchiveSink]:
        """Sinks for every name or none: a failure aborts those already opened."""
        sinks: list[ArchiveSink] = []
        try:
            for n in names:
                sinks.append(self.store(n, unit, job_id))
        except BaseException:
            for s in sinks:
                s.abort()
            raise
        return sinks

    def fetch(self, name: str, unit: str | None = None) -> ArchiveSource:
        return ArchiveSource(self, name, unit)

    # -- one-shot requests
    def verify(self, name: str, unit: str | None = None) -> dict[str, Any]:
        """Have the media server read and check every block of an object."""
        validate_object_name(name)
        return self._one(
            f"verifying object {name}", RESTORE_ERROR, {"op": "verify", "name": name, "unit": unit}, long=True
        )

    def remove(self, name: str, unit: str | None = None) -> bool:
        validate_object_name(name)
        r = self._one(
            f"removing object {name}", MEDIA_WRITE_ERROR, {"op": "remove", "name": name, "unit": unit}
        )
        return bool(r.get("removed"))

    def stat(self, name: str, unit: str | None = None) -> ObjectInfo | None:
        validate_object_name(name)
        r = self._one(f"looking up object {name}", RESTORE_ERROR, {"op": "stat", "name": name, "unit": unit})
        obj = r.get("object")
        return None if obj is None else ObjectInfo.from_json(obj)

    def list(self, prefix: str = "", unit: str | None = None) -> Iterator[ObjectInfo]:
        """The objects whose names start with prefix, streamed (not loaded at once)."""
        for obj in self._stream("listing objects", {"op": "list", "prefix": prefix, "unit": unit}, "objects"):
            yield ObjectInfo.from_json(obj)

    def temporaries(self, unit: str | None = None) -> list[TemporaryInfo]:
        return [
            TemporaryInfo.from_json(t)
            for t in self._stream("listing temporaries", {"op": "temporaries", "unit": unit}, "temporaries")
        ]

    def remove_temporary(self, temp: TemporaryInfo | str, unit: str | None = None) -> bool:
        tid = temp.id if isinstance(temp, TemporaryInfo) else temp
        unit = unit if unit is not None else (temp.unit or None if isinstance(temp, TemporaryInfo) else None)
        r = self._one(
            f"removing temporary {tid}",
            MEDIA_WRITE_ERROR,
            {"op": "remove_temporary", "unit": unit, "id": tid},
        )
        return bool(r.get("removed"))

    def _stream(self, doing: str, req: dict[str, Any], key: str) -> Iterator[dict[str, Any]]:
        ch = self._open(doing, RESTORE_ERROR)
        try:
            ch.send(p.JSON, p.encode_json(req))
            while True:
                try:
                    kind, payload = ch.recv()
                except p.ProtocolError as e:
                    raise ch._broken(f"malformed frame ({e})") from None
                if kind == p.ERROR:
                    raise ch._server_error(payload)
                if kind == p.END:
                    return
                if kind != p.JSON:
                    raise ch._broken(f"unexpected {p.NAMES[kind]} frame")
                try:
                    items = p.decode_json(payload).get(key)
                except p.ProtocolError as e:
                    raise ch._broken(str(e)) from None
                if not isinstance(items, list):
                    raise ch._broken(f"a listing frame without {key!r}")
                yield from items
        finally:
            ch.close()


class ArchiveSink:
    """One stripe on its way to the media server (a StripeSink).

    Opening it connects, authenticates and has the server create the object,
    so a bad name, an unknown storage unit or an unreachable server fails
    before the dump starts. Not thread-safe: one sink per stripe thread.
    """

    def __init__(
        self,
        client: MediaClient,
        name: str,
        unit: str | None,
        job_id: int | str | None = None,
        expected_bytes: int | None = None,
    ):
        validate_object_name(name)
        self.client = client
        self.name = name
        self.unit = unit
        self.job_id = job_id
        self.result: StoreResult | None = None
        self.bytes_sent = 0
        self._buf = bytearray()
        self._error: StatusError | None = None
        self._state = "open"  # open | committed | failed | aborted
        #: set by the archive agent when the dump is to be encrypted (engine.backupserver.cipher.DataKey)
        self.data_key = None
        self._ch = client._open(f"storing object {name}", MEDIA_WRITE_ERROR)
        try:
            ready = self._ch.request(
                {
                    "op": "store",
                    "name": name,
                    "unit": unit,
                    "job_id": job_id,
                    "expected_bytes": expected_bytes,
                }
            )
            if not ready.get("ready"):
                raise self._ch._broken("the media server did not accept the object")
            self.unit = str(ready.get("unit", unit))
        except BaseException:
            self._ch.close()
            raise

    def __repr__(self) -> str:
        return f"ArchiveSink({self.name!r} -> {self.client.address}, {self._state})"

    def _check(self) -> None:
        if self._state == "open":
            return
        if self._error is not None:
            raise self._error
        raise StatusError(MEDIA_WRITE_ERROR, f"object {self.name} is {self._state}: nothing more can be sent")

    def _failed(self, e: StatusError) -> StatusError:
        self._state = "failed"
        self._error = e
        self._ch.close()
        return e

    def _send_data(self, payload: bytes | bytearray | memoryview) -> None:
        self._ch.poll_error()
        self._ch.send(p.DATA, payload)
        self.bytes_sent += len(payload)

    def writev(self, parts: list) -> None:
        """Send parts (a block frame's header and stored bytes) as one data frame, without joining them."""
        self._check()
        size = sum(len(x) for x in parts)
        if size > p.MAX_PAYLOAD:
            for x in parts:
                self.write(x)
            return
        try:
            if self._buf:
                self._send_data(self._buf)
                self._buf = bytearray()
            self._ch.poll_error()
            self._ch.send_parts(p.DATA, parts)
            self.bytes_sent += size
        except StatusError as e:
            raise self._failed(e) from None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check()
        frame = p.DATA_FRAME
        try:
            mv = memoryview(data)
            if not self._buf and frame // 2 <= len(mv) <= p.MAX_PAYLOAD:
                self._send_data(mv)  # a whole block frame: one data frame, no copy
                return
            if self._buf:
                need = frame - len(self._buf)
                self._buf += mv[:need]
                mv = mv[need:]
                if len(self._buf) < frame:
                    return
                self._send_data(self._buf)
                self._buf = bytearray()
            while len(mv) >= frame:
                self._send_data(mv[:frame])
                mv = mv[frame:]
            if mv:
                self._buf += mv
        except StatusError as e:
            raise self._failed(e) from None

    def commit(self) -> StoreResult:
        """Send the rest and the end; return (and keep in .result) what the server stored."""
        if self._state == "committed" and self.result is not None:
            return self.result
        self._check()
        try:
            if self._buf:
                self._send_data(self._buf)
                self._buf = bytearray()
            self._ch.poll_error()
            self._ch.doing = f"committing object {self.name} (it may not have been stored)"
            self._ch.send(p.END)
            self._ch.set_timeout(self.client.long_timeout)  # the server fsyncs before it answers
            try:
                self.result = StoreResult.from_reply(self._ch.reply())
            except p.ProtocolError as e:
                raise self._ch._broken(str(e)) from None
        except StatusError as e:
            raise self._failed(e) from None
        self._state = "committed"
        self._ch.close()
        return self.result

    def abort(self) -> None:
        """Drop the object: before commit the server discards the temporary; after
        commit the stored object is removed. Never raises."""
        state, self._state = self._state, "aborted"
        self._buf = bytearray()
        self._ch.close()
        if state == "committed":
            try:
                self.client.remove(self.name, self.unit)
            except Exception as e:  # must not hide the dump's real error
                log.warning("could not remove object %s after the dump failed: %s", self.name, e)
            self.result = None


class ArchiveSource:
    """One stored stripe read back from the media server (a StripeSource).

    Every block was verified by the server before it was sent; an error frame
    (a damaged object) raises StatusError with the server's sentence.
    """

    def __init__(self, client: MediaClient, name: str, unit: str | None = None):
        validate_object_name(name)
        self.client = client
        self.name = name
        self.summary: dict[str, Any] | None = None
        self.read_bytes = 0
        self._frame: bytes | bytearray = b""
        self._pos = 0
        self._eof = False
        #: key_id -> data key or None; set by the archive agent so a load can decrypt (StripeDecoder)
        self.key_lookup = None
        self._ch = client._open(f"reading object {name}", RESTORE_ERROR)
        try:
            ready = self._ch.request({"op": "fetch", "name": name, "unit": unit})
        except BaseException:
            self._ch.close()
            raise
        self.unit = ready.get("unit", unit)
        self.size = ready.get("size")

    def __repr__(self) -> str:
        return f"ArchiveSource({self.name!r} <- {self.client.address})"

    def read(self, n: int) -> bytes:
        while self._pos >= len(self._frame):
            if self._eof:
                return b""
            try:
                kind, payload = self._ch.recv()
            except p.ProtocolError as e:
                self._ch.close()
                raise self._ch._broken(f"malformed frame ({e})") from None
            except StatusError:
                self._ch.close()
                raise
            if kind == p.DATA:
                self._frame, self._pos = payload, 0
            elif kind == p.END:
                self._eof = True
                self._frame, self._pos = b"", 0
                with contextlib.suppress(p.ProtocolError):
                    self.summary = p.decode_json(payload) if payload else {}
                self._ch.close()
                return b""
            elif kind == p.ERROR:
                err = self._ch._server_error(payload)
                self._ch.close()
                raise err
            else:
                self._ch.close()
                raise self._ch._broken(f"unexpected {p.NAMES[kind]} frame in object {self.name}")
        k = min(n, len(self._frame) - self._pos)
        if self._pos == 0 and k == len(self._frame):
            out = self._frame  # the whole frame (a fresh buffer each): no copy
            self._frame, self._pos = b"", 0
            self.read_bytes += k
            return out
        with memoryview(self._frame) as mv:
            out = bytes(mv[self._pos : self._pos + k])
        self._pos += k
        self.read_bytes += k
        return out

    def close(self) -> None:
        self._ch.close()
