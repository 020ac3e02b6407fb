"""``sybar isql`` / ``sybar-isql``: a Sybase-compatible isql over sybar's TDS 5.0 client.

Exit status:

- 0  the input was read to its end (or to ``quit``/``exit``), whatever the
     server answered: like SAP isql, server errors (``Msg ...``) alone do not
     change the status. Scripts search the output for ``^Msg``.
- 1  isql could not do its job: bad command line, input file that cannot be
     opened, output file that cannot be written, server not in any interfaces
     file, no password, connection refused or lost, login failed, timeout.
     The reason is on stderr (login failures also print the server's ``Msg``
     lines to the output, as SAP isql does).
- 2  ``--retserverror`` was given and the server sent an error of severity
     above 10: isql finishes reading that batch's results, writes a line
     naming the error to stderr, and stops without running later batches.
- 130 interrupted (Ctrl-C) while not interactive.

Server and login: ``-S``, else ``$DSQUERY``, else ``SYBAR``; ``-U``, else the
OS login name (as SAP isql). The server's host and port come from interfaces
files or freetds.conf (see ``engine.isql.interfaces``). Timeouts: connecting
and logging in may take ``-l`` seconds (else ``-t``, else 60); after login
each read waits ``-t`` seconds (no limit without ``-t``, dumps take long).
``-H``, ``-J``, ``-z``, ``-X`` and the other SAP options with no meaning here
are accepted and ignored.

Input is read line by line and each batch runs as soon as its ``go`` line is
read (see ``engine.isql.batches``). A batch left without ``go`` at the end of
the input is not run, as with SAP isql; sybar isql says so on stderr (the
status stays 0).

The password comes from ``-P``, else the OS keyring entry ``sybar:SERVER`` /
``USER`` (``sybar password set SERVER USER``), else a no-echo ``Password:``
prompt when standard input is a terminal. With SQL on standard input (a
heredoc) isql never reads the password from it; it stops with a message
saying how to store one.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from engine.isql.batches import RESET, Batch, BatchReader, stream_readline
from engine.isql.interfaces import Address, ServerLookupError, resolve_server
from engine.isql.options import USAGE, Options, UsageError, parse_args
from engine.isql.output import ResultWriter, format_message

PROG = "sybar-isql"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SERVER_ERROR = 2
EXIT_INTERRUPTED = 130

LOGIN_TIMEOUT = 60.0  # seconds to connect and log in when -l (and -t) are not given


def version_text() -> str:
    from engine import __version__

    return f"{PROG} {__version__}: Sybase isql compatible client for sybar (TDS 5.0)"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _chain(e: BaseException | None):
    """The exception and the ones it was raised from (a few levels, never looping)."""
    for _ in range(8):
        if e is None:
            return
        yield e
        e = e.__cause__ or e.__context__


def _timed_out(e: BaseException) -> bool:
    return any(isinstance(x, TimeoutError) for x in _chain(e))


def _why(e: BaseException) -> str:
    """A DBA's reason for a connection failure (the client's text when nothing better)."""
    for x in _chain(e):
        if isinstance(x, ConnectionRefusedError):
            return "connection refused. Is the dataserver running? Start it with `sybar serve`."
        if isinstance(x, TimeoutError):
            return "timed out"
    for x in _chain(e):
        if isinstance(x, OSError) and x.strerror:
            return x.strerror
    return str(e) or type(e).__name__


class _Fail(Exception):
    """Stop with status ``code``; the message (if any) goes to stderr."""

    def __init__(self, message: str | None, code: int = EXIT_FAILED):
        super().__init__(message)
        self.message = message
        self.code = code


def _default_connect(address: Address, opts: Options, user: str, password: str):
    import inspect

    from engine.tds.client import Connection

    kwargs: dict[str, Any] = {
        "user": user,
        "password": password,
        "server": address.server,
        "app": opts.appname,
    }
    if opts.packet_size:
        kwargs["packet_size"] = opts.packet_size
    # The client's timeout covers connect, login and every read. Log in within -l (else
    # LOGIN_TIMEOUT), then wait -t seconds per read (no limit without -t: dumps take long).
    kwargs["timeout"] = opts.login_timeout or opts.timeout or LOGIN_TIMEOUT
    try:
        params = inspect.signature(Connection.connect).parameters
    except (TypeError, ValueError):
        params = {}
    if opts.hostname:
        for name in ("hostname", "host_name", "client_host"):
            if name in params:
                kwargs[name] = opts.hostname
                break
    if opts.charset and "charset" in params:
        kwargs["charset"] = opts.charset
    if opts.language and "language" in params:
        kwargs["language"] = opts.language
    conn = Connection.connect(address.host, address.port, **kwargs)
    setter = getattr(conn, "settimeout", None)
    if setter is not None:
        setter(opts.timeout)
    else:
        sock = getattr(conn, "_sock", None)
        if sock is not None:
            sock.settimeout(opts.timeout)
    return conn


def _client_errors() -> tuple[type[BaseException], type[BaseException]]:
    """(LoginError, TDSClientError) from the client, or stand-ins when it is absent."""
    try:
        from engine.tds.client import LoginError, TDSClientError
    except ImportError:
        class _Never(Exception):
            pass

        return _Never, _Never
    return LoginError, TDSClientError


class Isql:
    """One isql run. ``connect(address, opts, user, password)`` is replaceable for tests."""

    def __init__(
        self,
        opts: Options,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        env: Mapping[str, str] | None = None,
        connect: Callable[..., Any] | None = None,
        get_password: Callable[[str, str], str | None] | None = None,
        ask_password: Callable[[str], str] | None = None,
    ):
        self.opts = opts
        self.stdin = sys.stdin if stdin is None else stdin
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self.env = os.environ if env is None else env
        self.connect = connect or _default_connect
        self._get_password = get_password
        self.ask_password = ask_password or getpass.getpass
        self.conn: Any = None
        self.writer: ResultWriter | None = None
        self._owned: list[TextIO] = []

    # -- helpers ---------------------------------------------------------------
    def warn(self, text: str) -> None:
        try:
            print(f"{PROG}: {text}", file=self.stderr, flush=True)
        except (OSError, ValueError):
            pass

    def _open_input(self) -> tuple[TextIO, bool]:
        if self.opts.input_file is not None:
            try:
                f = open(self.opts.input_file, encoding="utf-8-sig", errors="replace")  # noqa: SIM115
            except OSError as e:
                raise _Fail(f"Unable to open input file '{self.opts.input_file}': "
                            f"{e.strerror or e}.") from None
            self._owned.append(f)
            return f, False
        return self.stdin, _isatty(self.stdin)

    def _open_output(self) -> TextIO:
        if self.opts.output_file is None:
            return self.stdout
        try:
            f = open(self.opts.output_file, "w", encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as e:
            raise _Fail(f"Unable to open output file '{self.opts.output_file}': {e.strerror or e}.") from None
        self._owned.append(f)
        return f

    def _password(self, server: str, user: str) -> str:
        if self.opts.password is not None:
            return self.opts.password
        keyring_problem = None
        try:
            if self._get_password is not None:
                pw = self._get_password(server, user)
            else:
                from engine.secrets import get_password

                pw = get_password(server, user)
        except Exception as e:  # StatusError(130) when there is no keyring
            pw = None
            keyring_problem = str(e)
        if pw is not None:
            return pw
        if _isatty(self.stdin):
            try:
                return self.ask_password("Password: ")
            except (EOFError, KeyboardInterrupt):
                raise _Fail("no password given", EXIT_FAILED) from None
        message = (f"no password for {user} on {server}: set one with "
                   f"`sybar password set {server} {user}` or pass -P")
        if keyring_problem:
            message += f" (the keyring could not be read: {keyring_problem})"
        raise _Fail(message)

    # -- the run ---------------------------------------------------------------
    def run(self) -> int:
        try:
            return self._run()
        except _Fail as f:
            if f.message:
                self.warn(f.message)
            return f.code
        except BrokenPipeError:
            return EXIT_FAILED
        except KeyboardInterrupt:
            self.warn("interrupted")
            return EXIT_INTERRUPTED
        finally:
            self._close()

    def _close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None
        for f in self._owned:
            try:
                f.close()
            except Exception:
                pass
        self._owned = []

    def _run(self) -> int:
        opts = self.opts
        source, interactive = self._open_input()
        out = self._open_output()
        self.writer = ResultWriter(out, width=opts.width, headers=opts.headers, colsep=opts.colsep)
        server = opts.resolved_server(self.env)
        user = opts.resolved_user()
        try:
            address = resolve_server(server, interfaces=opts.interfaces, sybase_dir=opts.sybase_dir,
                                     home=opts.home, env=self.env)
        except ServerLookupError as e:
            raise _Fail(str(e)) from None
        password = self._password(server, user)
        self._connect(address, user, password)
        del password

        if opts.database:
            code = self._execute(Batch([f"use {opts.database}"], 0), echo=False)
            if code is not None:
                return code

        if interactive:
            readline = self._interactive_readline()
        else:
            readline = stream_readline(source)
        reader = BatchReader(readline, cmdend=opts.cmdend, prompts=interactive and not opts.no_prompt)
        for batch in reader:
            code = self._execute(batch, echo=opts.echo, interactive=interactive)
            if code is not None:
                return code
        if reader.pending and not interactive:
            first = next(line for line in reader.pending if line.strip()).strip()
            self.warn(f"the input ended with {len(reader.pending)} line(s) after the last "
                      f"'{opts.cmdend}' (starting {first[:60]!r}); like SAP isql, they were not sent. "
                      f"End every batch with a line '{opts.cmdend}'.")
        return EXIT_OK

    def _interactive_readline(self) -> Callable[[str], object]:
        """Prompted reading on a terminal: readline editing when on the process's own stdin."""
        own = self.stdin is sys.stdin and self.stdout is sys.stdout
        if own:
            try:
                import readline  # noqa: F401  (line editing and history at the prompt)
            except ImportError:
                pass

        def rl(prompt: str) -> object:
            try:
                if own:
                    return input(prompt)
                self.stdout.write(prompt)
                self.stdout.flush()
                line = self.stdin.readline()
                if not line:
                    raise EOFError
                return line.removesuffix("\n").removesuffix("\r")
            except EOFError:
                print(file=self.stdout)
                return None
            except KeyboardInterrupt:
                print(file=self.stdout)
                return RESET

        return rl

    def _connect(self, address: Address, user: str, password: str) -> None:
        login_error, client_error = _client_errors()
        where = f"server {address.server} at {address.host}:{address.port} (from {address.source})"
        try:
            self.conn = self.connect(address, self.opts, user, password)
        except ImportError as e:
            raise _Fail(f"the TDS client cannot be loaded ({e}); is sybar installed whole?") from None
        except login_error as e:
            assert self.writer is not None
            messages = list(getattr(e, "messages", None) or [])
            if not any((getattr(m, "severity", 0) or 0) > 10 for m in messages):
                from engine.tds.tokens import Message  # the TDS tables: loaded when isql connects, not for -v

                messages.append(Message(4002, 14, 1, str(e) or "Login failed.", address.server, "", 0))
            for m in messages:
                self.writer.feed(m)
            self.writer.flush()
            raise _Fail(f"login to {where} as {user} failed: {str(e) or 'Login failed.'}") from None
        except (OSError, client_error) as e:
            raise _Fail(f"cannot connect to {where}: {_why(e)}") from None

    def _execute(self, batch: Batch, *, echo: bool, interactive: bool = False) -> int | None:
        """Run a batch (``repeat`` times). None to go on, or the exit status to stop with."""
        writer = self.writer
        assert writer is not None
        _, client_error = _client_errors()
        if echo:
            writer.echo(batch.lines, numbered=not self.opts.no_prompt)
        for _ in range(batch.repeat):
            writer.reset_errors()
            events = None
            try:
                events = self.conn.execute(batch.text)
                for event in events:
                    writer.feed(event)
            except KeyboardInterrupt:
                # Closing the event stream early cancels the rest of the reply (attention).
                self._abandon(events)
                writer.end_batch()
                if interactive:
                    writer.text("Query cancelled.")
                    return None
                self.warn("interrupted; the batch was cancelled")
                return EXIT_INTERRUPTED
            except (OSError, client_error) as e:
                self._abandon(events)
                writer.end_batch()
                if _timed_out(e):
                    raise _Fail(f"the server sent nothing for {self.opts.timeout or 0:g} seconds (-t); "
                                "isql gave up on the batch and the connection") from None
                raise _Fail(f"lost the connection to the server: {_why(e)}") from None
            writer.end_batch()
            if self.opts.retserverror and writer.errors:
                first = writer.errors[0]
                self.warn(f"Msg {getattr(first, 'number', 0)}, Level {getattr(first, 'severity', 0)}: "
                          "server error; stopping (--retserverror)")
                return EXIT_SERVER_ERROR
        return None

    @staticmethod
    def _abandon(events: Any) -> None:
        close = getattr(events, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sybar-isql`` and ``sybar isql``: run isql, return its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        opts = parse_args(argv)
    except UsageError as e:
        print(f"{PROG}: {e}\n{USAGE}", file=sys.stderr)
        return EXIT_FAILED
    if opts.help:
        print(USAGE)
        return EXIT_OK
    if opts.version:
        print(version_text())
        return EXIT_OK
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    return Isql(opts).run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["main", "Isql", "version_text", "format_message",
           "EXIT_OK", "EXIT_FAILED", "EXIT_SERVER_ERROR", "EXIT_INTERRUPTED"]
