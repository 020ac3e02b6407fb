"""TLS for sybar's listeners: a home CA and a server certificate, made at first start.

Every listener whose address is not loopback speaks TLS (the control API and
the media server; the dataserver's TDS port is refused off loopback unless
``--insecure-tds``, see docs/ARCHITECTURE.md). Authentication stays what it
is on loopback (control token, media HMAC, TDS login); TLS adds secrecy and
proves the server to the client.

Files, in HOME/tls/ (folder 0700, every file 0600)::

    ca.pem      the home CA's certificate: what clients verify against
    ca.key      the CA's private key (signs a new server certificate when the
                host's names or addresses change)
    server.pem  the server certificate (localhost, 127.0.0.1, ::1, the host's
                names and addresses, and any address sybar serve listens on)
    server.key  its private key

A role on another host (a remote media server or CLI) verifies against a copy
of ``ca.pem`` placed in its own HOME/tls/; ``ca.pem`` is a certificate, not a
secret, but the keys never leave the home. Keys are never printed or logged.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import os
import re
import socket
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path

from engine.home import Home, make_private_dir
from engine.jobs.status import SYSTEM_ERROR, StatusError

TLS_DIR = "tls"
CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
RENEW_BEFORE_DAYS = 30
_DNS_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,252}")


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def tls_files(home: Home) -> TLSFiles:
    d = home.root / TLS_DIR
    return TLSFiles(d / CA_CERT, d / CA_KEY, d / SERVER_CERT, d / SERVER_KEY)


# -- which addresses need TLS -------------------------------------------------------
def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127/8, ::1, localhost).

    A wildcard ("0.0.0.0", "::", "") listens on every interface: not loopback.
    """
    host = host.strip("[]")
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


# -- the host's names and addresses ---------------------------------------------------
def _interface_ipv4() -> set[str]:
    out: set[str] = set()
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            with contextlib.suppress(OSError):
                raw = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))  # SIOCGIFADDR
                out.add(socket.inet_ntoa(raw[20:24]))
    return out


def _interface_ipv6() -> set[str]:
    out: set[str] = set()
    with contextlib.suppress(OSError), open("/proc/net/if_inet6") as f:
        for line in f:
            hexaddr = line.split()[0]
            addr = ipaddress.ip_address(bytes.fromhex(hexaddr))
            if not addr.is_link_local:
                out.add(str(addr))
    return out


def host_names_and_addresses(extra: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the server certificate should carry."""
    names = {"localhost"}
    addrs = {"127.0.0.1", "::1"} | _interface_ipv4() | _interface_ipv6()
    for n in (socket.gethostname(), socket.getfqdn()):
        if n:
            names.add(n.lower())
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addrs.add(info[4][0].split("%")[0])
    for h in extra:
        h = h.strip("[]")
        if not h or h in ("0.0.0.0", "::"):
            continue
        try:
            addrs.add(str(ipaddress.ip_address(h)))
        except ValueError:
            names.add(h.lower())
    # a certificate names hosts in DNS's letters only (an odd host name is left out, not fatal)
    return sorted(n for n in names if _DNS_NAME.fullmatch(n)), sorted(addrs)


# -- making the certificates -------------------------------------------------------------
def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _make_ca(files: TLSFiles) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sybar home CA ({socket.gethostname()})")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(files.ca_key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    _write_private(files.ca_cert, cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.unlink(missing_ok=True)  # signed by the old CA, if any


def _server_cert_ok(files: TLSFiles, names: list[str], addrs: list[str]) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
        ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        if not files.server_key.exists():
            return False
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # missing, unreadable, not ours, not signed by this CA: make a new one
        return False
    have_names = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    have_addrs = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    fresh = cert.not_valid_after_utc - _now() > datetime.timedelta(days=RENEW_BEFORE_DAYS)
    return fresh and set(names) <= have_names and set(addrs) <= have_addrs


def _make_server_cert(files: TLSFiles, names: list[str], addrs: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addrs]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[-1] if names else "sybar")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(files.server_key, key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    _write_private(files.server_cert, cert.public_bytes(serialization.Encoding.PEM))


def ensure_certificates(home: Home, extra_hosts: tuple[str, ...] = ()) -> TLSFiles:
    """The home's CA and server certificate, made (or the server's renewed) when needed.

    The server certificate is made again, by the same CA, when it lacks one
    of the host's names or addresses (or ``extra_hosts``), or nears its end;
    clients that trust ca.pem go on trusting it.
    """
    files = tls_files(home)
    make_private_dir(files.ca_cert.parent)
    try:
        if not (files.ca_cert.exists() and files.ca_key.exists()):
            _make_ca(files)
        names, addrs = host_names_and_addresses(extra_hosts)
        if not _server_cert_ok(files, names, addrs):
            _make_server_cert(files, names, addrs)
    except (OSError, ValueError) as e:
        raise StatusError(SYSTEM_ERROR, f"cannot make the TLS certificates in {files.ca_cert.parent}: "
                                        f"{getattr(e, 'strerror', None) or e}; check that the home is writable "
                                        "(a damaged tls/ca.key: move the tls folder away, and copy the new "
                                        "ca.pem to the clients)") from e
    for path in (files.ca_cert, files.ca_key, files.server_cert, files.server_key):
        os.chmod(path, 0o600)
    return files


# -- contexts ---------------------------------------------------------------------------------
class _SSLSocket(ssl.SSLSocket):
    """An SSL socket with sendmsg (the media client sends a frame header and its payload in one call)."""

    def sendmsg(self, buffers, ancdata=(), flags=0, address=None):  # noqa: ARG002 - socket's signature
        if ancdata or flags or address is not None:
            raise NotImplementedError("sendmsg with ancillary data over TLS")
        total = 0
        for buf in buffers:
            view = memoryview(buf)
            self.sendall(view)
            total += len(view)
        return total


def server_context(home: Home) -> ssl.SSLContext:
    files = tls_files(home)
    if not (files.server_cert.exists() and files.server_key.exists()):
        ensure_certificates(home)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(files.server_cert, files.server_key)
    # no session tickets: a ticket arriving after the handshake would look like data to a poll()
    with contextlib.suppress(AttributeError, ValueError):
        ctx.num_tickets = 0
    return ctx


def client_context(home: Home) -> ssl.SSLContext:
    """Verifies the server against the home CA (HOME/tls/ca.pem), host name included."""
    ca = tls_files(home).ca_cert
    if not ca.exists():
        raise StatusError(58, f"there is no CA certificate at {ca} to check the sybar server's TLS certificate "
                              "against: copy ca.pem from the server's HOME/tls/ there")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=str(ca))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.sslsocket_class = _SSLSocket
    return ctx


def fingerprint(home: Home) -> str:
    """SHA-256 of the server certificate, for messages and `openssl s_client` checks."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(tls_files(home).server_cert.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":")


# -- which listeners may open, and with what ----------------------------------------------------
@dataclass(frozen=True)
class Network:
    """Where `sybar serve` listens (the dataserver's TDS address is `--listen`)."""

    control: tuple[str, int] = ("127.0.0.1", 0)
    media: tuple[str, int] = ("127.0.0.1", 0)
    tls: bool = True              # TLS on every listener off loopback; False: refuse to listen off loopback
    insecure_tds: bool = False    # allow TDS (no TLS in FreeTDS's TDS 5.0) off loopback


def check_listeners(network: Network, tds_host: str) -> None:
    """Refuse, before anything starts, to listen off loopback without TLS (status 20)."""
    if not is_loopback(tds_host) and not network.insecure_tds:
        raise StatusError(
            20, f"sybar serve will not listen for TDS on {tds_host or '*'}: TDS 5.0 as FreeTDS speaks it has no "
                "TLS, so logins and data would cross the network in clear. Listen on 127.0.0.1 (scripts run on "
                "this host), or start `sybar serve` with --insecure-tds to accept that on a network you trust.")
    for role, (host, _port) in (("control API", network.control), ("media server", network.media)):
        if not is_loopback(host) and not network.tls:
            raise StatusError(
                20, f"sybar serve will not listen on {host or '*'} for the {role} without TLS: drop --no-tls "
                    "(the home's certificates are made at start), or listen on 127.0.0.1.")


def wrap_client_socket(ctx: ssl.SSLContext, sock: socket.socket, host: str, what: str) -> ssl.SSLSocket:
    """The TLS handshake on a connected socket; a failure closes it and says what to check."""
    try:
        return ctx.wrap_socket(sock, server_hostname=host.strip("[]"))
    except ssl.SSLCertVerificationError as e:
        sock.close()
        raise StatusError(58, f"the TLS certificate of {what} did not verify ({e.verify_message}): the client's "
                              "HOME/tls/ca.pem must be a copy of the server home's") from None
    except ssl.SSLError as e:
        sock.close()
        raise StatusError(58, f"the TLS handshake with {what} failed ({e.reason or e}): is that a sybar "
                              "listener with TLS?") from None
