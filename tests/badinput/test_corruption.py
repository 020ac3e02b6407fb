"""Damaged backup objects (issue 8, part 2): a flipped or cut byte anywhere in a stored stripe object.

One image of two `sybackup::` stripes (several ~1 MiB blocks each) lives on the real storage unit of a
real `sybar serve`. For each damage (a byte of the header, of a block's frame header, of a block's
payload, of the trailer; the object cut short) `sybar verify ID` fails with a NetBackup status and a
sentence naming the image, the stripe object and the block; `sybar restore --image ID` into an
existing database (damaged header, damaged block payload, cut object) refuses naming the object and
leaves that database's file byte-identical (sha256). The object is put back after each case, and a
final verify and restore succeed.

Damaged file stripes of `load database` (6 offsets x 2 dumps, missing/duplicated/foreign stripes) are
in tests/test_load_failures.py; this module covers the archive path (media server, catalog, agent).
"""

from __future__ import annotations

import hashlib
import re
import struct

import pytest
from sybar_testkit import served_home, sybar, sybar_json, table_digest

HEADER_FIXED = struct.Struct(">8sHI")   # magic, version, json length (engine/backupserver/dumpformat.py)
BLOCK_HEADER = struct.Struct(">4sBBHIIIQQQI")  # 48 bytes: magic, codec, flags, reserved, index, raw, stored, ...


@pytest.fixture(scope="module")
def cr(tmp_path_factory, sa_in_keyring):
    with served_home(tmp_path_factory.mktemp("corrupt"), {"crdb": 6}) as s:
        r = s.fisql('dump database crdb to "sybackup::-POLICY Sybase_ASE" stripe on "sybackup::-POLICY Sybase_ASE"'
                    "\ngo\ncreate database crtgt\ngo\nuse crtgt\ngo\ncreate table mine(x int)\ngo\n"
                    "insert into mine values (7)\ngo\n")
        assert "DUMP is complete" in r.stdout and "Msg" not in r.stdout, r.stdout
        image = sybar_json(s.home, "list", "--database", "crdb")[0]
        assert len(image["stripes"]) == 2
        s.image = image
        s.objects = [s.home / "storage" / "disk1" / o["name"] for o in sorted(image["stripes"],
                                                                              key=lambda o: o["stripe"])]
        yield s


def layout(data: bytes) -> dict:
    """Offsets of the parts of one stripe object, read by the documented layout."""
    magic, _version, n = HEADER_FIXED.unpack_from(data)
    assert magic == b"SYBARDMP"
    pos = HEADER_FIXED.size + n + 8
    blocks = []
    while data[pos:pos + 4] == b"SBLK":
        fields = BLOCK_HEADER.unpack_from(data, pos)
        blocks.append((pos, fields[4], fields[6]))  # frame offset, index, stored length
        pos += BLOCK_HEADER.size + fields[6]
    assert data[pos:pos + 8] == b"SYBAREND"
    return {"header_json": HEADER_FIXED.size + 2, "blocks": blocks, "trailer": pos}


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# (case, stripe, how to find the byte, the block the message must name or None, also try a restore)
CASES = [
    ("header byte", 0, lambda lay: lay["header_json"] + 5, None, True),
    ("frame header of block 0", 1, lambda lay: lay["blocks"][0][0] + 13, 0, False),
    ("payload of block 1", 0, lambda lay: lay["blocks"][1][0] + 48 + lay["blocks"][1][2] // 2, 1, True),
    ("payload of the last block", 1, lambda lay: lay["blocks"][-1][0] + 48 + 7, -1, False),
    ("trailer", 1, lambda lay: lay["trailer"] + 30, None, False),
]


def _verify_fails(s, expect_block: int | None, lay: dict, obj_name: str) -> str:
    r = sybar(s.home, "verify", s.image["backup_id"])
    out = r.stdout + r.stderr
    # 2850 does not fit an exit status: sybar exits 252 and prints the status, as NetBackup's commands do
    assert r.returncode == 252 and "status 2850" in out, out
    assert s.image["backup_id"] in out and obj_name in out, out
    if expect_block is not None:
        k = lay["blocks"][expect_block][1]
        assert re.search(rf"\bblock {k}\b", out), out
    return out


def _restore_refused(s) -> str:
    target = s.db_file("crtgt")
    before = _sha(target)
    r = sybar(s.home, "restore", "--image", s.image["backup_id"], "--database", "crtgt")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert _sha(target) == before, "the restore changed the target"
    assert table_digest(target, "mine")[0] == 1
    return out


@pytest.mark.parametrize("case,stripe,where,block,restore", CASES, ids=[c[0] for c in CASES])
def test_flipped_byte(cr, case, stripe, where, block, restore):
    obj = cr.objects[stripe]
    good = obj.read_bytes()
    lay = layout(good)
    assert len(lay["blocks"]) >= 2, "the test needs several blocks per stripe"
    i = where(lay)
    bad = bytearray(good)
    bad[i] ^= 0x20
    obj.write_bytes(bytes(bad))
    try:
        out = _verify_fails(cr, block, lay, obj.name)
        print(case, "->", out.strip().splitlines()[-1])
        if restore:
            out = _restore_refused(cr)
            assert obj.name in out, out
    finally:
        obj.write_bytes(good)


def test_truncated_object(cr):
    obj = cr.objects[1]
    good = obj.read_bytes()
    lay = layout(good)
    cut = lay["blocks"][1][0] + 100  # inside block 1's payload
    obj.write_bytes(good[:cut])
    try:
        out = _verify_fails(cr, None, lay, obj.name)
        assert "truncated" in out or "incomplete" in out, out
        assert re.search(r"\bblock [01]\b", out), out
        _restore_refused(cr)
    finally:
        obj.write_bytes(good)


def test_undamaged_image_verifies_and_restores(cr):
    r = sybar(cr.home, "verify", cr.image["backup_id"])
    assert r.returncode == 0, r.stdout + r.stderr
    r = sybar(cr.home, "restore", "--image", cr.image["backup_id"], "--database", "crcopy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_digest(cr.db_file("crcopy"), "orders") == table_digest(cr.db_file("crdb"), "orders")
