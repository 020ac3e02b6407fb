"""The media secret: 32 random bytes in HOME/media.secret (0600).

Every connection to the media server proves it knows this secret (HMAC over
a fresh nonce, see engine.media). The Backup Server of the same home reads
the same file; a split deployment copies it to the database host. The secret
is never put in argv, environment, logs or messages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import uuid
from pathlib import Path

from engine.home import Home
from engine.jobs.status import CANT_CONNECT, SYSTEM_ERROR, StatusError

SECRET_FILE = "media.secret"
SECRET_LEN = 32

log = logging.getLogger("sybar.media")


def secret_path(home: Home | str | os.PathLike) -> Path:
    root = home.root if isinstance(home, Home) else Path(home)
    return root / SECRET_FILE


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StatusError(
                SYSTEM_ERROR, f"{path} is not a regular file: remove it and restart sybar serve"
            )
        if st.st_mode & 0o077:
            log.warning("%s was readable by others (mode %o); set it to 0600", path, stat.S_IMODE(st.st_mode))
            os.fchmod(fd, 0o600)
        data = os.read(fd, SECRET_LEN + 1)
    finally:
        os.close(fd)
    if len(data) != SECRET_LEN:
        raise StatusError(
            SYSTEM_ERROR,
            f"{path} is damaged (it must hold exactly {SECRET_LEN} bytes): remove it and restart "
            "sybar serve, which makes a new one",
        )
    return data


def read_media_secret(home: Home | str | os.PathLike) -> bytes:
    """The secret of an existing home; StatusError (58) when there is none yet."""
    path = secret_path(home)
    try:
        return _read(path)
    except FileNotFoundError:
        raise StatusError(
            CANT_CONNECT,
            f"there is no media secret at {path}: start sybar serve with this home once (it creates "
            "the secret), or copy the media server's secret file there",
        ) from None
    except OSError as e:
        raise StatusError(SYSTEM_ERROR, f"cannot read the media secret {path}: {e.strerror}") from e


def ensure_media_secret(home: Home | str | os.PathLike) -> bytes:
    """The home's media secret, created (32 random bytes, mode 0600) on first use.

    Safe when several processes start at once: the file is made under a
    temporary name and linked into place, so the first one wins and all
    return the same secret.
    """
    path = secret_path(home)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{SECRET_FILE}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            os.write(fd, secrets.token_bytes(SECRET_LEN))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return _read(path)
