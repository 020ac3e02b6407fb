"""Server name -> host:port: interfaces files (every form), freetds.conf, lookup order."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine.isql.interfaces as itf
from engine.isql.interfaces import ServerLookupError, parse_freetds_conf, parse_interfaces, resolve_server

SYBAR_SERVE = "## written by sybar serve\nSYBAR\n\tmaster tcp ether 127.0.0.1 5000\n\tquery tcp ether 127.0.0.1 5000\n"


@pytest.fixture(autouse=True)
def no_default_home(tmp_path, monkeypatch):
    """Keep the developer's real default home out of the lookup."""
    monkeypatch.setattr(itf, "default_home_dir", lambda: tmp_path / "default-home")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_parse_what_sybar_serve_writes():
    e = parse_interfaces(SYBAR_SERVE)["SYBAR"]
    assert (e.host, e.port, e.ssl) == ("127.0.0.1", 5000, False)


def test_parse_classic_forms():
    text = (
        "# comment\n"
        "PROD 3 3\n"
        "\tmaster tcp ether prodhost 4100\n"
        "\tquery tcp ether prodhost 4101\n"
        "\n"
        "OLD\n"
        "\tquery tli tcp /dev/tcp \\x000213887f0000010000000000000000\n"
        "MASTERONLY\n"
        "    master tcp ether mhost 6000\n"
        "SECURE\n"
        "\tquery tcp ether shost 5000 ssl=\"CN=shost\"\n"
        "BARE\n"
        "\tquery tcp bhost 7000\n"
    )
    found = parse_interfaces(text)
    assert (found["PROD"].host, found["PROD"].port) == ("prodhost", 4101)
    assert (found["OLD"].host, found["OLD"].port) == ("127.0.0.1", 5000)
    assert (found["MASTERONLY"].host, found["MASTERONLY"].port) == ("mhost", 6000)
    assert found["SECURE"].ssl
    assert (found["BARE"].host, found["BARE"].port) == ("bhost", 7000)


def test_parse_windows_sql_ini():
    found = parse_interfaces("[SYBAR]\nmaster=TCP,winhost,5000\nquery=NLWNSCK,winhost,5001\n")
    assert (found["SYBAR"].host, found["SYBAR"].port) == ("winhost", 5001)


def test_parse_freetds_conf():
    conf = parse_freetds_conf("[global]\n\ttds version = 5.0\n[Sybar]\n\thost = 10.0.0.1 ; x\n\tport = 5000\n")
    assert conf["sybar"]["host"].startswith("10.0.0.1")
    assert conf["global"]["tds version"] == "5.0"


def test_dash_i_first(tmp_path):
    f = write(tmp_path / "mine", "SYBAR\n\tquery tcp ether h1 1111\n")
    write(tmp_path / "sybase" / "interfaces", "SYBAR\n\tquery tcp ether h2 2222\n")
    a = resolve_server("SYBAR", interfaces=str(f), env={"SYBASE": str(tmp_path / "sybase")})
    assert (a.host, a.port, a.source) == ("h1", 1111, str(f))


def test_sybase_env_then_home(tmp_path):
    write(tmp_path / "sybase" / "interfaces", "SYBAR\n\tquery tcp ether h2 2222\n")
    write(tmp_path / "home" / "interfaces", "SYBAR\n\tquery tcp ether h3 3333\n")
    env = {"SYBASE": str(tmp_path / "sybase"), "SYBAR_HOME": str(tmp_path / "home")}
    assert resolve_server("SYBAR", env=env).port == 2222
    # -y overrides $SYBASE; a server missing from an earlier file falls through
    write(tmp_path / "other" / "interfaces", "OTHER\n\tquery tcp ether h9 9999\n")
    assert resolve_server("SYBAR", sybase_dir=str(tmp_path / "other"), env=env).port == 3333


def test_dash_i_without_the_server_falls_through(tmp_path):
    f = write(tmp_path / "real-sybase-interfaces", "PROD\n\tquery tcp ether prod 4100\n")
    write(tmp_path / "home" / "interfaces", SYBAR_SERVE)
    a = resolve_server("SYBAR", interfaces=str(f), env={"SYBAR_HOME": str(tmp_path / "home")})
    assert a.port == 5000


def test_home_option_beats_env(tmp_path):
    write(tmp_path / "h1" / "interfaces", "SYBAR\n\tquery tcp ether a 1001\n")
    write(tmp_path / "h2" / "interfaces", "SYBAR\n\tquery tcp ether b 1002\n")
    a = resolve_server("SYBAR", home=str(tmp_path / "h2"), env={"SYBAR_HOME": str(tmp_path / "h1")})
    assert a.port == 1002


def test_freetds_conf(tmp_path):
    conf = write(tmp_path / "freetds.conf",
                 "[global]\n\tport = 4999\n[SYBAR]\n\thost = 127.0.0.2\n\tport = 5001\n[NOPORT]\n\thost = x\n")
    env = {"FREETDSCONF": str(conf)}
    a = resolve_server("sybar", env=env)  # FreeTDS section names are case-insensitive
    assert (a.host, a.port) == ("127.0.0.2", 5001)
    assert resolve_server("NOPORT", env=env).port == 4999


def test_default_home_last(tmp_path):
    write(tmp_path / "default-home" / "interfaces", SYBAR_SERVE)
    assert resolve_server("SYBAR", env={}).host == "127.0.0.1"


def test_not_found_names_server_and_places(tmp_path):
    f = write(tmp_path / "ifile", "PROD\n\tquery tcp ether prod 4100\n")
    with pytest.raises(ServerLookupError) as ei:
        resolve_server("SYBAR", interfaces=str(f), env={"SYBAR_HOME": str(tmp_path / "nohome")})
    msg = str(ei.value)
    assert "server SYBAR" in msg
    assert str(f) in msg and "no entry for SYBAR" in msg
    assert str(tmp_path / "nohome" / "interfaces") in msg and "no such file" in msg
    assert "$SYBASE (not set)" in msg and "$FREETDSCONF (not set)" in msg
    assert "sybar serve" in msg


def test_ssl_entry_refused(tmp_path):
    f = write(tmp_path / "ifile", "SYBAR\n\tquery tcp ether h 5000 ssl\n")
    with pytest.raises(ServerLookupError, match="ssl"):
        resolve_server("SYBAR", interfaces=str(f), env={})


def test_reads_what_the_dataserver_writes(tmp_path):
    from engine.dataserver import server
    from engine.home import Home

    home = Home.resolve(tmp_path / "h")
    home.root.mkdir(parents=True)
    server.write_client_files(home, "SYBAR", "0.0.0.0", 5123)
    a = resolve_server("SYBAR", home=str(home.root), env={})
    assert (a.host, a.port) == ("127.0.0.1", 5123)
    b = resolve_server("SYBAR", env={"FREETDSCONF": str(home.freetds_conf)})
    assert (b.host, b.port) == ("127.0.0.1", 5123)
