"""dump database: a consistent snapshot written in parallel to N stripes.

One worker thread per stripe reads its contiguous page range from the
snapshot block by block (os.pread), compresses (zstd, releases the GIL),
checksums (xxhash, releases the GIL), frames and writes it to its sink.
The dump digest covers every block of every stripe, so the trailers wait for
all workers: each worker, done with its blocks, waits on a barrier whose
action computes the digest; the snapshot is released as soon as that barrier
trips (writers' WAL can be checkpointed again), then every worker writes its
trailer, waits on a second barrier and commits its sink. Any failure or a
cancel aborts every sink, committed or not: a dump leaves all its stripes or
none. Memory is O(stripes x block size).
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.backupserver import dumpformat as fmt
from engine.backupserver.cipher import DataKey
from engine.backupserver.devices import StripeSink, describe, media_error
from engine.backupserver.memory import limit_malloc_arenas, release_free_memory
from engine.backupserver.snapshot import Snapshot, consistent_snapshot
from engine.jobs.status import BACKUP_FAILED, TERMINATED_BY_ADMIN, StatusError

#: The product's stripe limit (FACTS: old Backup Servers failed above 32).
MAX_STRIPES = 32
#: Progress callbacks at most this often per stripe (plus one at 0% and at 100%).
PROGRESS_INTERVAL_S = 0.2


@dataclass(frozen=True)
class DumpProgress:
    stripe: int
    stripes: int
    bytes_done: int  # raw (database) bytes of this stripe done
    bytes_total: int
    pages_done: int
    pages_total: int
    stored_bytes: int = 0  # bytes written to the stripe device so far


@dataclass(frozen=True)
class StripeResult:
    stripe: int
    device: str
    first_page: int
    page_count: int
    blocks: int
    raw_bytes: int
    stored_bytes: int  # everything written to the device, header and trailer included
    digest: str  # stripe digest


@dataclass(frozen=True)
class DumpResult:
    dump_id: str
    server: str
    database: str
    dump_type: str
    stripes: int
    page_size: int
    page_count: int
    raw_bytes: int
    stored_bytes: int
    digest: str  # dump digest, as in every trailer
    compression: int | None  # ASE level
    snapshot_at: _dt.datetime
    started: _dt.datetime
    finished: _dt.datetime
    per_stripe: list[StripeResult]

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()


def split_pages(page_count: int, stripes: int) -> list[tuple[int, int]]:
    """Contiguous (first_page, page_count) per stripe; the first ones get one more page."""
    base, extra = divmod(page_count, stripes)
    ranges = []
    first = 0
    for i in range(stripes):
        n = base + (1 if i < extra else 0)
        ranges.append((first, n))
        first += n
    return ranges


class _Stopped(Exception):
    """A worker saw the stop flag (cancel or another stripe failed)."""


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def dump_database(
    *,
    server: str,
    database: str,
    db_path: Path,
    sinks: list[StripeSink],
    compression: int | None,
    progress: Callable[[DumpProgress], None] | None = None,
    cancel: threading.Event | None = None,
    dump_type: str = "D",
    data_key: DataKey | None = None,
) -> DumpResult:
    """Dump the database file at db_path to len(sinks) stripes.

    With data_key (or when the sinks carry a ``data_key`` attribute, as the
    archive API's do when encryption is on) every block is encrypted with
    AES-256-GCM (engine.backupserver.cipher) after compression.

    The sinks belong to this call: on success all are committed, on any
    failure all are aborted and the error is raised (StatusError: 6 bad
    request, 84 device error, 150 cancelled, 156 snapshot error).
    """
    limit_malloc_arenas()
    started = _now()
    n = len(sinks)
    run: _DumpRun | None = None
    try:
        if n == 0:
            raise StatusError(BACKUP_FAILED, f"dump of {database}: no dump device given")
        if n > MAX_STRIPES:
            raise StatusError(
                BACKUP_FAILED,
                f"dump of {database} names {n} stripes; the limit is {MAX_STRIPES} stripes per dump: "
                f"use at most {MAX_STRIPES} devices",
            )
        if dump_type not in ("D", "T"):
            raise StatusError(BACKUP_FAILED, f"dump type {dump_type!r} is neither 'D' nor 'T'")
        if data_key is None:
            keys = {getattr(s, "data_key", None) for s in sinks}
            if len(keys) > 1:
                raise StatusError(BACKUP_FAILED, f"dump of {database}: the stripes ask for different data keys")
            data_key = keys.pop()
        zlevel = fmt.zstd_level(compression)
        comp = None if zlevel is None else {"codec": "zstd", "level": compression, "zstd_level": zlevel}
        if cancel is not None and cancel.is_set():
            raise StatusError(TERMINATED_BY_ADMIN, f"dump of {database} was cancelled before it started")
        run = _DumpRun(server, database, dump_type, sinks, comp, progress, cancel, data_key)
        with consistent_snapshot(db_path) as snap:
            try:
                run.start(snap)
                run.wait_reads_done()
            except BaseException:
                run.stop_and_join()  # before the snapshot's descriptor closes
                raise
        run.join()
        run.raise_if_failed()
        release_free_memory()
        finished = _now()
        per = run.results()
        return DumpResult(
            dump_id=run.dump_id,
            server=server,
            database=database,
            dump_type=dump_type,
            stripes=n,
            page_size=snap.page_size,
            page_count=snap.page_count,
            raw_bytes=snap.size,
            stored_bytes=sum(s.stored_bytes for s in per),
            digest=run.digest,
            compression=None if zlevel is None else compression,
            snapshot_at=snap.taken_at,
            started=started,
            finished=finished,
            per_stripe=per,
        )
    except BaseException:
        release_free_memory()
        if run is not None:
            run.stop_and_join()  # no worker may write to a sink being aborted
        for sink in sinks:
            try:
                sink.abort()
            except Exception:  # abort must not hide the real error
                pass
        raise


class _DumpRun:
    def __init__(self, server, database, dump_type, sinks, comp, progress, cancel, data_key=None):
        self.server = server
        self.database = database
        self.dump_type = dump_type
        self.sinks = sinks
        self.n = len(sinks)
        self.comp = comp
        self.progress = progress
        self.cancel = cancel
        self.dump_id = uuid.uuid4().hex
        self.data_key: DataKey | None = data_key
        self.encryption = None if data_key is None else fmt.new_encryption(data_key.id)
        self.stop = threading.Event()
        self.reads_done = threading.Event()
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.encoders: list[fmt.StripeEncoder | None] = [None] * self.n
        self.written = [0] * self.n
        self.digest = ""
        self.b_reads = threading.Barrier(self.n, action=self._all_read)
        self.b_trailers = threading.Barrier(self.n)
        self.threads: list[threading.Thread] = []
        self.snap: Snapshot | None = None

    # -- control (caller's thread)
    def start(self, snap: Snapshot) -> None:
        self.snap = snap
        created = snap.taken_at.isoformat()
        for i, (first, count) in enumerate(split_pages(snap.page_count, self.n)):
            header = fmt.StripeHeader(
                server=self.server,
                database=self.database,
                dump_type=self.dump_type,
                dump_id=self.dump_id,
                stripe=i,
                stripes=self.n,
                page_size=snap.page_size,
                page_count=snap.page_count,
                stripe_first_page=first,
                stripe_page_count=count,
                created=created,
                compression=self.comp,
                encryption=self.encryption,
            )
            self.encoders[i] = fmt.StripeEncoder(header, None if self.data_key is None else self.data_key.key)
        for i in range(self.n):
            t = threading.Thread(
                target=self._worker, args=(i,), name=f"dump-{self.database}-stripe{i}", daemon=True
            )
            self.threads.append(t)
            t.start()

    def _poll(self) -> None:
        if self.cancel is not None and self.cancel.is_set() and not self.errors:
            self._fail(
                StatusError(
                    TERMINATED_BY_ADMIN,
                    f"dump of {self.database} was cancelled by request; no stripe was kept",
                )
            )

    def wait_reads_done(self) -> None:
        """Block until every stripe has read its pages, or every worker ended.

        Never returns while a worker may still read the snapshot: the caller
        releases it (and closes its file descriptor) next.
        """
        while not self.reads_done.wait(0.05):
            self._poll()
            if not any(t.is_alive() for t in self.threads):
                return

    def stop_and_join(self) -> None:
        self.stop.set()
        self.b_reads.abort()
        self.b_trailers.abort()
        for t in self.threads:
            t.join()

    def join(self) -> None:
        for t in self.threads:
            while t.is_alive():
                t.join(0.05)
                self._poll()
        self._poll()  # a cancel that came in time wins over success

    def raise_if_failed(self) -> None:
        if self.errors:
            raise self.errors[0]

    def results(self) -> list[StripeResult]:
        out = []
        for i, enc in enumerate(self.encoders):
            assert enc is not None
            out.append(
                StripeResult(
                    stripe=i,
                    device=describe(self.sinks[i], i),
                    first_page=enc.h.stripe_first_page,
                    page_count=enc.h.stripe_page_count,
                    blocks=len(enc.block_hashes),
                    raw_bytes=enc.raw_bytes,
                    stored_bytes=self.written[i],
                    digest=fmt.stripe_digest([rh for _, rh in enc.block_hashes]),
                )
            )
        return out

    # -- shared
    def _fail(self, err: BaseException) -> None:
        with self.lock:
            self.errors.append(err)
        self.stop.set()
        self.b_reads.abort()
        self.b_trailers.abort()

    def _all_read(self) -> None:
        blocks: list[tuple[int, int]] = []
        for enc in self.encoders:
            assert enc is not None
            blocks.extend(enc.block_hashes)
        self.digest = fmt.dump_digest(blocks)
        self.reads_done.set()

    # -- worker thread
    def _check(self) -> None:
        """Raise _Stopped when the dump is to stop; a cancel is seen here at once."""
        if self.cancel is not None and self.cancel.is_set():
            self._poll()
        if self.stop.is_set():
            raise _Stopped

    def _write(self, i: int, data: bytes) -> None:
        self._check()
        sink = self.sinks[i]
        try:
            sink.write(data)
        except StatusError as e:
            raise StatusError(e.status, f"stripe {i} of {self.n}: {e}") from e
        except OSError as e:
            raise media_error(describe(sink, i), f"stripe {i} of {self.n}: writing to", e) from e
        self.written[i] += len(data)

    def _write_block(self, i: int, parts: tuple) -> None:
        """A block frame as (header, stored bytes): one writev when the sink has it (no joining copy)."""
        writev = getattr(self.sinks[i], "writev", None)
        if writev is None:
            self._write(i, parts[0] + parts[1])
            return
        self._check()
        sink = self.sinks[i]
        try:
            writev(list(parts))
        except StatusError as e:
            raise StatusError(e.status, f"stripe {i} of {self.n}: {e}") from e
        except OSError as e:
            raise media_error(describe(sink, i), f"stripe {i} of {self.n}: writing to", e) from e
        self.written[i] += len(parts[0]) + len(parts[1])

    def _report(self, i: int, enc: fmt.StripeEncoder) -> None:
        if self.progress is not None:
            h = enc.h
            self.progress(
                DumpProgress(
                    stripe=i,
                    stripes=self.n,
                    bytes_done=enc.raw_bytes,
                    bytes_total=h.raw_bytes,
                    pages_done=enc.pages,
                    pages_total=h.stripe_page_count,
                    stored_bytes=self.written[i],
                )
            )

    def _worker(self, i: int) -> None:
        try:
            enc = self.encoders[i]
            snap = self.snap
            assert enc is not None and snap is not None
            ps = snap.page_size
            per_block = max(1, fmt.BLOCK_TARGET // ps)
            first, count = enc.h.stripe_first_page, enc.h.stripe_page_count
            self._write(i, enc.header())
            self._report(i, enc)
            last = time.monotonic()
            page, end = first, first + count
            buf = bytearray(per_block * ps)  # this stripe's page buffer, reused for every block
            while page < end:
                self._check()
                k = min(per_block, end - page)
                raw = snap.pread_into(buf, page * ps, k * ps)
                # the frame is written before the next read reuses buf (raw blocks are sent from it)
                self._write_block(i, enc.block_parts(page, raw))
                page += k
                if self.progress is not None and (
                    page == end or time.monotonic() - last >= PROGRESS_INTERVAL_S
                ):
                    last = time.monotonic()
                    self._report(i, enc)
            try:
                self.b_reads.wait()
            except threading.BrokenBarrierError:
                raise _Stopped from None
            self._write(i, enc.trailer(self.digest))
            try:
                self.b_trailers.wait()
            except threading.BrokenBarrierError:
                raise _Stopped from None
            self._check()
            sink = self.sinks[i]
            try:
                sink.commit()
            except StatusError as e:
                raise StatusError(e.status, f"stripe {i} of {self.n}: {e}") from e
            except OSError as e:
                raise media_error(describe(sink, i), f"stripe {i} of {self.n}: committing", e) from e
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self._fail(e)


__all__ = [
    "MAX_STRIPES",
    "DumpProgress",
    "DumpResult",
    "StripeResult",
    "dump_database",
    "split_pages",
]
