"""The stripe format, sans-I/O: encoder, incremental decoder, limits, fuzz."""

from __future__ import annotations

import io
import os
import struct
import uuid

import pytest
import xxhash
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backupserver import dumpformat as fmt
from engine.backupserver.dumpformat import (
    Block,
    DumpFormatError,
    Header,
    StripeDecoder,
    StripeEncoder,
    StripeHeader,
    Trailer,
    read_header,
)
from engine.jobs.status import RESTORE_ERROR, StatusError

PS = 4096


def header(**kw) -> StripeHeader:
    base = dict(
        server="SYBASE1",
        database="salesdb",
        dump_type="D",
        dump_id=uuid.uuid4().hex,
        stripe=0,
        stripes=1,
        page_size=PS,
        page_count=10,
        stripe_first_page=0,
        stripe_page_count=10,
        created="2024-05-01T10:00:00+00:00",
        compression=None,
    )
    base.update(kw)
    return StripeHeader(**base)


def pages(n: int, seed: int = 0) -> bytes:
    half = PS // 2
    return b"".join(os.urandom(half) + bytes([(seed + i) % 256]) * (PS - half) for i in range(n))


def build(h: StripeHeader, data: bytes, per_block: int = 3) -> tuple[bytes, StripeEncoder]:
    enc = StripeEncoder(h)
    out = [enc.header()]
    page = h.stripe_first_page
    end = page + h.stripe_page_count
    while page < end:
        k = min(per_block, end - page)
        off = (page - h.stripe_first_page) * PS
        out.append(enc.block(page, data[off : off + k * PS]))
        page += k
    out.append(enc.trailer(fmt.dump_digest(enc.block_hashes)))
    return b"".join(out), enc


def decode(data: bytes, chunk: int | None = None, name: str = "dev") -> list:
    dec = StripeDecoder(name)
    events = []
    if chunk is None:
        events += dec.feed(data)
    else:
        for i in range(0, len(data), chunk):
            events += dec.feed(data[i : i + chunk])
    dec.finish()
    return events


def _sample():
    data = pages(10)
    h = header(compression={"codec": "zstd", "level": 1, "zstd_level": 1})
    blob, _enc = build(h, data)
    return h, data, blob


SAMPLE = _sample()  # module level, so that hypothesis does not print 20 kB per failing example


@pytest.fixture
def sample():
    return SAMPLE


def test_roundtrip_in_any_chunking(sample):
    h, data, blob = sample
    for chunk in (None, 1, 7, 48, 4096, 100_000):
        events = decode(blob, chunk)
        assert isinstance(events[0], Header) and events[0].header == h
        assert isinstance(events[-1], Trailer)
        blocks = [e for e in events if isinstance(e, Block)]
        assert b"".join(b.data for b in blocks) == data
        assert [b.first_page for b in blocks] == [0, 3, 6, 9]


def test_layout_is_as_documented(sample):
    h, data, blob = sample
    assert blob[:8] == b"SYBARDMP"
    version, n = struct.unpack_from(">HI", blob, 8)
    assert version == fmt.FORMAT_VERSION
    body = blob[14 : 14 + n]
    assert StripeHeader.from_json(__import__("json").loads(body)) == h
    (check,) = struct.unpack_from(">Q", blob, 14 + n)
    assert check == xxhash.xxh3_64_intdigest(blob[8 : 14 + n])
    b0 = 14 + n + 8
    magic, codec, flags, _r, index, raw_len, stored_len, first, sh, rh, hc = struct.unpack_from(
        ">4sBBHIIIQQQI", blob, b0
    )
    assert (magic, codec, flags, index, raw_len, first) == (b"SBLK", 1, 0, 0, 3 * PS, 0)
    stored = blob[b0 + 48 : b0 + 48 + stored_len]
    assert sh == xxhash.xxh3_64_intdigest(stored)
    assert rh == xxhash.xxh3_64_intdigest(data[: 3 * PS])
    assert hc == xxhash.xxh32_intdigest(blob[b0 : b0 + 44])
    assert zstandard.ZstdDecompressor().decompress(stored) == data[: 3 * PS]
    t = blob.rindex(b"SYBAREND")
    (tn,) = struct.unpack_from(">I", blob, t + 8)
    assert t + 12 + tn + 8 == len(blob)


def test_uncompressed_and_incompressible_blocks_are_stored_raw():
    data = os.urandom(10 * PS)
    for comp in (None, {"codec": "zstd", "level": 9, "zstd_level": 9}):
        blob, enc = build(header(compression=comp), data)
        assert enc.raw_bytes == len(data)
        assert b"".join(e.data for e in decode(blob) if isinstance(e, Block)) == data
        assert len(blob) < len(data) + 1024  # raw, not expanded


def test_read_header_reads_only_the_header(sample):
    h, _data, blob = sample
    src = io.BytesIO(blob)
    assert read_header(src) == h
    assert src.tell() < 1024
    with pytest.raises(DumpFormatError, match="not a sybar dump stripe"):
        read_header(io.BytesIO(b"garbage" * 10), "device '/x'")
    with pytest.raises(DumpFormatError, match="empty"):
        read_header(io.BytesIO(b""), "device '/x'")
    with pytest.raises(DumpFormatError, match="incomplete"):
        read_header(io.BytesIO(blob[:30]), "device '/x'")


def test_compression_level_map():
    assert fmt.zstd_level(None) is None and fmt.zstd_level(0) is None
    assert [fmt.zstd_level(i) for i in range(1, 10)] == list(range(1, 10))
    assert fmt.zstd_level(100) == -1 and fmt.zstd_level(101) == 1
    for bad in (10, 99, 102, -1):
        with pytest.raises(StatusError, match="0-9, 100 or 101"):
            fmt.zstd_level(bad)


# -- faults named precisely


def flip(blob: bytes, at: int) -> bytes:
    b = bytearray(blob)
    b[at] ^= 0x40
    return bytes(b)


def test_every_single_byte_flip_is_detected(sample):
    _h, _data, blob = sample
    for at in range(len(blob)):
        with pytest.raises(DumpFormatError) as ei:
            decode(flip(blob, at), 4096, name="device '/dumps/s0'")
        assert "device '/dumps/s0'" in str(ei.value)
        assert ei.value.status == RESTORE_ERROR


def test_messages_name_block_and_offset(sample):
    _h, _data, blob = sample
    b0 = blob.index(b"SBLK")
    b1 = blob.index(b"SBLK", b0 + 1)
    with pytest.raises(
        DumpFormatError, match=rf"checksum mismatch in block 1 \(pages 3-5\).* at byte offset {b1}"
    ):
        decode(flip(blob, b1 + 100))
    with pytest.raises(DumpFormatError, match="checksum mismatch in the header of block 1"):
        decode(flip(blob, b1 + 20))
    with pytest.raises(DumpFormatError, match="checksum mismatch in the stripe header"):
        decode(flip(blob, 30))
    with pytest.raises(DumpFormatError, match="stripe trailer"):
        decode(flip(blob, len(blob) - 20))
    with pytest.raises(DumpFormatError, match="version 2 is not supported"):
        decode(blob[:9] + b"\x02" + blob[10:])


def test_truncation_and_trailing_garbage(sample):
    _h, _data, blob = sample
    for cut in (0, 5, 20, 200, blob.index(b"SBLK") + 10, len(blob) // 2, len(blob) - 1):
        with pytest.raises(DumpFormatError, match="empty|incomplete|truncated"):
            decode(blob[:cut])
    with pytest.raises(DumpFormatError, match="trailing garbage"):
        decode(blob + b"x")
    dec = StripeDecoder("d")
    dec.feed(blob)
    with pytest.raises(DumpFormatError, match="trailing garbage"):
        dec.feed(b"\x00")


def test_dropped_and_reordered_blocks(sample):
    _h, _data, blob = sample
    starts = [i for i in range(len(blob)) if blob.startswith(b"SBLK", i)]
    tr = blob.index(b"SYBAREND")
    frames = [blob[a:b] for a, b in zip(starts, [*starts[1:], tr], strict=True)]
    head, tail = blob[: starts[0]], blob[tr:]
    with pytest.raises(DumpFormatError, match="numbered 2"):
        decode(head + frames[0] + frames[2] + frames[3] + tail)
    with pytest.raises(DumpFormatError, match="numbered 1"):
        decode(head + frames[1] + frames[0] + frames[2] + frames[3] + tail)
    with pytest.raises(DumpFormatError, match="after 9 pages"):
        decode(head + frames[0] + frames[1] + frames[2] + tail)


def test_hostile_lengths_are_refused_before_allocation():
    h = header()
    enc = StripeEncoder(h)
    hdr = enc.header()
    # header JSON length of 4 GiB
    with pytest.raises(DumpFormatError, match="exceeds"):
        StripeDecoder("d").feed(b"SYBARDMP" + struct.pack(">HI", 1, 0xFFFFFFFF))
    # a block claiming 4 GiB raw, with a valid header checksum
    body = struct.pack(">4sBBHIIIQQQ", b"SBLK", 0, 0, 0, 0, 0xFFFFF000, 0xFFFFF000, 0, 0, 0)
    frame = body + struct.pack(">I", xxhash.xxh32_intdigest(body))
    dec = StripeDecoder("d")
    dec.feed(hdr)
    with pytest.raises(DumpFormatError, match="limit"):
        dec.feed(frame)
    # a compressed block whose zstd frame declares far more than its raw length (a bomb)
    hz = header(compression={"codec": "zstd", "level": 1, "zstd_level": 1}, page_count=1, stripe_page_count=1)
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\x00" * (64 << 20))
    assert len(bomb) < fmt.compress_bound(PS)
    head = fmt.encode_block_header(0, 1, PS, len(bomb), 0, xxhash.xxh3_64_intdigest(bomb), 0)
    dec = StripeDecoder("d")
    dec.feed(StripeEncoder(hz).header())
    with pytest.raises(DumpFormatError, match="declares 67108864 bytes, expected 4096"):
        dec.feed(head + bomb)
    # the same bomb without a declared size: decompression stops at the raw length
    bomb2 = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(b"\x00" * (64 << 20))
    head = fmt.encode_block_header(0, 1, PS, len(bomb2), 0, xxhash.xxh3_64_intdigest(bomb2), 0)
    dec = StripeDecoder("d")
    dec.feed(StripeEncoder(hz).header())
    with pytest.raises(DumpFormatError, match="does not decompress|checksum mismatch"):
        dec.feed(head + bomb2)


def test_encoder_refuses_a_broken_layout():
    enc = StripeEncoder(header())
    enc.header()
    with pytest.raises(ValueError):
        enc.block(1, pages(1))  # not the next page
    with pytest.raises(ValueError):
        enc.block(0, b"x" * 100)  # not whole pages
    enc.block(0, pages(2))
    with pytest.raises(ValueError):
        enc.trailer("0" * 32)  # 8 pages missing


def test_zero_page_stripe():
    h = header(stripes=3, stripe=2, page_count=2, stripe_first_page=2, stripe_page_count=0)
    blob, _ = build(h, b"")
    events = decode(blob, 5)
    assert [type(e) for e in events] == [Header, Trailer]


def test_invalid_headers_are_refused():
    for bad in (
        dict(stripe=3, stripes=2),
        dict(page_size=1000),
        dict(dump_type="X"),
        dict(dump_id="nothex"),
        dict(stripe_first_page=5, stripe_page_count=10),
        dict(created="yesterday"),
    ):
        with pytest.raises(DumpFormatError, match="invalid header"):
            header(**bad).validate()


# -- fuzz: whatever the bytes, the decoder raises DumpFormatError or decodes; nothing else


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=300))
def test_fuzz_garbage(data, chunk):
    dec = StripeDecoder("fuzz")
    try:
        for i in range(0, len(data), chunk):
            dec.feed(data[i : i + chunk])
        dec.finish()
    except DumpFormatError:
        return
    raise AssertionError("garbage decoded as a stripe")


@FUZZ
@given(st.data())
def test_fuzz_mutated_stripe(data):
    _h, raw, blob = SAMPLE
    b = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(b) - 1))
        b[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(b)))
    b = b[:cut] + data.draw(st.binary(max_size=64))
    chunk = data.draw(st.integers(1, 5000))
    try:
        events = decode(bytes(b), chunk)
    except DumpFormatError:
        return
    # it decoded: then it must be the original stripe exactly
    assert bytes(b) == blob
    assert b"".join(e.data for e in events if isinstance(e, Block)) == raw


@FUZZ
@given(st.data())
def test_fuzz_field_values_in_block_headers(data):
    """Valid header checksums over hostile field values: refused with DumpFormatError."""
    _h, _raw, blob = SAMPLE
    b0 = blob.index(b"SBLK")
    fields = list(struct.unpack_from(">4sBBHIIIQQQ", blob, b0))
    i = data.draw(st.integers(1, 9))
    limits = {1: 255, 2: 255, 3: 0xFFFF, 4: 0xFFFFFFFF, 5: 0xFFFFFFFF, 6: 0xFFFFFFFF}
    fields[i] = data.draw(st.integers(0, limits.get(i, 2**64 - 1)))
    body = struct.pack(">4sBBHIIIQQQ", *fields)
    frame = body + struct.pack(">I", xxhash.xxh32_intdigest(body))
    mutated = blob[:b0] + frame + blob[b0 + 48 :]
    try:
        decode(mutated, 1000)
    except DumpFormatError:
        return
    assert mutated == blob
