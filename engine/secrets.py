"""Database passwords in the OS keyring, and nowhere else.

sybar never keeps a password in argv, the environment, a file, a log or a job
record (DESIGN.md §6). Each login's password is one keyring entry:

    service  ``sybar:SERVER``   (for example ``sybar:SYBAR``)
    username ``USER``           (for example ``sa``)

so ``secret-tool lookup service sybar:SYBAR username sa`` (libsecret) or the
desktop's password manager shows the same entry. ``sybar password set SERVER
USER`` stores one; ``sybar isql`` looks one up when it gets no ``-P``.

When the machine has no usable keyring (keyring's ``fail`` or ``null``
backend, a locked or unreachable Secret Service) every call raises
``StatusError(130, ...)`` with a sentence that says what to do. No message or
exception text ever contains the password.
"""

from __future__ import annotations

import getpass
import sys
import time
from typing import TextIO

from engine.jobs.status import SYSTEM_ERROR, StatusError

SERVICE_PREFIX = "sybar:"

_WHAT_TO_DO = (
    "sybar keeps database passwords only in the OS keyring (Secret Service such as "
    "GNOME Keyring or KWallet on Linux, Keychain on macOS, Credential Manager on Windows). "
    "Start and unlock your desktop's keyring; on a host without a desktop session run sybar under "
    "`dbus-run-session` with `gnome-keyring-daemon --unlock --components=secrets` started in it, "
    "then store the password with `sybar password set SERVER USER`. "
    "For a one-off isql run you can pass -P instead."
)


def service_name(server: str) -> str:
    """The keyring service that holds the passwords of logins on ``server``."""
    return f"{SERVICE_PREFIX}{server}"


def _check_names(server: str, user: str) -> None:
    if not server or not server.strip():
        raise StatusError(SYSTEM_ERROR, "no server name given: name the dataserver, for example SYBAR")
    if not user or not user.strip():
        raise StatusError(SYSTEM_ERROR, "no login name given: name the login, for example sa")


def _no_keyring(detail: str) -> StatusError:
    return StatusError(SYSTEM_ERROR, f"no OS keyring is available: {detail}. {_WHAT_TO_DO}")


def _describe(exc: BaseException) -> str:
    """The type and text of a keyring error; keyring errors never carry the secret."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _secret_service_first(keyring):
    """On Linux with nothing configured: the Secret Service backend when it is usable, else None.

    keyring's own discovery loads every backend it knows (some run ldconfig or
    gcc to find their libraries), about 50 ms before the first lookup; the
    Secret Service is what it picks on a Linux desktop anyway. A backend named
    in PYTHON_KEYRING_BACKEND or a keyringrc.cfg, or one already set in this
    process, goes through keyring.get_keyring() as before.
    """
    import os

    if not sys.platform.startswith("linux") or os.environ.get("PYTHON_KEYRING_BACKEND"):
        return None
    try:
        import keyring.core

        if keyring.core._keyring_backend is not None or os.path.exists(keyring.core._config_path()):
            return None
        from keyring.backends import SecretService

        kr = SecretService.Keyring()
        if kr.priority <= 0:  # raises when the Secret Service cannot be reached: then the normal discovery
            return None
    except Exception:
        return None
    keyring.set_keyring(kr)  # what get_keyring() would have kept for the next lookup in this process
    return kr


def _backend():
    """The active keyring backend, or StatusError(130) when none is usable."""
    try:
        import keyring
        from keyring.backends import fail, null
    except Exception as e:  # keyring not installed, or broken
        raise _no_keyring(f"the keyring package cannot be loaded ({_describe(e)})") from None
    try:
        kr = _secret_service_first(keyring) or keyring.get_keyring()
    except Exception as e:
        raise _no_keyring(f"no keyring backend could be loaded ({_describe(e)})") from None
    if isinstance(kr, fail.Keyring):
        raise _no_keyring("the keyring package found no backend on this machine")
    if isinstance(kr, null.Keyring):
        raise _no_keyring("the keyring package is configured with the null backend, which stores nothing")
    backends = getattr(kr, "backends", None)  # keyring's ChainerBackend
    if backends is not None and not backends:
        raise _no_keyring("the keyring package found no backend on this machine")
    return kr


def _keyring_failed(action: str, exc: BaseException) -> StatusError:
    from keyring.errors import NoKeyringError

    if isinstance(exc, NoKeyringError):
        return _no_keyring(_describe(exc))
    return _no_keyring(f"{action} failed ({_describe(exc)})")


def read_entry(kr, service: str, user: str, *, tries: int = 3) -> str | None:
    """``kr.get_password`` retried on keyring's InitError: gnome-keyring now and then fails to open its
    collection while several processes use it ("Failed to create the collection"), and a restore should
    not fail with 2850 for that (the fault suite saw 4 in 200). Other errors raise at once."""
    from keyring.errors import InitError

    for attempt in range(tries):
        try:
            return kr.get_password(service, user)
        except InitError:
            if attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return None


def get_password(server: str, user: str) -> str | None:
    """The stored password of ``user`` on ``server``, or None when none is stored."""
    _check_names(server, user)
    kr = _backend()
    try:
        return read_entry(kr, service_name(server), user)
    except Exception as e:
        raise _keyring_failed(f"reading the password of {user} on {server} from the keyring", e) from None


def set_password(server: str, user: str, pw: str) -> None:
    """Store (or replace) the password of ``user`` on ``server``."""
    _check_names(server, user)
    if not pw:
        raise StatusError(SYSTEM_ERROR, f"refusing to store an empty password for {user} on {server}")
    kr = _backend()
    try:
        kr.set_password(service_name(server), user, pw)
    except Exception as e:
        raise _keyring_failed(f"storing the password of {user} on {server} in the keyring", e) from None


def delete_password(server: str, user: str) -> bool:
    """Forget the password of ``user`` on ``server``. False when none was stored."""
    _check_names(server, user)
    kr = _backend()
    try:
        if kr.get_password(service_name(server), user) is None:
            return False
        kr.delete_password(service_name(server), user)
    except Exception as e:
        from keyring.errors import PasswordDeleteError

        if isinstance(e, PasswordDeleteError):
            return False
        raise _keyring_failed(f"removing the password of {user} on {server} from the keyring", e) from None
    return True


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def read_password(prompt: str, stdin: TextIO | None = None) -> str | None:
    """A password from a no-echo prompt on a terminal, else one line of ``stdin``.

    None when stdin is at its end (nothing to read).
    """
    stdin = sys.stdin if stdin is None else stdin
    if _isatty(stdin):
        return getpass.getpass(prompt)
    line = stdin.readline()
    if not line:
        return None
    return line.removesuffix("\n").removesuffix("\r")


def password_set_command(server: str, user: str, stdin: TextIO | None = None) -> int:
    """``sybar password set SERVER USER``: store a login's password in the keyring.

    The password comes from a no-echo prompt (asked twice) when stdin is a
    terminal, otherwise from the first line of stdin (``printf '%s\\n' "$PW" |
    sybar password set SYBAR sa``); never from argv. Returns 0 when stored,
    1 for unusable input, 130 when no keyring is available (message on stderr).
    """
    stdin = sys.stdin if stdin is None else stdin
    err = sys.stderr
    try:
        _check_names(server, user)
        _backend()  # fail before asking for a password that cannot be kept
        tty = _isatty(stdin)
        pw = read_password(f"Password for {user} on {server}: ", stdin)
        if pw is None:
            print(f"sybar password: no password on standard input for {user} on {server}; "
                  "nothing stored", file=err)
            return 1
        if tty:
            again = getpass.getpass("Again: ")
            if again != pw:
                print("sybar password: the two passwords differ; nothing stored", file=err)
                return 1
        if not pw:
            print(f"sybar password: empty password for {user} on {server}; nothing stored", file=err)
            return 1
        set_password(server, user, pw)
    except StatusError as e:
        print(f"sybar password: {e}", file=err)
        return e.status
    except (KeyboardInterrupt, EOFError):
        print("\nsybar password: cancelled; nothing stored", file=err)
        return 1
    print(f"password for {user} on {server} stored in the OS keyring "
          f"(service {service_name(server)!r}, user {user!r})")
    return 0
