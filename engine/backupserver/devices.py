"""Where stripes go and come from: the sink/source interface and plain files.

A dump writes each stripe to a StripeSink and calls ``commit()`` on all of
them only after every stripe is complete (``abort()`` otherwise); a load reads
each stripe from a StripeSource. The ``sybackup::`` archive API plugs in by
implementing the same two protocols. An optional ``name`` attribute (the
device string) is used in messages.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from engine.jobs.status import MEDIA_WRITE_ERROR, RESTORE_ERROR, StatusError


@runtime_checkable
class StripeSink(Protocol):
    def write(self, data: bytes) -> None: ...

    def commit(self) -> None:
        """Make the stripe durable and visible under its final name."""

    def abort(self) -> None:
        """Remove whatever was written; called instead of (or, for a dump that failed
        while other stripes were committing, after) commit. Must not raise."""


@runtime_checkable
class StripeSource(Protocol):
    def read(self, n: int) -> bytes:
        """Up to n bytes; b"" at end of stripe."""

    def close(self) -> None: ...


def describe(device: Any, index: int | None = None) -> str:
    """A device's name for messages: its ``name`` attribute, else 'stripe device N'."""
    name = getattr(device, "name", None)
    if name:
        return f"device '{name}'"
    return f"stripe device {index}" if index is not None else "stripe device"


_ADVICE = {
    errno.ENOSPC: "free space on that file system or dump to other devices (more stripes spread the space)",
    errno.EDQUOT: "raise the disk quota or dump to other devices",
    errno.ENOENT: "create the directory or correct the dump device path",
    errno.ENOTDIR: "correct the dump device path (a part of it is not a directory)",
    errno.EACCES: "give the sybar server write permission on that directory or choose another device",
    errno.EPERM: "give the sybar server write permission on that directory or choose another device",
    errno.EROFS: "the file system is read-only: choose another device",
    errno.EISDIR: "the device path names a directory: give a file name",
    errno.EIO: "the disk reported an I/O error: check the device and its system log",
}


def media_error(
    path: Path | str, action: str, err: OSError, status: int = MEDIA_WRITE_ERROR, advice: str | None = None
) -> StatusError:
    """StatusError for an OS error on a dump device: names the path, the OS reason, what to do."""
    reason = err.strerror or str(err)
    code = errno.errorcode.get(err.errno or 0, "")
    if advice is None:
        advice = _ADVICE.get(err.errno or 0, "check the device and retry")
    msg = f"{action} {path} failed: {reason}" + (f" ({code})" if code else "") + f"; {advice}"
    e = StatusError(status, msg)
    e.__cause__ = err
    return e


class FileSink:
    """A stripe file: written under a temporary name (mode 0600) beside the
    target, fsynced and renamed over the target on commit, removed on abort.

    The temporary file is created at construction, so a bad path fails before
    a dump starts. abort() after commit() removes the committed file: a dump
    whose other stripes failed leaves no stripe of itself behind.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.name = str(self.path)
        self.tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}.part")
        self.written = 0
        self._committed = False
        self._fd = -1
        if self.path.is_dir():
            raise media_error(
                self.path, "creating stripe file", OSError(errno.EISDIR, os.strerror(errno.EISDIR))
            )
        try:
            self._fd = os.open(
                self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600
            )
        except OSError as e:
            raise media_error(self.path, "creating stripe file", e) from e

    def write(self, data: bytes) -> None:
        if self._fd < 0:
            raise StatusError(MEDIA_WRITE_ERROR, f"stripe file {self.path} is already closed")
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
                self.written += n
        except OSError as e:
            raise media_error(self.path, f"writing stripe file (after {self.written} bytes)", e) from e

    def commit(self) -> None:
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.replace(self.tmp, self.path)
            self._committed = True
            dfd = os.open(self.path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            raise media_error(self.path, "committing stripe file", e) from e

    def abort(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
        if self._committed:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self._committed = False

    def __repr__(self) -> str:
        return f"FileSink({self.name!r})"


def file_sinks(paths: list[Path | str]) -> list[FileSink]:
    """FileSinks for all paths, or none: a failure aborts the ones already opened."""
    seen: dict[Path, int] = {}
    for i, p in enumerate(paths):
        key = Path(p).absolute()
        if key in seen:
            raise StatusError(
                MEDIA_WRITE_ERROR,
                f"stripe {seen[key]} and stripe {i} both name {p}: give every stripe its own device",
            )
        seen[key] = i
    sinks: list[FileSink] = []
    try:
        for p in paths:
            sinks.append(FileSink(p))
    except BaseException:
        for s in sinks:
            s.abort()
        raise
    return sinks


class FileSource:
    """A stripe file opened for reading."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.name = str(self.path)
        try:
            self._f = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as e:
            advice = (
                "check the device path: it must name a stripe file of the dump to load"
                if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR)
                else None
            )
            raise media_error(self.path, "opening stripe file", e, RESTORE_ERROR, advice) from e

    def read(self, n: int) -> bytes:
        try:
            return self._f.read(n)
        except OSError as e:
            raise media_error(self.path, "reading stripe file", e, RESTORE_ERROR) from e

    def close(self) -> None:
        self._f.close()

    def __repr__(self) -> str:
        return f"FileSource({self.name!r})"
