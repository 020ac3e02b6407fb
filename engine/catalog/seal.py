"""The tamper-evident catalog: image records signed with HMAC-SHA256 in a hash chain.

Every change to a complete image (its commit, a change of its expiration, its
removal) appends one entry to ``seal_log``, in commit order::

    seq, backup_id, action (commit | expiration | remove),
    expiration, unlock_time,           in clear, so a check can say what changed
    digest = SHA-256/128 of the sealed fields || SHA-256/128 of its object records
    mac    = HMAC-SHA256(key, seq, action, backup_id, expiration, unlock_time, digest, mac of entry seq-1)

The image row points at its latest entry (``images.seal_seq``). The sealed
fields are the image's identity and content (backup id, client, dataserver,
database, type, policy, schedule, backup time, dump id, stripes, size, storage
unit, log-chain facts) and, per object, its stripe, name, storage unit, sizes,
checksum and WORM unlock time. Not sealed: the verify status and time (a
verify may rewrite them) and the state of pending or failed images (never
listed, never restored).

``seal_state`` keeps two signed records: ``anchor`` (the key's id, when the
chain began) and ``head`` (last seq, its mac, how many complete images the
chain says exist). A check compares the head with the log and the images
table (fast: a few indexed queries), and a deep check recomputes every digest
and every mac (about a million images in the time printed by
tests/catalog/test_catalog_seal_scale.py).

The key: 32 random bytes, hex, in the OS keyring under service
``sybar-catalog-seal``, user = the home's path; created at first use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from engine.jobs.status import SYSTEM_ERROR, StatusError

KEYRING_SERVICE = "sybar-catalog-seal"
HEAD_SERVICE = "sybar-catalog-seal-head"
ZERO_MAC = b"\0" * 32

#: image columns covered by the fields digest (expiration and unlock_time are sealed in clear)
SEALED_FIELDS = (
    "backup_id", "client", "dataserver", "database", "dump_type", "policy", "schedule", "schedule_type",
    "keyword", "backup_time", "compression", "job_id", "dump_id", "stripes", "kbytes", "storage_unit",
    "lsn", "first_lsn", "last_lsn", "first_commit", "last_commit", "instance_id", "follows", "standby",
)  # fmt: skip
#: object columns covered by the objects digest, in stripe order
SEALED_OBJECT_FIELDS = ("stripe", "name", "storage_unit", "bytes", "raw_bytes", "checksum", "unlock_time")


def catalog_key(home_root: Path | str) -> tuple[bytes, bool]:
    """This home's catalog seal key from the OS keyring, made on first use.
    Returns (key, created_now). StatusError 130 when no keyring is usable."""
    from engine.secrets import _backend, _keyring_failed

    user = str(Path(home_root).resolve())
    kr = _backend()
    try:
        stored = kr.get_password(KEYRING_SERVICE, user)
    except Exception as e:
        raise _keyring_failed("reading the catalog seal key from the keyring", e) from None
    if stored:
        try:
            key = bytes.fromhex(stored)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise StatusError(
                SYSTEM_ERROR,
                f"the keyring entry {KEYRING_SERVICE!r} / {user!r} does not hold a 32-byte hex catalog seal key; "
                "restore it from your keyring backup (the catalog cannot be checked without it)",
            )
        return key, False
    key = secrets.token_bytes(32)
    try:
        kr.set_password(KEYRING_SERVICE, user, key.hex())
    except Exception as e:
        raise _keyring_failed("storing the catalog seal key in the keyring", e) from None
    return key, True


def _canon(values: Iterable[Any]) -> bytes:
    """An unambiguous encoding of SQLite values (str, int, float, None, bytes): Python's repr
    of the tuple (strings quoted and escaped, floats exact). Always computed from values
    read back from the catalog, so sealing and checking see the same types."""
    return repr(tuple(values)).encode("ascii", "backslashreplace")


def fields_digest(row: Sequence[Any]) -> bytes:
    """row: the SEALED_FIELDS values in order (standby as 0/1 or bool)."""
    vals = list(row)
    vals[-1] = 1 if vals[-1] else 0
    return hashlib.sha256(b"sybar-image-2" + _canon(vals)).digest()[:16]


def objects_digest(objects: Iterable[Sequence[Any]]) -> bytes:
    """objects: SEALED_OBJECT_FIELDS tuples in stripe order."""
    h = hashlib.sha256(b"sybar-objects-2")
    for o in objects:
        h.update(_canon(o))
        h.update(b"\n")
    return h.digest()[:16]


class Sealer:
    """Computes and checks the macs of one catalog's key (never logs or shows the key)."""

    def __init__(self, key: bytes):
        if not isinstance(key, bytes | bytearray) or len(key) < 16:
            raise ValueError("a catalog seal key is at least 16 bytes")
        self._key = bytes(key)
        self.key_id = hmac.new(self._key, b"sybar catalog seal key id", hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Sealer(key_id={self.key_id})"

    def entry_mac(
        self,
        seq: int,
        action: str,
        backup_id: str,
        expiration: float | None,
        unlock_time: float | None,
        digest: bytes,
        prev_mac: bytes,
    ) -> bytes:
        msg = b"sybar-seal-2" + _canon((seq, action, backup_id, expiration, unlock_time)) + digest + prev_mac
        return hmac.digest(self._key, msg, "sha256")

    def sign_state(self, name: str, value: dict[str, Any]) -> str:
        body = {k: v for k, v in value.items() if k != "sig"}
        msg = b"sybar-seal-state-1" + name.encode() + json.dumps(sorted(body.items())).encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def state_ok(self, name: str, value: dict[str, Any]) -> bool:
        sig = value.get("sig")
        return isinstance(sig, str) and hmac.compare_digest(sig, self.sign_state(name, value))

    @staticmethod
    def same(a: bytes | None, b: bytes | None) -> bool:
        return a is not None and b is not None and hmac.compare_digest(bytes(a), bytes(b))


class KeyringHead:
    """The chain's head (last seq and its mac) kept outside the catalog file, in the OS
    keyring (service ``sybar-catalog-seal-head``, user = the home's path), written after
    each sealed change: a catalog file put back from an older copy ends before it."""

    def __init__(self, home_root: Path | str):
        self.user = str(Path(home_root).resolve())

    def read(self) -> tuple[int, str] | None:
        from engine.secrets import _backend

        try:
            text = _backend().get_password(HEAD_SERVICE, self.user)
            if not text:
                return None
            value = json.loads(text)
            return int(value["seq"]), str(value["mac"])
        except Exception:  # unreadable: the other checks still run
            return None

    def write(self, seq: int, mac_hex: str) -> None:
        from engine.secrets import _backend

        try:
            _backend().set_password(HEAD_SERVICE, self.user, json.dumps({"seq": seq, "mac": mac_hex}))
        except Exception:  # the next sealed change or open writes it again
            pass
