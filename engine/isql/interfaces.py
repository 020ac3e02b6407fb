"""Find a server's host and port the way Sybase and FreeTDS clients do.

Places looked at, in order, first match wins:

1. ``-I FILE``: a Sybase interfaces file named on the command line;
2. ``-y DIR`` or ``$SYBASE``: ``DIR/interfaces``;
3. ``--home DIR`` or ``$SYBAR_HOME``: ``DIR/interfaces`` (``sybar serve`` writes it);
4. ``$FREETDSCONF``: that freetds.conf's ``[SERVER]`` section (``host``, ``port``);
5. sybar's default home (platformdirs' user data dir for "sybar"): ``interfaces``.

A place that does not exist, or does not list the server, is passed over
(also ``-I``: a script written for a real Sybase install may name an
interfaces file that lacks sybar's server); when none has it, the error names
the server and every place looked at.

Interfaces files are read in every form seen in the field::

    SYBAR                                  # what sybar serve writes
    \tmaster tcp ether 127.0.0.1 5000
    \tquery tcp ether 127.0.0.1 5000

    SYBAR 3 3                              # retry count and delay after the name
    \tquery tcp ether dbhost 5000 ssl      # ssl: refused, sybar isql speaks plain TDS
    \tquery tli tcp /dev/tcp \\x000213887f0000010000000000000000   # Solaris TLI

    [SYBAR]                                # Windows sql.ini
    query=TCP,127.0.0.1,5000

The ``query`` entry is used; ``master`` when there is no ``query``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FREETDS_PORT = 5000  # sybar's dataserver; FreeTDS's own default for TDS 5.0 would be 4000


class ServerLookupError(Exception):
    """The server is in none of the places looked at, or its entry cannot be used."""


@dataclass(frozen=True)
class Address:
    server: str
    host: str
    port: int
    source: str          # the file the entry came from
    ssl: bool = False


@dataclass(frozen=True)
class _Entry:
    host: str
    port: int
    ssl: bool


_TLI_HEX = re.compile(r"\\x([0-9a-fA-F]{16,})")
_SQLINI_LINE = re.compile(r"^(query|master)\s*=", re.IGNORECASE)


def _parse_service_line(tokens: list[str]) -> _Entry | None:
    """``query tcp ether HOST PORT [ssl...]`` and the TLI hex form; None if unreadable."""
    if len(tokens) < 3:
        return None
    proto = tokens[1].lower()
    if proto == "tli":
        m = _TLI_HEX.search(" ".join(tokens[2:]))
        if not m:
            return None
        hexs = m.group(1)
        port = int(hexs[4:8], 16)
        ip = ".".join(str(int(hexs[k:k + 2], 16)) for k in range(8, 16, 2))
        return _Entry(ip, port, False)
    if not proto.startswith("tcp"):
        return None
    rest = tokens[2:]
    for k in range(len(rest) - 1):
        if rest[k + 1].isdigit():
            ssl = any(t.lower().startswith("ssl") for t in rest[k + 2:])
            return _Entry(rest[k], int(rest[k + 1]), ssl)
    return None


def _parse_sqlini_value(value: str) -> _Entry | None:
    """``TCP,host,port`` / ``NLWNSCK,host,port`` (Windows sql.ini)."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) >= 3 and parts[2].isdigit():
        ssl = any(p.lower().startswith("ssl") for p in parts[3:])
        return _Entry(parts[1], int(parts[2]), ssl)
    return None


def parse_interfaces(text: str) -> dict[str, _Entry]:
    """Server name -> its query address (master when no query line), from an interfaces file."""
    found: dict[str, dict[str, _Entry]] = {}
    current: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):  # sql.ini section
            current = stripped[1:-1].strip()
            found.setdefault(current, {})
            continue
        if current is not None and _SQLINI_LINE.match(stripped):
            key, _, value = stripped.partition("=")
            entry = _parse_sqlini_value(value)
            if entry is not None:
                found[current].setdefault(key.strip().lower(), entry)
            continue
        if not line[0].isspace():  # a server's header line: NAME [retries [delay]]
            current = stripped.split()[0]
            found.setdefault(current, {})
            continue
        if current is None:
            continue
        tokens = stripped.split()
        entry = _parse_service_line(tokens)
        if entry is not None:
            found[current].setdefault(tokens[0].lower(), entry)
    result = {}
    for name, services in found.items():
        entry = services.get("query") or services.get("master")
        if entry is not None:
            result[name] = entry
    return result


def parse_freetds_conf(text: str) -> dict[str, dict[str, str]]:
    """freetds.conf sections (names lowercased) -> their settings (keys lowercased)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and "]" in line:
            current = sections.setdefault(line[1:line.index("]")].strip().lower(), {})
            continue
        if current is None or "=" not in line:
            continue
        key, _, value = line.partition("=")
        current[" ".join(key.lower().split())] = value.strip()
    return sections


def _freetds_entry(text: str, server: str) -> _Entry | None:
    sections = parse_freetds_conf(text)
    sect = sections.get(server.lower())
    if sect is None or not sect.get("host"):
        return None
    port_text = sect.get("port") or sections.get("global", {}).get("port") or str(DEFAULT_FREETDS_PORT)
    if not port_text.isdigit():
        raise ServerLookupError(f"freetds.conf section [{server}] has port {port_text!r}, not a number")
    ssl = sect.get("encryption", "").lower() in ("require", "required", "strict")
    return _Entry(sect["host"], int(port_text), ssl)


def default_home_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("sybar", appauthor=False))


def candidate_files(
    *,
    interfaces: str | None = None,
    sybase_dir: str | None = None,
    home: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[tuple[str, str, Path | None]]:
    """(kind, how it was chosen, path) in lookup order; path None when the variable is unset."""
    env = os.environ if env is None else env
    out: list[tuple[str, str, Path | None]] = []
    if interfaces:
        out.append(("interfaces", "-I", Path(interfaces).expanduser()))
    if sybase_dir:
        out.append(("interfaces", "-y", Path(sybase_dir).expanduser() / "interfaces"))
    elif env.get("SYBASE"):
        out.append(("interfaces", "$SYBASE", Path(env["SYBASE"]).expanduser() / "interfaces"))
    else:
        out.append(("interfaces", "$SYBASE", None))
    if home:
        out.append(("interfaces", "--home", Path(home).expanduser() / "interfaces"))
    elif env.get("SYBAR_HOME"):
        out.append(("interfaces", "$SYBAR_HOME", Path(env["SYBAR_HOME"]).expanduser() / "interfaces"))
    if env.get("FREETDSCONF"):
        out.append(("freetds", "$FREETDSCONF", Path(env["FREETDSCONF"]).expanduser()))
    else:
        out.append(("freetds", "$FREETDSCONF", None))
    out.append(("interfaces", "sybar's default home", default_home_dir() / "interfaces"))
    return out


def resolve_server(
    server: str,
    *,
    interfaces: str | None = None,
    sybase_dir: str | None = None,
    home: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Address:
    """The host and port of ``server``; ServerLookupError naming every place looked at."""
    looked: list[str] = []
    seen: set[Path] = set()
    for kind, how, path in candidate_files(interfaces=interfaces, sybase_dir=sybase_dir, home=home, env=env):
        if path is None:
            looked.append(f"{how} (not set)")
            continue
        key = path.resolve() if path.exists() else path
        if key in seen:
            continue
        seen.add(key)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            looked.append(f"{path} ({how}: no such file)")
            continue
        except OSError as e:
            looked.append(f"{path} ({how}: cannot read: {e.strerror})")
            continue
        if kind == "freetds":
            entry = _freetds_entry(text, server)
        else:
            entry = parse_interfaces(text).get(server)
        if entry is None:
            looked.append(f"{path} ({how}: no entry for {server})")
            continue
        if entry.ssl:
            raise ServerLookupError(
                f"the entry for server {server} in {path} asks for ssl, and sybar isql speaks plain "
                "TDS only: add an entry without ssl, or use SAP's isql for that server")
        return Address(server, entry.host, entry.port, str(path), entry.ssl)
    raise ServerLookupError(
        f"server {server} is not in any interfaces file; looked at: " + "; ".join(looked)
        + ". Start the dataserver with `sybar serve` (it writes HOME/interfaces), "
        "or name a file that lists the server with -I FILE.")
