"""Off loopback every sybar listener speaks TLS with the home's certificate, and only TLS; a
backup runs end to end over it; sybar serve refuses to listen off loopback without TLS; every
listener refuses a peer that cannot authenticate."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from accesskit import non_loopback_ipv4
from sybar_testkit import start_serve, stop_serve, sybar, sybar_json, table_digest

from engine.archive.client import MediaClient
from engine.home import Home
from engine.jobs.status import CANT_CONNECT, CONNECTION_REFUSED, StatusError
from engine.tls import Network, check_listeners, client_context

IP = non_loopback_ipv4()


@pytest.fixture(scope="module")
def remote(used_home):
    """The access tests' home (conftest.py): control API and media server on IP, TDS on loopback."""
    assert used_home.ip == IP
    return used_home


def _hostport(addr: str) -> tuple[str, int]:
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port)


def test_listeners_off_loopback_are_tls_with_the_home_certificate(remote):
    state = remote.state
    assert state["url"].startswith(f"https://{IP}:"), state
    assert state["tls"] == {"control": True, "media": True}
    ca = remote.home / "tls" / "ca.pem"
    for name, (host, port) in (("control", _hostport(state["url"].split("//")[1])),
                               ("media", _hostport(state["media"]))):
        assert host == IP, (name, state)
        # plain bytes get no plain answer: the server wants a TLS ClientHello
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(b"GET /api/v1/status HTTP/1.0\r\n\r\n")
            sock.settimeout(10)
            try:
                reply = sock.recv(200)
            except ConnectionResetError:
                reply = b""
            assert not reply.startswith(b"HTTP/") and b"sybar-media" not in reply, (name, reply)
        # verified against the home CA, for the address itself
        ctx = ssl.create_default_context(cafile=str(ca))
        with socket.create_connection((host, port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert()
            assert ("IP Address", IP) in cert["subjectAltName"], cert
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        # a client that does not trust the home CA refuses the certificate
        with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection((host, port), timeout=10) as raw:
            ssl.create_default_context().wrap_socket(raw, server_hostname=host)
    # and the stock tool agrees
    host, port = _hostport(state["url"].split("//")[1])
    r = subprocess.run(["openssl", "s_client", "-connect", f"{host}:{port}", "-CAfile", str(ca),
                        "-verify_ip", host, "-brief"], input="", capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    assert "Verification: OK" in out, out
    print(f"openssl s_client: {' | '.join(line for line in out.splitlines() if 'Protocol' in line or 'Peer' in line)}")


def test_keys_are_private_and_the_certificate_names_the_host(remote):
    tls_dir = remote.home / "tls"
    assert oct(os.stat(tls_dir).st_mode & 0o777) == "0o700"
    for f in ("ca.pem", "ca.key", "server.pem", "server.key"):
        assert oct(os.stat(tls_dir / f).st_mode & 0o777) == "0o600", f
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tls_dir / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert IP in {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    assert "127.0.0.1" in {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    assert "localhost" in san.get_values_for_type(x509.DNSName)


def test_a_backup_and_a_restore_run_over_tls(remote):
    s = remote
    r = sybar(s.home, "backup", str(s.home / "scripts" / "sybase_mydb_backup"))
    assert r.returncode == 0, r.stdout + r.stderr
    image = sybar_json(s.home, "list")[0]
    assert image["database"] == "mydb" and len(image["stripes"]) == 4
    r = sybar(s.home, "restore", "--image", image["backup_id"], "--database", "mydb_tls_copy")
    assert r.returncode == 0, r.stdout + r.stderr
    for table in ("customer", "orders"):
        assert table_digest(s.db_file("mydb_tls_copy"), table) == table_digest(s.db_file("mydb"), table)
    # the stripes went through the media server's TLS listener: the only one it has
    host, port = _hostport(s.state["media"])
    assert host == IP
    plain = MediaClient(host, port, (s.home / "media.secret").read_bytes(), connect_timeout=5, timeout=5)
    with pytest.raises(StatusError) as e:
        plain.stat(image["stripes"][0]["name"])
    assert e.value.status in (CANT_CONNECT, 41), e.value
    over_tls = MediaClient(host, port, (s.home / "media.secret").read_bytes(),
                           ssl_context=client_context(Home.resolve(s.home)))
    info = over_tls.stat(image["stripes"][0]["name"])
    assert info is not None and info.size == image["stripes"][0]["bytes"]


def test_every_listener_refuses_an_unauthenticated_peer(remote):
    s = remote
    home = Home.resolve(s.home)
    from engine.control.client import ControlClient

    async def status(token):
        client = ControlClient(s.state["url"], token, client_context(home))
        try:
            return await client.status()
        finally:
            await client.close()

    with pytest.raises(StatusError) as e:   # control API: the wrong token, over TLS
        asyncio.run(status("not-the-token"))
    assert e.value.status == 58 and "not authenticated" in str(e.value)
    assert asyncio.run(status((s.home / "control.token").read_text().strip()))["pid"] == s.state["pid"]
    host, port = _hostport(s.state["media"])  # media server: TLS is fine, the secret is not
    wrong = MediaClient(host, port, b"x" * 32, ssl_context=client_context(home), connect_timeout=5, timeout=5)
    with pytest.raises(StatusError) as e:
        wrong.stat("anything")
    assert e.value.status == CONNECTION_REFUSED, e.value
    bad = s.fisql("select 1\ngo\n", password="not-the-password")  # dataserver: a wrong password
    assert "Login failed" in bad.stdout + bad.stderr


def _refused(home: Path, *extra: str) -> tuple[int, str]:
    proc = start_serve(home, extra=extra, wait=False)
    out, err = proc.communicate(timeout=60)
    assert "listening" not in out
    return proc.returncode, err


def test_serve_refuses_to_listen_off_loopback_without_tls(tmp_path):
    rc, err = _refused(tmp_path / "h", "--control-listen", f"{IP}:0", "--media-listen", f"{IP}:0", "--no-tls")
    assert rc == 20, err
    assert f"will not listen on {IP} for the control API without TLS" in err and "(status 20)" in err, err
    with pytest.raises(StatusError) as e:   # the same check, for the media server alone
        check_listeners(Network(media=(IP, 0), tls=False), "127.0.0.1")
    assert e.value.status == 20 and f"will not listen on {IP} for the media server without TLS" in str(e.value)
    check_listeners(Network(media=("127.0.0.1", 0), tls=False), "127.0.0.1")  # loopback needs no TLS
    rc, err = _refused(tmp_path / "h", "--listen", f"{IP}:0")
    assert rc == 20, err
    assert "will not listen for TDS" in err and "--insecure-tds" in err, err
    assert not (tmp_path / "h" / "control.json").exists()


def test_tds_off_loopback_only_when_asked_for_in_so_many_words(tmp_path):
    s = start_serve(tmp_path / "h", extra=("--listen", f"{IP}:0", "--insecure-tds"))
    try:
        assert s.host == IP
        assert f"host = {IP}" in (tmp_path / "h" / "freetds.conf").read_text().replace("\t", "")
        assert "Msg" not in s.fisql("select 1\ngo\n").stdout
    finally:
        stop_serve(s)
