"""Stripe fuzzing through the public read API (engine/backupserver): StripeDecoder, read_header and
verify_dump over arbitrary and mutated bytes.

Seeds are real stripes: `dump_database` of a small SQLite database into two in-memory stripes (raw and
zstd), and a many-block stripe from the StripeEncoder. Whatever the bytes, reading raises the
project's typed error (DumpFormatError / StatusError, status 2850), never IndexError, struct.error,
MemoryError or a zstd error; and damage is never silent: a mutated stripe that still reads gives
exactly the original pages. Long mode: ``SYBAR_FUZZ=long .venv/bin/python -m pytest -q tests/fuzz/``.
"""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from pathlib import Path

from fuzzing import FUZZ, chunks, mutate
from hypothesis import given
from hypothesis import strategies as st

from engine.backupserver import dumpformat as fmt
from engine.backupserver.dump import dump_database
from engine.backupserver.load import verify_dump
from engine.jobs.status import StatusError


class MemorySink:
    def __init__(self):
        self.parts: list[bytes] = []
        self.committed = False

    def write(self, data: bytes) -> None:
        self.parts.append(bytes(data))

    def commit(self) -> None:
        self.committed = True

    def abort(self) -> None:
        self.parts = []

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


class BytesSource:
    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = data, 0, name

    def read(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def close(self) -> None:
        pass


def _dumped(compression: int | None) -> list[bytes]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fz.db"
        con = sqlite3.connect(path)
        con.execute("pragma page_size = 1024")
        con.execute("pragma journal_mode = wal")
        con.execute("create table t(id integer primary key, s text)")
        con.executemany("insert into t values (?, ?)", ((i, f"row {i} " * 6) for i in range(600)))
        con.commit()
        con.close()
        sinks = [MemorySink(), MemorySink()]
        dump_database(server="FZ", database="fz", db_path=path, sinks=sinks, compression=compression)
        assert all(s.committed for s in sinks)
        return [s.data for s in sinks]


def _many_blocks() -> tuple[bytes, bytes]:
    h = fmt.StripeHeader(server="FZ", database="fz", dump_type="D", dump_id=uuid.uuid4().hex, stripe=0, stripes=1,
                         page_size=512, page_count=12, stripe_first_page=0, stripe_page_count=12,
                         created="2024-05-01T10:00:00+00:00",
                         compression={"codec": "zstd", "level": 1, "zstd_level": 1})
    pages = b"".join(bytes([i]) * 256 + bytes(range(256)) for i in range(12))
    enc = fmt.StripeEncoder(h)
    out = [enc.header()] + [enc.block(i, pages[i * 512:(i + 2) * 512]) for i in range(0, 12, 2)]
    out.append(enc.trailer(fmt.dump_digest(enc.block_hashes)))
    return b"".join(out), pages


RAW = _dumped(None)
ZSTD = _dumped(1)
MANY, MANY_PAGES = _many_blocks()
SEEDS = {"raw0": RAW[0], "raw1": RAW[1], "zstd0": ZSTD[0], "zstd1": ZSTD[1], "many": MANY}
SIZES = st.lists(st.integers(1, 70_000), min_size=1, max_size=6)


def decode(data: bytes, sizes: list[int]) -> bytes | None:
    """The pages a stripe holds, or None when it is refused with the project's typed error."""
    dec = fmt.StripeDecoder("fuzzed stripe")
    pages = []
    try:
        for part in chunks(data, sizes):
            for ev in dec.feed(part):
                if isinstance(ev, fmt.Block):
                    pages.append(ev.data)
            # memory stays bounded by one frame plus what this feed added
            assert dec.pending <= fmt.BLOCK_HEADER_SIZE + fmt.compress_bound(fmt.MAX_RAW_BLOCK) + len(part)
        dec.finish()
    except StatusError as e:
        assert isinstance(e, fmt.DumpFormatError) and e.status == 2850 and str(e)
        return None
    return b"".join(pages)


ORIGINAL = {k: decode(v, [len(v)]) for k, v in SEEDS.items()}


@FUZZ
@given(st.binary(max_size=4000), SIZES)
def test_random_bytes(data, sizes):
    assert decode(data, sizes) is None or data == b""


@FUZZ
@given(st.binary(max_size=400), SIZES)
def test_random_bytes_after_a_valid_header(tail, sizes):
    header_end = fmt._HEADER_FIXED.size + int.from_bytes(MANY[10:14], "big") + 8
    assert decode(MANY[:header_end] + tail, sizes) is None


@FUZZ
@given(st.sampled_from(sorted(SEEDS)).flatmap(lambda k: st.tuples(st.just(k), mutate(SEEDS[k], max_ops=3))), SIZES)
def test_mutated_stripes_never_read_wrong(case, sizes):
    key, data = case
    got = decode(data, sizes)
    assert got is None or got == ORIGINAL[key], "a damaged stripe read back different pages"


@FUZZ
@given(mutate(RAW[0], max_ops=2), st.booleans())
def test_verify_dump_with_a_mutated_stripe(bad, swap):
    sources = [BytesSource(bad, "s0"), BytesSource(RAW[1], "s1")]
    if swap:
        sources.reverse()
    try:
        result = verify_dump(sources)
    except StatusError as e:
        assert e.status == 2850 and str(e)
    else:
        assert bad == RAW[0] or result is not None


@FUZZ
@given(st.one_of(st.binary(max_size=200), mutate(MANY[:400], max_ops=3)))
def test_read_header(data):
    try:
        h = fmt.read_header(BytesSource(data, "hdr"))
    except StatusError as e:
        assert e.status == 2850
    else:
        assert isinstance(h, fmt.StripeHeader)


def test_the_seeds_read_back():
    assert all(v is not None for v in ORIGINAL.values())
    assert ORIGINAL["many"] == MANY_PAGES
    assert verify_dump([BytesSource(RAW[0], "s0"), BytesSource(RAW[1], "s1")]) is not None
    assert sum(1 for _ in range(0, 12, 2)) == 6
