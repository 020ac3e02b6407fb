"""A storage unit that keeps objects as files in one directory.

Layout of a unit at PATH (folders 0700, files 0600)::

    PATH/NAME                           committed objects, one file each
    PATH/.incoming/NAME.<12 hex>.part   objects being written (or left by a crash)
    PATH/.locks/NAME                    WORM lock record of object NAME (JSON, 0600)

WORM: ``lock(name, until)`` writes the object's lock record (unlock time,
written to a temporary, fsynced, renamed, directory fsynced) and makes the
object read-only (0400). Until the unlock time, ``remove`` refuses the object
and ``create`` refuses its name (StatusError 88), whatever the catalog says; a
lock is only ever extended. The unit reads the record on every remove, create
and stat, so it enforces the lock on its own. Limit: a file mode and a lock
record stop sybar and mistakes, not an attacker with the account's rights on
the directory; real immutability on disk needs the file system's immutable
attribute (``chattr +i``, root) or an object-lock store.

A writer creates its temporary with O_EXCL and holds an exclusive flock(2) on
it until it is committed or aborted; ``temporaries()`` reports a temporary
nobody holds a lock on as ``in_use=False`` (its writer died: a kill -9, a
crash, a power cut), which is what ``sybar cleanup`` removes. Commit =
write out the buffer, fsync the file, link it under its final name (link(2)
fails rather than overwrite an existing object, where rename(2) would replace
it), unlink the temporary, fsync both directories. After a crash there is
either the whole object under its name or a temporary, never a partial object.

Every blocking call runs on a worker thread (a pool shared by all disk
units), so the event loop never waits for a disk; writes are gathered to
about WRITE_CHUNK bytes per system call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import json
import math
import os
import re
import stat
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.backupserver.devices import media_error
from engine.jobs.status import MEDIA_WRITE_ERROR, RESTORE_ERROR, WORM_LOCK_ERROR, StatusError
from engine.storage.base import (
    MAX_NAME,
    ObjectInfo,
    TemporaryInfo,
    validate_object_name,
    validate_prefix,
    validate_unit_name,
)

#: Bytes gathered before one write(2); also the largest read(2).
WRITE_CHUNK = 1 << 20
INCOMING = ".incoming"
LOCKS = ".locks"
#: Entries examined per worker-thread call while listing.
LIST_BATCH = 256

_TEMP_RE = re.compile(r"(?P<name>[A-Za-z0-9_:.-]+)\.(?P<tag>[0-9a-f]{12})\.part", re.ASCII)
_NAME_RE = re.compile(r"[A-Za-z0-9_:-][A-Za-z0-9_:.-]*", re.ASCII)

_ADVICE = {
    errno.ENOSPC: "free space on the storage unit's file system or send backups to another storage unit",
    errno.EDQUOT: "raise the disk quota on the storage unit's file system or use another storage unit",
    errno.EROFS: "the storage unit's file system is read-only: remount it read-write or use another storage unit",
    errno.EACCES: "give the media server write permission on the storage unit's directory",
    errno.EPERM: "give the media server write permission on the storage unit's directory",
    errno.EIO: "the disk reported an I/O error: check the device and its system log",
    errno.ENOENT: "the storage unit's directory is gone: recreate it or correct the unit's path",
}

T = TypeVar("T")

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _io_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="sybar-storage")
        return _pool


def _submit(fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
    return _io_pool().submit(fn, *args)


async def _call(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.wrap_future(_submit(fn, *args))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _when(t: float) -> str:
    if not math.isfinite(t):
        return "an unknown time (its lock record cannot be read, so it stays locked)"
    from datetime import datetime

    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def _is_locked(path: Path) -> bool | None:
    """True when some open file description holds a flock on path; None when it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases our probe lock
    return False


class DiskObjectWriter:
    """Writes one object to a temporary file of a DiskStorageUnit (see the module doc).

    Not for concurrent use: await each write before the next. ``_write_some``
    is the one place bytes reach the disk (tests override it to simulate a
    full or read-only file system).
    """

    def __init__(self, unit: DiskStorageUnit, name: str, fd: int, tmp: Path, final: Path):
        self.unit = unit
        self.name = name
        self.tmp = tmp
        self.final = final
        self.written = 0
        self._fd = fd
        self._buf = bytearray()
        self._state = "open"  # open | committed | aborted
        self._info: ObjectInfo | None = None
        self._linked = False  # the final name exists (commit got that far)
        self._inflight: concurrent.futures.Future | None = None

    # -- the hook
    def _write_some(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    # -- helpers
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn on the pool, remembering the call so that abort() never closes
        the descriptor under a write that is still running."""
        cf = _submit(fn, *args)
        self._inflight = cf
        return await asyncio.wrap_future(cf)

    def _write_all(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = self._write_some(self._fd, view)
            if n <= 0:
                raise OSError(errno.EIO, "write returned no progress")
            view = view[n:]
            self.written += n

    def _error(self, action: str, err: OSError) -> StatusError:
        return media_error(
            self.tmp,
            f"storage unit {self.unit.name} ({self.unit.path}): {action} object {self.name} "
            f"(after {self.written} bytes) to",
            err,
            MEDIA_WRITE_ERROR,
            _ADVICE.get(err.errno or 0, "check the storage unit's directory and retry"),
        )

    def _check_open(self) -> None:
        if self._state != "open":
            raise StatusError(
                MEDIA_WRITE_ERROR,
                f"object {self.name} on storage unit {self.unit.name} is {self._state}: nothing more can be written",
            )

    async def _flush(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._run(self._write_all, data)
        except OSError as e:
            err = self._error("writing", e)
            await self.abort()
            raise err from e

    # -- API
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_open()
        if not data:
            return
        chunk = self.unit.write_chunk
        if not self._buf and len(data) >= chunk:
            await self._flush(data)
            return
        self._buf += data
        if len(self._buf) >= chunk:
            buf, self._buf = self._buf, bytearray()
            await self._flush(buf)

    async def commit(self) -> ObjectInfo:
        if self._state == "committed" and self._info is not None:
            return self._info
        self._check_open()
        if self._buf:
            buf, self._buf = self._buf, bytearray()
            await self._flush(buf)
        try:
            info = await self._run(self._commit_sync)
        except OSError as e:
            err = self._error("committing", e)
            await self.abort()
            raise err from e
        except BaseException:
            await self.abort()
            raise
        self._state = "committed"
        self._info = info
        return info

    def _commit_sync(self) -> ObjectInfo:
        os.fsync(self._fd)
        st = os.fstat(self._fd)
        # The flock stays held until the temporary's name is gone, so cleanup
        # never sees it unlocked while it is being committed.
        try:
            os.link(self.tmp, self.final)
            self._linked = True
        except FileExistsError:
            raise self.unit._exists(self.name) from None
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
                raise
            # a file system without hard links: rename after a check
            if os.path.lexists(self.final):
                raise self.unit._exists(self.name) from None
            os.rename(self.tmp, self.final)
            self._linked = True
        else:
            os.unlink(self.tmp)
        os.close(self._fd)
        self._fd = -1
        _fsync_dir(self.unit.path)
        _fsync_dir(self.unit.incoming)
        return ObjectInfo(self.name, st.st_size, st.st_mtime, self.unit.name)

    async def abort(self) -> None:
        if self._state != "open":
            return
        self._state = "aborted"
        self._buf = bytearray()
        cf = self._inflight
        if cf is not None and not cf.done():
            # a write still runs on the pool: let it end before closing its descriptor
            with contextlib.suppress(BaseException):
                await asyncio.wrap_future(cf)
        try:
            await _call(self._discard_sync)
        except BaseException:  # cancelled again: the caller goes on, cleanup finds the temporary
            pass

    def _discard_sync(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
        if self._linked:  # a commit that failed after linking: the object must not stay visible
            with contextlib.suppress(OSError):
                os.unlink(self.final)
            self._linked = False

    def __repr__(self) -> str:
        return f"DiskObjectWriter({self.unit.name!r}, {self.name!r}, {self._state})"


class DiskObjectReader:
    def __init__(self, unit: DiskStorageUnit, name: str, fd: int, size: int, path: Path):
        self.unit = unit
        self.name = name
        self.size = size
        self.path = path
        self.read_bytes = 0
        self._fd = fd
        self._inflight: concurrent.futures.Future | None = None

    async def read(self, n: int) -> bytes:
        if self._fd < 0:
            raise StatusError(RESTORE_ERROR, f"object {self.name} on storage unit {self.unit.name} is closed")
        n = max(0, min(n, WRITE_CHUNK * 4))
        cf = _submit(os.read, self._fd, n)
        self._inflight = cf
        try:
            data = await asyncio.wrap_future(cf)
        except OSError as e:
            raise media_error(
                self.path,
                f"storage unit {self.unit.name}: reading object {self.name} (at byte {self.read_bytes}) from",
                e,
                RESTORE_ERROR,
                _ADVICE.get(e.errno or 0, "check the storage unit's directory and retry"),
            ) from e
        self.read_bytes += len(data)
        return data

    async def close(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        cf = self._inflight
        if cf is not None and not cf.done():
            with contextlib.suppress(BaseException):
                await asyncio.wrap_future(cf)
        with contextlib.suppress(OSError):
            os.close(fd)


class DiskStorageUnit:
    """Objects as files under ``path`` (created 0700 on first use)."""

    writer_class: type[DiskObjectWriter] = DiskObjectWriter

    def __init__(self, name: str, path: str | os.PathLike, *, write_chunk: int = WRITE_CHUNK):
        self.name = validate_unit_name(name)
        self.path = Path(os.path.abspath(path))
        self.incoming = self.path / INCOMING
        self.locks = self.path / LOCKS
        self.write_chunk = write_chunk
        self._ready = False

    def __repr__(self) -> str:
        return f"DiskStorageUnit({self.name!r}, {str(self.path)!r})"

    def describe(self) -> str:
        return f"disk storage unit {self.name} at {self.path}"

    # -- helpers
    def _exists(self, name: str) -> StatusError:
        return StatusError(
            MEDIA_WRITE_ERROR,
            f"storage unit {self.name} already holds an object named {name}; backup objects are never "
            "overwritten: store it under a new name",
        )

    # -- WORM locks
    def _read_lock(self, name: str) -> float | None:
        """The unlock time in an object's lock record; None without one; math.inf
        when the record is there but cannot be read (it then stays locked)."""
        try:
            with open(self.locks / name, "rb") as f:
                data = f.read(4096)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return math.inf
        try:
            until = float(json.loads(data)["unlock_time"])
        except (ValueError, KeyError, TypeError):
            return math.inf
        return until if not math.isnan(until) else math.inf

    def _locked(self, name: str, until: float, action: str) -> StatusError:
        return StatusError(
            WORM_LOCK_ERROR,
            f"storage unit {self.name}: object {name} is WORM-locked until {_when(until)}; it cannot be "
            f"{action} before its unlock time (a lock can only be extended)",
        )

    def _check_unlocked(self, name: str, action: str) -> None:
        until = self._read_lock(name)
        if until is not None and until > time.time():
            raise self._locked(name, until, action)

    def _lock_sync(self, name: str, until: float) -> float:
        path = self.path / name
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise StatusError(
                WORM_LOCK_ERROR, f"storage unit {self.name} holds no object named {name} to WORM-lock"
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise StatusError(WORM_LOCK_ERROR, f"storage unit {self.name}: {name} is not a backup object")
        current = self._read_lock(name)
        if current is not None and until < current:
            raise StatusError(
                WORM_LOCK_ERROR,
                f"storage unit {self.name}: object {name} is WORM-locked until {_when(current)}; its lock "
                f"cannot be shortened to {_when(until)} (a lock can only be extended)",
            )
        if current is None or until > current:
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.locks, 0o700)
            record = {"object": name, "unit": self.name, "unlock_time": until, "unlock": _when(until),
                      "set": time.time()}  # fmt: skip
            tmp = self.locks / f".{name}.{uuid.uuid4().hex[:12]}.tmp"
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600
            )
            try:
                os.write(fd, json.dumps(record).encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.locks / name)
            _fsync_dir(self.locks)
        if stat.S_IMODE(st.st_mode) != 0o400:
            os.chmod(path, 0o400)  # read-only from now on
        return until if current is None else max(until, current)

    async def lock(self, name: str, until: float) -> float:
        """WORM-lock a committed object until ``until`` (see the module doc)."""
        validate_object_name(name)
        until = float(until)
        if math.isnan(until):
            raise StatusError(WORM_LOCK_ERROR, f"the unlock time for object {name} is not a number")
        await self._ensure()
        try:
            return await _call(self._lock_sync, name, until)
        except OSError as e:
            raise media_error(
                self.locks,
                f"storage unit {self.name}: WORM-locking object {name} in",
                e,
                WORM_LOCK_ERROR,
                _ADVICE.get(e.errno or 0, "check the storage unit's directory and retry"),
            ) from e

    async def locked_until(self, name: str) -> float | None:
        validate_object_name(name)
        return await _call(self._read_lock, name)

    def _make_dirs(self) -> None:
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.incoming, 0o700)
        if stat.S_IMODE(os.stat(self.incoming).st_mode) != 0o700:
            os.chmod(self.incoming, 0o700)

    async def _ensure(self) -> None:
        if self._ready:
            return
        try:
            await _call(self._make_dirs)
        except OSError as e:
            raise media_error(
                self.path,
                f"storage unit {self.name}: preparing the directory",
                e,
                MEDIA_WRITE_ERROR,
                _ADVICE.get(e.errno or 0, "check the storage unit's path"),
            ) from e
        self._ready = True

    async def prepare(self) -> None:
        """Create the unit's directories now (else on first use); StatusError (84) when it cannot."""
        await self._ensure()

    # -- writing
    async def create(self, name: str) -> DiskObjectWriter:
        validate_object_name(name)
        await self._ensure()
        final = self.path / name
        tmp = self.incoming / f"{name}.{uuid.uuid4().hex[:12]}.part"

        def open_tmp() -> int:
            self._check_unlocked(name, "overwritten")
            if os.path.lexists(final):
                raise self._exists(name)
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            return fd

        cf = _submit(open_tmp)
        try:
            fd = await asyncio.wrap_future(cf)
        except asyncio.CancelledError:
            cf.add_done_callback(lambda f: _drop_tmp(f, tmp))
            raise
        except OSError as e:
            raise media_error(
                tmp,
                f"storage unit {self.name} ({self.path}): creating object {name} as",
                e,
                MEDIA_WRITE_ERROR,
                _ADVICE.get(e.errno or 0, "check the storage unit's directory and retry"),
            ) from e
        return self.writer_class(self, name, fd, tmp, final)

    # -- reading
    async def open(self, name: str) -> DiskObjectReader:
        validate_object_name(name)
        path = self.path / name

        def open_obj() -> tuple[int, int]:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise FileNotFoundError(errno.ENOENT, "not a regular file")
            except BaseException:
                os.close(fd)
                raise
            return fd, st.st_size

        try:
            fd, size = await _call(open_obj)
        except (FileNotFoundError, NotADirectoryError):
            raise StatusError(
                RESTORE_ERROR,
                f"storage unit {self.name} ({self.path}) holds no object named {name}: check the name "
                "in the catalog (sybar list) or the storage unit the image was written to",
            ) from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise StatusError(
                    RESTORE_ERROR, f"storage unit {self.name}: {path} is a symbolic link, not a backup object"
                ) from None
            raise media_error(
                path,
                f"storage unit {self.name}: opening object {name} at",
                e,
                RESTORE_ERROR,
                _ADVICE.get(e.errno or 0, "check the storage unit's directory and retry"),
            ) from e
        return DiskObjectReader(self, name, fd, size, path)

    async def stat(self, name: str) -> ObjectInfo | None:
        validate_object_name(name)
        path = self.path / name
        try:
            st = await _call(os.lstat, path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise media_error(
                path, f"storage unit {self.name}: examining object {name} at", e, RESTORE_ERROR
            ) from e
        if not stat.S_ISREG(st.st_mode):
            return None
        locked = await _call(self._read_lock, name)
        return ObjectInfo(name, st.st_size, st.st_mtime, self.name, locked)

    async def remove(self, name: str) -> bool:
        validate_object_name(name)
        path = self.path / name

        def unlink() -> bool:
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return False
            if not stat.S_ISREG(st.st_mode):
                return False
            self._check_unlocked(name, "removed")
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False
            _fsync_dir(self.path)
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                os.unlink(self.locks / name)  # an expired lock goes with its object
                _fsync_dir(self.locks)
            return True

        try:
            return await _call(unlink)
        except OSError as e:
            raise media_error(
                path,
                f"storage unit {self.name}: removing object {name} at",
                e,
                MEDIA_WRITE_ERROR,
                _ADVICE.get(e.errno or 0, "check the storage unit's directory and retry"),
            ) from e

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        prefix = validate_prefix(prefix)
        try:
            it = await _call(os.scandir, self.path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise media_error(self.path, f"storage unit {self.name}: listing", e, RESTORE_ERROR) from e
        try:
            while True:
                batch = await _call(self._list_batch, it, prefix)
                if batch is None:
                    return
                for info in batch:
                    yield info
        finally:
            it.close()

    def _list_batch(self, it: Any, prefix: str) -> list[ObjectInfo] | None:
        out: list[ObjectInfo] = []
        for _ in range(LIST_BATCH):
            try:
                entry = next(it)
            except StopIteration:
                return out or None
            n = entry.name
            if len(n) > MAX_NAME or not n.startswith(prefix) or not _NAME_RE.fullmatch(n):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out.append(ObjectInfo(n, st.st_size, st.st_mtime, self.name))
        return out

    # -- leftovers
    async def temporaries(self) -> list[TemporaryInfo]:
        def scan() -> list[TemporaryInfo]:
            out: list[TemporaryInfo] = []
            try:
                entries = os.scandir(self.incoming)
            except FileNotFoundError:
                return out
            with entries:
                for entry in entries:
                    m = _TEMP_RE.fullmatch(entry.name)
                    if not m:
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    locked = _is_locked(Path(entry.path))
                    if locked is None:
                        continue
                    out.append(
                        TemporaryInfo(entry.name, m["name"], st.st_size, st.st_mtime, locked, self.name)
                    )
            return out

        try:
            return await _call(scan)
        except OSError as e:
            raise media_error(
                self.incoming, f"storage unit {self.name}: listing temporaries in", e, RESTORE_ERROR
            ) from e

    async def remove_temporary(self, temp: TemporaryInfo | str) -> bool:
        """Remove one temporary; False when it is gone already or a writer still holds it."""
        tid = temp.id if isinstance(temp, TemporaryInfo) else temp
        if not isinstance(tid, str) or not _TEMP_RE.fullmatch(tid) or tid.startswith("."):
            raise StatusError(
                MEDIA_WRITE_ERROR,
                f"{tid!r} is not the id of a temporary object on storage unit {self.name} "
                "(expected NAME.<12 hex digits>.part as temporaries() reports it)",
            )
        validate_object_name(_TEMP_RE.fullmatch(tid)["name"])  # type: ignore[index]
        path = self.incoming / tid

        def unlink() -> bool:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                return False
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False  # a writer is alive
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    return False
            finally:
                os.close(fd)
            _fsync_dir(self.incoming)
            return True

        try:
            return await _call(unlink)
        except OSError as e:
            raise media_error(
                path, f"storage unit {self.name}: removing temporary", e, MEDIA_WRITE_ERROR
            ) from e


def _drop_tmp(f: concurrent.futures.Future, tmp: Path) -> None:
    """A create() was cancelled while its temporary was being opened: close and remove it."""
    if f.cancelled() or f.exception() is not None:
        return
    with contextlib.suppress(OSError):
        os.close(f.result())
    with contextlib.suppress(OSError):
        os.unlink(tmp)
