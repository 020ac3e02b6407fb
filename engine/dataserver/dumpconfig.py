"""Named dump configurations (ASE 15.7 SP100+): ``sp_config_dump`` and ``dump ... using config``.

A configuration names where and how dumps go, so that scripts say
``dump database pubs2 using config = nightly`` instead of repeating devices:

* ``stripe_dir``: a directory; each dump gets ``num_stripes`` new files named as
  ASE names them, ``<dir>/<db>.<DB|TR|CU>.<YYYYMMDD>.<hhmmss>.<NNN>``
  (``NNN``: the stripe, from 000);
* or a ``sybackup::`` device string (in ``stripe_dir``, or ``@ext_api = 'sybackup'``
  with the options in ``stripe_dir``): every stripe uses that string and
  NetBackup names the objects;
* ``num_stripes``, ``compression`` (0-9, 100, 101), ``retaindays``, ``verify``
  (``header`` | ``full``), ``init``, ``notify``, ``backup_server``, ``description``.

A ``to`` clause given in the dump command wins over the configuration's devices,
and ``with`` options given in the command win over the configuration's.
Configurations live in a SQLite file (thread-safe, mode 0600); it may be the
dump history's file (the tables differ).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.backupserver.dump import MAX_STRIPES
from engine.dataserver.dumphist import CUMULATIVE, DATABASE, TRANSACTION, ProcResult, bind_params
from engine.dataserver.errors import ServerError
from engine.dataserver.master import open_database
from engine.tds.tokens import Column

ARCHIVE_PREFIX = "sybackup::"
EXT_APIS = ("sybackup",)

# sybar's message numbers for dump configurations
MSG_NO_CONFIG = 19410
MSG_CONFIG_EXISTS = 19411
MSG_BAD_CONFIG = 19412

_TYPE_TAGS = {DATABASE: "DB", TRANSACTION: "TR", CUMULATIVE: "CU"}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_#$.-]{0,254}$")

_SCHEMA = """
create table if not exists dumpconfigs (
    name text primary key,
    settings text not null,     -- json of DumpConfig's fields but name
    created real not null,
    updated real not null
);
"""


class DumpConfigError(ServerError):
    """An ASE-style error (number, severity, text) about dump configurations."""


@dataclass(frozen=True)
class DumpConfig:
    name: str
    stripe_dir: str | None = None       # a directory, or a sybackup:: device string
    ext_api: str | None = None          # 'sybackup': stripe_dir (if any) holds the device options
    num_stripes: int = 1
    compression: int | None = None
    retaindays: int | None = None
    verify: str | None = None           # 'header' | 'full'
    init: bool | None = None
    notify: str | None = None           # 'client' | 'operator_console'
    backup_server: str | None = None
    description: str = ""

    @property
    def archive_device(self) -> str | None:
        """The sybackup:: device string every stripe uses, or None for a directory."""
        if self.ext_api:
            rest = self.stripe_dir or ""
            if rest.lower().startswith(ARCHIVE_PREFIX):
                return rest
            return f"{self.ext_api}::{rest}"
        if self.stripe_dir and self.stripe_dir.lower().startswith(ARCHIVE_PREFIX):
            return self.stripe_dir
        return None

    def validate(self) -> DumpConfig:
        """Check every field; returns self, or raises DumpConfigError."""
        if not _NAME_RE.match(self.name or ""):
            raise _bad(f"'{self.name}' is not a valid dump configuration name: use letters, digits and _ "
                       "(up to 255 characters, starting with a letter or _).")
        if self.ext_api is not None and self.ext_api.lower() not in EXT_APIS:
            raise _bad(f"@ext_api '{self.ext_api}' is not available on this server: use 'sybackup'.")
        if not self.stripe_dir and not self.ext_api:
            raise _bad(f"The dump configuration '{self.name}' needs @stripe_dir (a directory, or a sybackup:: "
                       "device string) or @ext_api = 'sybackup'.")
        if self.stripe_dir is not None and ("\n" in self.stripe_dir or "\0" in self.stripe_dir):
            raise _bad("@stripe_dir must not contain line breaks.")
        if not 1 <= self.num_stripes <= MAX_STRIPES:
            raise _bad(f"@num_stripes must be 1 to {MAX_STRIPES}, not {self.num_stripes}.")
        if self.compression is not None and not (0 <= self.compression <= 9 or self.compression in (100, 101)):
            raise _bad(f"@compression {self.compression} is not valid: use 0 to 9, or the fast levels 100 and 101.")
        if self.retaindays is not None and self.retaindays < 0:
            raise _bad(f"@retain_days must be 0 or more, not {self.retaindays}.")
        if self.verify is not None and self.verify not in ("header", "full"):
            raise _bad(f"@verify must be 'header' or 'full', not '{self.verify}'.")
        if self.notify is not None and self.notify not in ("client", "operator_console"):
            raise _bad(f"@notify must be 'client' or 'operator_console', not '{self.notify}'.")
        return self


def _bad(text: str) -> DumpConfigError:
    return DumpConfigError(MSG_BAD_CONFIG, 16, text)


class DumpConfigs:
    """The named dump configurations in a SQLite file; safe to share between threads."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = open_database(self.path)  # 0600, WAL, patient with locks, like every engine store
        with self._lock:
            self._con.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def create(self, config: DumpConfig) -> DumpConfig:
        config.validate()
        now = time.time()
        with self._lock:
            try:
                self._con.execute("insert into dumpconfigs(name, settings, created, updated) values (?, ?, ?, ?)",
                                  (config.name, _settings(config), now, now))
            except sqlite3.IntegrityError:
                raise DumpConfigError(MSG_CONFIG_EXISTS, 16,
                                      f"The dump configuration '{config.name}' already exists.") from None
        return config

    def update(self, config: DumpConfig) -> DumpConfig:
        config.validate()
        with self._lock:
            n = self._con.execute("update dumpconfigs set settings = ?, updated = ? where name = ?",
                                  (_settings(config), time.time(), config.name)).rowcount
        if not n:
            raise self._unknown(config.name)
        return config

    def get(self, name: str) -> DumpConfig | None:
        with self._lock:
            row = self._con.execute("select name, settings from dumpconfigs where name = ?", (name,)).fetchone()
        return _config(*row) if row else None

    def list(self) -> list[DumpConfig]:
        with self._lock:
            rows = self._con.execute("select name, settings from dumpconfigs order by name").fetchall()
        return [_config(*r) for r in rows]

    def drop(self, name: str) -> bool:
        with self._lock:
            return self._con.execute("delete from dumpconfigs where name = ?", (name,)).rowcount > 0

    def require(self, name: str) -> DumpConfig:
        """The configuration, or DumpConfigError naming the known ones."""
        config = self.get(name)
        if config is None:
            raise self._unknown(name)
        return config

    def _unknown(self, name: str) -> DumpConfigError:
        known = [c.name for c in self.list()]
        have = ("the known ones are " + ", ".join(known)) if known else "none is defined yet"
        return DumpConfigError(
            MSG_NO_CONFIG, 16,
            f"The dump configuration '{name}' does not exist ({have}). sp_config_dump lists them and "
            "creates one: sp_config_dump @config_name = 'name', @stripe_dir = '/dir' [, @num_stripes = n].")

    def resolve(self, name: str, database: str, dump_type: str, when: float) -> tuple[list[str], dict]:
        return resolve_devices(self.require(name), database, dump_type, when)


def _settings(config: DumpConfig) -> str:
    d = dataclasses.asdict(config)
    d.pop("name")
    return json.dumps(d, sort_keys=True)


def _config(name: str, settings: str) -> DumpConfig:
    fields = {f.name for f in dataclasses.fields(DumpConfig)}
    data = {k: v for k, v in json.loads(settings).items() if k in fields}
    return DumpConfig(name=name, **data)


def stripe_file_name(database: str, dump_type: str, when: float, stripe: int) -> str:
    """ASE's name for a stripe file of a configured dump: ``<db>.<DB|TR|CU>.<YYYYMMDD>.<hhmmss>.<NNN>``."""
    stamp = dt.datetime.fromtimestamp(when).strftime("%Y%m%d.%H%M%S")
    return f"{database}.{_TYPE_TAGS[dump_type]}.{stamp}.{stripe:03d}"


def resolve_devices(config: DumpConfig, database: str, dump_type: str, when: float) -> tuple[list[str], dict]:
    """The stripe devices and ``with`` options a dump ``using config`` gets.

    ``dump_type``: ``'D'`` (database), ``'T'`` (transaction) or ``'C'`` (cumulative).
    ``when``: the dump's start (names the files). Returns ``(devices, options)``: device
    strings (paths, or the same sybackup:: string for every stripe) and the options the
    configuration sets (keys as the parser gives them: ``compression``, ``retaindays``,
    ``verify``, ``init``, ``notify``; and ``backup_server`` when set)."""
    dump_type = dump_type.upper()
    if dump_type not in _TYPE_TAGS:
        raise ValueError(f"dump_type must be D, T or C, not {dump_type!r}")
    archive = config.archive_device
    if archive is not None:
        devices = [archive] * config.num_stripes
    else:
        base = config.stripe_dir or ""
        devices = [os.path.join(base, stripe_file_name(database, dump_type, when, i))
                   for i in range(config.num_stripes)]
    options: dict = {}
    if config.compression is not None:
        options["compression"] = config.compression
    if config.retaindays is not None:
        options["retaindays"] = config.retaindays
    if config.verify is not None:
        options["verify"] = config.verify
    if config.init is not None:
        options["init" if config.init else "noinit"] = True
    if config.notify is not None:
        options["notify"] = config.notify
    if config.backup_server is not None:
        options["backup_server"] = config.backup_server
    return devices, options


def apply_config(configs: DumpConfigs, stmt, when: float | None = None):
    """A ``dump database|transaction ... using config = NAME`` statement with the configuration
    applied: devices from it unless the statement has a ``to`` clause, options merged (the
    statement's own ``with`` options win). Statements without a config come back unchanged.

    Returns a new statement of the same class (``dataclasses.replace``)."""
    from engine.dataserver.tsql import Device, DumpTransaction

    name = getattr(stmt, "config", None) or stmt.options.get("config")
    if not name or {"truncate_only", "no_log"} & stmt.options.keys():
        return stmt
    if isinstance(stmt, DumpTransaction):
        dump_type = TRANSACTION
    else:
        dump_type = CUMULATIVE if stmt.options.get("cumulative") else DATABASE
    config = configs.require(str(name))
    devices, options = resolve_devices(config, str(stmt.database), dump_type, time.time() if when is None else when)
    server = options.pop("backup_server", None)
    if "init" in stmt.options or "noinit" in stmt.options:
        options.pop("init", None)
        options.pop("noinit", None)
    merged = {**options, **stmt.options}
    new_devices = stmt.devices or tuple(Device(d, None, False, server) for d in devices)
    return dataclasses.replace(stmt, devices=tuple(new_devices), options=merged)


# ---------------------------------------------------------------------------------------------
# sp_config_dump
# ---------------------------------------------------------------------------------------------
_PARAMS = ("config_name", "stripe_dir", "ext_api", "num_stripes", "compression", "retain_days", "init",
           "verify", "notify", "backup_server", "description", "operation")
_ALIASES = {"retaindays": "retain_days", "name": "config_name", "dir": "stripe_dir", "stripes": "num_stripes"}
_OPERATIONS = ("create", "update", "drop", "delete", "list", "help")

CONFIG_COLUMNS = [
    Column("Config Name", "varchar", 30),
    Column("Stripe Directory", "varchar", 255),
    Column("External API", "varchar", 30),
    Column("Number of Stripes", "int"),
    Column("Compression Level", "int"),
    Column("Retain Days", "int"),
    Column("Init", "varchar", 6),
    Column("Verify", "varchar", 6),
    Column("Notify", "varchar", 16),
    Column("Backup Server", "varchar", 30),
    Column("Description", "varchar", 255),
]


def config_result(configs: Iterable[DumpConfig]) -> tuple[list[Column], list[tuple]]:
    """sp_config_dump's listing: one row per configuration."""
    rows = []
    for c in configs:
        init = None if c.init is None else ("init" if c.init else "noinit")
        rows.append((c.name, c.stripe_dir, c.ext_api, c.num_stripes, c.compression, c.retaindays, init,
                     c.verify, c.notify, c.backup_server, c.description))
    return list(CONFIG_COLUMNS), rows


def config_dump_proc(configs: DumpConfigs, args: Iterable = (), named: dict | None = None) -> ProcResult:
    """``sp_config_dump`` in ASE's forms:

    * no argument: list every configuration; ``@config_name = 'x'`` alone: show that one;
    * ``@config_name = 'x', @stripe_dir = '/dir' [, @ext_api = 'sybackup'] [, @num_stripes = n]
      [, @compression = n] [, @retain_days = n] [, @init = 'init'|'noinit'] [, @verify = 'header'|'full']
      [, @notify = ...] [, @backup_server = ...] [, @description = ...]``: create it, or change the
      given settings of an existing one;
    * ``sp_config_dump 'drop', 'x'`` or ``@operation = 'drop', @config_name = 'x'``: drop it
      (also ``'list'`` / ``'create'`` / ``'update'`` as the first positional argument).

    ``args``: positional values; ``named``: ``Execute.named`` (keys without ``@``)."""
    args = list(args)
    operation = None
    if args and str(args[0]).lower() in _OPERATIONS and not getattr(args[0], "is_variable", False):
        operation, args = str(args[0]).lower(), args[1:]
    named = {_ALIASES.get(str(k).lstrip("@").lower(), str(k).lstrip("@").lower()): v
             for k, v in (named or {}).items()}
    params = bind_params("sp_config_dump", _PARAMS, args, named, DumpConfigError)
    if params.get("operation"):
        op = params["operation"].lower()
        if op not in _OPERATIONS or (operation and operation != op):
            raise _bad(f"sp_config_dump: @operation must be one of {', '.join(_OPERATIONS[:5])}, not '{op}'.")
        operation = op
    name = params.get("config_name")
    settings = {k: v for k, v in params.items() if k not in ("config_name", "operation") and v is not None}

    if operation == "help":
        return ProcResult(messages=[_USAGE])
    if operation in ("drop", "delete"):
        if not name:
            raise _bad("sp_config_dump 'drop' needs the name of the configuration: sp_config_dump 'drop', 'name'.")
        if not configs.drop(name):
            raise configs._unknown(name)
        return ProcResult(messages=[f"The dump configuration '{name}' has been dropped."])
    if operation == "list" or (operation is None and not settings):
        if settings:
            raise _bad("sp_config_dump 'list' takes only @config_name.")
        if name:
            columns, rows = config_result([configs.require(name)])
        else:
            columns, rows = config_result(configs.list())
        return ProcResult(columns=columns, rows=rows)
    if not name:
        raise _bad("sp_config_dump needs @config_name to create or change a configuration.")
    existing = configs.get(name)
    if operation == "create" and existing is not None:
        raise DumpConfigError(MSG_CONFIG_EXISTS, 16, f"The dump configuration '{name}' already exists.")
    if operation == "update" and existing is None:
        raise configs._unknown(name)
    changes = _parse_settings(settings)
    if existing is None:
        configs.create(DumpConfig(name=name, **changes))
        return ProcResult(messages=[f"The dump configuration '{name}' has been created."])
    configs.update(dataclasses.replace(existing, **changes))
    return ProcResult(messages=[f"The dump configuration '{name}' has been updated."])


def _parse_settings(settings: dict[str, str]) -> dict:
    out: dict = {}
    for key, value in settings.items():
        text = value.strip()
        if key in ("num_stripes", "compression", "retain_days"):
            try:
                number = int(text)
            except ValueError:
                raise _bad(f"sp_config_dump: @{key} takes a number, not '{value}'.") from None
            out["retaindays" if key == "retain_days" else key] = number
        elif key == "init":
            low = text.lower()
            if low not in ("init", "noinit", "1", "0", "true", "false"):
                raise _bad(f"sp_config_dump: @init must be 'init' or 'noinit', not '{value}'.")
            out["init"] = low in ("init", "1", "true")
        elif key in ("verify", "notify", "ext_api"):
            out[key] = text.lower()
        else:
            out[key] = value
    return out


_USAGE = (
    "Usage: sp_config_dump [@config_name = 'name'] [, @stripe_dir = 'directory' | 'sybackup::...'] "
    "[, @ext_api = 'sybackup'] [, @num_stripes = n] [, @compression = 0-9|100|101] [, @retain_days = n] "
    "[, @init = 'init'|'noinit'] [, @verify = 'header'|'full'] [, @notify = 'client'|'operator_console'] "
    "[, @backup_server = 'name'] [, @description = 'text']; sp_config_dump 'drop', 'name'; "
    "sp_config_dump with no argument lists the configurations."
)


__all__ = [
    "DumpConfig", "DumpConfigs", "DumpConfigError", "resolve_devices", "apply_config", "stripe_file_name",
    "config_dump_proc", "config_result", "CONFIG_COLUMNS",
]
