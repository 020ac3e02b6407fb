"""Backup object names, as NetBackup for Sybase gives them to stripes.

``SERVER.DATABASE.TYPE.STRIPE.PID.dd-mm-yyyy.hh:mm:ss``, for example
``SYBASE11.mydb.D.0.24312.17-12-2003.14:05:25``: TYPE ``D`` (database) or
``T`` (transaction log), STRIPE counted from 0, PID the Backup Server's
process id, the time the dump started in local time. Every stripe of one dump
shares everything but STRIPE (see :meth:`ObjectName.dump_key`).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, replace

from engine.jobs.status import BACKUP_FAILED, StatusError
from engine.storage.base import MAX_NAME, validate_object_name

#: A dataserver or database name as it may appear in an object name: no dots,
#: which separate the fields, and only characters object names allow.
_PART_RE = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_NAME_RE = re.compile(
    r"(?P<server>[A-Za-z0-9_-]{1,64})\.(?P<database>[A-Za-z0-9_-]{1,64})\.(?P<type>[DT])\."
    r"(?P<stripe>0|[1-9][0-9]{0,3})\.(?P<pid>0|[1-9][0-9]{0,9})\."
    r"(?P<d>[0-9]{2})-(?P<m>[0-9]{2})-(?P<y>[0-9]{4})\.(?P<H>[0-9]{2}):(?P<M>[0-9]{2}):(?P<S>[0-9]{2})",
    re.ASCII,
)
MAX_STRIPE = 9999
TIME_FORMAT = "%d-%m-%Y.%H:%M:%S"


@dataclass(frozen=True)
class ObjectName:
    server: str
    database: str
    dump_type: str  # "D" or "T"
    stripe: int  # from 0
    pid: int
    when: _dt.datetime  # naive, local time, whole seconds

    def __str__(self) -> str:
        return f"{self.server}.{self.database}.{self.dump_type}.{self.stripe}.{self.pid}.{self.when.strftime(TIME_FORMAT)}"

    @property
    def name(self) -> str:
        return str(self)

    @property
    def dump_key(self) -> tuple[str, str, str, int, _dt.datetime]:
        """What every stripe of one dump shares."""
        return (self.server, self.database, self.dump_type, self.pid, self.when)

    def same_dump(self, other: ObjectName) -> bool:
        return self.dump_key == other.dump_key

    def with_stripe(self, stripe: int) -> ObjectName:
        """The name of another stripe of the same dump."""
        _check_stripe(stripe)
        return replace(self, stripe=stripe)


def _bad(msg: str) -> StatusError:
    return StatusError(BACKUP_FAILED, msg)


def _check_stripe(stripe: object) -> int:
    if not isinstance(stripe, int) or isinstance(stripe, bool) or not 0 <= stripe <= MAX_STRIPE:
        raise _bad(f"stripe number {stripe!r} is not from 0 to {MAX_STRIPE}")
    return stripe


def object_name(server: str, database: str, dump_type: str, stripe: int, pid: int, when: _dt.datetime) -> str:
    """``SERVER.DATABASE.TYPE.STRIPE.PID.dd-mm-yyyy.hh:mm:ss``; StatusError (6) for parts
    that cannot be in a backup object name. An aware ``when`` is shown in local time."""
    for what, value in (("dataserver", server), ("database", database)):
        if not isinstance(value, str) or not _PART_RE.fullmatch(value):
            raise _bad(
                f"the {what} name {value!r} cannot be part of a backup object name: use 1 to 64 "
                "letters, digits, _ or -"
            )
    if dump_type not in ("D", "T"):
        raise _bad(f"dump type {dump_type!r} is neither 'D' (database) nor 'T' (transaction)")
    _check_stripe(stripe)
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 <= pid < 10**10:
        raise _bad(f"process id {pid!r} is not a number from 0 to 9999999999")
    if not isinstance(when, _dt.datetime):
        raise _bad(f"the dump time {when!r} is not a datetime")
    if when.tzinfo is not None:
        when = when.astimezone().replace(tzinfo=None)
    if when.year < 1000:
        raise _bad(f"the dump time {when!r} has no four-digit year")
    name = f"{server}.{database}.{dump_type}.{stripe}.{pid}.{when.strftime(TIME_FORMAT)}"
    return validate_object_name(name)


def parse_object_name(name: str) -> ObjectName:
    """The fields of a stripe object name; StatusError (6) saying what is wrong."""
    if not isinstance(name, str):
        raise _bad(f"a backup object name must be a string, not {type(name).__name__}")
    if len(name) > MAX_NAME:
        raise _bad(f"the backup object name is {len(name)} characters long; the limit is {MAX_NAME}")
    m = _NAME_RE.fullmatch(name)
    if not m:
        raise _bad(
            f"{name!r} is not a backup object name of the form "
            "SERVER.DATABASE.TYPE.STRIPE.PID.dd-mm-yyyy.hh:mm:ss (TYPE D or T), "
            "for example SYBASE11.mydb.D.0.24312.17-12-2003.14:05:25"
        )
    try:
        when = _dt.datetime(int(m["y"]), int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), int(m["S"]))
    except ValueError as e:
        raise _bad(f"{name!r} holds an impossible date or time ({e})") from None
    return ObjectName(m["server"], m["database"], m["type"], int(m["stripe"]), int(m["pid"]), when)
