"""Load chains: what must be loaded, in what order, to bring a database back to a
point in time (the catalog's answer to ASE's dump history and ``load database
... with listonly``).

A full dump (``D``) records ``lsn`` L, the last log sequence number read just
before its snapshot, and ``instance_id``, the database's log lineage. A log
dump (``T``) holds LSNs ``first_lsn``..``last_lsn`` of one lineage. Loading a
log dump applies it when the target's last applied LSN + 1 >= first_lsn
(records already applied are skipped), so the chain of a full dump is:

- the log dump that holds L+1 (first_lsn <= L+1 <= last_lsn; or an empty one
  with first_lsn == L+1), then
- each log dump of the lineage that continues it (next.first_lsn <= applied+1),
  in LSN order, until the first gap: a log dump whose first_lsn is beyond
  applied+1 (the LSNs in between are in no dump: the log was truncated
  without a dump, or a log dump was removed).

Full dumps do not truncate the log, so the chain of an older full dump runs on
through the log dumps taken after later full dumps of the same lineage. A
database that is loaded and brought online starts a new lineage.

Times are unix seconds; messages show them as local ``YYYY-MM-DD
hh:mm:ss.fff`` (the form ``--until`` and ASE's ``until_time`` take).
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.catalog.catalog import Catalog, ChainFacts, Image
from engine.jobs.status import NO_ENTITY, RESTORE_ERROR, StatusError

_FIRST_PAGE = 64
_CHAIN_ORDER = operator.attrgetter("first_lsn", "backup_time", "backup_id")
_MAX_PAGE = 4096


def format_time(t: float) -> str:
    """Local time as ``YYYY-MM-DD hh:mm:ss.fff``, to the millisecond (truncated,
    so that a time printed here and given back as ``until`` never reaches past
    the moment it names)."""
    micros = round(t * 1_000_000)
    millis, _ = divmod(micros, 1000)
    seconds, ms = divmod(millis, 1000)
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S") + f".{ms:03d}"


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class Gap:
    """LSNs no dump holds, where a chain stops."""

    after_backup_id: str  # the last image of the chain (the full dump or a log dump)
    missing_first_lsn: int
    missing_last_lsn: int
    before_backup_id: str | None = None  # the next log dump of the lineage, past the gap

    def to_json(self) -> dict[str, Any]:
        return {
            "after_backup_id": self.after_backup_id,
            "before_backup_id": self.before_backup_id,
            "missing_first_lsn": self.missing_first_lsn,
            "missing_last_lsn": self.missing_last_lsn,
        }


@dataclass(frozen=True)
class Chain:
    """A full dump and the log dumps that continue it, in load order."""

    full: Image
    logs: list[Image]
    gaps: list[Gap] = field(default_factory=list)  # at most one: the chain stops at its first gap
    end_lsn: int | None = None  # the last LSN the chain reaches (None: the full dump has no LSN)
    end_time: float = 0.0  # the last restorable time: the latest commit the chain holds

    @property
    def images(self) -> list[Image]:
        return [self.full, *self.logs]

    def to_json(self) -> dict[str, Any]:
        return {
            "full": self.full.to_json(),
            "logs": [i.to_json() for i in self.logs],
            "gaps": [g.to_json() for g in self.gaps],
            "end_lsn": self.end_lsn,
            "end_time": format_time(self.end_time),
            "end_time_unix": self.end_time,
        }


@dataclass(frozen=True)
class Span:
    """A stretch of time a database can be restored to from one full dump."""

    start: float
    end: float
    full_backup_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "start": format_time(self.start),
            "start_unix": self.start,
            "end": format_time(self.end),
            "end_unix": self.end,
            "full_backup_id": self.full_backup_id,
        }


# ---------------------------------------------------------------- the walk


class _Walk:
    """Follows a chain one log dump at a time (log dumps fed in chain order:
    first_lsn, backup_time, backup_id)."""

    __slots__ = ("applied", "last_id", "last_time", "taken", "gap")

    def __init__(self, full_id: str, lsn: int, backup_time: float):
        self.applied = lsn
        self.last_id = full_id
        self.last_time = backup_time
        self.taken: list[Any] = []
        self.gap: Gap | None = None

    def feed(self, r: Any) -> int:
        """1: r advances the chain; 0: r is skipped (already covered) or is an
        empty log dump in its place (taken); -1: a gap before r, the chain ends."""
        if r.first_lsn > self.applied + 1:
            self.gap = Gap(self.last_id, self.applied + 1, r.first_lsn - 1, r.backup_id)
            return -1
        if r.last_lsn > self.applied:
            self._take(r)
            self.applied = r.last_lsn
            return 1
        if r.first_lsn == self.applied + 1 and r.backup_time >= self.last_time:
            self._take(r)  # an empty log dump, taken in its turn
        return 0

    def _take(self, r: Any) -> None:
        self.taken.append(r)
        self.last_id = r.backup_id
        self.last_time = r.backup_time


def _chained(full: Image) -> bool:
    return full.lsn is not None and full.instance_id is not None


def _pages(catalog: Catalog, full: Image) -> Iterator[Image]:
    """The lineage's log dumps that may continue a full dump, in chain order,
    fetched a page at a time (the walk usually stops long before the end)."""
    after = None
    limit = _FIRST_PAGE
    while True:
        page = catalog.log_dumps_from(
            dataserver=full.dataserver,
            database=full.database,
            instance_id=full.instance_id,
            min_last_lsn=full.lsn,
            after=after,
            limit=limit,
            with_objects=True,  # nearly every row of a page joins the chain: fetch their objects with them
        )
        yield from page
        if len(page) < limit:
            return
        last = page[-1]
        after = (last.first_lsn, last.backup_time, last.backup_id)
        limit = min(limit * 4, _MAX_PAGE)


def _walk(catalog: Catalog, full: Image, until: float | None = None, stop_at_until: bool = False) -> Chain:
    """The chain of a full dump. stop_at_until: stop at the first log dump whose
    last commit reaches until (all a restore to that time needs)."""
    if not _chained(full):
        return Chain(full, [], [], full.lsn, full.backup_time)
    walk = _Walk(full.backup_id, full.lsn, full.backup_time)  # type: ignore[arg-type]  # lsn: _chained
    end_time = full.backup_time
    for r in _pages(catalog, full):
        fed = walk.feed(r)
        if fed < 0:
            break
        if walk.taken and walk.taken[-1] is r and r.last_commit is not None:
            end_time = max(end_time, r.last_commit)
            if stop_at_until and until is not None and r.last_commit >= until:
                break
    return Chain(full, walk.taken, [walk.gap] if walk.gap else [], walk.applied, end_time)


def _full(catalog: Catalog, full_backup_id: str) -> Image:
    full = catalog.get_image(full_backup_id)
    if full is None:
        raise StatusError(
            NO_ENTITY, f"no image {full_backup_id} in the catalog: `sybar list` shows the images"
        )
    if full.dump_type != "D":
        raise StatusError(
            RESTORE_ERROR,
            f"{full_backup_id} is a transaction log dump: a chain starts from a full dump"
            + (f" (this one follows {full.follows})" if full.follows else "")
            + "; `sybar list --type D` shows the full dumps",
        )
    return full


# ---------------------------------------------------------------- the API


def log_chain(catalog: Catalog, full_backup_id: str) -> Chain:
    """The log dumps that continue a full dump, in load order, up to the first
    gap (``Chain.gaps`` names it). Images come with their objects."""
    return _walk(catalog, _full(catalog, full_backup_id))


def _ms(t: float) -> int:
    """A time to the millisecond: what a DBA can type (and ASE's until_time keeps), so the full dump's
    own time, shown to the ms, is a time it restores to."""
    return int(t * 1000)


def restore_chain(catalog: Catalog, full_backup_id: str, until: float | None = None) -> list[Image]:
    """The images to load, in order, to restore a full dump's database as of
    ``until`` (unix time; None: as late as the chain goes): the full dump, then
    its log dumps up to and including the first whose last commit is at or
    after until. StatusError 2850 when until is before the full dump, beyond
    the chain's last commit, or across a gap in it."""
    full = _full(catalog, full_backup_id)
    if until is None:
        return _walk(catalog, full).images
    if _ms(until) < _ms(full.backup_time):
        raise StatusError(RESTORE_ERROR, _too_early(catalog, full, until))
    chain = _walk(catalog, full, until, stop_at_until=True)
    for n, log in enumerate(chain.logs):
        if log.last_commit is not None and _ms(log.last_commit) >= _ms(until):
            return [full, *chain.logs[: n + 1]]
    if _ms(until) <= _ms(chain.end_time):  # no commit after the full dump and up to until: the full dump alone
        return [full]
    raise StatusError(RESTORE_ERROR, _too_late(catalog, chain, until))


def latest_full(
    catalog: Catalog, database: str, before: float | None = None, *, dataserver: str | None = None
) -> Image | None:
    """The newest full dump of a database taken at or before ``before`` (any time
    when None)."""
    images = catalog.list_images(
        database=database, dump_type="D", until=before, dataserver=dataserver, limit=1
    )
    return images[0] if images else None


def restorable_spans(catalog: Catalog, database: str, *, dataserver: str | None = None) -> list[Span]:
    """For each full dump of a database, oldest first: the times it can restore
    the database to, from its backup time to the last commit of its contiguous
    chain (a full dump without log dumps: a span of one instant). One query and
    one pass over the log dumps, however many full dumps share them."""
    facts = catalog.chain_facts(database, dataserver)
    lineages: dict[tuple[str, Any], list[ChainFacts]] = {}
    for f in facts:
        if (
            f.dump_type == "T"
            and f.instance_id is not None
            and f.first_lsn is not None
            and f.last_lsn is not None
        ):
            lineages.setdefault((f.dataserver, f.instance_id), []).append(f)
    indexed = {key: _Lineage(rows) for key, rows in lineages.items()}
    spans = []
    for f in facts:
        if f.dump_type != "D":
            continue
        lineage = indexed.get((f.dataserver, f.instance_id))
        end = f.backup_time
        if lineage is not None and f.lsn is not None:
            end = max(end, lineage.end_time(f))
        spans.append(Span(f.backup_time, end, f.backup_id))
    return spans


class _Lineage:
    """The log dumps of one lineage, sorted in chain order, with what each one's
    chain reaches memoised: every full dump's chain runs into the same log dumps."""

    def __init__(self, rows: list[ChainFacts]):
        self.rows = sorted(rows, key=_CHAIN_ORDER)
        self.firsts = [r.first_lsn for r in self.rows]
        self.memo: dict[int, float | None] = {}  # index of an advancing log dump -> latest commit from it on

    def end_time(self, full: ChainFacts) -> float:
        rows = self.rows
        lsn = full.lsn
        assert lsn is not None
        # where the catalog query of _pages starts: the first row (in order) with last_lsn >= lsn
        i = max(bisect.bisect_right(self.firsts, lsn + 1) - 1, 0)
        while i > 0 and rows[i - 1].last_lsn >= lsn:
            i -= 1
        while i < len(rows) and rows[i].last_lsn < lsn:
            i += 1
        walk = _Walk(full.backup_id, lsn, full.backup_time)
        taken: list[tuple[int, bool]] = []  # (index, advancing) of what the walk took
        latest: float | None = None
        while i < len(rows):
            r = rows[i]
            if r.first_lsn <= walk.applied + 1 and r.last_lsn > walk.applied and i in self.memo:
                latest = self.memo[i]  # this log dump's chain is known from here on
                break
            fed = walk.feed(r)
            if fed < 0:
                break
            if walk.taken and walk.taken[-1] is r:
                taken.append((i, fed > 0))
            i += 1
        for j, advancing in reversed(taken):
            c = rows[j].last_commit
            if c is not None and (latest is None or c > latest):
                latest = c
            if advancing:
                self.memo[j] = latest
        return full.backup_time if latest is None else max(full.backup_time, latest)


# ---------------------------------------------------------------- messages


def _describe(image: Image) -> str:
    what = "full dump" if image.dump_type == "D" else "log dump"
    return f"{what} {image.backup_id}, taken at {format_time(image.backup_time)}"


def _suggest(other: Image | None) -> str:
    if other is None:
        return ""
    return f" ({_describe(other)}, reaches that time)"


def _reaches(catalog: Catalog, full: Image, until: float) -> bool:
    if until < full.backup_time:
        return False
    chain = _walk(catalog, full, until, stop_at_until=True)
    return until <= chain.end_time


def _alternative(catalog: Catalog, full: Image, until: float, newer: bool) -> Image | None:
    """Another full dump of the database whose chain reaches until (newest first;
    newer: only full dumps taken after this one)."""
    candidates = catalog.list_images(
        database=full.database,
        dataserver=full.dataserver,
        dump_type="D",
        since=full.backup_time if newer else None,
        until=until,
        limit=6,
        with_objects=False,
    )
    for c in candidates:
        if c.backup_id != full.backup_id and _reaches(catalog, c, until):
            return c
    return None


def _too_early(catalog: Catalog, full: Image, until: float) -> str:
    return (
        f"cannot restore {full.database} to {format_time(until)} from full dump {full.backup_id}: "
        f"the full dump was taken at {format_time(full.backup_time)}: choose a later time or an older full dump"
        + _suggest(_alternative(catalog, full, until, newer=False))
        + "."
    )


def _too_late(catalog: Catalog, chain: Chain, until: float) -> str:
    full = chain.full
    head = f"cannot restore {full.database} to {format_time(until)} from full dump {full.backup_id}: "
    end = format_time(chain.end_time)
    last = chain.logs[-1] if chain.logs else full
    if not _chained(full):
        return (
            head + "it was recorded without a log sequence number, so no log dump can be applied after it: it "
            f"restores {full.database} only as it was dumped at {format_time(full.backup_time)} (leave out "
            "the time)" + _suggest(_alternative(catalog, full, until, newer=True)) + "."
        )  # fmt: skip
    if chain.gaps:
        gap = chain.gaps[0]
        before = catalog.get_image(gap.before_backup_id) if gap.before_backup_id else None
        lsns = (
            f"LSN {gap.missing_first_lsn}"
            if gap.missing_first_lsn == gap.missing_last_lsn
            else f"LSNs {gap.missing_first_lsn}-{gap.missing_last_lsn}"
        )
        return (
            head + f"the chain ends at {end}; a log dump covering {lsns} is missing between {_describe(last)}"
            + (f", and {_describe(before)}" if before is not None else "")
            + " (the log was truncated without a dump, or that log dump was removed). Choose a time up to "
            f"{end}, or a full dump taken after the gap" + _suggest(_alternative(catalog, full, until, newer=True))
            + "."
        )  # fmt: skip
    changed = catalog.first_image_after(
        dataserver=full.dataserver,
        database=full.database,
        after=last.backup_time,
        other_than_instance=full.instance_id,
    )
    if changed is not None:
        return (
            head + f"the chain ends at {end}, after {_describe(last)}: the log lineage of {full.database} "
            f"changed with {_describe(changed)} (the log was truncated without a dump, or the database was "
            "loaded and brought online), and no log dump continues this chain. Choose a time up to "
            f"{end}, or a full dump taken since" + _suggest(_alternative(catalog, full, until, newer=True)) + "."
        )  # fmt: skip
    return (
        head + f"the chain ends at {end}"
        + (f", the last commit in {_describe(last)}" if chain.logs else " (the full dump itself)")
        + f": no log dump after {format_time(last.backup_time)} yet. Dump the transaction log (dump "
        f'transaction {full.database} to "sybackup::") and plan again, or choose a time up to {end}'
        + _suggest(_alternative(catalog, full, until, newer=True)) + "."
    )  # fmt: skip
