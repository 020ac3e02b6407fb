"""The storage unit interface: where a media server keeps backup objects.

A storage unit holds flat, named, immutable objects (one per stripe). Writing
is two-phase: ``create(name)`` returns an :class:`ObjectWriter` whose bytes go
to a temporary name, and only ``commit()`` makes the object visible under its
name (durably: a disk unit fsyncs before and after the rename); ``abort()``
removes the temporary. An object store (S3 multipart upload: create = start
the upload, commit = complete it, abort = abort it) fits the same shape.

Object names are validated here, once, for every unit: NetBackup-style names
(``SYBAR.mydb.D.0.24312.25-11-2026.14:05:25``) of ASCII letters, digits and
``._:-``, not starting with ``.``, at most 200 characters. Nothing else ever
reaches a file system path or an object key.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from engine.jobs.status import BACKUP_FAILED, StatusError

MAX_NAME = 200
_NAME_RE = re.compile(r"[A-Za-z0-9_:.-]+", re.ASCII)
_UNIT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)


@dataclass(frozen=True)
class ObjectInfo:
    """A committed object: its name, size in bytes, modification time (Unix seconds)."""

    name: str
    size: int
    mtime: float
    unit: str = ""  # the storage unit holding it, when the lister knows
    #: WORM unlock time (Unix seconds) from the unit's own lock record; None: not locked.
    #: Only ``stat`` reads lock records (listings leave it None).
    locked_until: float | None = None

    def to_json(self) -> dict:
        out = {"name": self.name, "size": self.size, "mtime": self.mtime, "unit": self.unit}
        if self.locked_until is not None:
            out["locked_until"] = self.locked_until
        return out

    @classmethod
    def from_json(cls, obj: dict) -> ObjectInfo:
        locked = obj.get("locked_until")
        return cls(
            str(obj["name"]),
            int(obj["size"]),
            float(obj["mtime"]),
            str(obj.get("unit", "")),
            None if locked is None else float(locked),
        )


@dataclass(frozen=True)
class TemporaryInfo:
    """A temporary (uncommitted) object: a store in progress or the leftover of one
    that died. ``id`` is what ``remove_temporary`` takes; ``in_use`` is True while
    a writer (in any process) still holds it, so cleanup must leave it alone."""

    id: str
    name: str  # the object it was going to become
    size: int
    mtime: float
    in_use: bool
    unit: str = ""

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "size": self.size,
            "mtime": self.mtime,
            "in_use": self.in_use,
            "unit": self.unit,
        }

    @classmethod
    def from_json(cls, obj: dict) -> TemporaryInfo:
        return cls(
            str(obj["id"]),
            str(obj["name"]),
            int(obj["size"]),
            float(obj["mtime"]),
            bool(obj["in_use"]),
            str(obj.get("unit", "")),
        )


@runtime_checkable
class ObjectWriter(Protocol):
    """Bytes of one object being stored. One coroutine at a time: await each
    write before the next (that await is the back-pressure)."""

    name: str

    async def write(self, data: bytes) -> None: ...

    async def commit(self) -> ObjectInfo:
        """Make the object durable and visible under its name."""

    async def abort(self) -> None:
        """Discard what was written (the temporary is removed). Never raises;
        does nothing after commit()."""


@runtime_checkable
class ObjectReader(Protocol):
    name: str
    size: int

    async def read(self, n: int) -> bytes:
        """Up to n bytes; b"" at the end of the object."""

    async def close(self) -> None: ...


@runtime_checkable
class StorageUnit(Protocol):
    name: str

    async def create(self, name: str) -> ObjectWriter:
        """A writer for a new object; refuses a name that already exists."""

    async def open(self, name: str) -> ObjectReader:
        """A reader of a committed object (StatusError 2850 when there is none)."""

    async def remove(self, name: str) -> bool:
        """Remove a committed object; False when there was none. Refuses (StatusError
        88) while the object is WORM-locked."""

    async def lock(self, name: str, until: float) -> float:
        """WORM-lock a committed object until ``until`` (Unix seconds): it cannot be
        removed or overwritten before then. A lock is only ever extended; a shorter
        one is refused (StatusError 88). Returns the unlock time in force."""

    async def locked_until(self, name: str) -> float | None:
        """The unlock time of an object's WORM lock (None: no lock record)."""

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """The committed objects whose names start with prefix, in no set order."""

    async def stat(self, name: str) -> ObjectInfo | None: ...

    async def temporaries(self) -> list[TemporaryInfo]:
        """Uncommitted objects (for ``sybar cleanup``)."""

    async def remove_temporary(self, temp: TemporaryInfo | str) -> bool:
        """Remove one temporary by its id; refuses one still in use."""


def validate_object_name(name: object, what: str = "backup object name") -> str:
    """Return name if it is a valid object name, else raise StatusError (6) saying why."""
    if not isinstance(name, str):
        raise StatusError(BACKUP_FAILED, f"the {what} must be a string, not {type(name).__name__}")
    shown = repr(name) if len(name) <= 80 else repr(name[:80]) + "..."
    if not name:
        raise StatusError(
            BACKUP_FAILED,
            f"the {what} is empty: give a name like SERVER.DATABASE.D.0.PID.dd-mm-yyyy.hh:mm:ss",
        )
    if len(name) > MAX_NAME:
        raise StatusError(
            BACKUP_FAILED, f"the {what} {shown} is {len(name)} characters long; the limit is {MAX_NAME}"
        )
    if name.startswith("."):
        raise StatusError(BACKUP_FAILED, f"the {what} {shown} starts with '.', which is not allowed")
    if not _NAME_RE.fullmatch(name):
        bad = sorted({c for c in name if not _NAME_RE.fullmatch(c)})
        raise StatusError(
            BACKUP_FAILED,
            f"the {what} {shown} contains {', '.join(repr(c) for c in bad[:5])}: only letters, digits "
            "and the characters . _ : - are allowed (no paths)",
        )
    return name


def validate_prefix(prefix: object) -> str:
    """A listing prefix: empty, or the start of a valid object name."""
    if prefix == "":
        return ""
    return validate_object_name(prefix, "object name prefix")


def validate_unit_name(name: object) -> str:
    if not isinstance(name, str) or not _UNIT_RE.fullmatch(name):
        raise StatusError(
            BACKUP_FAILED,
            f"storage unit name {name!r} is not valid: use 1 to 64 letters, digits and . _ -, "
            "starting with a letter or digit",
        )
    return name
