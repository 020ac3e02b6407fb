"""engine/tls.py on its own: which addresses count as loopback, certificates made once and made
again (by the same CA) only when the host gains a name or an address."""

from __future__ import annotations

import os
import socket
import ssl
import threading

import pytest
from accesskit import non_loopback_ipv4
from cryptography import x509

from engine.home import Home
from engine.jobs.status import StatusError
from engine.tls import client_context, ensure_certificates, is_loopback, server_context, wrap_client_socket


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("192.0.2.2", False), ("10.0.0.1", False),
])
def test_which_addresses_are_loopback(host, loopback):
    assert is_loopback(host) is loopback


def _sans(path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(a) for a in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))


def test_made_once_and_again_only_for_a_new_address(tmp_path):
    home = Home.resolve(tmp_path / "h").ensure()
    files = ensure_certificates(home)
    ca, cert = files.ca_cert.read_bytes(), files.server_cert.read_bytes()
    assert {"127.0.0.1", "::1", "localhost", non_loopback_ipv4()} <= _sans(files.server_cert)
    assert ensure_certificates(home).server_cert.read_bytes() == cert          # nothing new: the same one
    ensure_certificates(home, ("203.0.113.9", "backup-host.example"))
    assert files.ca_cert.read_bytes() == ca                                    # the CA stays: clients trust it
    assert files.server_cert.read_bytes() != cert
    assert {"203.0.113.9", "backup-host.example"} <= _sans(files.server_cert)
    for f in (files.ca_cert, files.ca_key, files.server_cert, files.server_key):
        assert oct(os.stat(f).st_mode & 0o777) == "0o600", f
    assert oct(os.stat(files.ca_cert.parent).st_mode & 0o777) == "0o700"


def test_a_client_trusts_its_home_ca_and_no_other(tmp_path):
    ours = Home.resolve(tmp_path / "ours").ensure()
    theirs = Home.resolve(tmp_path / "theirs").ensure()
    ensure_certificates(ours)
    ensure_certificates(theirs)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server_ctx = server_context(ours)

    def serve(n):
        for _ in range(n):
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError):
                pass

    t = threading.Thread(target=serve, args=(2,), daemon=True)
    t.start()
    sock = wrap_client_socket(client_context(ours), socket.create_connection(("127.0.0.1", port)), "127.0.0.1",
                              "the test server")
    assert sock.recv(5) == b"hello"
    sock.close()
    with pytest.raises(StatusError) as e:
        wrap_client_socket(client_context(theirs), socket.create_connection(("127.0.0.1", port)), "127.0.0.1",
                           "the test server")
    assert e.value.status == 58 and "did not verify" in str(e.value) and "ca.pem" in str(e.value)
    t.join(10)
    listener.close()
