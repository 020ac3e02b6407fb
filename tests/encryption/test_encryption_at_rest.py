"""Encryption at rest (AES-256-GCM per block): a real daemon, real keyring, real stored objects.

One home takes an encrypted backup; its stored objects hold no plaintext, the
media server verifies them without the key, and a restore gives equal tables.
The same home after its keyring lost the data key (as on a new machine
with the home's files restored) cannot restore without the key, nor with
another key, and leaves the target untouched; once the exported key is
imported it restores. (A copy of the home at another path would also lose
the catalog's seal key, which is the catalog's business, not this test's.) Block swaps between stripes and a
flipped ciphertext byte are caught.
"""

from __future__ import annotations

import hashlib
import os
import stat
import uuid

import pytest
from sybar_testkit import served_home, sybar, sybar_json, table_digest

from engine.archive import keys
from engine.backupserver import dumpformat as fmt
from engine.backupserver.cipher import DataKey, new_key
from engine.home import Home

CANARY = "SYBAR-ENCRYPTION-CANARY-7f3a9c"


def _stored_files(home):
    return [p for p in (home / "storage").rglob("*") if p.is_file() and p.name.startswith("SYBAR.")]


def _file_hash(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory, sa_in_keyring):
    root = tmp_path_factory.mktemp("enc")
    home = root / "homeA"
    home.mkdir(mode=0o700)
    (home / "sybar.toml").write_text('encryption = "aes-256-gcm"\n')
    with served_home(home, {"mydb": 3}) as s:
        r = s.sybar_isql(f"use mydb\ngo\ncreate table canary (s varchar(80))\ngo\n"
                         f"insert canary values ('{CANARY}')\ngo\n")
        assert "Msg" not in r.stdout, r.stdout + r.stderr
        r = sybar(s.home, "backup", str(s.home / "scripts" / "sybase_mydb_backup"))
        assert r.returncode == 0, r.stdout + r.stderr
        image = sybar_json(s.home, "list")[0]
        yield s, root, image


def test_stored_objects_are_ciphertext(encrypted):
    s, _root, image = encrypted
    files = _stored_files(s.home)
    assert len(files) == len(image["stripes"]) >= 2
    key_ids = set()
    for f in files:
        data = f.read_bytes()
        assert CANARY.encode() not in data, f"plaintext row found in {f}"
        with open(f, "rb") as src:
            header = fmt.read_header(src, str(f))
        assert header.encryption is not None and header.encryption["cipher"] == "aes-256-gcm"
        key_ids.add(header.key_id)
    # the header names the key by its fingerprint, never the key
    shown = sybar(s.home, "key", "show")
    assert shown.returncode == 0 and key_ids == {shown.stdout.split()[2]}, shown.stdout
    # the media server verifies the stored (encrypted) blocks without the key
    v = sybar(s.home, "verify", image["backup_id"])
    assert v.returncode == 0, v.stdout + v.stderr


def test_key_export_import_after_the_keyring_lost_the_key(encrypted):
    s, root, image = encrypted
    home_root = Home.resolve(s.home).root
    exported = root / "dr.key"
    r = sybar(s.home, "key", "export", "--file", str(exported))
    assert r.returncode == 0, r.stderr
    assert "WARNING" in r.stderr and "decrypts every encrypted backup" in r.stderr
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    need = keys.current(s.home).id

    # the keyring loses the home's data key (a new machine): only the exported file has it
    import keyring

    service = keys.service(home_root)
    for user in (need, keys.CURRENT):
        keyring.delete_password(service, user)
    assert keys.current(home_root) is None
    r = s.sybar_isql("create database target\ngo\nuse target\ngo\ncreate table t (a int)\ngo\n"
                     "insert t values (42)\ngo\n")
    assert "Msg" not in r.stdout, r.stdout
    before = _file_hash(s.db_file("target"))

    # missing key: a clear sentence naming the key the image needs; target untouched
    r = sybar(s.home, "restore", "--image", image["backup_id"], "--database", "target")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert need in out and "sybar key import" in out, out
    assert "2850" in out, out
    assert _file_hash(s.db_file("target")) == before

    # wrong key: another home's key imported
    other = root / "other.key"
    other.write_text(keys.export_text(DataKey.of(new_key()), "elsewhere"))
    r = sybar(s.home, "key", "import", "--file", str(other))
    assert r.returncode == 0, r.stderr
    r = sybar(s.home, "restore", "--image", image["backup_id"], "--database", "target")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and need in out and "sybar key import" in out, out
    assert _file_hash(s.db_file("target")) == before

    # the exported key imported: the home restores, tables equal to the backed-up ones
    r = sybar(s.home, "key", "import", "--file", str(exported))
    assert r.returncode == 0 and need in r.stdout, r.stdout + r.stderr
    r = sybar(s.home, "restore", "--image", image["backup_id"], "--database", "target")
    assert r.returncode == 0, r.stdout + r.stderr
    for table in ("customer", "orders", "canary"):
        assert table_digest(s.db_file("target"), table) == table_digest(s.db_file("mydb"), table)

    # the media server still checks the stored ciphertext: one flipped byte is refused
    victim = sorted(_stored_files(s.home))[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    v = sybar(s.home, "verify", image["backup_id"])
    assert v.returncode != 0, v.stdout + v.stderr
    assert "checksum mismatch" in v.stdout + v.stderr + str(sybar_json(s.home, "jobs"))


def _stripes(key: DataKey, n: int = 2) -> tuple[list[bytes], list[list[tuple[int, int]]]]:
    """Two encrypted stripes of one dump, as the Backup Server frames them; returns the
    stripes and each stripe's block frame spans."""
    dump_id = uuid.uuid4().hex
    enc = fmt.new_encryption(key.id)
    pages_per_stripe = 64
    encoders = []
    for i in range(n):
        h = fmt.StripeHeader(
            server="S", database="d", dump_type="D", dump_id=dump_id, stripe=i, stripes=n, page_size=4096,
            page_count=n * pages_per_stripe, stripe_first_page=i * pages_per_stripe,
            stripe_page_count=pages_per_stripe, created="2026-01-01T00:00:00+00:00", compression=None,
            encryption=enc,
        )
        encoders.append(fmt.StripeEncoder(h, key.key))
    parts: list[list[bytes]] = []
    for i, e in enumerate(encoders):
        frames = [e.header()]
        for b in range(2):
            first = i * pages_per_stripe + b * 32
            frames.append(e.block(first, os.urandom(32 * 4096)))
        parts.append(frames)
    digest = fmt.dump_digest([bh for e in encoders for bh in e.block_hashes])
    out, spans = [], []
    for e, frames in zip(encoders, parts, strict=True):
        pos, sp = len(frames[0]), []
        for f in frames[1:]:
            sp.append((pos, pos + len(f)))
            pos += len(f)
        out.append(b"".join(frames) + e.trailer(digest))
        spans.append(sp)
    return out, spans


def test_block_swapped_between_stripes_is_detected():
    key = DataKey.of(new_key())
    stripes, spans = _stripes(key)
    lookup = {key.id: key.key}.get
    for data in stripes:  # intact stripes decode
        d = fmt.StripeDecoder("intact", key_lookup=lookup)
        d.feed(data)
        d.finish()
    # stripe 0's block 0, renumbered (index, first page, header check) into stripe 1's place: the
    # frame is well-formed and its stored checksum holds, but it does not authenticate there
    a0, a1 = spans[0][0]
    b0, b1 = spans[1][0]
    moved = bytearray(stripes[0][a0:a1])
    body = list(fmt._BLOCK_BODY.unpack_from(moved, 0))
    orig = fmt._BLOCK_BODY.unpack_from(stripes[1], b0)
    body[4], body[7] = orig[4], orig[7]  # index, first_page of the block it replaces
    head = fmt._BLOCK_BODY.pack(*body)
    moved[: fmt.BLOCK_HEADER_SIZE] = head + fmt._BLOCK_CHECK.pack(fmt.xxhash.xxh32_intdigest(head))
    forged = stripes[1][:b0] + bytes(moved) + stripes[1][b1:]
    with pytest.raises(fmt.DumpFormatError, match="does not authenticate"):
        fmt.StripeDecoder("swapped", key_lookup=lookup).feed(forged)
    # without the key (a media server) the stored checksums cannot tell: the swap is for the key holder
    # to catch, and a flipped ciphertext byte is caught by everyone
    flipped = bytearray(stripes[1])
    flipped[b0 + fmt.BLOCK_HEADER_SIZE + 100] ^= 0x80
    with pytest.raises(fmt.DumpFormatError, match="checksum mismatch in block 0"):
        fmt.StripeDecoder("flipped", verify_only=True).feed(bytes(flipped))


def test_plaintext_block_in_an_encrypted_dump_is_refused():
    key = DataKey.of(new_key())
    stripes, spans = _stripes(key, 1)
    a0, a1 = spans[0][0]
    raw = os.urandom(32 * 4096)
    h = fmt.xxhash.xxh3_64_intdigest(raw)
    plain = fmt.encode_block_header(0, fmt.CODEC_RAW, len(raw), len(raw), 0, h, h) + raw
    forged = stripes[0][:a0] + plain + stripes[0][a1:]
    for verify_only in (True, False):
        with pytest.raises(fmt.DumpFormatError, match="not encrypted but the header says"):
            fmt.StripeDecoder("forged", verify_only=verify_only, key_lookup={key.id: key.key}.get).feed(forged)


def test_key_store_in_the_keyring(tmp_path):
    home = Home.resolve(tmp_path / "h")
    assert keys.current(home.root) is None
    dk = keys.ensure(home.root)
    assert keys.ensure(home.root) == dk and keys.lookup(home.root, dk.id) == dk.key
    assert dk.key.hex() not in repr(dk)
    text = keys.export_text(dk, home.root)
    assert keys.parse_export(text, "f") == dk.key
    with pytest.raises(Exception, match="holds no sybar data key"):
        keys.parse_export("key: bm90IGEga2V5", "f")
