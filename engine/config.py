"""Configuration: master server and client names, policies, schedules, storage units.

Three layers, later wins, merged key by key (tables merge, values replace):

1. built-in defaults (below, and commented out in the user file);
2. the system config ``/etc/sybar/sybar.toml`` (``SYBAR_SYSTEM_CONFIG``
   names another file, or none when empty);
3. the user config ``HOME/sybar.toml``, written on first use with every
   default commented out, mode 0600.

A file looks like this (the built-in defaults)::

    master_server = "localhost"
    client = "<this host's short name>"
    policy = "Sybase_ASE"                  # default policy of user-directed backups
    schedule = "Default-Application-Backup"
    storage_unit = "disk1"

    [policies.Sybase_ASE]
    type = "Sybase"
    # storage_unit = "disk1"               # default: the global storage_unit
    # scripts = []                         # backup selections (script paths)

    [policies.Sybase_ASE.schedules.Default-Application-Backup]
    type = "application_backup"            # -> schedule type 2, user backup
    retention = "2 weeks"                  # N hours|days|weeks|months|years, or infinity
    window = "00:00-24:00"                 # or a list; may wrap midnight: "22:00-06:00"
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]   # days a window opens

    [storage_units.disk1]
    type = "disk"
    path = "storage/disk1"                 # relative paths are under the home
    worm = false                           # true: immutable and indelible (WORM) images

The ``sybackup::`` archive options of one backup resolve with the precedence
of the NetBackup for Sybase agent (``resolve_archive_options``)::

    device string   sybackup::-SERV host -CLIENT name -POLICY p (-POL p) -SCHED s
    > script variables        SYBACKUP_SERVER, SYBACKUP_CLIENT, SYBACKUP_POLICY, SYBACKUP_SCHED
    > environment variables   the same names, in sybar's own environment
    > user config > system config > built-in defaults
                              master_server, client, policy, schedule

A month of retention is 30 days and a year 365 days; ``infinity`` expires at
NetBackup's infinity, 2038-01-19 (``INFINITE_EXPIRATION``).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import socket
import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from engine.home import Home, write_private_file
from engine.jobs.status import (
    BACKUP_WINDOW_CLOSED,
    INVALID_PARAMETER,
    NO_SCHEDULE_OF_TYPE,
    NO_SUCH_POLICY,
    STORAGE_UNIT_UNAVAILABLE,
    StatusError,
)

SYSTEM_CONFIG = Path("/etc/sybar/sybar.toml")
USER_CONFIG_NAME = "sybar.toml"

DEFAULT_POLICY = "Sybase_ASE"
DEFAULT_SCHEDULE = "Default-Application-Backup"
DEFAULT_STORAGE_UNIT = "disk1"
INFINITE_EXPIRATION = float(2**31 - 1)  # NetBackup's "infinity"

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Schedule types by their config name -> NetBackup schedule type number.
SCHEDULE_KINDS = {
    "full": 0,
    "automatic_full": 0,
    "differential_incremental": 1,
    "automatic_incremental": 1,
    "incremental": 1,
    "application_backup": 2,
    "user_backup": 2,
    "user_archive": 3,
    "cumulative_incremental": 4,
    "automatic_cumulative_incremental": 4,
}
_USER_BACKUP_KINDS = {"application_backup", "user_backup"}

_UNIT_SECONDS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}

# The environment variable names of the archive options, by ArchiveOptions field.
ENV_NAMES = {
    "master_server": "SYBACKUP_SERVER",
    "client": "SYBACKUP_CLIENT",
    "policy": "SYBACKUP_POLICY",
    "schedule": "SYBACKUP_SCHED",
}
# The sybackup:: device flags (upper case, no dash) -> parse_sybackup_options key.
DEVICE_FLAGS = {"SERV": "SERV", "CLIENT": "CLIENT", "POLICY": "POLICY", "POL": "POLICY", "SCHED": "SCHED",
                "ENCRYPT": "ENCRYPT"}
#: ``encryption = ...`` in sybar.toml (top level or a policy) and ``-ENCRYPT`` of a sybackup:: device.
ENCRYPTION_CHOICES = ("aes-256-gcm", "none")


def check_encryption(value: object, where: str) -> str:
    """The normalised encryption setting; StatusError 20 for anything but aes-256-gcm or none."""
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text not in ENCRYPTION_CHOICES:
        raise StatusError(
            INVALID_PARAMETER,
            f'{where}: encryption {value!r} is not "aes-256-gcm" or "none"',
        )
    return text
_DEVICE_KEYS = {"master_server": "SERV", "client": "CLIENT", "policy": "POLICY", "schedule": "SCHED"}


def short_hostname() -> str:
    return socket.gethostname().split(".")[0] or "localhost"


def builtin_defaults() -> dict[str, Any]:
    return {
        "master_server": "localhost",
        "client": short_hostname(),
        "policy": DEFAULT_POLICY,
        "schedule": DEFAULT_SCHEDULE,
        "storage_unit": DEFAULT_STORAGE_UNIT,
        "encryption": "aes-256-gcm",
        "policies": {
            DEFAULT_POLICY: {
                "type": "Sybase",
                "schedules": {
                    DEFAULT_SCHEDULE: {
                        "type": "application_backup",
                        "retention": "2 weeks",
                        "window": "00:00-24:00",
                        "days": list(DAYS),
                    },
                    # runs the policy's log-dump scripts (dump transaction) on the scheduler's clock
                    "Automatic-Incremental": {
                        "type": "automatic_incremental",
                        "retention": "2 weeks",
                        "window": "00:00-24:00",
                        "days": list(DAYS),
                    },
                },
            }
        },
        "storage_units": {DEFAULT_STORAGE_UNIT: {"type": "disk", "path": "storage/disk1", "worm": False}},
    }


USER_CONFIG_TEMPLATE = """\
# sybar configuration of this home.
#
# Settings here override the system configuration (/etc/sybar/sybar.toml),
# which overrides sybar's built-in defaults. Every line below is commented out
# and shows a built-in default: uncomment a line to change it.
#
# For one backup, the sybackup:: device options (-SERV, -CLIENT, -POLICY or
# -POL, -SCHED) win over the script's SYBACKUP_SERVER, SYBACKUP_CLIENT,
# SYBACKUP_POLICY and SYBACKUP_SCHED variables, which win over the same
# variables in sybar's own environment, which win over these files.

# master_server = "localhost"            # the master server this client backs up to
# client = "{client}"{client_pad}# this host's short name
# policy = "Sybase_ASE"                  # policy of user-directed backups
# schedule = "Default-Application-Backup"
# storage_unit = "disk1"                 # where stripes go unless the policy names one
# encryption = "aes-256-gcm"             # of sybackup:: dumps, key in the OS keyring; or "none"

# [policies.Sybase_ASE]
# type = "Sybase"
# storage_unit = "disk1"
# scripts = []                           # backup selections: script paths

# [policies.Sybase_ASE.schedules.Default-Application-Backup]
# type = "application_backup"            # full, differential_incremental, cumulative_incremental,
#                                        # application_backup (user backups), user_archive
# retention = "2 weeks"                  # N hours|days|weeks|months|years, or "infinity"
# window = "00:00-24:00"                 # HH:MM-HH:MM, may wrap midnight ("22:00-06:00"), or a list
# days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]   # the days a window opens

# [policies.Sybase_ASE.schedules.Automatic-Incremental]
# type = "automatic_incremental"         # log dumps: the scripts run `dump transaction`
# retention = "2 weeks"
# window = "00:00-24:00"
# days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

# [storage_units.disk1]
# type = "disk"
# path = "storage/disk1"                 # relative paths are under this home
# worm = false                           # true: immutable and indelible (WORM) storage: each image
#                                        # written here is locked until its WORM unlock time (= its
#                                        # expiration); before then it cannot be deleted, overwritten
#                                        # or have its expiration shortened (only extended, with
#                                        # `sybar expire --image ID --until DATE`). On a plain disk the
#                                        # lock is a lock record and read-only files (0400): real
#                                        # immutability needs `chattr +i` (root) or an object-lock store.
"""


def user_config_text(client: str | None = None) -> str:
    client = client or short_hostname()
    pad = " " * max(1, 29 - len(client))
    return USER_CONFIG_TEMPLATE.format(client=client, client_pad=pad)


# ---------------------------------------------------------------- parsing helpers


def parse_retention(text: str) -> float:
    """Seconds of a retention ("2 weeks", "1 month"); math.inf for "infinity"."""
    s = str(text).strip().lower()
    if s in ("infinity", "infinite", "forever"):
        return math.inf
    m = re.fullmatch(r"(\d+)\s*(second|minute|hour|day|week|month|year)s?", s)
    if not m:
        raise ValueError(
            f'retention "{text}" is not understood: write "N days", "N weeks", "N months", "N years" '
            'or "infinity"'
        )
    return float(int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


@dataclass(frozen=True)
class Window:
    """A daily open window: opens at start, stays open for duration (minutes)."""

    start: int  # minutes after midnight
    duration: int  # minutes; 0 = never open
    text: str

    @property
    def start_text(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}"

    @property
    def end_text(self) -> str:
        end = (self.start + self.duration) % 1440
        if self.duration and end == 0 and self.start + self.duration == 1440:
            return "24:00"
        return f"{end // 60:02d}:{end % 60:02d}"


def parse_window(text: str) -> Window:
    """ "HH:MM-HH:MM"; the end may be 24:00, and an end before the start wraps midnight."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", str(text))
    if not m:
        raise ValueError(f'window "{text}" is not HH:MM-HH:MM (for example "08:00-18:00")')
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f'window "{text}" has a time outside 00:00-24:00')
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end > start:
        duration = end - start
    elif end == start:
        duration = 0
    else:
        duration = end + 1440 - start
    return Window(start, duration, f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}")


def parse_days(days: Any) -> tuple[int, ...]:
    if isinstance(days, str):
        days = [days]
    if not isinstance(days, list):
        raise ValueError('days must be a list such as ["mon", "tue"]')
    out: list[int] = []
    for d in days:
        key = str(d).strip().lower()
        idx = None
        for i, (short, long) in enumerate(zip(DAYS, DAY_NAMES, strict=True)):
            if key in (short, long.lower()):
                idx = i
        if idx is None:
            raise ValueError(f'"{d}" is not a day: use mon, tue, wed, thu, fri, sat, sun')
        if idx not in out:
            out.append(idx)
    return tuple(sorted(out))


# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class Schedule:
    name: str
    policy: str
    kind: str  # config name of the type, e.g. application_backup
    schedule_type: int  # NetBackup schedule type number
    retention: str
    retention_seconds: float  # math.inf for infinity (expiration() gives NetBackup's infinity then)
    windows: tuple[Window, ...]
    days: tuple[int, ...]  # 0 = Monday

    @property
    def accepts_user_backups(self) -> bool:
        return self.kind in _USER_BACKUP_KINDS

    def expiration(self, backup_time: float) -> float:
        """When an image taken at backup_time expires (unix time)."""
        return min(backup_time + self.retention_seconds, INFINITE_EXPIRATION)

    def _openings(self, when: datetime, days_ahead: int = 8) -> list[tuple[datetime, datetime]]:
        midnight = datetime.combine(when.date(), dtime(0), tzinfo=when.tzinfo)
        out = []
        for offset in range(-1, days_ahead + 1):
            day = midnight + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            for w in self.windows:
                if w.duration <= 0:
                    continue
                opens = day + timedelta(minutes=w.start)
                out.append((opens, opens + timedelta(minutes=w.duration)))
        return sorted(out)

    def is_open(self, when: datetime) -> bool:
        return any(opens <= when < closes for opens, closes in self._openings(when))

    def next_open(self, when: datetime) -> datetime | None:
        """When a window opens next after when (None if the schedule never opens)."""
        later = [opens for opens, _ in self._openings(when) if opens > when]
        return later[0] if later else None

    def describe_window(self) -> str:
        days = ", ".join(DAYS[d] for d in self.days) or "no days"
        return f"{', '.join(w.text for w in self.windows) or 'no window'} on {days}"

    def check_window_now(self) -> None:
        self.check_window(datetime.now())

    def check_window(self, when: datetime) -> None:
        """Raise StatusError 196 unless a user-directed backup may start at when."""
        if self.is_open(when):
            return
        nxt = self.next_open(when)
        now = f"{DAY_NAMES[when.weekday()]} {when:%H:%M}"
        if nxt is None:
            raise StatusError(
                BACKUP_WINDOW_CLOSED,
                f"Backup not attempted: schedule {self.name} of policy {self.policy} has no open backup "
                f"window ({self.describe_window()}), so it never opens. Give it a window and days in "
                "sybar.toml.",
            )
        raise StatusError(
            BACKUP_WINDOW_CLOSED,
            f"Backup not attempted: it is {now}, outside the open window of schedule {self.name} of "
            f"policy {self.policy} ({self.describe_window()}). The backup window of schedule {self.name} "
            f"opens at {nxt:%H:%M} on {DAY_NAMES[nxt.weekday()]} {nxt:%Y-%m-%d}; run the backup then, or "
            "change the window in sybar.toml.",
        )


@dataclass(frozen=True)
class Policy:
    name: str
    type: str
    active: bool
    storage_unit: str | None
    scripts: tuple[str, ...]
    schedules: dict[str, Schedule]
    encryption: str | None = None  # None: the top-level setting

    def schedule(self, name: str | None = None) -> Schedule:
        """A schedule by name (None: the policy's first Application Backup schedule).
        StatusError 240 when the policy has no such schedule."""
        if name is None:
            return self.user_backup_schedule()
        sched = self.schedules.get(name)
        if sched is None:
            known = ", ".join(self.schedules) or "none"
            raise StatusError(
                NO_SCHEDULE_OF_TYPE,
                f"Policy {self.name} has no schedule named {name} (its schedules: {known}). Name one with "
                "-SCHED or SYBACKUP_SCHED, or add it to sybar.toml.",
            )
        return sched

    def user_backup_schedule(self, name: str | None = None) -> Schedule:
        """The schedule a user-directed backup runs under: the named one, which
        must be an Application Backup schedule, or the policy's first one."""
        if name is not None:
            sched = self.schedule(name)
            if not sched.accepts_user_backups:
                raise StatusError(
                    NO_SCHEDULE_OF_TYPE,
                    f"Schedule {name} of policy {self.name} is a {sched.kind} schedule; a user-directed "
                    'backup needs an Application Backup schedule (type = "application_backup").',
                )
            return sched
        for sched in self.schedules.values():
            if sched.accepts_user_backups:
                return sched
        raise StatusError(
            NO_SCHEDULE_OF_TYPE,
            f"Policy {self.name} has no Application Backup schedule, so it accepts no user-directed "
            'backups; add one with type = "application_backup" in sybar.toml.',
        )


@dataclass(frozen=True)
class StorageUnitConfig:
    name: str
    type: str
    path: Path | None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def worm(self) -> bool:
        """WORM (immutable and indelible) storage unit: images are locked until their unlock time."""
        return self.options.get("worm") is True


@dataclass(frozen=True)
class Config:
    master_server: str
    client: str
    default_policy: str
    default_schedule: str
    default_storage_unit_name: str
    policies: dict[str, Policy]
    storage_units: dict[str, StorageUnitConfig]
    user_config_path: Path | None = None
    system_config_path: Path | None = None
    origins: dict[str, str] = field(default_factory=dict)  # top-level key -> where its value came from
    encryption: str = "none"  # of sybackup:: dumps: "aes-256-gcm" or "none" (a policy may override)

    def policy(self, name: str | None = None) -> Policy:
        """A policy by name (None: the default). StatusError 230 when unknown."""
        name = self.default_policy if name is None else name
        pol = self.policies.get(name)
        if pol is None:
            known = ", ".join(self.policies) or "none"
            raise StatusError(
                NO_SUCH_POLICY,
                f"There is no policy named {name} (the policies are: {known}). Name one with -POLICY or "
                "SYBACKUP_POLICY, or add it to sybar.toml.",
            )
        return pol

    def storage_unit(self, name: str | None = None) -> StorageUnitConfig:
        name = self.default_storage_unit_name if name is None else name
        su = self.storage_units.get(name)
        if su is None:
            known = ", ".join(self.storage_units) or "none"
            raise StatusError(
                STORAGE_UNIT_UNAVAILABLE,
                f"There is no storage unit named {name} (the storage units are: {known}); add it under "
                "[storage_units] in sybar.toml.",
            )
        return su

    @property
    def default_storage_unit(self) -> StorageUnitConfig:
        return self.storage_unit(None)

    def storage_unit_for(self, policy: Policy | str | None) -> StorageUnitConfig:
        """The storage unit a policy's backups go to."""
        pol = policy if isinstance(policy, Policy) else self.policy(policy)
        return self.storage_unit(pol.storage_unit)


# ---------------------------------------------------------------- loading


def system_config_path() -> Path | None:
    env = os.environ.get("SYBAR_SYSTEM_CONFIG")
    if env is not None:
        return Path(env).expanduser() if env.strip() else None
    return SYSTEM_CONFIG


def user_config_path(home: Home) -> Path:
    return Path(home.root) / USER_CONFIG_NAME


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise StatusError(INVALID_PARAMETER, f"The configuration file {path} is not valid TOML: {e}.") from e
    except OSError as e:
        raise StatusError(
            INVALID_PARAMETER, f"The configuration file {path} cannot be read: {e.strerror or e}."
        ) from e


def _merge(base: dict, over: dict, origins: dict, label: str, path: tuple = ()) -> None:
    for key, value in over.items():
        here = (*path, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, origins, label, here)
        else:
            base[key] = _copy(value)
            _mark(origins, here, value, label)


def _mark(origins: dict, path: tuple, value: Any, label: str) -> None:
    origins[path] = label
    if isinstance(value, dict):
        for k, v in value.items():
            _mark(origins, (*path, k), v, label)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class _Builder:
    def __init__(self, data: dict, origins: dict, home_root: Path):
        self.data = data
        self.origins = origins
        self.home_root = home_root

    def where(self, path: tuple) -> str:
        for n in range(len(path), 0, -1):
            label = self.origins.get(path[:n])
            if label:
                return label
        return "the built-in defaults"

    def fail(self, path: tuple, problem: str) -> StatusError:
        key = ".".join(str(p) for p in path)
        return StatusError(INVALID_PARAMETER, f"In {self.where(path)}, {key}: {problem}.")

    def table(self, value: Any, path: tuple) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, "must be a table")
        return value

    def string(self, table: dict, key: str, path: tuple, default: str | None = None) -> str | None:
        value = table.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.fail((*path, key), "must be a string in double quotes")
        return value

    def check_keys(self, table: dict, allowed: set[str], path: tuple, what: str) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.fail(
                (*path, unknown[0]),
                f"{what} has no setting {unknown[0]!r} (its settings: {', '.join(sorted(allowed))})",
            )

    def build(self) -> Config:
        d = self.data
        self.check_keys(
            d,
            {"master_server", "client", "policy", "schedule", "storage_unit", "policies", "storage_units",
             "encryption"},
            (),
            "the configuration",
        )
        top = {k: self.string(d, k, ()) or "" for k in ("master_server", "client", "policy", "schedule")}
        for k, v in top.items():
            if not v.strip():
                raise self.fail((k,), "must not be empty")
        policies = {
            name: self.policy(name, self.table(p, ("policies", name)))
            for name, p in self.table(d.get("policies", {}), ("policies",)).items()
        }
        units = {
            name: self.storage_unit(name, self.table(u, ("storage_units", name)))
            for name, u in self.table(d.get("storage_units", {}), ("storage_units",)).items()
        }
        return Config(
            master_server=top["master_server"],
            client=top["client"],
            default_policy=top["policy"],
            default_schedule=top["schedule"],
            default_storage_unit_name=self.string(d, "storage_unit", ()) or DEFAULT_STORAGE_UNIT,
            policies=policies,
            storage_units=units,
            encryption=check_encryption(d.get("encryption", "none"), self.where(("encryption",))),
            origins={
                k: self.where((k,)) for k in ("master_server", "client", "policy", "schedule", "storage_unit")
            },
        )

    def policy(self, name: str, p: dict) -> Policy:
        path = ("policies", name)
        self.check_keys(
            p, {"type", "active", "storage_unit", "scripts", "schedules", "encryption"}, path, f"policy {name}"
        )
        ptype = self.string(p, "type", path, "Sybase") or "Sybase"
        if ptype.lower() != "sybase":
            raise self.fail((*path, "type"), f'sybar runs Sybase policies only, not "{ptype}"')
        active = p.get("active", True)
        if not isinstance(active, bool):
            raise self.fail((*path, "active"), "must be true or false")
        scripts = p.get("scripts", [])
        if not isinstance(scripts, list) or not all(isinstance(s, str) for s in scripts):
            raise self.fail((*path, "scripts"), "must be a list of script paths")
        schedules = {
            sname: self.schedule(name, sname, self.table(s, (*path, "schedules", sname)))
            for sname, s in self.table(p.get("schedules", {}), (*path, "schedules")).items()
        }
        return Policy(
            name=name,
            type="Sybase",
            active=active,
            storage_unit=self.string(p, "storage_unit", path),
            scripts=tuple(scripts),
            schedules=schedules,
            encryption=None if p.get("encryption") is None
            else check_encryption(p.get("encryption"), self.where((*path, "encryption"))),
        )

    def schedule(self, policy: str, name: str, s: dict) -> Schedule:
        path = ("policies", policy, "schedules", name)
        self.check_keys(s, {"type", "retention", "window", "days"}, path, f"schedule {name}")
        kind = (self.string(s, "type", path, "application_backup") or "").strip().lower().replace(" ", "_")
        kind = kind.replace("-", "_")
        if kind not in SCHEDULE_KINDS:
            raise self.fail(
                (*path, "type"), f"is not a schedule type (use one of {', '.join(SCHEDULE_KINDS)})"
            )
        retention = s.get("retention", "2 weeks")
        try:
            seconds = parse_retention(str(retention))
        except ValueError as e:
            raise self.fail((*path, "retention"), str(e)) from e
        raw_windows = s.get("window", "00:00-24:00")
        if isinstance(raw_windows, str):
            raw_windows = [raw_windows]
        if not isinstance(raw_windows, list):
            raise self.fail((*path, "window"), 'must be "HH:MM-HH:MM" or a list of them')
        try:
            windows = tuple(parse_window(w) for w in raw_windows)
        except ValueError as e:
            raise self.fail((*path, "window"), str(e)) from e
        try:
            days = parse_days(s.get("days", list(DAYS)))
        except ValueError as e:
            raise self.fail((*path, "days"), str(e)) from e
        return Schedule(
            name=name,
            policy=policy,
            kind=kind,
            schedule_type=SCHEDULE_KINDS[kind],
            retention=str(retention),
            retention_seconds=seconds,
            windows=windows,
            days=days,
        )

    def storage_unit(self, name: str, u: dict) -> StorageUnitConfig:
        path = ("storage_units", name)
        utype = (self.string(u, "type", path, "disk") or "disk").lower()
        raw = self.string(u, "path", path)
        if utype == "disk" and not raw:
            raise self.fail((*path, "path"), "a disk storage unit needs a path")
        p = None
        if raw:
            p = Path(raw).expanduser()
            if not p.is_absolute():
                p = self.home_root / p
        options = {k: v for k, v in u.items() if k not in ("type", "path")}
        if not isinstance(options.get("worm", False), bool):
            raise self.fail((*path, "worm"), "must be true or false")
        return StorageUnitConfig(name=name, type=utype, path=p, options=options)


def _made_before_encryption(user_path: Path) -> bool:
    """A user config that sybar wrote before encryption at rest existed (its template, no encryption line)."""
    try:
        text = user_path.read_text(errors="replace")
    except OSError:
        return False
    return text.startswith("# sybar configuration of this home.") and "encryption" not in text


def load_config(home: Home, *, write_user_config: bool = True) -> Config:
    """The configuration of a home: defaults < system config < user config.
    Writes the commented user config when it does not exist yet."""
    root = Path(home.root)
    data = builtin_defaults()
    origins: dict[tuple, str] = {}
    sys_path = system_config_path()
    used_sys = None
    if sys_path is not None and sys_path.is_file():
        _merge(data, _read_toml(sys_path), origins, f"the system config {sys_path}")
        used_sys = sys_path
    user_path = user_config_path(home)
    if user_path.is_file():
        user_data = _read_toml(user_path)
        if "encryption" not in user_data and ("encryption",) not in origins and _made_before_encryption(user_path):
            # encryption at rest is the default of new homes; a home made before it stays as it was
            data["encryption"] = "none"
            origins[("encryption",)] = f"a home made before encryption at rest ({user_path} does not mention it)"
        _merge(data, user_data, origins, f"the user config {user_path}")
    elif write_user_config:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private_file(user_path, user_config_text())
    config = _Builder(data, origins, root).build()
    return replace(config, user_config_path=user_path, system_config_path=used_sys)


# ---------------------------------------------------------------- sybackup:: options


def parse_sybackup_options(device: str) -> dict[str, str]:
    """The options of a ``sybackup::`` device string.

    ``sybackup::[-SERV host] [-CLIENT name] [-POLICY p | -POL p] [-SCHED s] [NAME]``:
    flags in any order and any case; NAME (a dump a load names: an object name
    or a prefix of one) may come first or last. Returns a dict with keys among
    SERV, CLIENT, POLICY, SCHED, OBJECT. Raises StatusError 20 for an unknown
    flag, a flag without its value, a flag given twice, or two names."""
    text = device.strip()
    if text.lower().startswith("sybackup::"):
        text = text[len("sybackup::") :]
    usage = (
        "sybackup:: devices take -SERV master_server, -CLIENT client, -POLICY policy (or -POL), "
        "-SCHED schedule, -ENCRYPT aes-256-gcm|none, and for a load the name of the dump"
    )
    try:
        tokens = shlex.split(text)
    except ValueError as e:
        raise StatusError(INVALID_PARAMETER, f'The device "{device}" cannot be read ({e}); {usage}.') from e
    out: dict[str, str] = {}
    names: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("-") and len(tok) > 1:
            key = DEVICE_FLAGS.get(tok[1:].upper())
            if key is None:
                raise StatusError(
                    INVALID_PARAMETER, f'Unknown option {tok} in the device "{device}": {usage}.'
                )
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("-"):
                raise StatusError(
                    INVALID_PARAMETER, f'The option {tok} in the device "{device}" needs a value after it.'
                )
            value = tokens[i + 1]
            if key in out and out[key] != value:
                raise StatusError(
                    INVALID_PARAMETER,
                    f'The device "{device}" gives -{key} twice ({out[key]} and {value}); keep one.',
                )
            out[key] = value
            i += 2
        else:
            names.append(tok)
            i += 1
    if len(names) > 1:
        raise StatusError(
            INVALID_PARAMETER,
            f'The device "{device}" names more than one dump ({", ".join(names)}); a device names one '
            "(use stripe on for the others).",
        )
    if names:
        out["OBJECT"] = names[0]
    for key, value in out.items():
        # names, never paths: refused before anything looks for them on a storage unit or a disk
        if "/" in value or "\\" in value or ".." in value or "\0" in value:
            what = "the dump name" if key == "OBJECT" else f"-{key}"
            raise StatusError(
                INVALID_PARAMETER,
                f'The device "{device}" gives {what} {value!r}, which holds a path ("/", "\\" or ".."): '
                "backup object, policy, schedule, client and server names are plain names.",
            )
    return out


@dataclass(frozen=True)
class ArchiveOptions:
    master_server: str
    client: str
    policy: str
    schedule: str
    object: str | None = None
    origin: dict[str, str] = field(default_factory=dict, compare=False)  # field -> which level set it


def resolve_archive_options(
    device_opts: dict[str, str],
    script_env: dict[str, str] | None,
    environment: dict[str, str] | None,
    config: Config,
) -> ArchiveOptions:
    """The master server, client, policy and schedule of one ``sybackup::``
    operation: device string > script variables > environment > user config >
    system config > built-in defaults. script_env and environment are env
    dicts using SYBACKUP_SERVER, SYBACKUP_CLIENT, SYBACKUP_POLICY, SYBACKUP_SCHED;
    empty values count as unset."""
    opts = {}
    for k, v in (device_opts or {}).items():
        key = DEVICE_FLAGS.get(k.upper().lstrip("-"), k.upper())
        opts[key] = v
    from_config = {
        "master_server": config.master_server,
        "client": config.client,
        "policy": config.default_policy,
        "schedule": config.default_schedule,
    }
    values: dict[str, str] = {}
    origin: dict[str, str] = {}
    for name, env_name in ENV_NAMES.items():
        for level, source in (
            ("device string", opts.get(_DEVICE_KEYS[name])),
            ("script variables", (script_env or {}).get(env_name)),
            ("environment", (environment or {}).get(env_name)),
        ):
            if source is not None and str(source).strip():
                values[name], origin[name] = str(source).strip(), level
                break
        else:
            values[name] = from_config[name]
            origin[name] = config.origins.get(name, "the built-in defaults")
    obj = opts.get("OBJECT")
    return ArchiveOptions(object=obj or None, origin=origin, **values)
