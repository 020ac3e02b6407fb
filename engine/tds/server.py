"""asyncio TDS 5.0 server: sockets around ServerConnection, a pluggable Handler behind.

The dataserver implements ``Handler.login`` and ``Session.execute``; this
module owns everything on the wire: the login reply FreeTDS insists on,
streaming replies (progress messages flushed at once, rows packed into full
packets, the DONE_MORE bit on all but the last DONE), attention, logout and
malformed input.  A handler bug becomes an error message to the client and a
log line, never a dead server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from .connection import (
    Attention,
    LanguageRequest,
    LoginRequest,
    Logout,
    PreLogin,
    ProtocolViolation,
    ServerConnection,
    UnsupportedRequest,
)
from .login import LoginRecord
from .packets import PacketType, encode_message
from .replies import DatabaseChanged, Done, Error, Info, Reply, ResultFormat, ResultRow
from .tokens import (
    DONE_ATTN,
    DONE_COUNT,
    DONE_ERROR,
    DONE_FINAL,
    DONE_MORE,
    ENV_CHARSET,
    ENV_DATABASE,
    ENV_PACKETSIZE,
    capability_reply,
    done,
    eed,
    envchange,
    loginack,
    row,
    rowfmt,
)

__all__ = [
    "DatabaseChanged",
    "Done",
    "Error",
    "Handler",
    "Info",
    "LoginFailed",
    "Reply",
    "ResultFormat",
    "ResultRow",
    "Session",
    "serve_tds",
]

log = logging.getLogger(__name__)

LOGIN_FAILED_NUMBER = 4002
INTERNAL_ERROR_NUMBER = 7777
PROTOCOL_ERROR_NUMBER = 7778
UNSUPPORTED_NUMBER = 7779
LOGIN_TIMEOUT = 60.0  # a connection that never logs in is dropped
CANCEL_GRACE = 5.0  # how long a cancelled batch may take to unwind before we answer anyway
MAX_QUEUED_REQUESTS = 64
READ_SIZE = 65536


class LoginFailed(Exception):
    """Raised by Handler.login; str(e) is the text of the EED 4002 the client sees."""

    def __init__(self, text: str = "Login failed.") -> None:
        super().__init__(text)


class Session(Protocol):
    database: str  # sent as ENVCHANGE database after login

    def execute(self, sql: str) -> AsyncIterator[Reply]: ...  # an async generator

    async def close(self) -> None: ...  # called once when the connection ends, any way


class Handler(Protocol):
    async def login(self, record: LoginRecord, peer: tuple) -> Session: ...  # raises LoginFailed


async def serve_tds(
    handler: Handler,
    host: str,
    port: int,
    *,
    server_name: str = "SYBAR",
    ready: Callable[[tuple], None] | None = None,
) -> asyncio.Server:
    """Start listening (port 0 = a free port) and return the started server."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _ClientConnection(handler, server_name, reader, writer).run()
        except asyncio.CancelledError:
            # Shutdown.  run() has cleaned up; ending normally spares us Python 3.11's
            # streams callback logging "Exception in callback" for a cancelled client task.
            pass

    server = await asyncio.start_server(on_client, host, port)
    if ready is not None:
        ready(server.sockets[0].getsockname())
    return server


class _Disconnected(Exception):
    """The client went away while we were writing."""


class _ClientConnection:
    """One client socket.  The read loop runs here; each batch runs as a task
    so attention can be read (and acted on) while it is under way."""

    def __init__(
        self,
        handler: Handler,
        server_name: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.handler = handler
        self.server_name = server_name
        self.reader = reader
        self.writer = writer
        self.conn = ServerConnection()
        self.peer: tuple = writer.get_extra_info("peername") or ()
        self.session: Session | None = None
        self.task: asyncio.Task | None = None
        self.queue: deque[str | int] = deque()
        self.epoch = 0  # bumped on cancel: writes from an older batch are dropped
        self.closing = False

    # -- main loop --

    async def run(self) -> None:
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while not self.closing:
                if self.session is None:
                    try:
                        data = await asyncio.wait_for(self.reader.read(READ_SIZE), LOGIN_TIMEOUT)
                    except TimeoutError:
                        log.info("tds: %s sent no login in %.0f s", self.peer, LOGIN_TIMEOUT)
                        break
                else:
                    data = await self.reader.read(READ_SIZE)
                if not data:
                    break
                for event in self.conn.receive_data(data):
                    await self._on_event(event)
                    if self.closing:
                        break
        except (_Disconnected, ConnectionError, OSError) as exc:
            log.debug("tds: %s disconnected: %s", self.peer, exc)
        except Exception:
            log.exception("tds: unexpected failure on connection from %s", self.peer)
        finally:
            self.closing = True
            await self._stop_task()
            if self.session is not None:
                try:
                    await self.session.close()
                except Exception:
                    log.exception("tds: session.close() failed for %s", self.peer)
            await self._close_socket()

    async def _close_socket(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), CANCEL_GRACE)
        except (TimeoutError, ConnectionError, OSError):
            self.writer.transport.abort()

    async def _on_event(self, event: object) -> None:
        if isinstance(event, LoginRequest):
            await self._login(event)
        elif isinstance(event, LanguageRequest):
            await self._enqueue(event.sql)
        elif isinstance(event, UnsupportedRequest):
            await self._enqueue(event.token)
        elif isinstance(event, Attention):
            self.queue.clear()
            await self._stop_task()
            await self._send(encode_message(PacketType.RESPONSE, done(DONE_ATTN), self.conn.packet_size))
        elif isinstance(event, Logout):
            self.queue.clear()
            await self._stop_task()
            await self._send(self.conn.reply(done(DONE_FINAL)))
            self.closing = True
        elif isinstance(event, PreLogin):
            log.debug("tds: %s sent a TDS 7 prelogin; closing so it retries with 5.0", self.peer)
            self.closing = True
        elif isinstance(event, ProtocolViolation):
            await self._violation(event.message)

    async def _violation(self, message: str) -> None:
        log.warning("tds: protocol error from %s: %s", self.peer, message)
        self.queue.clear()
        await self._stop_task()
        if self.session is not None:
            tokens = eed(
                PROTOCOL_ERROR_NUMBER, 16, f"TDS protocol error: {message}", server=self.server_name
            ) + done(DONE_ERROR)
            with contextlib.suppress(_Disconnected):
                await self._send(self.conn.reply(tokens))
        self.closing = True

    async def _send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _Disconnected(str(exc)) from exc

    # -- login --

    async def _login(self, event: LoginRequest) -> None:
        rec = event.record
        try:
            session = await self.handler.login(rec, self.peer)
        except LoginFailed as exc:
            log.info("tds: login failed for user %r from %s: %s", rec.user, self.peer, exc)
            await self._login_failed(str(exc) or "Login failed.")
            return
        except Exception:
            log.exception("tds: handler.login failed for user %r from %s", rec.user, self.peer)
            await self._login_failed("Login failed.")
            return
        self.session = session
        tokens = (
            loginack(True, self.server_name)
            + envchange(ENV_DATABASE, session.database, "")
            + envchange(ENV_CHARSET, "utf8", rec.charset)
            + envchange(ENV_PACKETSIZE, str(self.conn.packet_size), str(rec.packet_size))
            + capability_reply(rec.capabilities)
            + done(DONE_FINAL)
        )
        # The reply travels in 512-byte packets: the client switches size on reading it.
        await self._send(encode_message(PacketType.RESPONSE, tokens, 512))

    async def _login_failed(self, text: str) -> None:
        tokens = (
            loginack(False, self.server_name)
            + eed(LOGIN_FAILED_NUMBER, 14, text, server=self.server_name)
            + done(DONE_ERROR)
        )
        with contextlib.suppress(_Disconnected):
            await self._send(encode_message(PacketType.RESPONSE, tokens, 512))
        self.closing = True

    # -- batches --

    async def _enqueue(self, item: str | int) -> None:
        if len(self.queue) >= MAX_QUEUED_REQUESTS:
            # A client that pipelines this much is not reading its replies.
            self.conn.closed = True
            await self._violation("too many requests queued")
            return
        self.queue.append(item)
        self._start_next()

    def _start_next(self) -> None:
        if self.closing or (self.task is not None and not self.task.done()) or not self.queue:
            return
        item = self.queue.popleft()
        self.task = asyncio.create_task(self._run_batch(item, self.epoch))
        self.task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.debug("tds: batch task for %s ended with %r", self.peer, task.exception())
        if task is self.task:
            self.task = None
            self._start_next()

    async def _stop_task(self) -> None:
        """Cancel the running batch (if any) and wait briefly for it to unwind."""
        task, self.task = self.task, None
        self.epoch += 1
        if task is None or task.done():
            return
        task.cancel()
        _done, pending = await asyncio.wait({task}, timeout=CANCEL_GRACE)
        if pending:
            log.warning("tds: batch for %s ignored cancellation for %.0f s", self.peer, CANCEL_GRACE)

    async def _run_batch(self, item: str | int, epoch: int) -> None:
        out = _ReplyWriter(self, epoch)
        try:
            if isinstance(item, int):
                await out.add(Error(UNSUPPORTED_NUMBER, 16, f"request token 0x{item:02x} is not supported"))
            else:
                assert self.session is not None
                await self._execute(item, out, epoch)
            await out.finish()
        except _Disconnected as exc:
            log.debug("tds: %s went away during a batch: %s", self.peer, exc)
        except Exception:
            # Our own bug while replying: the token stream is in an unknown state, and a
            # client left waiting for its DONE would hang.  Drop the connection instead.
            log.exception("tds: failed to reply to %s; dropping the connection", self.peer)
            self.closing = True
            self.writer.transport.abort()

    async def _execute(self, sql: str, out: _ReplyWriter, epoch: int) -> None:
        assert self.session is not None
        agen = None
        try:
            agen = self.session.execute(sql)
            async for reply in agen:
                if epoch != self.epoch:
                    break
                await out.add(reply)
        except (_Disconnected, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("tds: execute() failed for %s on %r", self.peer, sql[:200])
            await out.internal_error(exc)
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.exception("tds: closing the execute() generator failed")


class _ReplyWriter:
    """Encodes one batch's replies and writes them as they come.

    Messages go out at once in their own packets; other tokens collect until
    a packet is full.  Packets always end on a token boundary, so dropping
    the buffer on attention never leaves half a token on the wire.  Each
    DONE is held until we know whether another statement follows (MORE bit).
    """

    def __init__(self, owner: _ClientConnection, epoch: int) -> None:
        self.owner = owner
        self.epoch = epoch
        self.capacity = owner.conn.packet_size - 8
        self.buf = bytearray()
        self.pending_done: tuple[int, int] | None = None
        self.error_seen = False
        self.columns: list | None = None

    async def add(self, reply: object) -> None:
        if isinstance(reply, Done):
            self._release_done()
            status = DONE_COUNT if reply.count is not None else 0
            if reply.error or self.error_seen:
                status |= DONE_ERROR
            self.error_seen = False
            self.pending_done = (status, reply.count or 0)
            return
        self._release_done()
        server = self.owner.server_name
        if isinstance(reply, Info):
            await self._message(eed(reply.number, 10, reply.text, server=server))
        elif isinstance(reply, Error):
            self.error_seen = True
            await self._message(
                eed(
                    reply.number,
                    reply.severity,
                    reply.text,
                    state=reply.state,
                    line=reply.line,
                    server=server,
                    proc=reply.proc,
                )
            )
        elif isinstance(reply, ResultFormat):
            self.columns = list(reply.columns)
            await self._push(rowfmt(self.columns))
        elif isinstance(reply, ResultRow):
            if self.columns is None:
                raise RuntimeError("ResultRow before any ResultFormat")
            await self._push(row(self.columns, reply.values))
        elif isinstance(reply, DatabaseChanged):
            await self._push(envchange(ENV_DATABASE, reply.new, reply.old))
        else:
            raise TypeError(f"execute() yielded {reply!r}, not a reply")

    async def internal_error(self, exc: BaseException) -> None:
        self._release_done()
        self.error_seen = True
        text = f"internal error: {type(exc).__name__}: {exc}"
        await self._message(eed(INTERNAL_ERROR_NUMBER, 16, text, server=self.owner.server_name))

    async def finish(self) -> None:
        if self.pending_done is not None:
            status, count = self.pending_done
        else:
            status, count = (DONE_ERROR if self.error_seen else DONE_FINAL), 0
        self.pending_done = None
        self.buf += done(status, count)
        data, self.buf = bytes(self.buf), bytearray()
        await self._write(data, last=True)

    def _release_done(self) -> None:
        if self.pending_done is not None:
            status, count = self.pending_done
            self.pending_done = None
            self.buf += done(status | DONE_MORE, count)

    async def _push(self, token: bytes) -> None:
        if self.buf and len(self.buf) + len(token) > self.capacity:
            await self._flush()
        if len(token) >= self.capacity:
            await self._write(token, last=False)  # spans packets; sent whole
        else:
            self.buf += token

    async def _message(self, token: bytes) -> None:
        await self._flush()
        await self._write(token, last=False)

    async def _flush(self) -> None:
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            await self._write(data, last=False)

    async def _write(self, tokens: bytes, last: bool) -> None:
        owner = self.owner
        if self.epoch != owner.epoch or owner.closing:
            return  # cancelled: the connection answers for this batch now
        await owner._send(owner.conn.reply(tokens, last))
