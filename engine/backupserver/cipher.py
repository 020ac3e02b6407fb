"""Encryption of dump blocks at rest: AES-256-GCM, one per-dump key, no keyring here.

A home has one 256-bit *data key* (kept in the OS keyring by
``engine.archive.keys``); it never encrypts a block itself. Each dump draws a
random 16-byte salt and derives its own key material with HKDF-SHA256::

    okm = HKDF(data_key, salt, info = "sybar dump blocks v1" || dump_id, 40 bytes)
    block key = okm[:32]            AES-256-GCM key of this dump only
    hash seed = okm[32:40] (u64)    seed of the keyed raw-page hash

The nonce of a block is ``stripe u32 || block index u64``: unique within a
dump by construction, and no two dumps share a block key (a 128-bit salt and
the dump id go into the derivation), so a nonce never repeats under one key
however many dumps a home takes. That is why the nonce is derived rather than
random (a random 96-bit nonce per block under one long-lived key is bounded by
2^32 blocks; a 32-bit per-dump salt would collide after ~10^4 dumps). The
associated data binds the dump id, the stripe, the block index, its first page,
its raw length and its codec, so a block moved to another place of the same
stripe, to another stripe or into another dump fails authentication.

A block is compressed first, then encrypted; the stored checksum (xxh3 of
ciphertext + tag) lets a media server verify every block without the key.
The raw-page hash of an encrypted block is xxh3_64 seeded with the dump's hash
seed, so the block headers do not carry a plain hash of the pages (the GCM tag,
not that hash, is what proves the pages authentic).
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CIPHER_NAME = "aes-256-gcm"
KEY_BYTES = 32
SALT_BYTES = 16
TAG_BYTES = 16
_NONCE = struct.Struct(">IQ")  # stripe, block index: 12 bytes
_AAD = struct.Struct(">16sIIQIB")  # dump id, stripe, index, first page, raw length, codec


def key_id(key: bytes) -> str:
    """The public fingerprint of a data key (16 hex digits); never reveals the key."""
    return hashlib.sha256(b"sybar data key id\0" + bytes(key)).hexdigest()[:16]


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


@dataclass(frozen=True)
class DataKey:
    """A home's data key and its fingerprint. repr never shows the key."""

    key: bytes
    id: str

    @classmethod
    def of(cls, key: bytes) -> DataKey:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a data key is {KEY_BYTES} bytes, not {len(key)}")
        return cls(bytes(key), key_id(key))

    def __repr__(self) -> str:
        return f"DataKey(id={self.id})"


class DecryptError(Exception):
    """A block that does not authenticate under this dump's key."""


class BlockCipher:
    """AES-256-GCM of the blocks of one dump (thread-safe: AESGCM objects are)."""

    def __init__(self, data_key: bytes, dump_id: str, salt: bytes):
        if len(data_key) != KEY_BYTES:
            raise ValueError("a data key is 32 bytes")
        okm = HKDF(
            algorithm=hashes.SHA256(), length=KEY_BYTES + 8, salt=salt,
            info=b"sybar dump blocks v1" + dump_id.encode(),
        ).derive(bytes(data_key))
        self._aead = AESGCM(okm[:KEY_BYTES])
        self.hash_seed = int.from_bytes(okm[KEY_BYTES:], "big")
        self._dump = bytes.fromhex(dump_id)

    def _aad(self, stripe: int, index: int, first_page: int, raw_len: int, codec: int) -> bytes:
        return _AAD.pack(self._dump, stripe, index, first_page, raw_len, codec)

    def encrypt(self, plain, *, stripe: int, index: int, first_page: int, raw_len: int, codec: int) -> bytes:
        return self._aead.encrypt(
            _NONCE.pack(stripe, index), plain, self._aad(stripe, index, first_page, raw_len, codec)
        )

    def decrypt(self, stored, *, stripe: int, index: int, first_page: int, raw_len: int, codec: int) -> bytes:
        try:
            return self._aead.decrypt(
                _NONCE.pack(stripe, index), stored, self._aad(stripe, index, first_page, raw_len, codec)
            )
        except InvalidTag:
            raise DecryptError from None
