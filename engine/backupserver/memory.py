"""Keep the data path's memory flat: fewer glibc malloc arenas.

Stripe threads allocate and free ~1 MiB buffers (pages read, compressed
blocks, frames) from several threads at once. glibc gives each thread its own
arena (up to 8 per core) and raises its mmap threshold after the first large
free, so those buffers end up spread over many arenas whose freed space is
kept, and RSS grows with the size of the dump. Two arenas per process keep
the same speed (the hot allocations are a few large blocks, not contention on
small ones) with less retained memory. A fixed mmap threshold would keep RSS
lowest but costs page faults on every buffer (about 1 s of CPU per GiB), so it
is not set. No-op where mallopt is missing (not glibc).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

M_ARENA_MAX = -8
ARENAS = 2

_done = False
_lock = threading.Lock()


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Once per process; True when glibc accepted it."""
    global _done
    with _lock:
        if _done:
            return True
        _done = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            return bool(libc.mallopt(M_ARENA_MAX, arenas))
        except (OSError, AttributeError):
            return False


def release_free_memory() -> None:
    """Give the memory a dump or load freed back to the system (glibc malloc_trim), so what one
    operation's buffers left in the arenas does not stay in the daemon's RSS. A few ms; no-op off glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
