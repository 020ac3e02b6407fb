"""load database: read all stripes in parallel, verify everything, write a temp file.

One thread per stripe decodes its stripe (every block checked against its
stored and raw checksums, the trailer against what was read). The stripes'
headers are checked against each other before a single page is written: one
dump, every stripe exactly once, as many devices as the dump has stripes.
Pages are written at their offsets into ``target_tmp``; at the end the dump
digest is recomputed over all stripes and compared with every trailer, and
the file is fsynced. On any failure ``target_tmp`` is removed and the error
raised; the caller's real database file is never touched here: the
dataserver renames target_tmp over it only after a successful return (and
must first remove the old database's -wal and -shm files, or SQLite would
replay the old log into the loaded database).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.backupserver import dumpformat as fmt
from engine.backupserver.devices import StripeSource, describe
from engine.backupserver.dump import PROGRESS_INTERVAL_S, DumpProgress
from engine.backupserver.dumpformat import DumpFormatError, StripeHeader
from engine.backupserver.memory import limit_malloc_arenas, release_free_memory
from engine.jobs.status import RESTORE_ERROR, TERMINATED_BY_ADMIN, StatusError

#: Bytes asked of a source per read.
READ_CHUNK = 1 << 20  # = the media data frame: an archive source hands over whole frames (no slicing copy)
# A load reports progress with the same record as a dump (bytes_done: raw bytes written to the target;
# stored_bytes: bytes read from the device so far).
LoadProgress = DumpProgress


@dataclass(frozen=True)
class StripeLoadResult:
    stripe: int
    device: str
    first_page: int
    page_count: int
    blocks: int
    raw_bytes: int
    stored_bytes: int
    digest: str


@dataclass(frozen=True)
class LoadResult:
    dump_id: str
    server: str
    database: str
    dump_type: str
    stripes: int
    page_size: int
    page_count: int
    raw_bytes: int
    stored_bytes: int
    digest: str
    compression: int | None
    created: str  # when the dump's snapshot was taken (ISO, UTC)
    started: _dt.datetime
    finished: _dt.datetime
    target: Path | None
    per_stripe: list[StripeLoadResult]

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()


class _Stopped(Exception):
    pass


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def check_stripe_set(headers: list[StripeHeader], devices: list[str]) -> None:
    """Raise DumpFormatError unless headers are the stripes of one dump, each exactly once."""
    n = len(headers)
    holds = [f"{dev} holds {h.describe()}" for dev, h in zip(devices, headers, strict=True)]
    ids = {h.dump_id for h in headers}
    if len(ids) > 1:
        first = headers[0]
        others = [
            f"{dev} holds {h.describe()}"
            for dev, h in zip(devices, headers, strict=True)
            if h.dump_id != first.dump_id
        ]
        raise DumpFormatError(
            "the devices hold stripes of different dumps: "
            + "; ".join(others)
            + f"; but {devices[0]} holds {first.describe()}. Give the stripes of one dump only."
        )
    ref = headers[0]
    for dev, h in zip(devices, headers, strict=True):
        for key in (
            "server",
            "database",
            "dump_type",
            "stripes",
            "page_size",
            "page_count",
            "created",
            "compression",
            "encryption",
        ):
            if getattr(h, key) != getattr(ref, key):
                raise DumpFormatError(
                    f"{dev} disagrees with {devices[0]} on {key} ({getattr(h, key)!r} != "
                    f"{getattr(ref, key)!r}) although both claim dump {ref.dump_id}: the stripe is damaged"
                )
    by_index: dict[int, str] = {}
    for dev, h in zip(devices, headers, strict=True):
        if h.stripe in by_index:
            missing = sorted(set(range(ref.stripes)) - {x.stripe for x in headers})
            raise DumpFormatError(
                f"{by_index[h.stripe]} and {dev} both hold stripe {h.stripe} of dump {ref.dump_id} "
                f"({ref.server}.{ref.database}): give each stripe once"
                + (f"; missing: stripe {', '.join(map(str, missing))}" if missing else "")
            )
        by_index[h.stripe] = dev
    if ref.stripes != n:
        missing = sorted(set(range(ref.stripes)) - set(by_index))
        raise DumpFormatError(
            f"dump {ref.dump_id} of {ref.server}.{ref.database} taken {ref.created} has {ref.stripes} "
            f"stripes but {n} device{'s were' if n != 1 else ' was'} given"
            + (f": stripe {', '.join(map(str, missing))} is missing" if missing else "")
            + " ("
            + "; ".join(holds)
            + "). Name every stripe device of the dump, each once."
        )
    expect = 0
    for h in sorted(headers, key=lambda x: x.stripe):
        if h.stripe_first_page != expect:
            raise DumpFormatError(
                f"{by_index[h.stripe]}: stripe {h.stripe} starts at page {h.stripe_first_page}, "
                f"expected {expect}: the stripe headers of dump {ref.dump_id} do not fit together"
            )
        expect += h.stripe_page_count
    if expect != ref.page_count:
        raise DumpFormatError(
            f"the stripes of dump {ref.dump_id} cover {expect} pages, not the dump's {ref.page_count}"
        )


def list_dump(sources: list[StripeSource]) -> list[StripeHeader]:
    """The header of every source, in the order given (``with headeronly / listonly``).

    Closes the sources. Raises DumpFormatError for a device that holds no valid header.
    """
    try:
        return [fmt.read_header(src, describe(src, i)) for i, src in enumerate(sources)]
    finally:
        for src in sources:
            with contextlib.suppress(Exception):
                src.close()


def load_database(
    *,
    sources: list[StripeSource],
    target_tmp: Path | None,
    expect_database: str | None = None,
    expect_dump_type: str | None = None,
    progress: Callable[[LoadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> LoadResult:
    """Load the dump held by sources into a new file target_tmp (see module doc).

    target_tmp None verifies the dump without writing anything (``verify = full``).
    Closes the sources. Raises DumpFormatError (2850) for a bad or mismatched
    stripe, StatusError 2850 for a target problem, 150 when cancelled.
    """
    limit_malloc_arenas()
    run = _LoadRun(sources, target_tmp, expect_database, expect_dump_type, progress, cancel)
    try:
        return run.run()
    except BaseException:
        run.join()  # no worker may still write into the file we remove
        run.remove_target()
        raise
    finally:
        run.close()
        release_free_memory()


def verify_dump(
    sources: list[StripeSource],
    *,
    progress: Callable[[LoadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> LoadResult:
    """Read and verify every stripe and the dump digest; write nothing."""
    return load_database(sources=sources, target_tmp=None, progress=progress, cancel=cancel)


class _LoadRun:
    def __init__(self, sources, target, expect_database, expect_dump_type, progress, cancel):
        self.sources = sources
        self.n = len(sources)
        self.target = None if target is None else Path(target)
        self.expect_database = expect_database
        self.expect_dump_type = expect_dump_type
        self.progress = progress
        self.cancel = cancel
        self.devices = [describe(s, i) for i, s in enumerate(sources)]
        # an encrypted stripe's key comes from its source (the archive API looks it up in the keyring)
        self.decoders = [
            fmt.StripeDecoder(d, key_lookup=getattr(s, "key_lookup", None))
            for d, s in zip(self.devices, sources, strict=True)
        ]
        self.headers: list[StripeHeader | None] = [None] * self.n
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.b_headers = threading.Barrier(max(self.n, 1), action=self._headers_read)
        self.fd = -1
        self.created_target = False
        self.threads: list[threading.Thread] = []

    def run(self) -> LoadResult:
        started = _now()
        if self.n == 0:
            raise StatusError(RESTORE_ERROR, "load: no dump device given")
        if self.n > fmt.MAX_FORMAT_STRIPES:
            raise StatusError(
                RESTORE_ERROR, f"load: {self.n} devices exceed the {fmt.MAX_FORMAT_STRIPES} limit"
            )
        self._poll()
        for i in range(self.n):
            t = threading.Thread(target=self._worker, args=(i,), name=f"load-stripe{i}", daemon=True)
            self.threads.append(t)
            t.start()
        for t in self.threads:
            while t.is_alive():
                t.join(0.05)
                self._poll()
        self._poll()
        if self.errors:
            raise self.errors[0]
        ref = self.headers[0]
        assert ref is not None
        blocks: list[tuple[int, int]] = []
        for d in self.decoders:
            blocks.extend(d.block_hashes)
        digest = fmt.dump_digest(blocks)
        for dev, d in zip(self.devices, self.decoders, strict=True):
            assert d.trailer is not None
            if d.trailer.dump_digest != digest:
                raise DumpFormatError(
                    f"{dev}: the dump digest recomputed over all {self.n} stripes ({digest}) differs from the "
                    f"one this stripe's trailer records ({d.trailer.dump_digest}): the stripes do not form "
                    "the dump that was written; load from an intact copy"
                )
        if self.fd >= 0:
            try:
                os.fsync(self.fd)
                os.close(self.fd)
            except OSError as e:
                raise StatusError(
                    RESTORE_ERROR, f"writing loaded database file {self.target} failed: {e.strerror}"
                ) from e
            finally:
                self.fd = -1
        per = [
            StripeLoadResult(
                stripe=h.stripe,
                device=dev,
                first_page=h.stripe_first_page,
                page_count=h.stripe_page_count,
                blocks=len(d.block_hashes),
                raw_bytes=d.raw_bytes,
                stored_bytes=d.offset,
                digest=d.trailer.stripe_digest,
            )
            for dev, d, h in zip(self.devices, self.decoders, self.headers, strict=True)
        ]
        per.sort(key=lambda r: r.stripe)
        return LoadResult(
            dump_id=ref.dump_id,
            server=ref.server,
            database=ref.database,
            dump_type=ref.dump_type,
            stripes=ref.stripes,
            page_size=ref.page_size,
            page_count=ref.page_count,
            raw_bytes=ref.dump_bytes,
            stored_bytes=sum(r.stored_bytes for r in per),
            digest=digest,
            compression=ref.compression_level,
            created=ref.created,
            started=started,
            finished=_now(),
            target=self.target,
            per_stripe=per,
        )

    # -- control
    def _check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            self._poll()
        if self.stop.is_set():
            raise _Stopped

    def _poll(self) -> None:
        if self.cancel is not None and self.cancel.is_set() and not self.errors:
            self._fail(
                StatusError(TERMINATED_BY_ADMIN, "load was cancelled by request; the target was not changed")
            )
        if self.errors:
            self.stop.set()

    def _fail(self, err: BaseException) -> None:
        with self.lock:
            self.errors.append(err)
        self.stop.set()
        self.b_headers.abort()

    def remove_target(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        if self.created_target and self.target is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.target)
            self.created_target = False

    def join(self) -> None:
        self.stop.set()
        self.b_headers.abort()
        for t in self.threads:
            t.join()

    def close(self) -> None:
        self.join()
        for src in self.sources:
            with contextlib.suppress(Exception):
                src.close()

    def _headers_read(self) -> None:
        """Barrier action: every stripe's header is in; check them, create the target."""
        headers = [h for h in self.headers if h is not None]
        assert len(headers) == self.n
        check_stripe_set(headers, self.devices)
        ref = headers[0]
        if self.expect_database is not None and ref.database != self.expect_database:
            raise DumpFormatError(
                f"the dump on {self.devices[0]} is of database {ref.server}.{ref.database}, "
                f"not {self.expect_database}: name the devices of a dump of {self.expect_database}"
            )
        if self.expect_dump_type is not None and ref.dump_type != self.expect_dump_type:
            kind = {"D": "database", "T": "transaction"}
            raise DumpFormatError(
                f"the devices hold a {kind.get(ref.dump_type, ref.dump_type)} dump "
                f"({ref.dump_id}); load {kind.get(self.expect_dump_type)} needs a "
                f"{kind.get(self.expect_dump_type)} dump"
            )
        if self.target is not None:
            size = ref.page_count * ref.page_size
            try:
                self.fd = os.open(
                    self.target, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600
                )
                self.created_target = True
                os.ftruncate(self.fd, size)
                if size and hasattr(os, "posix_fallocate"):
                    try:
                        os.posix_fallocate(self.fd, 0, size)
                    except OSError as e:
                        if e.errno not in (95, 22):  # EOPNOTSUPP, EINVAL: no preallocation here
                            raise
            except OSError as e:
                raise StatusError(
                    RESTORE_ERROR,
                    f"cannot create the {size}-byte database file {self.target} for the load: {e.strerror}; "
                    "free space or fix permissions on the database directory",
                ) from e

    # -- worker
    def _report(self, i: int, dec: fmt.StripeDecoder) -> None:
        if self.progress is not None and dec.header is not None:
            h = dec.header
            self.progress(
                LoadProgress(
                    stripe=h.stripe,
                    stripes=h.stripes,
                    bytes_done=dec.raw_bytes,
                    bytes_total=h.raw_bytes,
                    pages_done=dec.pages,
                    pages_total=h.stripe_page_count,
                    stored_bytes=dec.offset,
                )
            )

    def _worker(self, i: int) -> None:
        src = self.sources[i]
        dec = self.decoders[i]
        dev = self.devices[i]
        try:
            pending: list[fmt.Event] = []
            while dec.header is None:
                self._check()
                chunk = self._read(src, dev, 64 << 10)
                if not chunk:
                    dec.finish()
                pending.extend(dec.feed(chunk))
            self.headers[i] = dec.header
            try:
                self.b_headers.wait()
            except threading.BrokenBarrierError:
                raise _Stopped from None
            self._report(i, dec)
            last = time.monotonic()
            ps = dec.header.page_size
            while True:
                for ev in pending:
                    if isinstance(ev, fmt.Block) and self.fd >= 0:
                        self._pwrite(ev.data, ev.first_page * ps)
                pending = []
                if dec.done:
                    break
                self._check()
                if self.progress is not None and time.monotonic() - last >= PROGRESS_INTERVAL_S:
                    last = time.monotonic()
                    self._report(i, dec)
                chunk = self._read(src, dev, READ_CHUNK)
                if not chunk:
                    dec.finish()
                pending = dec.feed(chunk)
            # the stripe must end right after its trailer
            extra = self._read(src, dev, 1)
            if extra:
                dec.feed(extra)
            self._report(i, dec)
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self._fail(e)

    def _read(self, src, dev: str, n: int) -> bytes:
        try:
            return src.read(n)
        except StatusError:
            raise
        except OSError as e:
            raise StatusError(
                RESTORE_ERROR, f"reading {dev} failed: {e.strerror or e}; check the device"
            ) from e

    def _pwrite(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        try:
            while view:
                k = os.pwrite(self.fd, view, offset)
                view = view[k:]
                offset += k
        except OSError as e:
            raise StatusError(
                RESTORE_ERROR,
                f"writing the loaded database file {self.target} failed at offset {offset}: {e.strerror}; "
                "free space on its file system and retry the load",
            ) from e
