"""Random workloads: log dumps replayed on a full dump reproduce the source exactly, to any commit."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_translog_kit import Writer, content, full_dump

from engine.dataserver import translog

VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.binary(max_size=12),
)
KINDS = ["ins", "ins", "ins", "upd", "upd", "del", "rowid", "replace", "bulk", "add_col", "create", "ctas", "drop",
         "rename", "index"]
OP = st.tuples(st.sampled_from(KINDS), st.integers(0, 1000), st.integers(0, 1000), VALUES)
TX = st.tuples(st.lists(OP, min_size=1, max_size=6), st.sampled_from([True, True, True, False]))  # commit?


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Workload:
    def __init__(self, w: Writer):
        self.w = w
        self.serial = 0

    def tables(self) -> list[str]:
        return [r[0] for r in self.w.con.execute(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite%' "
            "and name not like 'sybar%' order by name")]

    def statements(self, ops) -> list:
        """Resolve abstract ops against the live database and run them; returns the statements that ran."""
        out = []
        for kind, i, j, v in ops:
            tables = self.tables()
            if not tables:
                kind = "create"
            t = tables[i % len(tables)] if tables else ""
            cols = [r[1] for r in self.w.con.execute(f"pragma table_info({q(t)})")] if t else []
            rowids = [r[0] for r in self.w.con.execute(f"select rowid from {q(t)} order by rowid")] if t else []
            pick = rowids[j % len(rowids)] if rowids else 0
            c = cols[j % len(cols)] if cols else "a"
            self.serial += 1
            n = self.serial
            match kind:
                case "ins":
                    out.append((f"insert into {q(t)}({q(c)}) values (?)", (v,)))
                case "upd":
                    out.append((f"update {q(t)} set {q(c)} = ? where rowid = ?", (v, pick)))
                case "del":
                    out.append((f"delete from {q(t)} where rowid = ?", (pick,)))
                case "rowid":
                    out.append((f"update or ignore {q(t)} set rowid = ? where rowid = ?", (pick + 1 + j, pick)))
                case "replace":
                    out.append((f"insert or replace into {q(t)}(rowid, {q(c)}) values (?, ?)", (pick, v)))
                case "bulk":
                    out.append(f"update {q(t)} set {q(c)} = {q(c)} || 'x' where rowid % 3 = {j % 3}")
                case "add_col":
                    out.append(f"alter table {q(t)} add column c{n} int default {j}")
                case "create":
                    out.append(f"create table t{n}(id integer primary key, a, b varbinary(10), k int unique)")
                case "ctas":
                    out.append(f"create table t{n} as select * from {q(t)} where rowid % 2 = {j % 2}")
                case "drop":
                    out.append(f"drop table {q(t)}")
                case "rename":
                    out.append(f"alter table {q(t)} rename to r{n}")
                case "index":
                    out.append(f"create index i{n} on {q(t)}({q(c)})")
            stmt = out[-1]
            sql, params = (stmt, ()) if isinstance(stmt, str) else stmt
            try:
                self.w.run(sql, params)
            except sqlite3.IntegrityError:
                out.pop()  # a failing statement ends itself, not the transaction
        return out


def run_transaction(work: Workload, ops, commit: bool, when: float) -> int:
    w = work.w
    w.con.execute("begin")
    work.statements(ops)
    if not commit:
        w.con.execute("rollback")
        w.log.rollback()
        return 0
    n = w.log.commit(w.con, when)
    w.con.execute("commit")
    return n


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(txs=st.lists(TX, min_size=2, max_size=16), full_at=st.integers(0, 16), dumps=st.sets(st.integers(0, 16)),
       until_pick=st.integers(0, 10_000), between=st.booleans())
def test_random_workload_replays_exactly(txs, full_at, dumps, until_pick, between):
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        w = Writer(tmp / "src.db")
        work = Workload(w)
        try:
            w.tx("create table base(id integer primary key, a, b varbinary(10), k int unique)",
                 "create table plain(a, b)", when=1000.0)
            translog.full_dump_done(w.con)  # an earlier full dump: log dumps may come before ours
            full_at = min(full_at, len(txs))
            snapshots: list[tuple[float, dict]] = [(1000.0, content(w.path))]
            logs: list[Path] = []
            t = 1000.0
            for i, (ops, commit) in enumerate([*txs, ([], True)]):
                if i == full_at:
                    full_dump(w.path, tmp / "full.db")
                    full_time = snapshots[-1][0]
                    logs = []  # the chain starts at the full dump
                if i in dumps or i == len(txs):
                    out = tmp / f"l{i}.tran"
                    x = translog.extract_log(w.path, out, database="src")
                    translog.truncate_log(w.con, x.last_lsn)
                    logs.append(out)
                if i == len(txs):
                    break
                t += 1.0
                if run_transaction(work, ops, commit, t):
                    snapshots.append((t, content(w.path)))
            final = content(w.path)
            # the whole chain
            everything = tmp / "all.db"
            shutil.copy(tmp / "full.db", everything)
            for log in logs:
                translog.apply_log(everything, log)
            assert content(everything) == final
            # to a point in time after the full dump
            candidates = [s for s in snapshots if s[0] >= full_time]
            until, expect = candidates[until_pick % len(candidates)]
            until += 0.5 if between else 0.0
            pit = tmp / "pit.db"
            shutil.copy(tmp / "full.db", pit)
            for log in logs:
                r = translog.apply_log(pit, log, until=until)
                if r.stopped_at is not None:
                    break
            assert content(pit) == expect
        finally:
            w.close()
