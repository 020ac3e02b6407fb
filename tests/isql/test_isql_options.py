"""isql's command line: glued and spaced values, SAP's flags, -P's special cases."""

from __future__ import annotations

import pytest

from engine.isql.options import UsageError, parse_args


def test_glued_values_as_in_real_scripts():
    o = parse_args(["-Usa", "-SSYBAR", "-e", "-i", "x.sql", "-o", "out.txt"])
    assert (o.user, o.server, o.echo, o.input_file, o.output_file) == ("sa", "SYBAR", True, "x.sql", "out.txt")


def test_spaced_values_and_width():
    o = parse_args(["-U", "sa", "-S", "SYBAR", "-w", "250"])
    assert (o.user, o.server, o.width) == ("sa", "SYBAR", 250)
    assert parse_args(["-w250"]).width == 250
    assert parse_args([]).width == 80


def test_flags():
    o = parse_args(["-b", "-n", "-X", "--retserverror", "-Dsalesdb", "-I/tmp/ifile", "-Hhost", "-s|"])
    assert o.headers is False and o.no_prompt and o.retserverror
    assert (o.database, o.interfaces, o.hostname, o.colsep) == ("salesdb", "/tmp/ifile", "host", "|")
    assert "-X" in o.tolerated


def test_grouped_flags():
    o = parse_args(["-be"])
    assert o.headers is False and o.echo


def test_charset_and_language_tolerated():
    o = parse_args(["-J", "utf8", "-zus_english", "-Usa"])
    assert o.charset == "utf8" and o.language == "us_english" and o.user == "sa"
    o = parse_args(["-J", "-Usa"])  # -J without a value
    assert o.charset is None and o.user == "sa"
    assert parse_args(["-Jiso_1"]).charset == "iso_1"


def test_password_forms():
    assert parse_args(["-Psecret"]).password == "secret"
    assert parse_args(["-P", "secret"]).password == "secret"
    assert parse_args(["-P"]).password == ""           # -P last: empty password
    assert parse_args(["-P", ""]).password == ""
    o = parse_args(["-Usa", "-P", "-SSYBAR"])          # -P$PW with PW empty
    assert o.password == "" and o.server == "SYBAR"
    assert parse_args(["-P-dash"]).password == "-dash"
    assert parse_args([]).password is None


def test_password_never_in_repr():
    assert "secret" not in repr(parse_args(["-Psecret"]))


def test_timeouts_and_packet_size():
    o = parse_args(["-t", "30", "-l5", "-A", "4096"])
    assert (o.timeout, o.login_timeout, o.packet_size) == (30.0, 5.0, 4096)
    assert parse_args(["-t0"]).timeout is None


def test_long_options():
    o = parse_args(["--appname", "nightly", "--home=/tmp/h", "--retserverror"])
    assert (o.appname, o.home, o.retserverror) == ("nightly", "/tmp/h", True)
    assert parse_args(["--help"]).help and parse_args(["-v"]).version


@pytest.mark.parametrize("argv, words", [
    (["-q"], "unknown option -q"),
    (["stray"], "unexpected argument"),
    (["-w", "wide"], "whole number"),
    (["-w0"], "at least"),
    (["-U"], "needs a value"),
    (["--frobnicate"], "unknown option --frobnicate"),
    (["--retserverror=1"], "takes no value"),
])
def test_usage_errors(argv, words):
    with pytest.raises(UsageError, match=words):
        parse_args(argv)


def test_default_server_and_user():
    o = parse_args([])
    assert o.resolved_server({}) == "SYBAR"
    assert o.resolved_server({"DSQUERY": "PROD"}) == "PROD"
    assert parse_args(["-SX"]).resolved_server({"DSQUERY": "PROD"}) == "X"
    assert parse_args(["-Ubob"]).resolved_user() == "bob"
