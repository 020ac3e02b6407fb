"""Taking a secret out of this process's environment, /proc/PID/environ included.

``os.environ.pop`` (unsetenv) only drops libc's pointer: the ``NAME=value``
bytes the kernel put on the stack at exec stay there, and
``/proc/PID/environ`` (readable by the same user, and by root) still shows
them for the life of the process. ``take_secret`` copies the value out and
overwrites it in place before unsetting it.
"""

from __future__ import annotations

import ctypes
import os


def _wipe_in_place(name: str) -> None:
    try:
        libc = ctypes.CDLL(None)
        environ = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
    except (OSError, ValueError, AttributeError):
        return
    prefix = name.encode() + b"="
    i = 0
    while True:
        addr = environ[i]
        if not addr:
            return
        entry = ctypes.string_at(addr)
        if entry.startswith(prefix):
            n = len(entry) - len(prefix)
            ctypes.memset(addr + len(prefix), 0, n)
        i += 1


def take_secret(name: str) -> str | None:
    """The variable's value, removed from os.environ, libc's environ and /proc/self/environ."""
    value = os.environ.get(name)
    if value is None:
        return None
    _wipe_in_place(name)
    os.environ.pop(name, None)
    return value
