"""A bad stripe set makes load database fail clearly and leaves the target byte-identical."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from sybar_testkit import table_digest


def _quiet(served, name: str = "lf_tgt") -> None:
    """Wait until no session uses the database: a client's exit precedes the server closing its session."""
    import time

    for _ in range(100):
        who = served.fisql("sp_who\ngo\n").stdout
        if name not in who:
            return
        time.sleep(0.1)
    raise AssertionError(f"sessions still in {name}: {who}")


def _file_state(path, served=None) -> dict:
    """The database file's bytes and its WAL's (an absent WAL is an empty one: SQLite deletes it on close)."""
    if served is not None:
        _quiet(served)
    out = {}
    for suffix in ("", "-wal"):
        p = path.with_name(path.name + suffix)
        out[suffix] = hashlib.sha256(p.read_bytes() if p.exists() else b"").hexdigest()
    return out


@pytest.fixture(scope="module")
def dumps(served, tmp_path_factory):
    d = tmp_path_factory.mktemp("dumps")
    rows = "".join(f"insert into t values ({i}, '{('row %d ' % i) * 8}')\n" for i in range(1, 1501))  # noqa: UP031
    r = served.fisql("create database lf_src\ngo\nuse lf_src\ngo\ncreate table t(id int, s varchar(200))\ngo\n"
                     + rows + "go\n")
    assert "Msg" not in r.stdout, r.stdout
    a = [d / f"a.s{i}" for i in range(3)]
    b = [d / f"b.s{i}" for i in range(3)]
    for stripes, extra in ((a, ""), (b, " with compression = 1")):
        devs = f'to "{stripes[0]}" ' + " ".join(f'stripe on "{p}"' for p in stripes[1:])
        out = served.fisql(f"dump database lf_src {devs}{extra}\ngo\n").stdout
        assert "DUMP is complete" in out, out
    # the target: an online database with its own content, nobody using it
    r = served.fisql("create database lf_tgt\ngo\nuse lf_tgt\ngo\ncreate table mine(x int)\ngo\n"
                     "insert into mine values (7)\ngo\n")
    assert "Msg" not in r.stdout
    return {"a": a, "b": b, "dir": d}


def _load(served, devices) -> str:
    devs = f'from "{devices[0]}" ' + " ".join(f'stripe on "{p}"' for p in devices[1:])
    r = served.fisql(f"load database lf_tgt {devs}\ngo\n")
    return r.stdout + r.stderr


def _assert_untouched(served, before, out):
    assert "Msg 8009" in out, out
    assert "was not changed" in out, out
    assert _file_state(served.db_file("lf_tgt")) == before
    r = served.fisql("sp_helpdb lf_tgt\ngo\nuse lf_tgt\ngo\nselect x from mine\ngo\n")
    assert "no options set" in r.stdout and "Msg" not in r.stdout, r.stdout
    assert "7" in r.stdout


def _corrupt(src, dst, offset_fraction: float) -> None:
    shutil.copyfile(src, dst)
    data = bytearray(dst.read_bytes())
    i = min(int(len(data) * offset_fraction), len(data) - 1)
    data[i] ^= 0x5A
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize("where", [0.0, 0.01, 0.3, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("dump", ["a", "b"])
def test_corrupted_byte_in_a_stripe(served, dumps, where, dump):
    before = _file_state(served.db_file("lf_tgt"), served)
    stripes = list(dumps[dump])
    bad = dumps["dir"] / f"corrupt-{dump}-{where}"
    _corrupt(stripes[1], bad, where)
    stripes[1] = bad
    out = _load(served, stripes)
    _assert_untouched(served, before, out)
    assert "stripe" in out.lower()


def test_missing_stripe(served, dumps):
    before = _file_state(served.db_file("lf_tgt"), served)
    out = _load(served, dumps["a"][:2])
    _assert_untouched(served, before, out)


def test_stripe_of_another_dump(served, dumps):
    before = _file_state(served.db_file("lf_tgt"), served)
    out = _load(served, [dumps["a"][0], dumps["a"][1], dumps["b"][2]])
    _assert_untouched(served, before, out)
    assert str(dumps["b"][2]) in out or "another dump" in out or "different dump" in out


def test_duplicated_stripe(served, dumps):
    before = _file_state(served.db_file("lf_tgt"), served)
    dup = dumps["dir"] / "dup.s1"
    shutil.copyfile(dumps["a"][1], dup)
    out = _load(served, [dumps["a"][0], dumps["a"][1], dup])
    _assert_untouched(served, before, out)


def test_truncated_stripe(served, dumps):
    before = _file_state(served.db_file("lf_tgt"), served)
    cut = dumps["dir"] / "cut.s2"
    data = dumps["a"][2].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    out = _load(served, [dumps["a"][0], dumps["a"][1], cut])
    _assert_untouched(served, before, out)


def test_good_load_after_failures_works(served, dumps):
    out = _load(served, dumps["b"])
    assert "LOAD is complete" in out, out
    r = served.fisql("use lf_tgt\ngo\n")
    assert "Msg 950" in r.stdout + r.stderr  # offline until online database
    r = served.fisql("online database lf_tgt\ngo\nuse lf_tgt\ngo\nselect count(*) from t\ngo\n")
    assert "1500" in r.stdout, r.stdout
    assert table_digest(served.db_file("lf_tgt"), "t") == table_digest(served.db_file("lf_src"), "t")
    # and put the target back as the other tests expect it
    r = served.fisql("drop database lf_tgt\ngo\ncreate database lf_tgt\ngo\nuse lf_tgt\ngo\n"
                     "create table mine(x int)\ngo\ninsert into mine values (7)\ngo\n")
    assert "Msg" not in r.stdout, r.stdout


def test_more_than_32_stripes_refused(served, tmp_path):
    devs = f'to "{tmp_path}/s0" ' + " ".join(f'stripe on "{tmp_path}/s{i}"' for i in range(1, 33))
    out = served.fisql(f"dump database lf_src {devs}\ngo\n").stdout
    assert "33 stripes" in out and "at most 32" in out, out
    assert not any(tmp_path.iterdir())


def test_headeronly_lists_without_loading(served, dumps):
    before = _file_state(served.db_file("lf_tgt"), served)
    devs = f'from "{dumps["a"][0]}" ' + " ".join(f'stripe on "{p}"' for p in dumps["a"][1:])
    out = served.fisql(f"load database lf_tgt {devs} with headeronly\ngo\n").stdout
    assert "lf_src" in out and "stripe 1 of 3" in out and "stripe 3 of 3" in out, out
    assert "Msg" not in out and "pages 0 to" in out, out
    assert _file_state(served.db_file("lf_tgt")) == before
