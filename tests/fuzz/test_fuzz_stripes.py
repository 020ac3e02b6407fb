"""Stripe fuzzing through the public read API (engine/backupserver): StripeDecoder, read_header and
verify_dump over arbitrary and mutated bytes.

Seeds are real stripes: `dump_database` of a small SQLite database into two in-memory stripes (raw,
zstd, and zstd + AES-256-GCM), and a many-block stripe from the StripeEncoder. Whatever the bytes, reading raises the
project's typed error (DumpFormatError / StatusError, status 2850), never IndexError, struct.error,
MemoryError, a zstd or a cipher error; and damage is never silent: a changed stripe is refused by a
loader and by the media server's key-less check alike, and an encrypted one without its key. Long mode: ``SYBAR_FUZZ=long .venv/bin/python -m pytest -q tests/fuzz/``.
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
from engine.backupserver.cipher import DataKey, new_key
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


KEY = DataKey.of(new_key())


def _dumped(compression: int | None, data_key: DataKey | None = None) -> list[bytes]:
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
        dump_database(server="FZ", database="fz", db_path=path, sinks=sinks, compression=compression,
                      data_key=data_key)
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
ENC = _dumped(1, KEY)
MANY, MANY_PAGES = _many_blocks()
SEEDS = {"raw0": RAW[0], "raw1": RAW[1], "zstd0": ZSTD[0], "zstd1": ZSTD[1], "enc0": ENC[0], "enc1": ENC[1],
         "many": MANY}
SIZES = st.lists(st.integers(1, 70_000), min_size=1, max_size=6)


def decode(data: bytes, sizes: list[int], *, verify_only: bool = False, key: bool = True) -> bytes | None:
    """The pages a stripe holds, or None when it is refused with the project's typed error.

    verify_only is the media server's check (stored checksums, frames, trailer; no key needed)."""
    dec = fmt.StripeDecoder("fuzzed stripe", verify_only=verify_only, check_raw=not verify_only,
                            key_lookup=(lambda kid: KEY.key if kid == KEY.id else None) if key else None)
    pages = []
    try:
        for part in chunks(data, sizes):
            for ev in dec.feed(part):
                if isinstance(ev, fmt.Block):
                    pages.append(ev.data)
            # memory stays bounded by one frame plus what this feed added
            assert dec.pending <= fmt.BLOCK_HEADER_SIZE + fmt.compress_bound(fmt.MAX_RAW_BLOCK) + 64 + len(part)
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
@given(st.sampled_from(sorted(SEEDS)).flatmap(lambda k: st.tuples(st.just(k), mutate(SEEDS[k], max_ops=3))), SIZES,
       st.booleans())
def test_mutated_stripes_never_read_wrong(case, sizes, verify_only):
    """Every byte is under a checksum: a changed stripe is refused, by a loader and by the media server."""
    key, data = case
    got = decode(data, sizes, verify_only=verify_only)
    if data != SEEDS[key]:
        assert got is None, "a damaged stripe was accepted"
    else:
        assert got == (b"" if verify_only else ORIGINAL[key])


@FUZZ
@given(mutate(ENC[0], max_ops=2), SIZES)
def test_encrypted_stripe_without_its_key(data, sizes):
    assert decode(data, sizes, key=False) is None


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
    assert ORIGINAL["enc0"] == ORIGINAL["zstd0"] and ORIGINAL["enc1"] == ORIGINAL["zstd1"]
    assert b"row 7 " not in ENC[0] + ENC[1] and b"row 7 " in RAW[0] + RAW[1]
    assert decode(ENC[0], [len(ENC[0])], key=False) is None
    assert ORIGINAL["many"] == MANY_PAGES
    assert verify_dump([BytesSource(RAW[0], "s0"), BytesSource(RAW[1], "s1")]) is not None
    assert sum(1 for _ in range(0, 12, 2)) == 6
