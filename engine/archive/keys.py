"""A home's data keys (encryption at rest) in the OS keyring, and nowhere else.

One keyring entry per key, one pointer to the home's current key::

    service  ``sybar:data-key:HOME``   (HOME = the home's absolute path)
    username KEY_ID                     secret: the 256-bit key, base64
    username ``current``                secret: the KEY_ID new dumps use

Dumps encrypt with the current key (created on first need); loads find the
key a dump names by its id, so keys imported for old backups stay usable
after a newer one became current. Every call blocks (Secret Service over
D-Bus): the daemon calls these from a worker thread, never on its loop.
Failures are StatusError 130 with engine.secrets' sentence about the keyring.
"""

from __future__ import annotations

import base64
import binascii
import threading
from pathlib import Path

from engine.backupserver.cipher import KEY_BYTES, DataKey, key_id, new_key
from engine.jobs.status import SYSTEM_ERROR, StatusError
from engine.secrets import SERVICE_PREFIX, _backend, _keyring_failed, read_entry

CURRENT = "current"
EXPORT_HEADER = "# sybar data key"

EXPORT_WARNING = (
    "WARNING: this is the key that decrypts every encrypted backup of this sybar home. Anyone who holds it "
    "and a copy of the backups can read the databases in them. Keep it offline and apart from the backups "
    "(a password manager or a safe); without it, after losing this machine's keyring, the encrypted "
    "backups cannot be restored."
)

_lock = threading.Lock()  # creating the first key: once per process


def service(home_root: str | Path) -> str:
    return f"{SERVICE_PREFIX}data-key:{Path(home_root)}"


def _get(home_root, user: str) -> str | None:
    kr = _backend()
    try:
        return read_entry(kr, service(home_root), user)
    except Exception as e:
        raise _keyring_failed("reading the data key from the keyring", e) from None


def _set(home_root, user: str, value: str) -> None:
    kr = _backend()
    try:
        kr.set_password(service(home_root), user, value)
    except Exception as e:
        raise _keyring_failed("storing the data key in the keyring", e) from None


def _decode(text: str | None) -> bytes | None:
    if not text:
        return None
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == KEY_BYTES else None


def lookup(home_root, kid: str) -> bytes | None:
    """The data key with id kid, or None when this home's keyring entry has none."""
    key = _decode(_get(home_root, kid))
    return key if key is not None and key_id(key) == kid else None


def current(home_root) -> DataKey | None:
    kid = _get(home_root, CURRENT)
    if not kid:
        return None
    key = lookup(home_root, kid.strip())
    return None if key is None else DataKey.of(key)


def ensure(home_root) -> DataKey:
    """The home's current data key; a new random one on first need."""
    with _lock:
        dk = current(home_root)
        if dk is None:
            dk = DataKey.of(new_key())
            _store(home_root, dk)
        return dk


def _store(home_root, dk: DataKey) -> None:
    _set(home_root, dk.id, base64.b64encode(dk.key).decode())
    _set(home_root, CURRENT, dk.id)


def install(home_root, key: bytes) -> DataKey:
    """Store an imported key and make it the home's current key."""
    dk = DataKey.of(key)
    with _lock:
        _store(home_root, dk)
    return dk


def export_text(dk: DataKey, home_root) -> str:
    return (
        f"{EXPORT_HEADER} (AES-256-GCM) of the home {home_root}\n"
        f"# {EXPORT_WARNING}\n"
        f"key-id: {dk.id}\n"
        f"key: {base64.b64encode(dk.key).decode()}\n"
    )


def parse_export(text: str, where: str) -> bytes:
    """The key in a file written by `sybar key export`; StatusError 20 otherwise."""
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    key = _decode(fields.get("key"))
    if key is None:
        raise StatusError(
            20, f"{where} holds no sybar data key (a 'key:' line with 32 base64-encoded bytes): give the file "
                "that `sybar key export` wrote"
        )
    kid = fields.get("key-id")
    if kid and kid != key_id(key):
        raise StatusError(
            20, f"{where} is damaged: its key does not have the id {kid} the file names (it has {key_id(key)})"
        )
    return key


def no_key_error(home_root) -> StatusError:
    return StatusError(
        SYSTEM_ERROR,
        f"the sybar home {home_root} has no data key yet: it gets one with its first encrypted backup, "
        "or import one with `sybar key import --file FILE`",
    )
