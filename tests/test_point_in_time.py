"""Transaction log dumps, load chains and point-in-time restore, all through sybackup::."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time

import pytest
from sybar_testkit import integrity, start_serve, stop_serve, sybar, sybar_json, table_digest

from engine.tds.client import Connection

DEV = '"sybackup::-POL Sybase_ASE"'
TWO = f"to {DEV} stripe on {DEV}"


def _exec(conn: Connection, sql: str) -> list:
    events = list(conn.execute(sql))
    errors = [e for e in events if getattr(e, "severity", 0) > 10]
    assert not errors, errors
    return events


def _file_hash(path) -> str:
    wal = path.with_name(path.name + "-wal")
    return hashlib.sha256(path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")).hexdigest()


@pytest.fixture(scope="module")
def chain(tmp_path_factory, sa_in_keyring):
    """A full dump, then three log dumps; the source's content after every commit, by commit time."""
    home = tmp_path_factory.mktemp("pithome")
    s = start_serve(home)
    try:
        yield _build_chain(s, home)
    finally:
        stop_serve(s)


def _build_chain(s, home) -> dict:
    conn = Connection.connect(s.host, s.port, user="sa", password=s.password)
    _exec(conn, "create database logdb")
    _exec(conn, "use logdb")
    _exec(conn, "create table acct(id int primary key, owner varchar(30), balance float, note varbinary(16))")
    for i in range(1, 6):
        _exec(conn, f"insert into acct values ({i}, 'owner {i}', {i * 100.0}, null)")
    _exec(conn, "use master")
    out = s.sybar_isql(f"dump database logdb {TWO}\ngo\n").stdout
    assert "DUMP is complete" in out and "Msg" not in out, out
    src = s.db_file("logdb")
    states = []  # (after-commit time, digest)
    rounds = [
        ["insert into acct values (6, 'six', 600, null)", "update acct set balance = balance - 50 where id = 1",
         "begin tran insert into acct values (7, 'seven', 7, null) update acct set note = 0x0102 where id = 2 "
         "commit tran"],
        ["delete from acct where id = 3", "insert into acct values (8, 'eight', 8.25, null)",
         "update acct set owner = 'renamed' where id = 4", "insert into acct values (9, 'nine', 9, null)"],
        ["create table audit(n int, what varchar(20))", "insert into audit values (1, 'late table')",
         "update acct set balance = 0 where id = 5"],
    ]
    _exec(conn, "use logdb")
    log_dumps = []
    for statements in rounds:
        for sql in statements:
            time.sleep(0.35)
            _exec(conn, sql)
            states.append((time.time(), {t: table_digest(src, t) for t in ("acct",)}))
        _exec(conn, "use master")
        out = s.sybar_isql(f"dump transaction logdb {TWO}\ngo\n").stdout
        assert "DUMP is complete" in out and "Msg" not in out, out
        _exec(conn, "use logdb")
        log_dumps.append(states[-1][0])
    conn.close()
    images = sybar_json(home, "list", "--database", "logdb")
    return {"s": s, "states": states, "images": images, "rounds": rounds}


def _until_text(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _full(images):
    return [i for i in images if i["type"] == "D"][0]


def test_catalog_links_log_dumps_to_the_dump_they_follow(chain):
    images = sorted(chain["images"], key=lambda i: i["backup_time"])
    assert [i["type"] for i in images] == ["D", "T", "T", "T"]
    assert all(len(i["stripes"]) == 2 for i in images)
    assert images[1]["follows"] == images[0]["backup_id"]
    assert images[2]["follows"] == images[1]["backup_id"]
    assert images[3]["follows"] == images[2]["backup_id"]
    assert images[1]["last_lsn"] + 1 == images[2]["first_lsn"]


def test_restore_until_a_time_inside_the_second_log_dump(chain):
    s, states = chain["s"], chain["states"]
    # between the 2nd and 3rd commit of round 2 (commits 5 and 6 overall, 0-based 4 and 5)
    k = len(chain["rounds"][0]) + 1
    until = states[k][0] + 0.15
    assert until < states[k + 1][0] - 0.1
    full = _full(chain["images"])
    plan = sybar(s.home, "restore", "--image", full["backup_id"], "--until", _until_text(until),
                 "--database", "logdb_pit", "--plan")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    text = plan.stdout
    logs = sorted((i for i in chain["images"] if i["type"] == "T"), key=lambda i: i["backup_time"])
    assert full["backup_id"] in text and logs[0]["backup_id"] in text and logs[1]["backup_id"] in text
    assert logs[2]["backup_id"] not in text  # not needed to reach that time
    assert "create database logdb_pit for load" in text
    assert text.count("load transaction logdb_pit") == 2
    assert f"with until_time = '{_until_text(until)}'" in text
    assert "online database logdb_pit" in text
    r = sybar(s.home, "restore", "--image", full["backup_id"], "--until", _until_text(until), "--database",
              "logdb_pit")
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_digest(s.db_file("logdb_pit"), "acct") == states[k][1]["acct"]
    assert integrity(s.db_file("logdb_pit")) == "ok"


def test_the_same_chain_through_fisql_gives_the_same_result(chain):
    s, states = chain["s"], chain["states"]
    k = len(chain["rounds"][0]) + 1
    until = states[k][0] + 0.15
    full = _full(chain["images"])
    plan = sybar_json(s.home, "restore", "--image", full["backup_id"], "--until", _until_text(until),
                      "--database", "logdb_fisql", "--plan")
    sql = "".join(stmt + "\ngo\n" for stmt in plan["statements"])
    r = s.fisql(sql)
    assert "Msg" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert table_digest(s.db_file("logdb_fisql"), "acct") == states[k][1]["acct"]


def test_whole_chain_without_until_reaches_the_last_commit(chain):
    s, states = chain["s"], chain["states"]
    full = _full(chain["images"])
    r = sybar(s.home, "restore", "--image", full["backup_id"], "--database", "logdb_all")
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_digest(s.db_file("logdb_all"), "acct") == states[-1][1]["acct"]
    assert table_digest(s.db_file("logdb_all"), "audit") == table_digest(s.db_file("logdb"), "audit")


def _objects(image) -> str:
    names = [o["name"] for o in sorted(image["stripes"], key=lambda o: o["stripe"])]
    return f'from "sybackup::{names[0]}" ' + " ".join(f'stripe on "sybackup::{n}"' for n in names[1:])


def _wait_quiet(s, name):
    for _ in range(100):
        if name not in s.fisql("sp_who\ngo\n").stdout:
            return
        time.sleep(0.1)


def test_out_of_order_and_gaps_fail_and_change_nothing(chain):
    s = chain["s"]
    images = sorted(chain["images"], key=lambda i: i["backup_time"])
    full, t1, t2, _t3 = images
    r = s.sybar_isql(f"create database logdb_ooo for load\ngo\nload database logdb_ooo {_objects(full)}\ngo\n")
    assert "LOAD is complete" in r.stdout, r.stdout
    _wait_quiet(s, "logdb_ooo")
    before = _file_hash(s.db_file("logdb_ooo"))
    r = s.sybar_isql(f"load transaction logdb_ooo {_objects(t2)}\ngo\n")
    assert re.search(r"Msg \d+", r.stdout) and "missing" in r.stdout, r.stdout
    _wait_quiet(s, "logdb_ooo")
    assert _file_hash(s.db_file("logdb_ooo")) == before
    assert "offline" in s.sybar_isql("sp_helpdb logdb_ooo\ngo\n").stdout
    r = s.sybar_isql(f"load transaction logdb_ooo {_objects(t1)}\ngo\n")
    assert "LOAD is complete" in r.stdout and "Msg" not in r.stdout, r.stdout
    _wait_quiet(s, "logdb_ooo")
    before = _file_hash(s.db_file("logdb_ooo"))
    r = s.sybar_isql(f"load transaction logdb_ooo {_objects(t1)}\ngo\n")  # again: out of order
    assert "Msg" in r.stdout and "already loaded" in r.stdout, r.stdout
    _wait_quiet(s, "logdb_ooo")
    assert _file_hash(s.db_file("logdb_ooo")) == before
    # a log dump can not go onto an online database
    r = s.sybar_isql(f"online database logdb_ooo\ngo\nload transaction logdb_ooo {_objects(t2)}\ngo\n")
    assert "Msg 4306" in r.stdout, r.stdout


def test_log_dump_after_truncate_only_needs_a_full_dump_first(chain):
    s = chain["s"]
    r = s.sybar_isql("create database truncdb\ngo\nuse truncdb\ngo\ncreate table x(a int)\ngo\n"
                     "insert into x values (1)\ngo\nuse master\ngo\n"
                     f"dump database truncdb {TWO}\ngo\n"
                     "dump transaction truncdb with truncate_only\ngo\n")
    assert "Msg" not in r.stdout, r.stdout
    r = s.sybar_isql(f"dump transaction truncdb {TWO}\ngo\n")
    assert "Msg" in r.stdout and "dump database truncdb first" in r.stdout, r.stdout
    r = s.sybar_isql(f"dump database truncdb {TWO}\ngo\ndump transaction truncdb {TWO}\ngo\n")
    assert "Msg" not in r.stdout and r.stdout.count("DUMP is complete") == 2, r.stdout


def test_warm_standby_keeps_taking_log_loads(chain):
    s = chain["s"]
    images = sorted(chain["images"], key=lambda i: i["backup_time"])
    full, t1, t2, t3 = images
    r = s.sybar_isql(f"create database logdb_sb for load\ngo\nload database logdb_sb {_objects(full)}\ngo\n"
                     f"load transaction logdb_sb {_objects(t1)}\ngo\nonline database logdb_sb for standby_access\ngo\n")
    assert "Msg" not in r.stdout, r.stdout
    r = s.sybar_isql("use logdb_sb\ngo\nselect count(*) from acct\ngo\ninsert into acct values (99, 'x', 1, null)\n"
                     "go\n")
    assert "Msg" in r.stdout  # read-only
    _wait_quiet(s, "logdb_sb")
    r = s.sybar_isql(f"load transaction logdb_sb {_objects(t2)}\ngo\nload transaction logdb_sb {_objects(t3)}\ngo\n"
                     "online database logdb_sb\ngo\n")
    assert "Msg" not in r.stdout, r.stdout
    assert table_digest(s.db_file("logdb_sb"), "acct") == chain["states"][-1][1]["acct"]


def _sequence(text: str) -> list[tuple[str, tuple[str, ...], str | None]]:
    """(load kind, object names, until_time) for each load statement of a printed sequence."""
    out = []
    for stmt in re.split(r"(?im)^\s*go\s*$", text):
        m = re.search(r"(?is)\bload\s+(database|tran(?:saction)?)\s+\w+\s+(?:from|cumulative from)(.*)", stmt)
        if not m:
            continue
        kind = "database" if m.group(1).lower() == "database" else "transaction"
        names = tuple(re.findall(r"sybackup::([^'\"]+)", m.group(2)))
        until = re.search(r"(?i)until_time\s*=\s*'([^']+)'", m.group(2))
        out.append((kind, names, until.group(1) if until else None))
    return out


def test_listonly_load_sql_through_fisql_prints_the_plans_sequence(chain):
    s, states = chain["s"], chain["states"]
    k = len(chain["rounds"][0]) + 1
    until = _until_text(states[k][0] + 0.15)
    full = _full(chain["images"])
    plan = sybar_json(s.home, "restore", "--image", full["backup_id"], "--until", until, "--database", "logdb",
                      "--plan")
    r = s.fisql(f"load database logdb with listonly = load_sql, until_time = '{until}'\ngo\n")
    assert "Msg" not in r.stdout + r.stderr, r.stdout + r.stderr
    listed = _sequence(r.stdout)
    planned = _sequence("\ngo\n".join(plan["statements"]))
    assert [(k_, n) for k_, n, _ in listed] == [(k_, n) for k_, n, _ in planned]
    assert len(listed) == 3 and listed[-1][2] and planned[-1][2]
    assert abs(dt.datetime.fromisoformat(listed[-1][2]).timestamp()
               - dt.datetime.fromisoformat(planned[-1][2]).timestamp()) < 0.001
    assert "online database logdb" in r.stdout.lower()
    hist = s.fisql("sp_dump_history @operation = 'list', @name = 'logdb'\ngo\n").stdout
    assert hist.count("logdb") >= 8  # 4 dumps x 2 stripes


def test_named_dump_configuration_and_create_sql(chain, tmp_path):
    s = chain["s"]
    stripes = tmp_path / "nightly"
    r = s.fisql(f"sp_config_dump @config_name = 'nightly', @stripe_dir = '{stripes}', @num_stripes = 3, "
                "@compression = 1\ngo\nsp_config_dump\ngo\n")
    assert "Msg" not in r.stdout + r.stderr and "nightly" in r.stdout, r.stdout + r.stderr
    r = s.fisql("dump database logdb using config = nightly\ngo\n")
    assert "DUMP is complete (database logdb)" in r.stdout and "Msg" not in r.stdout, r.stdout + r.stderr
    files = sorted(stripes.iterdir())
    assert len(files) == 3
    r = s.fisql("load database logdb from " + f'"{files[0]}" ' + " ".join(f'stripe on "{f}"' for f in files[1:])
                + " with headeronly\ngo\n")
    assert "stripe 3 of 3" in r.stdout and "zstd level 1" in r.stdout, r.stdout
    r = s.fisql("dump database logdb using config = no_such_config\ngo\n")
    assert "Msg" in r.stdout and "nightly" in r.stdout, r.stdout  # names the known configurations
    r = s.fisql("load database logdb with listonly = create_sql\ngo\n")
    assert re.search(r"(?i)create database logdb .*for load", r.stdout), r.stdout
    assert "Msg" not in s.fisql("sp_config_dump 'drop', 'nightly'\ngo\n").stdout
    assert "nightly" not in s.fisql("sp_config_dump\ngo\n").stdout
