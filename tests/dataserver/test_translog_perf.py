"""What the log costs: commit overhead per autocommit write, and replay speed (printed; run with -s)."""

from __future__ import annotations

import shutil
import time

from test_translog_kit import Writer, content, full_dump

from engine.dataserver import translog
from engine.dataserver.master import open_database

N = 10_000


def _inserts(con, wrap) -> float:
    row = ("customer name " * 3, 12345.67, b"\x00" * 16)
    started = time.perf_counter()
    for i in range(N):
        wrap(con, (i, *row))
    return time.perf_counter() - started


def test_commit_overhead_of_single_row_autocommit_inserts(tmp_path):
    sql = "insert into t values (?, ?, ?, ?)"
    schema = "create table t(id integer primary key, name varchar(60), amount float, payload varbinary(16))"

    plain = open_database(tmp_path / "plain.db", decltypes=True)
    plain.execute(schema)
    bare = _inserts(plain, lambda con, p: con.execute(sql, p))
    plain.close()

    wrapped = open_database(tmp_path / "wrapped.db", decltypes=True)
    wrapped.execute(schema)

    def begin_commit(con, p):
        con.execute("begin")
        con.execute(sql, p)
        con.execute("commit")

    wrapped_s = _inserts(wrapped, begin_commit)
    wrapped.close()

    w = Writer(tmp_path / "logged.db")
    w.tx(schema)

    def logged(con, p):
        con.execute("begin")
        con.execute(sql, p)
        w.log.commit(con)
        con.execute("commit")

    logged_s = _inserts(w.con, logged)
    assert w.con.execute("select count(*) from sybar_log where kind = 'U'").fetchone()[0] == N
    selects = time.perf_counter()
    for _ in range(N):
        w.con.execute("begin")
        w.con.execute("select count(*) from t where id = 5").fetchall()
        w.log.commit(w.con)
        w.con.execute("commit")
    selects = time.perf_counter() - selects
    w.close()
    us = 1e6 / N
    print(f"\n{N} single-row autocommit inserts: no capture {bare * us:.1f} us each "
          f"(begin/commit wrapped {wrapped_s * us:.1f} us); with capture {logged_s * us:.1f} us each: "
          f"+{(logged_s - bare) * us:.1f} us ({logged_s / bare:.2f}x); a read-only statement's commit "
          f"{selects * us:.1f} us")
    assert logged_s < bare * 10


def test_apply_speed(tmp_path):
    w = Writer(tmp_path / "src.db")
    w.tx("create table t(id integer primary key, name varchar(60), amount float, payload varbinary(16))",
         "create table h(a, b)")
    dst = tmp_path / "dst.db"
    full_dump(w.path, dst)
    # 2,000 transactions of 10 inserts and 5 updates on another table, 2 deletes: 34,000 records
    started = time.perf_counter()
    for k in range(2000):
        stmts = [(f"insert into t values ({k * 10 + i}, 'n{i}', {i}.5, randomblob(16))") for i in range(10)]
        stmts += [f"insert into h values ({k}, 'x')"] * 5 + [f"delete from t where id = {k * 10 - 3}"] * 2
        w.tx(*stmts)
    capture = time.perf_counter() - started
    started = time.perf_counter()
    x = translog.extract_log(w.path, tmp_path / "l.tran", database="src")
    extract = time.perf_counter() - started
    copy = tmp_path / "copy.db"
    shutil.copy(dst, copy)
    started = time.perf_counter()
    r = translog.apply_log(dst, tmp_path / "l.tran")
    apply = time.perf_counter() - started
    assert content(dst) == content(w.path)
    con = open_database(copy)
    triggers = [r[0] for r in con.execute("select sql from sqlite_master where type = 'trigger'")]
    con.close()
    w.close()
    print(f"\n{x.count} records in {r.applied_transactions} transactions "
          f"({(tmp_path / 'l.tran').stat().st_size // 1024} KB log dump): captured in {capture:.2f} s, "
          f"extracted in {extract * 1000:.0f} ms ({x.count / extract:,.0f} records/s), applied in {apply:.2f} s "
          f"({r.applied_records / apply:,.0f} records/s)")
    assert triggers and r.applied_records == x.last_lsn - r.first_lsn + 1
