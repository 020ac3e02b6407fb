"""Where a sybar home keeps things, and the file modes it keeps them with.

A home is one directory (``--home DIR`` or ``SYBAR_HOME``, else the platform's
user data dir). Every file the engine writes there is 0600 and every folder
0700 (DESIGN.md §6): dumps, catalogs and credentials are nobody else's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

SERVER_NAME = "SYBAR"
DEFAULT_PORT = 5000


def default_home() -> Path:
    env = os.environ.get("SYBAR_HOME")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("sybar", appauthor=False))


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike | None = None) -> Home:
        root = Path(home).expanduser() if home else default_home()
        return cls(root.resolve())

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def interfaces(self) -> Path:
        return self.root / "interfaces"

    @property
    def freetds_conf(self) -> Path:
        return self.root / "freetds.conf"

    @property
    def scripts(self) -> Path:
        return self.root / "scripts"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def lock(self) -> Path:
        return self.root / "serve.lock"

    @property
    def storage(self) -> Path:
        """Where the default storage unit lives (storage/disk1): made here 0700, as its parent."""
        return self.root / "storage"

    def ensure(self) -> Home:
        for d in (self.root, self.data, self.logs, self.storage):
            make_private_dir(d)
        return self


def make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def write_private_file(path: Path, text: str) -> None:
    """Write atomically (temp name, fsync, rename) with mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
