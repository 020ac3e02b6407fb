"""Helpers for the access tests: the host's non-loopback address, secrets and their forms, /proc scans, modes."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import stat
import subprocess
from pathlib import Path


def non_loopback_ipv4() -> str:
    """The first IPv4 address of this host that is not loopback (`ip -4 addr`); fails loudly if none."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=10).stdout
    for m in re.finditer(r"\binet (\d+\.\d+\.\d+\.\d+)/", out):
        if not ipaddress.ip_address(m.group(1)).is_loopback:
            return m.group(1)
    raise AssertionError(f"this host has no non-loopback IPv4 address (`ip -4 addr` says:\n{out}); the access "
                         "tests need one to check TLS off loopback")


# -- secrets in their printable forms ----------------------------------------------------------------
def forms(secret: bytes | str) -> set[bytes]:
    """The byte strings a secret could show up as: raw, hex (both cases), base64 (std/url, padded or not)."""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    out = {raw, raw.hex().encode(), raw.hex().upper().encode()}
    for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        out.add(enc)
        out.add(enc.rstrip(b"="))
    return {f for f in out if len(f) >= 8}


def find_any(data: bytes, needles: dict[str, set[bytes]]) -> list[str]:
    """Names of the secrets any of whose forms occur in data."""
    return [name for name, fs in needles.items() if any(f in data for f in fs)]


# -- processes ----------------------------------------------------------------------------------------
def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def descendants(roots: set[int]) -> set[int]:
    """The roots and every live process below one of them."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            pp = _ppid(int(entry))
            if pp is not None:
                parent[int(entry)] = pp
    found = set()
    for pid in parent:
        p, seen = pid, 0
        while p and seen < 64:
            if p in roots:
                found.add(pid)
                break
            p = parent.get(p)
            seen += 1
    return found


def read_proc(pid: int, what: str) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes()
    except OSError:
        return None


def comm(pid: int) -> str:
    data = read_proc(pid, "cmdline") or b""
    return " ".join(a.decode(errors="replace") for a in data.split(b"\0")[:3])


# -- file modes -----------------------------------------------------------------------------------------
def bad_modes(home: Path) -> list[str]:
    """Every path under the home that is not 0600 (file) or 0700 (folder); the exceptions allowed:
    0700 for the scripts sybar installs (they run), 0400 for a committed backup object (WORM)."""
    bad = []
    for root, dirs, files in os.walk(home):
        for d in dirs:
            path = Path(root) / d
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            if mode != 0o700:
                bad.append(f"folder {path.relative_to(home)} is {mode:o}")
        for f in files:
            path = Path(root) / f
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # a temporary that came and went
                continue
            mode = stat.S_IMODE(st.st_mode)
            allowed = {0o600}
            if path.parent.name == "scripts":
                allowed.add(0o700)
            if "storage" in path.relative_to(home).parts:
                allowed.add(0o400)
            if not stat.S_ISREG(st.st_mode) or mode not in allowed:
                bad.append(f"file {path.relative_to(home)} is {mode:o}")
    mode = stat.S_IMODE(os.stat(home).st_mode)
    if mode != 0o700:
        bad.append(f"the home itself is {mode:o}")
    return bad
