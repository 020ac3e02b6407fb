"""The media server: authenticated stripe streams to and from storage units.

See engine.media for the protocol. One task per connection; every chunk of
a stored stripe is verified (StripeDecoder) and written (the storage unit's
writer) before the next frame is read, and every fetched chunk is verified
before it is sent and sent (drain) before the next is read, so memory per
connection is a few frames whatever the stripe's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import xxhash

from engine.backupserver.dumpformat import DumpFormatError, StripeDecoder
from engine.backupserver.memory import limit_malloc_arenas
from engine.jobs.status import (
    BACKUP_FAILED,
    CONNECTION_REFUSED,
    MEDIA_WRITE_ERROR,
    NETWORK_TIMEOUT,
    RESTORE_ERROR,
    SYSTEM_ERROR,
    WORM_LOCK_ERROR,
    StatusError,
)
from engine.media import protocol as p
from engine.media.secret import ensure_media_secret
from engine.storage.base import (
    StorageUnit,
    validate_object_name,
    validate_prefix,
    validate_unit_name,
)

log = logging.getLogger("sybar.media")

#: A mapping of unit name -> unit, or a callable taking a unit name (None:
#: the default unit) and returning the unit or raising StatusError.
UnitResolver = Mapping[str, StorageUnit] | Callable[[str | None], StorageUnit]

#: Bytes read from a storage unit at a time when fetching or verifying.
READ_CHUNK = 1 << 20
#: Objects per JSON frame of a listing.
LIST_BATCH = 500
#: StreamReader buffer limit: reading pauses above twice this per connection.
STREAM_LIMIT = 1 << 20  # a whole ~1 MiB data frame fits before reading pauses
#: A store receives ahead of verifying and writing: at most this many data frames wait (~1 MiB each).
STORE_QUEUE = 4
#: Frames verified and written together, up to about this many bytes (memory per stripe: ~2 of these).
STORE_BATCH = 1 << 20
#: The transport buffers up to this much of a fetch before drain() waits, so reading
#: and verifying the next chunk overlaps with sending this one.
SEND_BUFFER = 4 << 20


@dataclass(frozen=True)
class MediaLimits:
    auth_timeout: float = 10.0  # to answer the challenge
    request_timeout: float = 30.0  # to send the request once authenticated
    #: Between two frames of a store. Long: a stripe that has sent all its
    #: blocks waits for the slowest stripe before its trailer and its commit.
    idle_timeout: float = 3600.0
    max_connections: int = 256
    #: After an error frame, input is drained (and dropped) this long so the
    #: client can read the error instead of meeting a reset.
    linger: float = 2.0


_OP_STATUS = {"store": MEDIA_WRITE_ERROR, "fetch": RESTORE_ERROR, "verify": RESTORE_ERROR}


class _Closed(Exception):
    """The peer went away."""


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str):
        self.reader = reader
        self.writer = writer
        self.peer = peer

    async def recv(self, max_payload: int, timeout: float) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(timeout):
                kind, n = p.parse_frame_header(
                    await self.reader.readexactly(p.FRAME_HEADER.size), max_payload
                )
                payload = await self.reader.readexactly(n) if n else b""
        except asyncio.IncompleteReadError as e:
            raise _Closed(
                f"the client closed the connection ({len(e.partial)} bytes of a frame read)"
            ) from None
        except ConnectionError as e:
            raise _Closed(f"the connection broke ({e.strerror or e})") from None
        return kind, payload

    async def send(self, kind: int, payload: bytes = b"") -> None:
        try:
            self.writer.write(p.frame_header(kind, len(payload)))
            if payload:
                self.writer.write(payload)
            await self.writer.drain()
        except ConnectionError as e:
            raise _Closed(f"the connection broke ({e.strerror or e})") from None

    async def send_json(self, obj: dict[str, Any], kind: int = p.JSON) -> None:
        await self.send(kind, p.encode_json(obj))

    async def send_error(self, status: int, message: str) -> None:
        with contextlib.suppress(_Closed, OSError, RuntimeError):
            await self.send_json({"ok": False, "status": status, "message": message}, p.ERROR)

    async def linger(self, seconds: float) -> None:
        """Half-close and drop whatever the client still sends, for a while."""
        with contextlib.suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()
            async with asyncio.timeout(seconds):
                while await self.reader.read(1 << 16):
                    pass


def _feed(dec: StripeDecoder, hasher: Any, data: bytes) -> int:
    """Hash and verify data (in a worker thread); returns the verified offset."""
    hasher.update(data)
    dec.feed(data)
    return dec.offset


def _feed_all(dec: StripeDecoder, hasher: Any, frames: list[bytes]) -> None:
    for data in frames:
        hasher.update(data)
        dec.feed(data)


async def _write_all(writer: Any, frames: list[bytes]) -> None:
    for data in frames:
        await writer.write(data)


def _plain_socket(conn: _Conn) -> socket.socket | None:
    """A blocking duplicate of a plain-TCP connection's socket; None over TLS (or no socket)."""
    t = conn.writer.transport
    if t.get_extra_info("sslcontext") is not None or t.get_extra_info("ssl_object") is not None:
        return None
    s = t.get_extra_info("socket")
    if s is None or not hasattr(conn.reader, "_buffer"):
        return None
    try:
        return socket.socket(fileno=os.dup(s.fileno()))
    except OSError:
        return None


def _send_verified(
    sock: socket.socket, loop: Any, reader: Any, dec: StripeDecoder, hasher: Any, timeout: float
) -> int:
    """Worker thread of a plain-TCP fetch (MediaServer._send_blocking): only verified bytes are sent."""
    total = sent = 0
    pending = bytearray()
    nxt = None
    try:
        sock.settimeout(timeout)
        nxt = asyncio.run_coroutine_threadsafe(reader.read(READ_CHUNK), loop)
        while True:
            chunk = nxt.result()
            nxt = None
            if not chunk:
                return total
            nxt = asyncio.run_coroutine_threadsafe(reader.read(READ_CHUNK), loop)
            hasher.update(chunk)
            dec.feed(chunk)
            total += len(chunk)
            pending += chunk
            ready = dec.offset - sent
            while ready > 0:
                k = min(ready, p.DATA_FRAME)
                with memoryview(pending) as mv:
                    try:
                        sock.sendall(p.frame_header(p.DATA, k) + mv[:k])
                    except TimeoutError:
                        raise StatusError(
                            NETWORK_TIMEOUT, f"the client took no data for {timeout:g} s; the fetch was ended"
                        ) from None
                    except OSError as e:
                        raise _Closed(f"the connection broke ({e.strerror or e})") from None
                del pending[:k]
                sent += k
                ready -= k
    finally:
        if nxt is not None:  # the loop's read in flight ends before the caller closes the reader
            with contextlib.suppress(BaseException):
                nxt.result()
        sock.close()


def _receive_blocking(
    sock: socket.socket, leftover: bytes, loop: Any, writer: Any, dec: StripeDecoder, hasher: Any,
    name: str, idle: float,
) -> int:
    """Worker thread of a plain-TCP store (see MediaServer._store_blocking); returns the bytes stored."""
    left = memoryview(leftover)
    total = 0
    batch: list[bytearray] = []
    size = 0
    pending = None  # the write of the previous batch (a concurrent Future)

    def exactly(n: int) -> bytearray:
        nonlocal left
        out = bytearray(n)
        mv = memoryview(out)
        got = min(n, len(left))
        if got:
            mv[:got] = left[:got]
            left = left[got:]
        while got < n:
            try:
                k = sock.recv_into(mv[got:])
            except TimeoutError:
                raise StatusError(
                    NETWORK_TIMEOUT,
                    f"object {name}: the client sent nothing for {idle:g} s; "
                    f"the object was not stored ({total} bytes discarded)",
                ) from None
            except OSError as e:
                raise _Closed(f"the connection broke ({e.strerror or e})") from None
            if k == 0:
                raise _Closed(f"the client closed the connection ({got} bytes of a frame read)")
            got += k
        return out

    def flush() -> None:
        nonlocal pending, batch, size
        if pending is not None:
            pending.result()  # a write error of the batch before stops the store here
            pending = None
        if batch:
            data = batch[0] if len(batch) == 1 else b"".join(batch)
            pending = asyncio.run_coroutine_threadsafe(writer.write(data), loop)
            batch, size = [], 0

    try:
        sock.settimeout(idle)
        while True:
            kind, n = p.parse_frame_header(bytes(exactly(p.FRAME_HEADER.size)), p.MAX_PAYLOAD)
            if kind == p.DATA:
                if not n:
                    continue
                payload = exactly(n)
                hasher.update(payload)
                dec.feed(payload)
                batch.append(payload)
                size += n
                total += n
                if size >= STORE_BATCH:
                    flush()
            elif kind == p.END:
                flush()
                if pending is not None:
                    pending.result()
                    pending = None
                return total
            else:
                raise p.ProtocolError(f"a {p.NAMES[kind]} frame in the middle of object {name}")
    finally:
        if pending is not None:  # never leave a write running under the caller's abort
            with contextlib.suppress(BaseException):
                pending.result()
        sock.close()


class MediaServer:
    """Serves the media protocol for a set of storage units.

    ``await start(host, port)`` listens; ``await close()`` stops listening and
    ends every connection (stores in progress are aborted: their temporaries
    removed).
    """

    def __init__(self, units: UnitResolver, secret: bytes, *, limits: MediaLimits | None = None):
        if not isinstance(secret, bytes | bytearray) or len(secret) < 16:
            raise ValueError("the media secret must be at least 16 bytes")
        limit_malloc_arenas()  # stripes' ~1 MiB frames from several threads: keep RSS flat
        self._units = units
        self._secret = bytes(secret)
        self.limits = limits or MediaLimits()
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    def __repr__(self) -> str:  # never the secret
        return f"MediaServer(units={self.unit_names()!r})"

    # -- lifecycle
    async def start(self, host: str, port: int, ssl: Any = None) -> asyncio.Server:
        """Listen; with an ssl.SSLContext (engine.tls.server_context: main.py gives one off loopback), TLS only."""
        self.server = await asyncio.start_server(self._handle, host, port, limit=STREAM_LIMIT, backlog=128,
                                                 ssl=ssl, ssl_handshake_timeout=30 if ssl else None)
        return self.server

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None and self.server.sockets
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    @property
    def active_connections(self) -> int:
        return len(self._tasks)

    # -- units
    def unit_names(self) -> list[str]:
        return sorted(self._units) if isinstance(self._units, Mapping) else []

    def _unit(self, name: Any) -> StorageUnit:
        if name is not None:
            validate_unit_name(name)
        if isinstance(self._units, Mapping):
            if name is None:
                if len(self._units) == 1:
                    return next(iter(self._units.values()))
                raise StatusError(
                    BACKUP_FAILED,
                    f"this media server has {len(self._units)} storage units ({', '.join(self.unit_names())}): "
                    "name the one to use",
                )
            try:
                return self._units[name]
            except KeyError:
                raise StatusError(
                    BACKUP_FAILED,
                    f"this media server has no storage unit named {name} (it has: "
                    f"{', '.join(self.unit_names()) or 'none'})",
                ) from None
        return self._units(name)

    def _all_units(self, name: Any) -> list[StorageUnit]:
        if name is None and isinstance(self._units, Mapping):
            return [self._units[k] for k in sorted(self._units)]
        return [self._unit(name)]

    async def _locate(self, req: dict, status: int) -> tuple[str, StorageUnit]:
        """The object named by req and the unit holding it (searched when not given)."""
        name = validate_object_name(req.get("name"))
        units = self._all_units(req.get("unit"))
        if len(units) == 1:
            return name, units[0]
        for unit in units:
            if await unit.stat(name) is not None:
                return name, unit
        raise StatusError(
            status,
            f"no storage unit of this media server ({', '.join(u.name for u in units)}) holds an "
            f"object named {name}",
        )

    # -- connections
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                for opt, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
                    if hasattr(socket, opt):
                        sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
        conn = _Conn(reader, writer, peer)
        try:
            if len(self._tasks) > self.limits.max_connections:
                log.warning("refused a connection from %s: %d connections open", peer, len(self._tasks) - 1)
                await conn.send_error(
                    CONNECTION_REFUSED,
                    f"the media server is busy ({self.limits.max_connections} connections open): retry later",
                )
                return
            await self._session(conn)
        except _Closed as e:
            log.info("connection from %s ended: %s", peer, e)
        except asyncio.CancelledError:
            log.info("connection from %s closed: the media server is stopping", peer)
        except Exception:
            log.exception("connection from %s failed unexpectedly", peer)
            await conn.send_error(SYSTEM_ERROR, "the media server met an internal error; see its log")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _session(self, conn: _Conn) -> None:
        lim = self.limits
        nonce = secrets.token_bytes(p.NONCE_LEN)
        await conn.send(p.CHALLENGE, p.challenge_payload(nonce))
        try:
            kind, proof = await conn.recv(p.PROOF_LEN, lim.auth_timeout)
        except p.ProtocolError as e:
            log.warning("refused a connection from %s: %s", conn.peer, e)
            await conn.send_error(CONNECTION_REFUSED, f"not the sybar media protocol: {e}")
            return
        except TimeoutError:
            log.warning(
                "refused a connection from %s: no authentication within %g s", conn.peer, lim.auth_timeout
            )
            await conn.send_error(CONNECTION_REFUSED, "no authentication within the time allowed")
            return
        if kind != p.AUTH or not p.check_proof(self._secret, nonce, proof):
            log.warning("refused a connection from %s: authentication failed", conn.peer)
            await conn.send_error(
                CONNECTION_REFUSED,
                "authentication failed: the client does not hold this media server's secret "
                "(HOME/media.secret of the media server's home)",
            )
            return
        await conn.send_json({"ok": True, "server": "sybar-media", "protocol": p.PROTOCOL_VERSION})
        op = "?"
        try:
            kind, payload = await conn.recv(p.MAX_REQUEST, lim.request_timeout)
            if kind != p.JSON:
                raise p.ProtocolError(f"expected a request, got a {p.NAMES[kind]} frame")
            req = p.decode_json(payload)
            op = str(req.get("op"))[:40]
            handler = {
                "store": self._store,
                "fetch": self._fetch,
                "verify": self._verify,
                "remove": self._remove,
                "list": self._list,
                "stat": self._stat,
                "temporaries": self._temporaries,
                "remove_temporary": self._remove_temporary,
                "lock": self._lock,
            }.get(op)
            if handler is None:
                raise StatusError(BACKUP_FAILED, f"the media server does not know the request {op!r}")
            await handler(conn, req)
        except p.ProtocolError as e:
            log.warning("protocol error from %s (%s): %s", conn.peer, op, e)
            await conn.send_error(_OP_STATUS.get(op, SYSTEM_ERROR), f"media protocol error: {e}")
            if op == "store":
                await conn.linger(lim.linger)
        except TimeoutError:
            log.warning("connection from %s (%s) timed out", conn.peer, op)
            await conn.send_error(NETWORK_TIMEOUT, "the media server waited too long for the client")
        except StatusError as e:
            log.warning("%s from %s failed (status %d): %s", op, conn.peer, e.status, e)
            await conn.send_error(e.status, str(e))
            if op == "store":
                await conn.linger(lim.linger)

    # -- store
    async def _store(self, conn: _Conn, req: dict) -> None:
        name = validate_object_name(req.get("name"))
        unit = self._unit(req.get("unit"))
        job_id = req.get("job_id")
        if job_id is not None and not (
            (isinstance(job_id, int) and not isinstance(job_id, bool))
            or (isinstance(job_id, str) and len(job_id) <= 64)
        ):
            raise StatusError(
                BACKUP_FAILED, f"job_id {str(job_id)[:40]!r} is neither a number nor a short string"
            )
        expected = req.get("expected_bytes")
        if expected is not None and (
            not isinstance(expected, int) or isinstance(expected, bool) or expected < 0
        ):
            raise StatusError(BACKUP_FAILED, f"expected_bytes {expected!r} is not a byte count")
        job = f" for job {job_id}" if job_id is not None else ""
        writer = await unit.create(name)
        started = time.monotonic()
        total = 0
        try:
            await conn.send_json({"ok": True, "ready": True, "name": name, "unit": unit.name})
            log.info(
                "storing object %s on storage unit %s%s from %s%s",
                name,
                unit.name,
                job,
                conn.peer,
                f" ({expected} bytes expected)" if expected is not None else "",
            )
            # stored checksums, block headers and trailer: no decompressing (and no key) on the media server
            dec = StripeDecoder(f"the stripe stream for object {name}", verify_only=True, check_raw=False)
            hasher = xxhash.xxh3_128()
            # a receiver task reads frames ahead (bounded queue) while this one verifies and writes
            raw = _plain_socket(conn)
            if raw is not None:
                total = await self._store_blocking(conn, raw, name, dec, hasher, writer)
            else:
                total = await self._store_queued(conn, name, dec, hasher, writer)
            dec.finish()
            assert dec.header is not None and dec.trailer is not None
            info = await writer.commit()
        except DumpFormatError as e:
            await writer.abort()
            raise StatusError(
                MEDIA_WRITE_ERROR,
                f"the media server refused object {name}: {e}; nothing was stored",
            ) from e
        except _Closed as e:
            await writer.abort()
            raise _Closed(
                f"{e} while storing object {name} after {total} bytes; the object was discarded"
            ) from None
        except BaseException:
            await writer.abort()
            raise
        seconds = time.monotonic() - started
        result = {
            "ok": True,
            "name": name,
            "unit": unit.name,
            "bytes": total,
            "checksum": hasher.hexdigest(),
            "raw_bytes": dec.raw_bytes,
            "stripe_digest": dec.trailer.stripe_digest,
            "blocks": len(dec.block_hashes),
            "dump_id": dec.header.dump_id,
            "stripe": dec.header.stripe,
            "stripes": dec.header.stripes,
            "size": info.size,
            "mtime": info.mtime,
        }
        log.info(
            "stored object %s on storage unit %s%s: %d bytes in %.2f s (%.1f MB/s)",
            name,
            unit.name,
            job,
            total,
            seconds,
            total / 1e6 / max(seconds, 1e-9),
        )
        await conn.send_json(result)

    async def _store_queued(self, conn: _Conn, name: str, dec: StripeDecoder, hasher: Any, writer: Any) -> int:
        """A store over TLS: a receiver task reads frames ahead (bounded queue) while this one verifies
        and writes them in batches."""
        total = 0
        frames: asyncio.Queue = asyncio.Queue(STORE_QUEUE)
        receiver = asyncio.create_task(self._receive(conn, name, frames))
        try:
            end = False
            while not end:
                batch: list[bytes] = []
                size = 0
                item = await frames.get()
                while True:
                    if item is None:
                        end = True
                        break
                    if isinstance(item, BaseException):
                        raise item
                    batch.append(item)
                    size += len(item)
                    if size >= STORE_BATCH or frames.empty():
                        break
                    item = frames.get_nowait()
                if batch:
                    results = await asyncio.gather(
                        asyncio.to_thread(_feed_all, dec, hasher, batch),
                        _write_all(writer, batch),
                        return_exceptions=True,
                    )
                    for r in results:
                        if isinstance(r, BaseException):
                            raise r
                    total += size
        finally:
            if not receiver.done():
                receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
        return total

    async def _send_blocking(
        self, conn: _Conn, raw: socket.socket, reader: Any, dec: StripeDecoder, hasher: Any
    ) -> int:
        """A fetch over plain TCP: one worker thread verifies each chunk (the loop reads the next one
        meanwhile) and sends the verified bytes with sendmsg on the socket; returns the bytes read."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.to_thread(
                _send_verified, raw, loop, reader, dec, hasher, self.limits.idle_timeout
            )
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)
            raise

    async def _store_blocking(
        self, conn: _Conn, raw: socket.socket, name: str, dec: StripeDecoder, hasher: Any, writer: Any
    ) -> int:
        """A store over plain TCP: one worker thread receives each frame straight into its buffer,
        verifies and hashes it, and hands ~1 MiB batches to the storage unit's writer (the loop
        writes one batch while the thread receives the next): no stream buffer, no per-frame hops."""
        transport = conn.writer.transport
        transport.pause_reading()
        leftover = bytes(conn.reader._buffer)  # what asyncio had read ahead (StreamReader's buffer)
        conn.reader._buffer.clear()
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.to_thread(
                _receive_blocking, raw, leftover, loop, writer, dec, hasher, name, self.limits.idle_timeout
            )
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)  # unblocks the thread's recv
            raise
        finally:
            with contextlib.suppress(Exception):
                transport.resume_reading()

    async def _receive(self, conn: _Conn, name: str, frames: asyncio.Queue) -> None:
        """A store's data frames into frames; None at the end; an exception ends it too."""
        got = 0
        try:
            while True:
                try:
                    kind, payload = await conn.recv(p.MAX_PAYLOAD, self.limits.idle_timeout)
                except TimeoutError:
                    raise StatusError(
                        NETWORK_TIMEOUT,
                        f"object {name}: the client sent nothing for {self.limits.idle_timeout:g} s; "
                        f"the object was not stored ({got} bytes discarded)",
                    ) from None
                if kind == p.DATA:
                    if payload:
                        got += len(payload)
                        await frames.put(payload)
                elif kind == p.END:
                    await frames.put(None)
                    return
                else:
                    raise p.ProtocolError(f"a {p.NAMES[kind]} frame in the middle of object {name}")
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - handed to the task that verifies and writes
            await frames.put(e)

    # -- fetch and verify
    async def _read_verified(self, conn: _Conn | None, req: dict) -> dict:
        """Read an object, verifying every block; with conn, send it as data frames
        (only bytes the decoder has verified are sent)."""
        name, unit = await self._locate(req, RESTORE_ERROR)
        reader = await unit.open(name)
        started = time.monotonic()
        try:
            if conn is not None:
                await conn.send_json({"ok": True, "name": name, "unit": unit.name, "size": reader.size})
            # a fetch checks stored checksums (the loader decompresses and checks every page again);
            # a verify also decompresses and checks the pages' hashes of unencrypted blocks
            dec = StripeDecoder(
                f"object {name} on storage unit {unit.name}", verify_only=True, check_raw=conn is None
            )
            hasher = xxhash.xxh3_128()
            pending = bytearray()
            sent = 0
            total = 0
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.writer.transport.set_write_buffer_limits(high=SEND_BUFFER)

            async def ahead() -> tuple[bytes, int]:
                chunk = await reader.read(READ_CHUNK)
                return chunk, (await asyncio.to_thread(_feed, dec, hasher, chunk) if chunk else 0)

            raw = _plain_socket(conn) if conn is not None else None
            if raw is not None and conn.writer.transport.get_write_buffer_size():
                raw.close()  # the answer is still queued in asyncio: frames must not overtake it
                raw = None
            if raw is not None:
                total = await self._send_blocking(conn, raw, reader, dec, hasher)
                nxt = None
            else:
                # read and verify the next chunk while this one is sent
                nxt = asyncio.create_task(ahead())
            try:
                while nxt is not None:
                    chunk, verified = await nxt
                    if not chunk:
                        break
                    nxt = asyncio.create_task(ahead())
                    total += len(chunk)
                    if conn is None:
                        continue
                    pending += chunk
                    ready = verified - sent
                    while ready > 0:
                        k = min(ready, p.DATA_FRAME)
                        with memoryview(pending) as mv:
                            out = bytes(mv[:k])
                        del pending[:k]
                        await conn.send(p.DATA, out)
                        sent += k
                        ready -= k
            finally:
                if nxt is not None:
                    if not nxt.done():
                        nxt.cancel()
                    await asyncio.gather(nxt, return_exceptions=True)
            dec.finish()
            assert dec.header is not None and dec.trailer is not None
        except DumpFormatError as e:
            log.error("%s", e)
            raise StatusError(
                RESTORE_ERROR, f"{e}; the object is damaged: restore from another copy of the backup"
            ) from e
        finally:
            await reader.close()
        seconds = time.monotonic() - started
        log.info(
            "%s object %s from storage unit %s: %d bytes in %.2f s (%.1f MB/s), every block verified",
            "sent" if conn is not None else "verified",
            name,
            unit.name,
            total,
            seconds,
            total / 1e6 / max(seconds, 1e-9),
        )
        return {
            "ok": True,
            "name": name,
            "unit": unit.name,
            "bytes": total,
            "checksum": hasher.hexdigest(),
            "blocks": len(dec.block_hashes),
            "raw_bytes": dec.raw_bytes,
            "stripe_digest": dec.trailer.stripe_digest,
            "dump_id": dec.header.dump_id,
            "stripe": dec.header.stripe,
            "stripes": dec.header.stripes,
        }

    async def _fetch(self, conn: _Conn, req: dict) -> None:
        summary = await self._read_verified(conn, req)
        await conn.send_json(summary, p.END)

    async def _verify(self, conn: _Conn, req: dict) -> None:
        await conn.send_json(await self._read_verified(None, req))

    # -- small requests
    async def _remove(self, conn: _Conn, req: dict) -> None:
        name = validate_object_name(req.get("name"))
        removed = False
        unit_name = None
        for unit in self._all_units(req.get("unit")):
            if await unit.remove(name):
                removed, unit_name = True, unit.name
                log.info("removed object %s from storage unit %s", name, unit.name)
                break
        await conn.send_json({"ok": True, "name": name, "removed": removed, "unit": unit_name})

    async def _lock(self, conn: _Conn, req: dict) -> None:
        """WORM-lock (or extend the lock of) an object until req["until"]."""
        until = req.get("until")
        if not isinstance(until, int | float) or isinstance(until, bool):
            raise StatusError(BACKUP_FAILED, f"until {str(until)[:40]!r} is not a Unix time")
        name, unit = await self._locate(req, WORM_LOCK_ERROR)
        lock = getattr(unit, "lock", None)
        if lock is None:
            raise StatusError(WORM_LOCK_ERROR, f"storage unit {unit.name} cannot WORM-lock objects")
        held = await lock(name, float(until))
        log.info("WORM-locked object %s on storage unit %s until %s", name, unit.name, held)
        await conn.send_json({"ok": True, "name": name, "unit": unit.name, "locked_until": held})

    async def _stat(self, conn: _Conn, req: dict) -> None:
        name = validate_object_name(req.get("name"))
        found = None
        for unit in self._all_units(req.get("unit")):
            info = await unit.stat(name)
            if info is not None:
                found = info.to_json()
                break
        await conn.send_json({"ok": True, "object": found})

    async def _list(self, conn: _Conn, req: dict) -> None:
        prefix = validate_prefix(req.get("prefix", ""))
        count = 0
        batch: list[dict] = []
        for unit in self._all_units(req.get("unit")):
            async for info in unit.list(prefix):
                batch.append(info.to_json())
                if len(batch) >= LIST_BATCH:
                    await conn.send_json({"objects": batch})
                    count += len(batch)
                    batch = []
        if batch:
            await conn.send_json({"objects": batch})
            count += len(batch)
        await conn.send_json({"ok": True, "count": count}, p.END)

    async def _temporaries(self, conn: _Conn, req: dict) -> None:
        count = 0
        for unit in self._all_units(req.get("unit")):
            temps = [t.to_json() for t in await unit.temporaries()]
            for i in range(0, len(temps), LIST_BATCH):
                await conn.send_json({"temporaries": temps[i : i + LIST_BATCH]})
            count += len(temps)
        await conn.send_json({"ok": True, "count": count}, p.END)

    async def _remove_temporary(self, conn: _Conn, req: dict) -> None:
        unit = self._unit(req.get("unit"))
        tid = req.get("id")
        removed = await unit.remove_temporary(tid if isinstance(tid, str) else repr(tid))
        if removed:
            log.info("removed temporary %s from storage unit %s", tid, unit.name)
        await conn.send_json({"ok": True, "id": tid, "removed": removed})


__all__ = ["MediaLimits", "MediaServer", "UnitResolver", "ensure_media_secret", "serve_media"]


async def serve_media(
    unit_resolver: UnitResolver,
    secret: bytes,
    host: str,
    port: int,
    *,
    limits: MediaLimits | None = None,
) -> asyncio.Server:
    """Start a media server; returns the listening asyncio.Server.

    ``server.media`` is the MediaServer: ``await server.media.close()`` also
    ends the connections in progress (closing the asyncio.Server alone only
    stops accepting new ones).
    """
    media = MediaServer(unit_resolver, secret, limits=limits)
    server = await media.start(host, port)
    server.media = media  # type: ignore[attr-defined]
    return server
