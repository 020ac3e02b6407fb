"""Restore plans: the images and the exact statements that bring a database back
from a full dump and its log dumps, up to a point in time.

``plan_restore`` picks the images (``engine.catalog.chains.restore_chain``) and
writes the statements as ASE takes them:

    create database TARGET for load                  (when TARGET does not exist)
    load database TARGET
        from "sybackup::STRIPE0"
        stripe on "sybackup::STRIPE1"                (every stripe, in stripe order)
    load transaction TARGET
        from "sybackup::..."                         (one per log dump, in chain order)
        with until_time = 'YYYY-MM-DD hh:mm:ss.fff'  (on the last one, when until is given)
    online database TARGET

``format_plan`` is what ``sybar restore --plan`` prints: the images as ``--``
comment lines, then each statement followed by ``go``, so that a DBA can paste
the whole of it into isql.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from engine.catalog.catalog import Catalog, Image
from engine.catalog.chains import format_time, restore_chain
from engine.jobs.status import INVALID_PARAMETER, RESTORE_ERROR, StatusError

ARCHIVE_PREFIX = "sybackup::"
TIME_FORM = "YYYY-MM-DD hh:mm:ss[.fff]"
_TIME_RE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?\s*$")


@dataclass(frozen=True)
class RestorePlan:
    target: str  # the database loaded
    until: float | None  # unix time; None: as late as the chain goes
    images: list[Image]  # the full dump, then its log dumps in load order
    statements: list[str]  # one batch each (no "go")
    create_target: bool  # statements begin with create database ... for load

    @property
    def full(self) -> Image:
        return self.images[0]

    @property
    def logs(self) -> list[Image]:
        return self.images[1:]


def parse_time(text: str) -> float:
    """'YYYY-MM-DD hh:mm:ss[.fff]' in local time (the dataserver's, as ASE's
    until_time) -> unix time."""
    m = _TIME_RE.match(text or "")
    if m is None:
        raise StatusError(
            INVALID_PARAMETER,
            f"{text!r} is not a time: use {TIME_FORM} in the dataserver's local time, "
            "e.g. '2026-11-25 14:30:00.250'",
        )
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    millis = int((m.group(7) or "0").ljust(3, "0"))
    try:
        seconds = datetime(year, month, day, hour, minute, second).timestamp()
    except (ValueError, OverflowError) as e:
        raise StatusError(INVALID_PARAMETER, f"{text!r} is not a valid time ({e}): use {TIME_FORM}") from None
    return seconds + millis / 1000


def _devices(image: Image) -> str:
    objects = sorted(image.objects, key=lambda o: o.stripe)
    return "\n    ".join(
        ("from" if i == 0 else "stripe on") + f' "{ARCHIVE_PREFIX}{o.name}"' for i, o in enumerate(objects)
    )


def statements_for(images: list[Image], target: str, until: float | None, create_target: bool) -> list[str]:
    """The statements that load images (a full dump, then log dumps) into target."""
    out = [f"create database {target} for load"] if create_target else []
    out.append(f"load database {target}\n    {_devices(images[0])}")
    logs = images[1:]
    for n, log in enumerate(logs):
        sql = f"load transaction {target}\n    {_devices(log)}"
        if until is not None and n == len(logs) - 1:
            sql += f"\n    with until_time = '{format_time(until)}'"
        out.append(sql)
    out.append(f"online database {target}")
    return out


def plan_restore(
    catalog: Catalog,
    backup_id: str,
    *,
    until: float | None,
    target: str | None,
    target_exists: bool,
) -> RestorePlan:
    """The plan that restores full dump BACKUP_ID (and its log dumps up to until)
    into target (default: the dumped database). StatusError 227 for an unknown
    image, 2850 for a log dump, an invalid target name, or a time the chain
    cannot reach (see ``restore_chain``)."""
    from engine.dataserver.master import NAME_RE

    images = restore_chain(catalog, backup_id, until)
    name = target or images[0].database
    if not NAME_RE.match(name):
        raise StatusError(
            RESTORE_ERROR,
            f"'{name}' is not a valid database name: use a letter or underscore, then letters, digits or "
            "underscores, 30 characters at most.",
        )
    statements = statements_for(images, name, until, not target_exists)
    return RestorePlan(name, until, images, statements, not target_exists)


def _stripes(image: Image) -> str:
    n = len(image.objects)
    return f"{n} stripe{'' if n == 1 else 's'}"


def _describe(n: int, image: Image) -> str:
    taken = format_time(image.backup_time)
    if image.dump_type == "D":
        lsn = f"LSN {image.lsn}" if image.lsn is not None else "no LSN"
        return f"{n}. full dump {image.backup_id}, taken {taken}, {lsn}, {_stripes(image)}"
    if image.first_lsn is None or image.last_lsn is None:
        lsns = "LSNs unknown"
    elif image.last_lsn < image.first_lsn:
        lsns = f"no LSNs (empty, next is {image.first_lsn})"
    else:
        lsns = f"LSNs {image.first_lsn}-{image.last_lsn}"
    if image.first_commit is None or image.last_commit is None:
        commits = "no commits"
    else:
        commits = f"commits {format_time(image.first_commit)} to {format_time(image.last_commit)}"
    return f"{n}. log dump {image.backup_id}, taken {taken}, {lsns}, {commits}, {_stripes(image)}"


def format_plan(plan: RestorePlan) -> str:
    """The plan as ``sybar restore --plan`` prints it: the images as comments,
    then the statements, each followed by ``go`` (ready for isql)."""
    full = plan.full
    into = plan.target if plan.target == full.database else f"{plan.target} (dumped as {full.database})"
    when = (
        f"as of {format_time(plan.until)} (dataserver local time)"
        if plan.until is not None
        else "as late as its log dumps go"
    )
    n_logs = len(plan.logs)
    lines = [
        f"-- Restore of {into} from full dump {full.backup_id}, {when}",
        f"-- {1 + n_logs} image{'s' if n_logs else ''} (1 full dump, {n_logs} log dump{'' if n_logs == 1 else 's'}), "
        "in load order:",
    ]
    lines += [f"--   {_describe(n, image)}" for n, image in enumerate(plan.images, start=1)]
    if plan.until is not None and plan.logs:
        lines.append(f"-- The last log dump is applied up to {format_time(plan.until)}.")
    if plan.create_target:
        lines.append(f"-- {plan.target} does not exist: it is created for load first.")
    for sql in plan.statements:
        lines.append(sql)
        lines.append("go")
    return "\n".join(lines) + "\n"
