"""A small blocking TDS 5.0 client (no asyncio), for our own isql.

One request at a time, as db-lib does: ``execute`` streams the events of one
reply as its packets arrive; ``cancel`` sends attention and reads until the
server acknowledges it.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from collections.abc import Iterator

from .connection import ClientConnection, EndOfMessage
from .login import LoginRecord
from .packets import TDSProtocolError
from .tokens import ENV_DATABASE, EnvChange, LoginAck, Message

RECV_SIZE = 65536


class TDSClientError(Exception):
    """The connection failed: refused, timed out, closed, or the server spoke garbage."""


class LoginError(TDSClientError):
    """The server refused the login; ``messages`` holds what it said."""

    def __init__(self, text: str, messages: list[Message] | None = None) -> None:
        super().__init__(text)
        self.messages = messages or []


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._conn = ClientConnection()
        self._events: deque = deque()
        self._reply = 0  # number of the reply being read; bumped when one ends
        self._in_reply = False
        self.database = ""
        self.server_name = ""
        self.server_version: tuple = ()
        self.closed = False

    # -- connect / login --

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        user: str,
        password: str,
        server: str = "SYBAR",
        app: str = "sybar-isql",
        packet_size: int = 512,
        timeout: float | None = None,
        hostname: str | None = None,
        charset: str = "utf8",
        language: str = "us_english",
    ) -> Connection:
        """Connect and log in; ``timeout`` covers the connect, the login and every
        later read (change it with ``settimeout``).  Raises LoginError with the
        server's message text, TDSClientError for anything else."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise TDSClientError(f"cannot connect to {host}:{port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self = cls(sock)
        try:
            self._login(
                LoginRecord(
                    host=hostname if hostname is not None else socket.gethostname(),
                    user=user,
                    password=password,
                    host_process=str(os.getpid()),
                    app=app,
                    server=server,
                    library="sybar",
                    language=language,
                    charset=charset,
                    packet_size=packet_size,
                )
            )
        except BaseException:
            self._sock.close()
            self.closed = True
            raise
        return self

    def _login(self, rec: LoginRecord) -> None:
        try:
            request = self._conn.login(rec)
        except ValueError as exc:  # e.g. a password longer than the record holds
            raise LoginError(str(exc)) from exc
        self._sendall(request)
        ack: LoginAck | None = None
        messages: list[Message] = []
        while True:
            event = self._next_event()
            if isinstance(event, EndOfMessage):
                break
            if isinstance(event, LoginAck):
                ack = event
            elif isinstance(event, Message):
                messages.append(event)
            elif isinstance(event, EnvChange) and event.kind == ENV_DATABASE:
                self.database = event.new
        if ack is None or not ack.ok:
            errors = [m for m in messages if m.severity > 10] or messages
            text = "\n".join(m.text for m in errors) or "Login failed."
            raise LoginError(text, messages)
        self.server_name = ack.server_name
        self.server_version = ack.version

    # -- requests --

    def execute(self, sql: str) -> Iterator:
        """Send one batch now; the returned iterator yields Message, RowFormat, Row,
        Done and EnvChange events until the reply ends.  Leaving the loop early
        cancels the rest of the reply; a reply never iterated is skipped by the
        next request."""
        if self._in_reply:
            self._skip_reply()
        self._sendall(self._conn.language(sql))
        self._in_reply = True
        return self._stream(self._reply)

    def _stream(self, reply: int) -> Iterator:
        try:
            while self._reply == reply:
                event = self._next_event()
                if isinstance(event, EndOfMessage):
                    self._end_reply()
                    return
                if isinstance(event, EnvChange) and event.kind == ENV_DATABASE:
                    self.database = event.new
                yield event
        finally:
            if self._reply == reply and self._in_reply and not self.closed:
                self.cancel()  # abandoned mid-reply: put the connection back in step

    def _skip_reply(self) -> None:
        while True:
            event = self._next_event()
            if isinstance(event, EndOfMessage):
                break
            if isinstance(event, EnvChange) and event.kind == ENV_DATABASE:
                self.database = event.new
        self._end_reply()

    def _end_reply(self) -> None:
        self._in_reply = False
        self._reply += 1

    def cancel(self) -> None:
        """Send attention; read (and drop) until the server's DONE with the attention bit."""
        if self.closed:
            return
        self._sendall(self._conn.attention())
        acked = False
        while True:
            event = self._next_event()
            if isinstance(event, EndOfMessage):
                if acked:
                    break
            elif getattr(event, "attention", False):
                acked = True
            elif isinstance(event, EnvChange) and event.kind == ENV_DATABASE:
                self.database = event.new
        self._end_reply()

    def close(self) -> None:
        """Log out (the server answers DONE), then close the socket."""
        if self.closed:
            return
        try:
            self._sock.settimeout(5.0)
            if self._in_reply:
                self.cancel()
            self._sendall(self._conn.logout())
            while not isinstance(self._next_event(), EndOfMessage):
                pass
        except TDSClientError:
            pass
        finally:
            self.closed = True
            self._sock.close()

    def settimeout(self, timeout: float | None) -> None:
        """Seconds to wait for each read from the server (None: forever)."""
        self._sock.settimeout(timeout)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- I/O --

    def _sendall(self, data: bytes) -> None:
        if self.closed:
            raise TDSClientError("connection is closed")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self._fail()
            raise TDSClientError(f"send failed: {exc}") from exc

    def _next_event(self) -> object:
        while not self._events:
            try:
                data = self._sock.recv(RECV_SIZE)
            except TimeoutError as exc:
                self._fail()
                raise TDSClientError("timed out waiting for the server") from exc
            except OSError as exc:
                self._fail()
                raise TDSClientError(f"receive failed: {exc}") from exc
            if not data:
                self._fail()
                raise TDSClientError("the server closed the connection")
            try:
                self._events.extend(self._conn.receive_data(data))
            except TDSProtocolError as exc:
                self._fail()
                raise TDSClientError(f"protocol error from the server: {exc}") from exc
        return self._events.popleft()

    def _fail(self) -> None:
        self.closed = True
        self._in_reply = False
        try:
            self._sock.close()
        except OSError:
            pass
