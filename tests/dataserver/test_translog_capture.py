"""Capture: which records each committed transaction leaves in the log, and that replay is exact."""

from __future__ import annotations

import json
import sqlite3

import pytest
from test_translog_kit import Writer, content, full_dump, ship

from engine.dataserver import translog
from engine.dataserver.master import open_database


@pytest.fixture
def w(tmp_path):
    writer = Writer(tmp_path / "src.db")
    yield writer
    writer.close()


def records(w: Writer, after: int = 0) -> list[tuple]:
    return w.con.execute("select lsn, xid, kind, tbl, rid, data from sybar_log where lsn > ? order by lsn",
                         (after,)).fetchall()


def row_image(data: str) -> dict:
    cols, vals = json.loads(data)
    return dict(zip(cols, vals, strict=True))


def test_insert_update_delete_in_one_and_across_transactions(w):
    w.tx("create table t(id integer primary key, a varchar(10), n int)", when=99.0)
    w.tx("insert into t values (1, 'x', 10)", "insert into t values (2, 'y', 20)", when=100.0)
    w.tx("update t set n = n + 1 where id = 1", "delete from t where id = 2", when=101.0)
    w.tx("insert into t values (3, 'z', 30)", "update t set a = 'zz' where id = 3", "delete from t where id = 3",
         when=102.0)
    recs = records(w)
    assert [r[2] for r in recs] == ["S", "U", "U", "U", "D", "D"]
    s, i1, i2, u1, d2, d3 = recs
    assert s[5].lower().startswith("create table t")
    assert i1[1] == i2[1] != u1[1] == d2[1] != d3[1]
    assert row_image(i1[5]) == {"id": 1, "a": "x", "n": 10}
    assert row_image(u1[5]) == {"id": 1, "a": "x", "n": 11}
    assert (d2[3], d2[4], d2[5]) == ("t", 2, None)
    assert (d3[3], d3[4]) == ("t", 3)  # inserted and deleted in one transaction: only its absence
    times = dict(w.con.execute("select xid, commit_time from sybar_log group by xid").fetchall())
    assert sorted(times.values()) == [99.0, 100.0, 101.0, 102.0]
    assert w.con.execute("select count(*) from sybar_log where kind = '?'").fetchone()[0] == 0
    state = translog.log_state(w.con)
    assert state["last_lsn"] == 6 and state["last_xid"] == 4


def test_rowid_change_logs_old_absence_and_new_image(w):
    w.tx("create table t(a, b)")
    w.tx("insert into t(rowid, a, b) values (5, 'k', 1)")
    last = translog.log_state(w.con)["last_lsn"]
    w.tx("update t set rowid = 9 where rowid = 5")
    recs = records(w, last)
    assert [(r[2], r[4]) for r in recs] == [("D", 5), ("U", 9)]


def test_rolled_back_transaction_leaves_no_record(w):
    w.tx("create table t(a)")
    before = translog.log_state(w.con)
    assert w.tx("insert into t values (1)", "create table u(b)", rollback=True) == 0
    after = translog.log_state(w.con)
    assert (after["last_lsn"], after["last_xid"]) == (before["last_lsn"], before["last_xid"])
    assert w.tx("select * from t") == 0  # a transaction that changed nothing uses no xid
    assert translog.log_state(w.con)["last_xid"] == before["last_xid"]
    assert w.con.execute("select count(*) from sybar_log where kind = '?'").fetchone()[0] == 0
    assert w.tx("insert into t values (2)") == 1  # u was rolled back: no trigger, no leftovers


def test_values_are_exact(w, tmp_path):
    w.tx("create table t(id integer primary key, d datetime, v, f float, i int, b varbinary(10))")
    dst = tmp_path / "dst.db"
    full_dump(w.path, dst)
    values = [None, 0, -1, 2**63 - 1, -(2**63), 0.1, 1 / 3, 1e308, 5e-324, -2.5, float("inf"), float("-inf"),
              "", "é ☃ \x00 nul", "'quote\"", b"", b"\x00\xff" * 50, "2024-01-02 03:04:05"]
    w.tx(*[("insert into t(id, d, v, f, i, b) values (?, ?, ?, ?, ?, ?)", (n, v, v, v, v, v))
           for n, v in enumerate(values, start=1)])
    # the datetime column is read raw, not through the session's datetime converter
    raw = sqlite3.connect(w.path)
    assert row_image(w.con.execute("select data from sybar_log where rid = 18").fetchone()[0])["d"] == \
        raw.execute("select d from t where id = 18").fetchone()[0]
    raw.close()
    ship(w.path, dst, tmp_path)
    assert content(dst) == content(w.path)


def test_alter_add_column_ctas_drop_and_rename(w, tmp_path):
    w.tx("create table t(id integer primary key, a)")
    w.tx(*[f"insert into t values ({i}, 'a{i}')" for i in range(1, 6)])
    dst = tmp_path / "dst.db"
    full_dump(w.path, dst)
    w.tx("alter table t add column c int default 7", "update t set c = 1 where id = 1")
    last = translog.log_state(w.con)["last_lsn"]
    w.tx("insert into t(id, a) values (6, 'a6')")
    assert row_image(records(w, last)[0][5]) == {"id": 6, "a": "a6", "c": 7}
    last = translog.log_state(w.con)["last_lsn"]
    w.tx("create table u as select id, a, c * 2 as c2 from t where id > 2")
    recs = records(w, last)
    assert recs[0][2] == "S" and "as select" not in recs[0][5].lower()  # the table's definition, not the select
    assert [(r[2], r[3]) for r in recs[1:]] == [("U", "u")] * 4
    w.tx("insert into u values (99, 'new', 0)", "update t set a = 'moved' where id = 2",
         "alter table t rename to t2", "update t2 set a = 'after' where id = 3", "create table t(z)",
         "insert into t values ('fresh')")
    w.tx("insert into t2 values (50, 'x', 0)", "drop table u")
    last = translog.log_state(w.con)["last_lsn"]
    w.tx("create table gone(a)", "insert into gone values (1)", "drop table gone")
    assert [r[2] for r in records(w, last)] == ["S", "S"]
    ship(w.path, dst, tmp_path)
    assert content(dst) == content(w.path)
    # the replayed tables are captured on the target too
    assert {r[0] for r in sqlite3.connect(dst).execute(
        "select tbl_name from sqlite_master where type = 'trigger'")} == {"t", "t2"}


def test_temp_tables_are_not_logged(w):
    w.tx("create table t(a)")
    last = translog.log_state(w.con)["last_lsn"]
    w.tx('create temp table "#t"(a)', 'insert into "#t" values (1)', 'create index i on "#t"(a)',
         'drop index i', 'drop table "#t"', "create table if not exists t(a)")
    assert records(w, last) == []
    # without before_ddl, the statement's text decides
    log = translog.LogWriter()
    w.con.execute("begin")
    w.con.execute('create temp table "#x"(a)')
    log.ddl(w.con, 'create temp table "#x"(a)')
    w.con.execute('drop table "#x"')
    log.ddl(w.con, 'drop table "#x"')
    assert log.commit(w.con) == 0
    w.con.execute("commit")


def test_insert_or_replace_conflict_is_captured(w, tmp_path):
    w.tx("create table t(a int unique, b)")
    w.tx("insert into t values (1, 'one')", "insert into t values (2, 'two')")
    dst = tmp_path / "dst.db"
    full_dump(w.path, dst)
    w.tx("insert or replace into t values (1, 'uno')")  # deletes row 1, inserts a new rowid
    assert [r[2] for r in records(w, translog.log_state(w.con)["last_lsn"] - 2)] == ["D", "U"]
    w.tx("update t set a = 3 where a = 2", "update t set a = 2 where a = 1", "update t set a = 1 where a = 3")
    ship(w.path, dst, tmp_path)
    assert content(dst) == content(w.path)


def test_commit_outside_a_transaction_and_foreign_writers(w, tmp_path):
    w.tx("create table t(a)")
    w.con.execute("insert into t values (1)")  # autocommitted without BEGIN: logged by the next commit
    assert w.log.commit(w.con) == 1
    other = open_database(w.path)  # a writer with no LogWriter: its rows stay marked until someone logs them
    other.execute("insert into t values (2)")
    other.close()
    assert translog.flush_pending(w.con) == 1
    assert w.con.execute("select count(*) from sybar_log where kind = 'U'").fetchone()[0] == 2


def test_ensure_capture_is_idempotent_and_finds_uncapturable_tables(tmp_path):
    path = tmp_path / "demo.db"
    con = sqlite3.connect(path)
    con.execute("create table pre(a)")  # made outside the dataserver, like the demo generator
    con.execute("insert into pre values (1)")
    con.execute("create table kv(k primary key, v) without rowid")
    con.commit()
    con.close()
    con = open_database(path)
    assert translog.ensure_capture(con) == ["kv (a WITHOUT ROWID table)"]
    trig = con.execute("select count(*) from sqlite_master where type = 'trigger'").fetchone()[0]
    assert trig == 3
    assert translog.ensure_capture(con) == ["kv (a WITHOUT ROWID table)"]
    state = translog.log_state(con)
    assert state["chain_broken"] == translog.NO_FULL_DUMP  # a new log waits for its first full dump
    translog.full_dump_done(con, state["last_lsn"])
    assert translog.log_state(con)["chain_broken"] == ""
    # a table made behind the dataserver's back later breaks the chain
    raw = sqlite3.connect(path)
    raw.execute("create table sneaky(a)")
    raw.commit()
    raw.close()
    translog.ensure_capture(con)
    assert "sneaky" in translog.log_state(con)["chain_broken"]
    con.close()


def test_big_transactions_find_their_marks_by_bisection(w, tmp_path):
    from engine.dataserver.translog_capture import SMALL, log_head

    w.tx("create table t(id integer primary key, a)")
    dst = tmp_path / "dst.db"
    full_dump(w.path, dst)
    w.tx(*[f"insert into t values ({i}, {i})" for i in range(500)])
    # a big transaction after records
    n = w.tx("update t set a = a + 1", "update t set a = a * 2 where id % 2 = 0")
    assert n == 500
    # a log truncated to empty: new marks reuse low lsns, below the last lsn
    ship(w.path, dst, tmp_path, name="first")
    assert translog.log_state(w.con)["records"] == 0
    for size in (1, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL + 7):
        w.con.execute("begin")
        w.con.execute(f"update t set a = -a where id < {size}")
        lsn, xid, _t, first_pending, tables, marks = log_head(w.con)
        count = w.con.execute("select count(*) from sybar_log where kind = '?'").fetchone()[0]
        lowest = w.con.execute("select min(lsn) from sybar_log where kind = '?'").fetchone()[0]
        assert (first_pending, tables, count) == (lowest, {"t"}, size)
        assert (marks is None) == (size > SMALL)
        assert w.log.commit(w.con) == size
        w.con.execute("commit")
    other = open_database(w.path)  # marks committed by a foreign writer, then a big transaction on top
    other.execute("update t set a = 0 where id < 10")
    other.close()
    assert w.tx("update t set a = 7 where id >= 400") == 110
    ship(w.path, dst, tmp_path)
    assert content(dst) == content(w.path)
