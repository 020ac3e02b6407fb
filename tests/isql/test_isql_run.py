"""A whole isql run over a fake connection: batches, go N, reset/quit, -e, -o, -D,
passwords, exit statuses. The connection is a test double that yields synthetic
TDS events; the end-to-end tests over a socket are in test_isql_live.py."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine.isql.batches import RESET, BatchReader
from engine.isql.main import EXIT_FAILED, EXIT_OK, EXIT_SERVER_ERROR, Isql, main
from engine.isql.options import parse_args
from engine.jobs.status import StatusError
from engine.tds.tokens import Column, Done, Message, Row, RowFormat

DONE_COUNT = 0x10
DONE_ERROR = 0x02

SECRET = "pw-Very-Secret-42"


class FakeConn:
    def __init__(self, responder=None):
        self.sent: list[str] = []
        self.closed = False
        self.cancelled = 0
        self.responder = responder or (lambda sql: [Done(0, 0, 0)])

    def execute(self, sql):
        """Like engine.tds.client: leaving the event stream early cancels the reply."""
        self.sent.append(sql)

        def stream():
            finished = False
            try:
                yield from self.responder(sql)
                finished = True
            finally:
                if not finished:
                    self.cancel()

        return stream()

    def cancel(self):
        self.cancelled += 1

    def close(self):
        self.closed = True


def default_responder(sql):
    s = sql.strip().lower()
    if s.startswith("select"):
        return [RowFormat([Column("n", "int")]), Row((1,)), Done(DONE_COUNT, 1, 0)]
    if s.startswith("boom"):
        return [Message(156, 15, 2, "Incorrect syntax near 'boom'.", "SYBAR", "", 1), Done(DONE_ERROR, 0, 0)]
    if s.startswith("dump"):
        return [
            Message(4141, 10, 1, "Backup Server: 4.41.1.1: Creating new disk file /tmp/x.dmp.", "SYBAR", "", 1),
            Message(4141, 10, 1, "Backup Server: 3.42.1.1: DUMP is complete (database salesdb).", "SYBAR", "", 1),
            Done(0, 0, 0),
        ]
    return [Done(0, 0, 0)]


@pytest.fixture
def ifile(tmp_path: Path) -> Path:
    p = tmp_path / "interfaces"
    p.write_text("SYBAR\n\tmaster tcp ether 127.0.0.1 5999\n\tquery tcp ether 127.0.0.1 5999\n")
    return p


def run(argv, stdin_text="", *, ifile=None, responder=default_responder, password=SECRET, tty=False,
        keyring=None, out=None):
    conn = FakeConn(responder)
    calls = []

    def connect(address, opts, user, pw):
        calls.append((address, user, pw))
        return conn

    stdin = io.StringIO(stdin_text)
    if tty:
        stdin.isatty = lambda: True  # type: ignore[method-assign]
    out = io.StringIO() if out is None else out
    err = io.StringIO()
    if ifile is not None:
        argv = [*argv, "-I", str(ifile)]
    opts = parse_args(argv)
    isql = Isql(opts, stdin=stdin, stdout=out, stderr=err, env={}, connect=connect,
                get_password=keyring or (lambda server, user: password),
                ask_password=lambda prompt: "typed")
    code = isql.run()
    return code, out.getvalue(), err.getvalue(), conn, calls


HEREDOC = 'use master\ngo\nsp_helpdb salesdb\ngo   \ndump database salesdb to "/tmp/x.dmp"\nGO\n'


def test_heredoc_batches_run_in_order(ifile):
    code, out, err, conn, calls = run(["-Usa", "-SSYBAR", "-w", "250"], HEREDOC, ifile=ifile)
    assert code == EXIT_OK, err
    assert conn.sent == ["use master\n", "sp_helpdb salesdb\n", 'dump database salesdb to "/tmp/x.dmp"\n']
    assert "Backup Server: 3.42.1.1: DUMP is complete (database salesdb)." in out.splitlines()
    assert "Msg" not in out
    assert conn.closed
    (address, user, pw), = calls
    assert (address.host, address.port, user, pw) == ("127.0.0.1", 5999, "sa", SECRET)


def test_input_file_and_output_file(tmp_path, ifile):
    sql = tmp_path / "load.sql"
    sql.write_text("/*\n go\n */\nuse master\ngo\nboom\ngo\nselect 1\ngo\n")
    outfile = tmp_path / "out.txt"
    code, out, err, conn, _ = run(["-Usa", "-SSYBAR", "-e", "-i", str(sql), "-o", str(outfile)], ifile=ifile)
    assert code == EXIT_OK  # server errors alone do not change isql's status (SAP)
    assert out == ""
    text = outfile.read_text()
    # isql is line based: the 'go' inside the comment ends a batch, as in SAP isql
    assert conn.sent[:2] == ["/*\n", " */\nuse master\n"]
    assert "1> boom\nMsg 156, Level 15, State 2:\nServer 'SYBAR', Line 1:\nIncorrect syntax near 'boom'.\n" in text
    assert "1> select 1\n n           \n ----------- \n           1 \n\n(1 row affected)\n" in text


def test_echo_without_numbers_with_n(ifile):
    code, out, *_ = run(["-Usa", "-e", "-n"], "select 1\n  from x\ngo\n", ifile=ifile)
    assert out.startswith("select 1\n  from x\n n")


def test_go_n_repeats(ifile):
    code, out, err, conn, _ = run(["-Usa"], "insert t values (1)\ngo 3\n", ifile=ifile)
    assert conn.sent == ["insert t values (1)\n"] * 3


def test_reset_and_quit(ifile):
    code, out, err, conn, _ = run(["-Usa"], "select 1\nreset\nselect 2\ngo\nselect 3\nquit\nselect 4\ngo\n",
                                  ifile=ifile)
    assert code == EXIT_OK
    assert conn.sent == ["select 2\n"]


def test_pending_batch_at_eof_is_not_run(ifile):
    code, out, err, conn, _ = run(["-Usa"], "select 1\ngo\ndump database salesdb to '/tmp/x'\n", ifile=ifile)
    assert code == EXIT_OK
    assert conn.sent == ["select 1\n"]
    assert "not sent" in err and "dump database salesdb" in err


def test_empty_batches_are_not_sent(ifile):
    code, out, err, conn, _ = run(["-Usa"], "go\n   \ngo\n", ifile=ifile)
    assert conn.sent == [] and err == ""


def test_custom_terminator(ifile):
    code, out, err, conn, _ = run(["-Usa", "-c", "run"], "select 1\ngo\nrun\n", ifile=ifile)
    assert conn.sent == ["select 1\ngo\n"]


def test_retserverror_stops_with_status_2(ifile):
    code, out, err, conn, _ = run(["-Usa", "--retserverror"], "select 1\ngo\nboom\ngo\nselect 2\ngo\n",
                                  ifile=ifile)
    assert code == EXIT_SERVER_ERROR
    assert conn.sent == ["select 1\n", "boom\n"]
    assert "Msg 156, Level 15" in out and "Msg 156" in err


def test_database_option_sends_use_first(ifile):
    code, out, err, conn, _ = run(["-Usa", "-Dsalesdb"], "select 1\ngo\n", ifile=ifile)
    assert conn.sent == ["use salesdb\n", "select 1\n"]


def test_missing_input_file_fails_before_connecting(tmp_path, ifile):
    code, out, err, conn, calls = run(["-Usa", "-i", str(tmp_path / "nope.sql")], ifile=ifile)
    assert code == EXIT_FAILED and calls == []
    assert "Unable to open input file" in err and "nope.sql" in err


def test_unknown_server(tmp_path, ifile):
    code, out, err, conn, calls = run(["-Usa", "-SNOPE"], "select 1\ngo\n", ifile=ifile)
    assert code == EXIT_FAILED and calls == []
    assert "server NOPE is not in any interfaces file" in err and str(ifile) in err


def test_no_password_with_heredoc_stdin(ifile):
    code, out, err, conn, calls = run(["-Usa", "-SSYBAR"], "select 1\ngo\n", ifile=ifile, password=None)
    assert code == EXIT_FAILED and calls == []
    assert "no password for sa on SYBAR: set one with `sybar password set SYBAR sa` or pass -P" in err


def test_no_keyring_is_explained(ifile):
    def broken(server, user):
        raise StatusError(130, "no OS keyring is available: test")

    code, out, err, conn, calls = run(["-Usa"], "select 1\ngo\n", ifile=ifile, keyring=broken)
    assert code == EXIT_FAILED and "no OS keyring is available" in err


def test_password_prompt_on_a_terminal(ifile):
    code, out, err, conn, calls = run(["-Usa"], "", ifile=ifile, password=None, tty=True)
    assert calls[0][2] == "typed"


def test_p_option_wins_over_keyring(ifile):
    def never(server, user):
        raise AssertionError("keyring consulted")

    code, out, err, conn, calls = run(["-Usa", "-Pargv-pw"], "", ifile=ifile, keyring=never)
    assert calls[0][2] == "argv-pw"


def test_empty_p_is_an_empty_password(ifile):
    code, out, err, conn, calls = run(["-Usa", "-P", "-SSYBAR"], "", ifile=ifile)
    assert calls[0][2] == ""


def test_connection_refused(ifile):
    def refuse(address, opts, user, pw):
        raise ConnectionRefusedError(111, "Connection refused")

    opts = parse_args(["-Usa", "-I", str(ifile)])
    err = io.StringIO()
    code = Isql(opts, stdin=io.StringIO(""), stdout=io.StringIO(), stderr=err, env={}, connect=refuse,
                get_password=lambda s, u: SECRET).run()
    assert code == EXIT_FAILED
    assert "connection refused" in err.getvalue() and "127.0.0.1:5999" in err.getvalue()
    assert SECRET not in err.getvalue()


def test_connection_lost_mid_batch(ifile):
    def lose(sql):
        yield RowFormat([Column("n", "int")])
        raise ConnectionResetError(104, "Connection reset by peer")

    code, out, err, conn, _ = run(["-Usa"], "select 1\ngo\nselect 2\ngo\n", ifile=ifile, responder=lose)
    assert code == EXIT_FAILED and conn.sent == ["select 1\n"]
    assert "lost the connection" in err


def test_interrupt_cancels_and_stops(ifile):
    def slow(sql):
        yield Message(0, 10, 1, "working", "SYBAR", "", 1)
        raise KeyboardInterrupt

    code, out, err, conn, _ = run(["-Usa"], "dump database x to 'y'\ngo\nselect 2\ngo\n", ifile=ifile,
                                  responder=slow)
    assert code == 130 and conn.cancelled == 1 and conn.sent == ["dump database x to 'y'\n"]


def test_interrupt_while_printing_cancels_the_reply(ifile):
    class Interrupting(io.StringIO):
        def write(self, text):
            if "row" in text:
                raise KeyboardInterrupt
            return super().write(text)

    def rows(sql):
        yield Message(0, 10, 1, "first row next", "SYBAR", "", 1)
        while True:
            yield Message(0, 10, 1, "row", "SYBAR", "", 1)

    code, out, err, conn, _ = run(["-Usa"], "select 1\ngo\n", ifile=ifile, responder=rows, out=Interrupting())
    assert code == 130 and conn.cancelled == 1


def test_password_never_printed(ifile):
    code, out, err, conn, _ = run(["-Usa"], "boom\ngo\nselect 1\n", ifile=ifile)
    assert SECRET not in out and SECRET not in err


def test_prompts_only_when_asked():
    lines = iter(["select 1", "from t", "go", "select 2", "reset", "x"])
    prompts = []

    def readline(prompt):
        prompts.append(prompt)
        return next(lines, None)

    reader = BatchReader(readline, prompts=True)
    batches = list(reader)
    assert [b.text for b in batches] == ["select 1\nfrom t\n"]
    assert prompts == ["1> ", "2> ", "3> ", "1> ", "2> ", "1> ", "2> "]
    assert reader.pending == ["x"]


def test_reset_sentinel_clears_batch():
    lines = iter(["select 1", RESET, "select 2", "go"])
    reader = BatchReader(lambda p: next(lines, None))
    assert [b.lines for b in reader] == [["select 2"]]


def test_go_variants():
    lines = iter(["a", "  Go  ", "b", "GO 2", "c", "go0", "go", "gone", "go"])
    reader = BatchReader(lambda p: next(lines, None))
    got = [(b.lines, b.repeat, b.first_line) for b in reader]
    assert got == [(["a"], 1, 1), (["b"], 2, 3), (["c", "go0"], 1, 5), (["gone"], 1, 8)]


def test_main_usage_and_version(capsys):
    assert main(["-v"]) == 0
    assert "sybar-isql" in capsys.readouterr().out
    assert main(["--bogus"]) == 1
    assert "unknown option --bogus" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "usage:" in capsys.readouterr().out
