"""The striped dump format: one stripe = header + block frames + trailer.

Sans-I/O: :class:`StripeEncoder` turns pages into bytes and
:class:`StripeDecoder` turns bytes (fed in chunks of any size) into events, so
the same frames travel to a file, over the ``sybackup::`` archive API or to a
media server without either side assuming a file.

Byte layout (all integers big-endian)::

    stripe   := header block* trailer
    header   := "SYBARDMP"            8  magic
                version    u16        2  FORMAT_VERSION (1)
                json_len   u32        4  <= MAX_HEADER_JSON
                json       json_len      UTF-8 JSON object, see StripeHeader
                check      u64        8  xxh3_64 of version..json
    block    := "SBLK"                4  magic
                codec      u8         1  0 raw, 1 zstd
                flags      u8         1  0, or 1 (FLAG_AES_GCM) in an encrypted dump
                reserved   u16        2  0
                index      u32        4  block number in this stripe, from 0
                raw_len    u32        4  pages * page_size, <= MAX_RAW_BLOCK
                stored_len u32        4  raw_len for codec 0
                first_page u64        8  0-based page index (SQLite page number - 1)
                stored_h   u64        8  xxh3_64 of the stored bytes (= raw_h for codec 0)
                raw_h      u64        8  xxh3_64 of the raw bytes (the pages)
                hdr_check  u32        4  xxh32 of the 44 bytes above
                stored     stored_len    the pages, zstd-compressed when codec 1; in an
                                         encrypted dump AES-256-GCM ciphertext + 16-byte tag
                                         of those bytes (engine.backupserver.cipher)
    trailer  := "SYBAREND"            8  marker
                json_len   u32        4  <= MAX_TRAILER_JSON
                json       json_len      UTF-8 JSON object, see StripeTrailer
                check      u64        8  xxh3_64 of marker..json

Every stripe holds one contiguous page range of the database; blocks are
about BLOCK_TARGET bytes raw (a whole number of pages) and follow each other
without gaps. The trailer carries the stripe digest (xxh3_128 over the raw
block hashes of this stripe, in order, each packed as u64) and the dump
digest (xxh3_128 over ``(first_page u64, raw_hash u64)`` of every block of
every stripe, in page order): the checksum of the whole dump, identical in
every stripe's trailer, which a load recomputes once all stripes are read.

An encrypted dump's header carries ``encryption`` = {"cipher": "aes-256-gcm",
"key_id": fingerprint of the home's data key, "salt": 16 random bytes hex};
every block has flag 1, is compressed then encrypted, its stored hash covers
the ciphertext (a media server verifies it without the key) and its raw hash
is xxh3_64 seeded from the dump's key material. Without the key a decoder in
``verify_only`` mode still checks every stored hash, the block headers and the
trailer; a loading decoder needs the key (``key_lookup``) and fails with a
sentence naming the key id otherwise.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import xxhash
import zstandard

from engine.backupserver import cipher as _cipher
from engine.jobs.status import BACKUP_FAILED, RESTORE_ERROR, StatusError

MAGIC = b"SYBARDMP"
FORMAT_VERSION = 1
BLOCK_MAGIC = b"SBLK"
TRAILER_MAGIC = b"SYBAREND"

#: Target raw size of one block (a whole number of pages is used).
BLOCK_TARGET = 1 << 20
#: Hard caps a decoder enforces before it allocates anything.
MAX_RAW_BLOCK = 16 << 20
MAX_HEADER_JSON = 64 << 10
MAX_TRAILER_JSON = 64 << 10
#: The decoder accepts up to this many stripes in a header; dump_database
#: enforces the product limit (MAX_STRIPES in engine.backupserver.dump).
MAX_FORMAT_STRIPES = 4096

CODEC_RAW = 0
CODEC_ZSTD = 1
#: Block flag: the stored bytes are AES-256-GCM ciphertext + tag.
FLAG_AES_GCM = 1

#: ASE ``with compression = N`` level -> zstd level. 0 means no compression.
#: 1-9 (ASE's zlib levels, 1 fastest, 9 smallest) map one to one onto zstd
#: 1-9, which keeps the same "higher is smaller and slower" meaning. ASE's fast
#: levels 100 and 101 (FastLZ, 100 the faster one, 101 a little smaller) map to
#: zstd's fast mode -1 and to zstd 1.
ZSTD_LEVEL_FOR_ASE = {
    1: 1,
    2: 2,
    3: 3,
    4: 4,
    5: 5,
    6: 6,
    7: 7,
    8: 8,
    9: 9,
    100: -1,
    101: 1,
}
#: ``compress::DEVICE`` without a level uses ASE's default level.
DEFAULT_COMPRESS_LEVEL = 1

SYBAR_FORMAT_NAME = "sybar-dump"

_HEADER_FIXED = struct.Struct(">8sHI")  # magic, version, json_len
_CHECK = struct.Struct(">Q")
_BLOCK_BODY = struct.Struct(">4sBBHIIIQQQ")  # 44 bytes
_BLOCK_CHECK = struct.Struct(">I")
BLOCK_HEADER_SIZE = _BLOCK_BODY.size + _BLOCK_CHECK.size  # 48
_TRAILER_FIXED = struct.Struct(">8sI")
_PAIR = struct.Struct(">QQ")
_U64 = struct.Struct(">Q")

_DUMP_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_SALT_RE = re.compile(r"^[0-9a-f]{32}$")


def zstd_level(ase_level: int | None) -> int | None:
    """The zstd level for an ASE compression level; None when not compressing.

    Raises StatusError (6) for a level ASE does not know.
    """
    if ase_level is None or ase_level == 0:
        return None
    try:
        return ZSTD_LEVEL_FOR_ASE[ase_level]
    except (KeyError, TypeError):
        raise StatusError(
            BACKUP_FAILED,
            f"compression level {ase_level!r} is not valid: use 0-9, 100 or 101 "
            "(with compression = N, or compress::N::DEVICE)",
        ) from None


def compress_bound(raw_len: int) -> int:
    """An upper bound of zstd's output for raw_len input (ZSTD_COMPRESSBOUND plus slack)."""
    return raw_len + (raw_len >> 8) + 1024


class DumpFormatError(StatusError):
    """A stripe that is not a valid sybar dump stripe (status 2850 restore error)."""

    def __init__(self, message: str, *, offset: int | None = None, status: int = RESTORE_ERROR):
        super().__init__(status, message)
        self.offset = offset


# ---------------------------------------------------------------------------
# header and trailer records


@dataclass(frozen=True)
class StripeHeader:
    server: str
    database: str
    dump_type: str  # "D" database, "T" transaction
    dump_id: str  # uuid4 hex, shared by all stripes of one dump
    stripe: int  # 0-based
    stripes: int
    page_size: int
    page_count: int  # the whole dump
    stripe_first_page: int  # 0-based page index of this stripe's first page
    stripe_page_count: int
    created: str  # ISO 8601, UTC
    compression: dict[str, Any] | None  # {"codec": "zstd", "level": ASE, "zstd_level": n}
    sybar_format: int = FORMAT_VERSION
    format: str = SYBAR_FORMAT_NAME
    #: None, or {"cipher": "aes-256-gcm", "key_id": 16 hex, "salt": 32 hex}; absent from the JSON when None
    encryption: dict[str, Any] | None = None

    @property
    def key_id(self) -> str | None:
        return None if self.encryption is None else self.encryption.get("key_id")

    @property
    def raw_bytes(self) -> int:
        return self.stripe_page_count * self.page_size

    @property
    def dump_bytes(self) -> int:
        return self.page_count * self.page_size

    @property
    def compression_level(self) -> int | None:
        return None if self.compression is None else self.compression.get("level")

    def describe(self) -> str:
        """'stripe 2 of 4 of dump 3f2a… of database sales (D, 2024-…)' for messages."""
        return (
            f"stripe {self.stripe} of {self.stripes} of {'database' if self.dump_type == 'D' else 'transaction'} "
            f"dump {self.dump_id} of {self.server}.{self.database} taken {self.created}"
        )

    def to_json(self) -> bytes:
        d = asdict(self)
        if d["encryption"] is None:
            del d["encryption"]  # unencrypted headers stay byte-identical to earlier versions
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, obj: Any, where: str = "stripe header") -> StripeHeader:
        if not isinstance(obj, dict):
            raise DumpFormatError(f"{where}: the header is not a JSON object")

        def get(key: str, kind: type | tuple[type, ...]) -> Any:
            if key not in obj:
                raise DumpFormatError(f"{where}: the header lacks the field {key!r}")
            value = obj[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise DumpFormatError(f"{where}: header field {key!r} has the wrong type ({value!r})")
            return value

        h = cls(
            server=get("server", str),
            database=get("database", str),
            dump_type=get("dump_type", str),
            dump_id=get("dump_id", str),
            stripe=get("stripe", int),
            stripes=get("stripes", int),
            page_size=get("page_size", int),
            page_count=get("page_count", int),
            stripe_first_page=get("stripe_first_page", int),
            stripe_page_count=get("stripe_page_count", int),
            created=get("created", str),
            compression=get("compression", (dict, type(None))),
            sybar_format=get("sybar_format", int),
            format=get("format", str),
            encryption=get("encryption", (dict, type(None))) if "encryption" in obj else None,
        )
        h.validate(where)
        return h

    def validate(self, where: str = "stripe header") -> None:
        problems = []
        if self.format != SYBAR_FORMAT_NAME:
            problems.append(f"format is {self.format!r}, not {SYBAR_FORMAT_NAME!r}")
        if self.sybar_format != FORMAT_VERSION:
            problems.append(f"format version {self.sybar_format} is not {FORMAT_VERSION}")
        if self.dump_type not in ("D", "T"):
            problems.append(f"dump type {self.dump_type!r} is neither 'D' nor 'T'")
        if not _DUMP_ID_RE.match(self.dump_id):
            problems.append(f"dump id {self.dump_id!r} is not 32 hex digits")
        if not 1 <= self.stripes <= MAX_FORMAT_STRIPES:
            problems.append(f"stripe count {self.stripes} is out of range")
        if not 0 <= self.stripe < self.stripes:
            problems.append(f"stripe number {self.stripe} is not below the stripe count {self.stripes}")
        if self.page_size < 512 or self.page_size > 65536 or self.page_size & (self.page_size - 1):
            problems.append(f"page size {self.page_size} is not a power of two from 512 to 65536")
        if not 0 <= self.page_count < 1 << 40:
            problems.append(f"page count {self.page_count} is out of range")
        if (
            self.stripe_first_page < 0
            or self.stripe_page_count < 0
            or self.stripe_first_page + self.stripe_page_count > self.page_count
        ):
            problems.append(
                f"stripe page range {self.stripe_first_page}+{self.stripe_page_count} "
                f"lies outside the dump's {self.page_count} pages"
            )
        if self.compression is not None and self.compression.get("codec") != "zstd":
            problems.append(f"compression {self.compression!r} is not zstd")
        e = self.encryption
        if e is not None and (
            e.get("cipher") != _cipher.CIPHER_NAME
            or not isinstance(e.get("key_id"), str)
            or not _KEY_ID_RE.match(e["key_id"])
            or not isinstance(e.get("salt"), str)
            or not _SALT_RE.match(e["salt"])
        ):
            problems.append(f"encryption {e!r} is not aes-256-gcm with a key id and a salt")
        try:
            _dt.datetime.fromisoformat(self.created)
        except ValueError:
            problems.append(f"creation time {self.created!r} is not an ISO time")
        if problems:
            raise DumpFormatError(f"{where}: invalid header: " + "; ".join(problems))


@dataclass(frozen=True)
class StripeTrailer:
    dump_id: str
    stripe: int
    blocks: int
    pages: int
    raw_bytes: int
    stored_bytes: int  # header + block frames of this stripe (the trailer itself excluded)
    stripe_digest: str  # xxh3_128 hex
    dump_digest: str  # xxh3_128 hex

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, obj: Any, where: str) -> StripeTrailer:
        if not isinstance(obj, dict):
            raise DumpFormatError(f"{where}: the trailer is not a JSON object")
        kinds = {
            "dump_id": str,
            "stripe": int,
            "blocks": int,
            "pages": int,
            "raw_bytes": int,
            "stored_bytes": int,
            "stripe_digest": str,
            "dump_digest": str,
        }
        values = {}
        for key, kind in kinds.items():
            value = obj.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise DumpFormatError(f"{where}: trailer field {key!r} is missing or has the wrong type")
            values[key] = value
        return cls(**values)


# ---------------------------------------------------------------------------
# digests


def stripe_digest(raw_hashes: list[int]) -> str:
    """xxh3_128 over the stripe's raw block hashes in order (u64 big-endian each)."""
    h = xxhash.xxh3_128()
    for rh in raw_hashes:
        h.update(_U64.pack(rh))
    return h.hexdigest()


def dump_digest(blocks: list[tuple[int, int]]) -> str:
    """xxh3_128 over (first_page, raw_hash) of all blocks of all stripes, in page order."""
    h = xxhash.xxh3_128()
    for first_page, rh in sorted(blocks):
        h.update(_PAIR.pack(first_page, rh))
    return h.hexdigest()


# ---------------------------------------------------------------------------
# encoding


def make_compressor(level: int) -> zstandard.ZstdCompressor:
    """A zstd compressor for independent ~1 MiB blocks.

    Above level 3 zstd's default hash and chain tables (up to 2^21 entries,
    ~12 MB per context at level 9) buy nothing for a 1 MiB block, so they are
    capped at 2^18: the same ratio, faster, and memory stays
    O(stripes x block size) at every level.
    """
    if level <= 3:
        return zstandard.ZstdCompressor(level=level, write_content_size=True)
    p = zstandard.ZstdCompressionParameters.from_level(level, source_size=BLOCK_TARGET)
    params = zstandard.ZstdCompressionParameters.from_level(
        level,
        source_size=BLOCK_TARGET,
        window_log=min(p.window_log, 20),
        hash_log=min(p.hash_log, 18),
        chain_log=min(p.chain_log, 18),
        write_content_size=1,
    )
    return zstandard.ZstdCompressor(compression_params=params)


def block_cipher(header: StripeHeader, data_key: bytes) -> _cipher.BlockCipher:
    """The block cipher of an encrypted dump (its header's salt and dump id, the home's data key)."""
    assert header.encryption is not None
    return _cipher.BlockCipher(data_key, header.dump_id, bytes.fromhex(header.encryption["salt"]))


def new_encryption(data_key_id: str) -> dict[str, Any]:
    """The header's ``encryption`` record for a new dump: cipher, key id and a fresh random salt."""
    return {
        "cipher": _cipher.CIPHER_NAME,
        "key_id": data_key_id,
        "salt": _cipher.secrets.token_hex(_cipher.SALT_BYTES),
    }


def encode_header(header: StripeHeader) -> bytes:
    header.validate("stripe header to write")
    body = header.to_json()
    if len(body) > MAX_HEADER_JSON:
        raise ValueError("stripe header too large")
    fixed = _HEADER_FIXED.pack(MAGIC, FORMAT_VERSION, len(body))
    check = xxhash.xxh3_64_intdigest(fixed[8:] + body)
    return fixed + body + _CHECK.pack(check)


def encode_trailer(trailer: StripeTrailer) -> bytes:
    body = trailer.to_json()
    fixed = _TRAILER_FIXED.pack(TRAILER_MAGIC, len(body))
    return fixed + body + _CHECK.pack(xxhash.xxh3_64_intdigest(fixed + body))


def encode_block_header(
    index: int,
    codec: int,
    raw_len: int,
    stored_len: int,
    first_page: int,
    stored_h: int,
    raw_h: int,
    flags: int = 0,
) -> bytes:
    body = _BLOCK_BODY.pack(
        BLOCK_MAGIC, codec, flags, 0, index, raw_len, stored_len, first_page, stored_h, raw_h
    )
    return body + _BLOCK_CHECK.pack(xxhash.xxh32_intdigest(body))


class StripeEncoder:
    """Frames one stripe. Not thread-safe: one encoder per stripe (per thread).

    ``header()`` first, then ``block(first_page, raw)`` for each run of pages
    in order, then ``trailer(dump_digest)``. ``block_hashes`` collects
    (first_page, raw xxh3_64) for the dump digest. A header with
    ``encryption`` needs the home's data key (``data_key``, the one whose id it names).
    """

    def __init__(self, header: StripeHeader, data_key: bytes | None = None):
        header.validate("stripe header to write")
        self.h = header
        level = None if header.compression is None else header.compression.get("zstd_level")
        self._cctx = None if level is None else make_compressor(level)
        self._cipher: _cipher.BlockCipher | None = None
        self._seed = 0
        if header.encryption is not None:
            if data_key is None or _cipher.key_id(data_key) != header.key_id:
                raise ValueError("an encrypted stripe needs the data key its header names")
            self._cipher = block_cipher(header, data_key)
            self._seed = self._cipher.hash_seed
        self.block_hashes: list[tuple[int, int]] = []
        self.raw_bytes = 0
        self.stored_bytes = 0
        self.pages = 0
        self._next_page = header.stripe_first_page

    def header(self) -> bytes:
        data = encode_header(self.h)
        self.stored_bytes += len(data)
        return data

    def block(self, first_page: int, raw: bytes) -> bytes:
        head, stored = self.block_parts(first_page, raw)
        return head + stored

    def block_parts(self, first_page: int, raw: bytes | memoryview) -> tuple[bytes, bytes | memoryview]:
        """The frame of one block as (48-byte block header, stored bytes), not joined (no copy)."""
        n = len(raw)
        ps = self.h.page_size
        if first_page != self._next_page or n == 0 or n % ps or n > MAX_RAW_BLOCK:
            raise ValueError(f"block of {n} bytes at page {first_page} breaks the stripe layout")
        if first_page + n // ps > self.h.stripe_first_page + self.h.stripe_page_count:
            raise ValueError("block runs past the end of the stripe")
        raw_h = xxhash.xxh3_64_intdigest(raw, self._seed)
        codec, stored = CODEC_RAW, raw
        if self._cctx is not None:
            packed = self._cctx.compress(raw)
            if len(packed) < n:
                codec, stored = CODEC_ZSTD, packed
        index = len(self.block_hashes)
        flags = 0
        if self._cipher is not None:
            stored = self._cipher.encrypt(
                stored, stripe=self.h.stripe, index=index, first_page=first_page, raw_len=n, codec=codec
            )
            flags = FLAG_AES_GCM
        stored_h = raw_h if codec == CODEC_RAW and not flags else xxhash.xxh3_64_intdigest(stored)
        head = encode_block_header(index, codec, n, len(stored), first_page, stored_h, raw_h, flags)
        self.block_hashes.append((first_page, raw_h))
        self._next_page += n // ps
        self.pages += n // ps
        self.raw_bytes += n
        self.stored_bytes += len(head) + len(stored)
        return head, stored

    def trailer(self, dump_digest_hex: str) -> bytes:
        if self.pages != self.h.stripe_page_count:
            raise ValueError(f"stripe has {self.pages} of its {self.h.stripe_page_count} pages")
        t = StripeTrailer(
            dump_id=self.h.dump_id,
            stripe=self.h.stripe,
            blocks=len(self.block_hashes),
            pages=self.pages,
            raw_bytes=self.raw_bytes,
            stored_bytes=self.stored_bytes,  # header + block frames, not the trailer itself
            stripe_digest=stripe_digest([rh for _, rh in self.block_hashes]),
            dump_digest=dump_digest_hex,
        )
        data = encode_trailer(t)
        return data


# ---------------------------------------------------------------------------
# decoding


@dataclass(frozen=True)
class Header:
    header: StripeHeader


@dataclass(frozen=True)
class Block:
    first_page: int
    data: bytes  # raw pages, verified
    index: int
    raw_hash: int
    stored_len: int


@dataclass(frozen=True)
class Trailer:
    trailer: StripeTrailer


Event = Header | Block | Trailer

_S_HEADER, _S_BODY, _S_DONE = range(3)


class StripeDecoder:
    """Incremental, verifying decoder of one stripe.

    ``feed(data)`` returns the events completed by data: one Header, the
    Blocks (already checked against both checksums and decompressed), one
    Trailer (checked against what was seen). ``finish()`` at end of input
    raises if the stripe is incomplete. Any fault raises DumpFormatError naming
    ``name`` (the device), the block and the byte offset. Memory stays bounded
    by one frame (<= MAX_RAW_BLOCK + compress bound) plus what one feed() adds;
    no length field is trusted before it has been checked against its limit.
    With ``verify_only`` the Block events carry no data; ``check_raw=False``
    then skips decompressing (the stored checksums, block headers and trailer
    are still checked: what a media server needs). An encrypted
    stripe is verified without its key: stored hashes, block headers,
    trailer). Otherwise an encrypted stripe needs ``key_lookup(key_id)`` to
    return the data key; None (or no key_lookup) raises DumpFormatError naming
    the key id and what to do.
    """

    def __init__(
        self,
        name: str = "stripe",
        *,
        verify_only: bool = False,
        key_lookup: Callable[[str], bytes | None] | None = None,
        check_raw: bool = True,
    ):
        self.name = name
        self.header: StripeHeader | None = None
        self.trailer: StripeTrailer | None = None
        self.block_hashes: list[tuple[int, int]] = []
        self.raw_bytes = 0
        self.stored_bytes = 0
        self.pages = 0
        self._buf = bytearray()
        self._pos = 0  # bytes of _buf already consumed
        self._off = 0  # stream offset of _buf[_pos]
        self._state = _S_HEADER
        self._dctx = zstandard.ZstdDecompressor(max_window_size=MAX_RAW_BLOCK)
        self._next_page = 0
        self._verify_only = verify_only
        # verify_only without check_raw: stored checksums, headers and trailer only (no decompressing)
        self._check_raw = check_raw or not verify_only
        self._key_lookup = key_lookup
        self._cipher: _cipher.BlockCipher | None = None
        self._seed = 0

    # -- helpers
    @property
    def offset(self) -> int:
        """Bytes of the stripe consumed so far."""
        return self._off

    @property
    def pending(self) -> int:
        """Bytes fed but not yet consumed (part of an incomplete frame)."""
        return len(self._buf) - self._pos

    def _where(self) -> str:
        if self.header is None:
            return self.name
        return (
            f"{self.name} (stripe {self.header.stripe} of {self.header.stripes}, dump {self.header.dump_id})"
        )

    def _fail(self, what: str, offset: int | None = None) -> DumpFormatError:
        off = self._off if offset is None else offset
        return DumpFormatError(f"{self._where()}: {what} at byte offset {off}", offset=off)

    def _peek(self, n: int) -> bytes:
        return bytes(self._buf[self._pos : self._pos + n])

    def _skip(self, n: int) -> None:
        self._pos += n
        self._off += n

    # -- API
    @property
    def done(self) -> bool:
        return self._state == _S_DONE

    def feed(self, data: bytes) -> list[Event]:
        if self._state == _S_DONE:
            if data:
                raise self._fail(f"{len(data)} bytes of trailing garbage after the stripe trailer")
            return []
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        events: list[Event] = []
        while True:
            if self._state == _S_HEADER:
                ev = self._parse_header()
            elif self._state == _S_BODY:
                ev = self._parse_frame()
            else:
                if self.pending:
                    raise self._fail(f"{self.pending} bytes of trailing garbage after the stripe trailer")
                break
            if ev is None:
                break
            events.append(ev)
        return events

    def finish(self) -> None:
        if self._state == _S_DONE:
            return
        end = self._off + self.pending
        if self._state == _S_HEADER:
            what = "the stripe header is incomplete" if self.pending else "the stripe is empty"
        else:
            assert self.header is not None
            what = (
                f"the stripe is truncated after block {len(self.block_hashes) - 1} "
                f"({self.pages} of {self.header.stripe_page_count} pages), no trailer"
                if self.block_hashes
                else f"the stripe is truncated before its first block ({self.header.stripe_page_count} pages expected)"
            )
            if self.pending:
                what += f"; {self.pending} bytes of an incomplete frame"
        raise DumpFormatError(
            f"{self._where()}: {what} at byte offset {end}; the device holds an incomplete "
            "stripe (interrupted dump or damaged media): load from a complete copy of the dump",
            offset=end,
        )

    # -- states
    def _parse_header(self) -> Event | None:
        avail = self.pending
        if avail < _HEADER_FIXED.size:
            k = min(avail, 8)
            if self._peek(k) != MAGIC[:k]:
                raise self._fail("bad magic: this is not a sybar dump stripe (no SYBARDMP header)", 0)
            return None
        magic, version, n = _HEADER_FIXED.unpack_from(self._buf, self._pos)
        if magic != MAGIC:
            raise self._fail("bad magic: this is not a sybar dump stripe (no SYBARDMP header)", 0)
        if version != FORMAT_VERSION:
            raise self._fail(
                f"dump format version {version} is not supported (this sybar reads version {FORMAT_VERSION})",
                8,
            )
        if n > MAX_HEADER_JSON:
            raise self._fail(
                f"header length {n} exceeds the {MAX_HEADER_JSON}-byte limit (corrupt header)", 10
            )
        total = _HEADER_FIXED.size + n + _CHECK.size
        if avail < total:
            return None
        data = self._peek(total)
        (check,) = _CHECK.unpack_from(data, total - _CHECK.size)
        if xxhash.xxh3_64_intdigest(data[8 : total - _CHECK.size]) != check:
            raise self._fail("checksum mismatch in the stripe header", 0)
        try:
            obj = json.loads(data[_HEADER_FIXED.size : total - _CHECK.size])
        except (ValueError, UnicodeDecodeError):
            raise self._fail("the stripe header is not valid JSON", _HEADER_FIXED.size) from None
        header = StripeHeader.from_json(obj, self.name)
        if header.encryption is not None and not self._verify_only:
            self._cipher = self._open_cipher(header)
            self._seed = self._cipher.hash_seed
        self.header = header
        self._next_page = self.header.stripe_first_page
        self._skip(total)
        self.stored_bytes += total
        self._state = _S_BODY
        return Header(self.header)

    def _open_cipher(self, header: StripeHeader) -> _cipher.BlockCipher:
        kid = header.key_id
        key = None if self._key_lookup is None else self._key_lookup(str(kid))
        if key is None:
            raise DumpFormatError(
                f"{self.name}: {header.describe()} is encrypted (AES-256-GCM) with the data key {kid}, "
                f"which this sybar home does not hold: import that key with `sybar key import --file FILE` "
                "(the file `sybar key export` wrote on the home that took the backup), then load again",
                offset=0,
            )
        if _cipher.key_id(key) != kid:
            raise DumpFormatError(
                f"{self.name}: the key offered for data key {kid} has the id {_cipher.key_id(key)}: "
                "import the right key with `sybar key import --file FILE`",
                offset=0,
            )
        return block_cipher(header, key)

    def _parse_frame(self) -> Event | None:
        if self.pending < 4:
            return None
        magic = self._peek(4)
        if magic == BLOCK_MAGIC:
            return self._parse_block()
        if magic == TRAILER_MAGIC[:4]:
            return self._parse_trailer()
        k = len(self.block_hashes)
        raise self._fail(
            f"bad frame magic {magic!r} where block {k} or the trailer should start (corrupt or misaligned stripe)"
        )

    def _parse_block(self) -> Event | None:
        h = self.header
        assert h is not None
        k = len(self.block_hashes)
        if self.pending < BLOCK_HEADER_SIZE:
            return None
        body = self._peek(_BLOCK_BODY.size)
        (hcheck,) = _BLOCK_CHECK.unpack_from(self._buf, self._pos + _BLOCK_BODY.size)
        if xxhash.xxh32_intdigest(body) != hcheck:
            raise self._fail(f"checksum mismatch in the header of block {k}")
        _m, codec, flags, reserved, index, raw_len, stored_len, first_page, stored_h, raw_h = (
            _BLOCK_BODY.unpack(body)
        )
        ps = h.page_size
        left = h.stripe_first_page + h.stripe_page_count - self._next_page
        if index != k:
            raise self._fail(f"block {k} is numbered {index} (blocks missing or out of order)")
        encrypted = h.encryption is not None
        if codec not in (CODEC_RAW, CODEC_ZSTD) or flags not in (0, FLAG_AES_GCM) or reserved:
            raise self._fail(
                f"block {k} uses unknown codec {codec}, flags {flags} or reserved bits {reserved}"
            )
        if bool(flags) != encrypted:
            raise self._fail(
                f"block {k} is {'' if flags else 'not '}encrypted but the header says the dump is "
                f"{'' if encrypted else 'not '}encrypted"
            )
        tag = _cipher.TAG_BYTES if encrypted else 0
        if codec == CODEC_ZSTD and h.compression is None:
            raise self._fail(f"block {k} is compressed but the header says the dump is not")
        if first_page != self._next_page:
            raise self._fail(f"block {k} starts at page {first_page}, expected page {self._next_page}")
        if raw_len == 0 or raw_len % ps or raw_len > MAX_RAW_BLOCK or raw_len // ps > left:
            raise self._fail(
                f"block {k} claims {raw_len} raw bytes, not a whole number of {ps}-byte pages within "
                f"the {left} pages left in this stripe (limit {MAX_RAW_BLOCK})"
            )
        if (codec == CODEC_RAW and stored_len != raw_len + tag) or (
            codec == CODEC_ZSTD and not tag < stored_len <= compress_bound(raw_len) + tag
        ):
            raise self._fail(
                f"block {k} claims an impossible stored length {stored_len} for {raw_len} raw bytes"
            )
        total = BLOCK_HEADER_SIZE + stored_len
        if self.pending < total:
            return None
        at = self._off
        pages = f"pages {first_page}-{first_page + raw_len // ps - 1}"
        start = self._pos + BLOCK_HEADER_SIZE
        raw: bytes = b""
        with memoryview(self._buf) as mv, mv[start : start + stored_len] as stored:
            if xxhash.xxh3_64_intdigest(stored) != stored_h:
                raise self._fail(f"checksum mismatch in block {k} ({pages}): the stored data is corrupt", at)
            if encrypted:
                ok = True
                if self._cipher is not None:
                    try:
                        plain = self._cipher.decrypt(
                            stored, stripe=h.stripe, index=k, first_page=first_page, raw_len=raw_len,
                            codec=codec,
                        )
                    except _cipher.DecryptError:
                        raise self._fail(
                            f"block {k} ({pages}) does not authenticate under data key {h.key_id}: it was "
                            "altered, or moved from another place, stripe or dump; load from an intact copy",
                            at,
                        ) from None
                    if codec == CODEC_ZSTD:
                        raw = self._decompress(plain, raw_len, k, pages, at)
                    else:
                        raw = plain
                    ok = len(raw) == raw_len and xxhash.xxh3_64_intdigest(raw, self._seed) == raw_h
            elif codec == CODEC_ZSTD and not self._check_raw:
                ok = True
            elif codec == CODEC_ZSTD:
                size = zstandard.frame_content_size(stored) if stored_len >= 4 else -1
                if size not in (-1, raw_len):
                    raise self._fail(
                        f"block {k}: compressed frame declares {size} bytes, expected {raw_len}", at
                    )
                try:
                    raw = self._dctx.decompress(stored, max_output_size=raw_len)
                except zstandard.ZstdError as e:
                    raise self._fail(f"block {k} ({pages}) does not decompress ({e})", at) from None
                ok = len(raw) == raw_len and xxhash.xxh3_64_intdigest(raw) == raw_h
            else:
                ok = stored_h == raw_h  # raw blocks carry the same hash twice
                if ok and not self._verify_only:
                    raw = bytes(stored)
        if not ok:
            raise self._fail(f"checksum mismatch in the pages of block {k} ({pages})", at)
        self._skip(total)
        self.block_hashes.append((first_page, raw_h))
        self._next_page += raw_len // ps
        self.pages += raw_len // ps
        self.raw_bytes += raw_len
        self.stored_bytes += total
        return Block(first_page, b"" if self._verify_only else raw, k, raw_h, stored_len)

    def _decompress(self, stored: bytes | memoryview, raw_len: int, k: int, pages: str, at: int) -> bytes:
        size = zstandard.frame_content_size(stored) if len(stored) >= 4 else -1
        if size not in (-1, raw_len):
            raise self._fail(f"block {k}: compressed frame declares {size} bytes, expected {raw_len}", at)
        try:
            return self._dctx.decompress(stored, max_output_size=raw_len)
        except zstandard.ZstdError as e:
            raise self._fail(f"block {k} ({pages}) does not decompress ({e})", at) from None

    def _parse_trailer(self) -> Event | None:
        h = self.header
        assert h is not None
        if self.pending < _TRAILER_FIXED.size:
            return None
        magic, n = _TRAILER_FIXED.unpack_from(self._buf, self._pos)
        if magic != TRAILER_MAGIC:
            raise self._fail("bad trailer marker (corrupt or misaligned stripe)")
        if n > MAX_TRAILER_JSON:
            raise self._fail(
                f"trailer length {n} exceeds the {MAX_TRAILER_JSON}-byte limit (corrupt trailer)"
            )
        total = _TRAILER_FIXED.size + n + _CHECK.size
        if self.pending < total:
            return None
        at = self._off
        data = self._peek(total)
        self._skip(total)
        (check,) = _CHECK.unpack_from(data, total - _CHECK.size)
        if xxhash.xxh3_64_intdigest(data[: total - _CHECK.size]) != check:
            raise self._fail("checksum mismatch in the stripe trailer", at)
        try:
            obj = json.loads(data[_TRAILER_FIXED.size : _TRAILER_FIXED.size + n])
        except (ValueError, UnicodeDecodeError):
            raise self._fail("the stripe trailer is not valid JSON", at) from None
        t = StripeTrailer.from_json(obj, self._where())
        mine = StripeTrailer(
            dump_id=h.dump_id,
            stripe=h.stripe,
            blocks=len(self.block_hashes),
            pages=self.pages,
            raw_bytes=self.raw_bytes,
            stored_bytes=self.stored_bytes,
            stripe_digest=stripe_digest([rh for _, rh in self.block_hashes]),
            dump_digest=t.dump_digest,
        )
        if self.pages != h.stripe_page_count:
            raise self._fail(
                f"the trailer comes after {self.pages} pages but the stripe holds {h.stripe_page_count} "
                "(blocks missing)",
                at,
            )
        if t != mine:
            keys = ("dump_id", "stripe", "blocks", "pages", "raw_bytes", "stored_bytes", "stripe_digest")
            diffs = [
                f"{k} {getattr(t, k)!r} != {getattr(mine, k)!r} read"
                for k in keys
                if getattr(t, k) != getattr(mine, k)
            ]
            raise self._fail("the trailer does not match the stripe's contents: " + "; ".join(diffs), at)
        self.trailer = t
        self._state = _S_DONE
        if self.pending:
            raise self._fail(f"{self.pending} bytes of trailing garbage after the stripe trailer")
        return Trailer(t)


def read_exactly(source: Any, n: int) -> bytes:
    """Read n bytes from a StripeSource (short reads allowed); fewer only at end of input."""
    parts = []
    got = 0
    while got < n:
        chunk = source.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_header(source: Any, name: str | None = None) -> StripeHeader:
    """Read and verify only the header of a stripe (``load ... with headeronly/listonly``)."""
    label = name or getattr(source, "name", "stripe device")
    dec = StripeDecoder(str(label), verify_only=True)  # a header is listed without any key
    fixed = read_exactly(source, _HEADER_FIXED.size)
    dec.feed(fixed)
    if len(fixed) < _HEADER_FIXED.size:
        dec.finish()
    (n,) = struct.unpack_from(">I", fixed, 10)
    rest = read_exactly(source, n + _CHECK.size)
    events = dec.feed(rest)
    if not events:
        dec.finish()
    assert isinstance(events[0], Header)
    return events[0].header
