"""ASE's dump history: records, sp_dump_history, listonly = load_sql / create_sql."""

from __future__ import annotations

import datetime as dt
import stat
import threading
from types import SimpleNamespace

import pytest

from engine.dataserver.dumphist import (
    HISTORY_COLUMNS,
    DumpHistory,
    DumpHistoryError,
    create_sql,
    format_time,
    history_result,
    parse_time,
    record_dump,
    script_lines,
    sp_dump_history,
)
from engine.dataserver.errors import ServerError
from engine.dataserver.tsql import Arg, parse_batch, statement_kind
from engine.tds.replies import Done, Info, ResultFormat, ResultRow


def T(text: str) -> float:
    return parse_time(text)


@pytest.fixture
def hist(tmp_path):
    h = DumpHistory(tmp_path / "data" / "dumphist.db")
    yield h
    h.close()


def full(h, when, devices, db="pubs2", **kw):
    return h.record(database=db, dump_type="D", devices=devices, status=0, when=T(when), **kw)


def tran(h, when, device, db="pubs2", **kw):
    return h.record(database=db, dump_type="T", devices=[device], status=0, when=T(when), **kw)


class TestRecords:
    def test_file_is_private_and_reopens(self, tmp_path):
        path = tmp_path / "data" / "dumphist.db"
        h = DumpHistory(path)
        full(h, "2026-11-25 09:00:00", ["/d/a"])
        h.close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        h = DumpHistory(path)
        assert [r.device for r in h.rows()] == ["/d/a"]
        h.close()

    def test_one_row_per_stripe(self, hist):
        dump_id = full(hist, "2026-11-25 09:00:00", ["/d/a", "/d/b", "/d/c"], compression=101)
        rows = hist.rows("pubs2")
        assert [(r.stripe, r.stripes, r.device, r.stripe_name) for r in rows] == [
            (1, 3, "/d/a", "/d/a"), (2, 3, "/d/b", "/d/b"), (3, 3, "/d/c", "/d/c")]
        assert {r.dump_id for r in rows} == {dump_id}
        r = rows[0]
        assert (r.dump_type, r.server, r.backup_server, r.compression, r.status, r.ok) == (
            "D", "SYBAR", "SYB_BACKUP", 101, 0, True)
        assert r.when == T("2026-11-25 09:00:00")

    def test_failed_dump_is_recorded(self, hist):
        hist.record(database="pubs2", dump_type="T", devices=["/d/t"], status=4207, when=T("2026-11-25 09:00:00"),
                    error="Dump transaction is not allowed because a non-logged operation was performed")
        (r,) = hist.rows()
        assert not r.ok and r.status == 4207 and "non-logged" in r.error

    def test_sybackup_stripe_names(self, hist):
        hist.record(database="pubs2", dump_type="D", devices=["sybackup::-POLICY p", "sybackup::-POLICY p"],
                    status=0, when=T("2026-11-25 09:00:00"),
                    stripe_names=["SYBAR.pubs2.D.0.1", "sybackup::SYBAR.pubs2.D.1.1"])
        assert [(r.device, r.stripe_name) for r in hist.rows()] == [
            ("sybackup::-POLICY p", "sybackup::SYBAR.pubs2.D.0.1"),
            ("sybackup::-POLICY p", "sybackup::SYBAR.pubs2.D.1.1")]

    def test_dump_without_device(self, hist):
        hist.record(database="pubs2", dump_type="D", devices=[], status=8009, when=T("2026-11-25 09:00:00"))
        (r,) = hist.rows()
        assert r.device == "" and r.stripes == 1

    def test_bad_dump_type(self, hist):
        with pytest.raises(ValueError):
            hist.record(database="x", dump_type="X", devices=["/a"], status=0, when=0.0)

    def test_filters_and_order(self, hist):
        tran(hist, "2026-11-25 10:00:00", "/t1")
        full(hist, "2026-11-25 09:00:00", ["/f1"])
        full(hist, "2026-11-25 09:30:00", ["/o1"], db="other")
        hist.record(database="pubs2", dump_type="T", devices=["/t2"], status=1, when=T("2026-11-25 11:00:00"))
        assert [r.device for r in hist.rows()] == ["/f1", "/o1", "/t1", "/t2"]
        assert [r.device for r in hist.rows("pubs2")] == ["/f1", "/t1", "/t2"]
        assert [r.device for r in hist.rows("pubs2", until=T("2026-11-25 10:00:00"))] == ["/f1", "/t1"]
        assert [r.device for r in hist.rows(dump_type="T")] == ["/t1", "/t2"]
        assert [r.device for r in hist.rows(status="failure")] == ["/t2"]
        assert [r.device for r in hist.rows("pubs2", status="success")] == ["/f1", "/t1"]

    def test_purge(self, hist):
        full(hist, "2026-11-24 09:00:00", ["/old1", "/old2"])
        full(hist, "2026-11-24 09:00:00", ["/other"], db="other")
        full(hist, "2026-11-25 09:00:00", ["/new"])
        assert hist.purge(T("2026-11-25 00:00:00"), "pubs2") == 2
        assert [r.device for r in hist.rows()] == ["/other", "/new"]
        assert hist.purge(T("2026-11-25 09:00:00")) == 1  # strictly older: /new stays
        assert [r.device for r in hist.rows()] == ["/new"]

    def test_latest(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/f1"])
        tran(hist, "2026-11-25 10:00:00", "/t1")
        hist.record(database="pubs2", dump_type="T", devices=["/t2"], status=1, when=T("2026-11-25 11:00:00"))
        assert hist.latest("pubs2").devices == ["/t1"]
        assert hist.latest("pubs2", successful=False).devices == ["/t2"]
        assert hist.latest("pubs2", "D").devices == ["/f1"]
        assert hist.latest("nope") is None

    def test_concurrent_writers(self, hist):
        def work(k):
            for i in range(20):
                hist.record(database=f"db{k}", dump_type="T", devices=[f"/t{k}.{i}", f"/u{k}.{i}"], status=0,
                            when=1_700_000_000.0 + i)
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(hist.rows()) == 160
        assert all(len(d.stripes) == 2 for d in hist.dumps())


class TestRecordDump:
    def result(self, when="2026-11-25 09:00:00"):
        snap = dt.datetime.fromtimestamp(T(when)).astimezone(dt.UTC)
        return SimpleNamespace(dump_id="abc123", snapshot_at=snap, started=snap, compression=101)

    def test_success_from_the_backup_server_result(self, hist):
        dump_id = record_dump(hist, database="pubs2", dump_type="D", labels=["/d/a", "/d/b"], result=self.result(),
                              server="MYSRV", lsn_last=100)
        assert dump_id == "abc123"
        rows = hist.rows()
        assert [(r.device, r.stripe_name, r.status, r.compression, r.server, r.lsn_last) for r in rows] == [
            ("/d/a", "/d/a", 0, 101, "MYSRV", 100), ("/d/b", "/d/b", 0, 101, "MYSRV", 100)]
        assert rows[0].when == T("2026-11-25 09:00:00") and rows[0].dump_id == "abc123"

    def test_archive_dump(self, hist):
        record_dump(hist, database="pubs2", dump_type="T", labels=["SYBAR.pubs2.T.0.9"], archive=True,
                    devices=["sybackup::-POL p"], result=self.result(), lsn_first=5, lsn_last=9,
                    until_time=T("2026-11-25 08:59:00"))
        (r,) = hist.rows()
        assert (r.device, r.stripe_name, r.until_time) == (
            "sybackup::-POL p", "sybackup::SYBAR.pubs2.T.0.9", T("2026-11-25 08:59:00"))

    def test_failure(self, hist):
        err = ServerError(8009, 16, "Error encountered by Backup Server: disk full")
        record_dump(hist, database="pubs2", dump_type="D", labels=["/d/a"], error=err, started=T("2026-11-25 09:00:00"))
        record_dump(hist, database="pubs2", dump_type="D", labels=["/d/b"], error=OSError("boom"),
                    started=T("2026-11-25 10:00:00"))
        a, b = hist.rows()
        assert (a.status, a.error, a.when) == (8009, "Error encountered by Backup Server: disk full",
                                               T("2026-11-25 09:00:00"))
        assert (b.status, b.error) == (8009, "boom")

    def test_never_raises(self, hist, caplog):
        hist.close()
        assert record_dump(hist, database="pubs2", dump_type="D", labels=["/d/a"], result=self.result()) is None
        assert "could not record" in caplog.text
        assert record_dump(None, database="pubs2", dump_type="D", labels=["/d/a"]) is None


class TestLoadSql:
    def test_full_only(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/pubs2.DB.000", "/d/pubs2.DB.001"])
        assert hist.load_sql("pubs2") == [
            "LOAD DATABASE pubs2 FROM '/d/pubs2.DB.000' STRIPE ON '/d/pubs2.DB.001'",
            "ONLINE DATABASE pubs2",
        ]

    def test_full_and_three_tran_dumps(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        for i, t in enumerate(("10:00:00", "11:00:00", "12:00:00"), start=1):
            tran(hist, f"2026-11-25 {t}", f"/d/t{i}")
        assert hist.load_sql("pubs2") == [
            "LOAD DATABASE pubs2 FROM '/d/f'",
            "LOAD TRAN pubs2 FROM '/d/t1'",
            "LOAD TRAN pubs2 FROM '/d/t2'",
            "LOAD TRAN pubs2 FROM '/d/t3'",
            "ONLINE DATABASE pubs2",
        ]

    def test_until_inside_the_second_tran_dump(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        for i, t in enumerate(("10:00:00", "11:00:00", "12:00:00"), start=1):
            tran(hist, f"2026-11-25 {t}", f"/d/t{i}")
        assert hist.load_sql("pubs2", until=T("2026-11-25 10:30:15.250")) == [
            "LOAD DATABASE pubs2 FROM '/d/f'",
            "LOAD TRAN pubs2 FROM '/d/t1'",
            "LOAD TRAN pubs2 FROM '/d/t2' WITH UNTIL_TIME = '2026-11-25 10:30:15.250'",
            "ONLINE DATABASE pubs2",
        ]

    def test_until_at_the_end_of_a_tran_dump_needs_no_until_time(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        tran(hist, "2026-11-25 10:00:00", "/d/t1")
        tran(hist, "2026-11-25 11:00:00", "/d/t2")
        assert hist.load_sql("pubs2", until=T("2026-11-25 10:00:00")) == [
            "LOAD DATABASE pubs2 FROM '/d/f'", "LOAD TRAN pubs2 FROM '/d/t1'", "ONLINE DATABASE pubs2"]
        # between the full dump and the first log dump: that one, with until_time
        assert hist.load_sql("pubs2", until=T("2026-11-25 09:00:01")) == [
            "LOAD DATABASE pubs2 FROM '/d/f'",
            "LOAD TRAN pubs2 FROM '/d/t1' WITH UNTIL_TIME = '2026-11-25 09:00:01.000'",
            "ONLINE DATABASE pubs2"]
        # at the full dump's time: the full dump alone
        assert hist.load_sql("pubs2", until=T("2026-11-25 09:00:00")) == [
            "LOAD DATABASE pubs2 FROM '/d/f'", "ONLINE DATABASE pubs2"]

    def test_until_after_the_last_dump_loads_everything(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        tran(hist, "2026-11-25 10:00:00", "/d/t1")
        assert hist.load_sql("pubs2", until=T("2026-11-26 00:00:00")) == [
            "LOAD DATABASE pubs2 FROM '/d/f'", "LOAD TRAN pubs2 FROM '/d/t1'", "ONLINE DATABASE pubs2"]

    def test_recorded_until_time_of_a_tran_dump(self, hist):
        # a log dump holding commits up to 10:00 although it ran at 10:05
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        tran(hist, "2026-11-25 10:05:00", "/d/t1", until_time=T("2026-11-25 10:00:00"))
        tran(hist, "2026-11-25 11:00:00", "/d/t2")
        assert hist.load_sql("pubs2", until=T("2026-11-25 10:02:00"))[-2] == (
            "LOAD TRAN pubs2 FROM '/d/t2' WITH UNTIL_TIME = '2026-11-25 10:02:00.000'")

    def test_failed_dumps_are_skipped(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        hist.record(database="pubs2", dump_type="D", devices=["/d/bad1", "/d/bad2"], status=8009,
                    when=T("2026-11-25 09:30:00"), error="disk full")
        tran(hist, "2026-11-25 10:00:00", "/d/t1")
        hist.record(database="pubs2", dump_type="T", devices=["/d/tbad"], status=4207, when=T("2026-11-25 10:30:00"))
        tran(hist, "2026-11-25 11:00:00", "/d/t2")
        assert hist.load_sql("pubs2") == [
            "LOAD DATABASE pubs2 FROM '/d/f'",
            "LOAD TRAN pubs2 FROM '/d/t1'",
            "LOAD TRAN pubs2 FROM '/d/t2'",
            "ONLINE DATABASE pubs2",
        ]

    def test_a_dump_with_one_failed_stripe_failed(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        hist.record(database="pubs2", dump_type="D", devices=["/d/g1"], status=0, when=T("2026-11-25 10:00:00"),
                    dump_id="g")
        hist.record(database="pubs2", dump_type="D", devices=["/d/g2"], status=8009, when=T("2026-11-25 10:00:00"),
                    dump_id="g")
        assert hist.load_sql("pubs2")[0] == "LOAD DATABASE pubs2 FROM '/d/f'"

    def test_a_newer_full_dump_resets_the_sequence(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f1"])
        tran(hist, "2026-11-25 10:00:00", "/d/t1")
        full(hist, "2026-11-25 11:00:00", ["/d/f2a", "/d/f2b"])
        tran(hist, "2026-11-25 12:00:00", "/d/t2")
        tran(hist, "2026-11-25 13:00:00", "/d/t3")
        assert hist.load_sql("pubs2") == [
            "LOAD DATABASE pubs2 FROM '/d/f2a' STRIPE ON '/d/f2b'",
            "LOAD TRAN pubs2 FROM '/d/t2'",
            "LOAD TRAN pubs2 FROM '/d/t3'",
            "ONLINE DATABASE pubs2",
        ]
        # a time before the newer full dump: the older chain, which ends at the newer full dump
        assert hist.load_sql("pubs2", until=T("2026-11-25 10:30:00")) == [
            "LOAD DATABASE pubs2 FROM '/d/f1'",
            "LOAD TRAN pubs2 FROM '/d/t1'",
            "ONLINE DATABASE pubs2",
        ]
        assert hist.load_sql("pubs2", until=T("2026-11-25 12:30:00"))[:3] == [
            "LOAD DATABASE pubs2 FROM '/d/f2a' STRIPE ON '/d/f2b'",
            "LOAD TRAN pubs2 FROM '/d/t2'",
            "LOAD TRAN pubs2 FROM '/d/t3' WITH UNTIL_TIME = '2026-11-25 12:30:00.000'",
        ]

    def test_other_databases_do_not_mix_in(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        full(hist, "2026-11-25 09:30:00", ["/d/o"], db="other")
        tran(hist, "2026-11-25 10:00:00", "/d/ot", db="other")
        assert hist.load_sql("pubs2") == ["LOAD DATABASE pubs2 FROM '/d/f'", "ONLINE DATABASE pubs2"]

    def test_target_database(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        tran(hist, "2026-11-25 10:00:00", "/d/t1")
        assert hist.load_sql("pubs2", target="pubs2_copy") == [
            "LOAD DATABASE pubs2_copy FROM '/d/f'", "LOAD TRAN pubs2_copy FROM '/d/t1'",
            "ONLINE DATABASE pubs2_copy"]

    def test_sybackup_objects_are_what_the_load_names(self, hist):
        hist.record(database="pubs2", dump_type="D", devices=["sybackup::-POLICY p"] * 2, status=0,
                    when=T("2026-11-25 09:00:00"), stripe_names=["SYBAR.pubs2.D.0.7", "SYBAR.pubs2.D.1.7"])
        hist.record(database="pubs2", dump_type="T", devices=["sybackup::"], status=0,
                    when=T("2026-11-25 10:00:00"), stripe_names=["SYBAR.pubs2.T.0.8"])
        assert hist.load_sql("pubs2") == [
            "LOAD DATABASE pubs2 FROM 'sybackup::SYBAR.pubs2.D.0.7' STRIPE ON 'sybackup::SYBAR.pubs2.D.1.7'",
            "LOAD TRAN pubs2 FROM 'sybackup::SYBAR.pubs2.T.0.8'",
            "ONLINE DATABASE pubs2",
        ]

    def test_quotes_in_device_names(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/it's"])
        sql = hist.load_sql("pubs2")
        assert sql[0] == "LOAD DATABASE pubs2 FROM '/d/it''s'"
        assert parse_batch(sql[0])[0].devices[0].spec == "/d/it's"

    def test_output_runs_through_the_parser(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f1", "/d/f2"])
        tran(hist, "2026-11-25 10:00:00", "/d/t1")
        tran(hist, "2026-11-25 11:00:00", "/d/t2")
        statements = parse_batch("\n".join(hist.load_sql("pubs2", until=T("2026-11-25 10:30:00"))))
        assert [statement_kind(s) for s in statements] == [
            "load database", "load transaction", "load transaction", "online database"]
        assert parse_time(statements[2].options["until_time"]) == T("2026-11-25 10:30:00")

    def test_cumulative_dump_replaces_the_log_dumps_before_it(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        tran(hist, "2026-11-25 10:00:00", "/d/t1")
        hist.record(database="pubs2", dump_type="C", devices=["/d/c1"], status=0, when=T("2026-11-25 10:30:00"))
        tran(hist, "2026-11-25 11:00:00", "/d/t2")
        assert hist.load_sql("pubs2") == [
            "LOAD DATABASE pubs2 FROM '/d/f'",
            "LOAD DATABASE pubs2 CUMULATIVE FROM '/d/c1'",
            "LOAD TRAN pubs2 FROM '/d/t2'",
            "ONLINE DATABASE pubs2",
        ]
        # before the cumulative dump: the log dumps, which go on across it (it does not truncate the log)
        assert hist.load_sql("pubs2", until=T("2026-11-25 10:15:00"))[1:] == [
            "LOAD TRAN pubs2 FROM '/d/t1'",
            "LOAD TRAN pubs2 FROM '/d/t2' WITH UNTIL_TIME = '2026-11-25 10:15:00.000'",
            "ONLINE DATABASE pubs2"]

    def test_no_history(self, hist):
        with pytest.raises(DumpHistoryError) as e:
            hist.load_sql("pubs2")
        assert isinstance(e.value, ServerError)
        assert e.value.number == 19401 and e.value.severity == 16
        assert "no dump of database 'pubs2'" in e.value.text

    def test_only_log_dumps(self, hist):
        tran(hist, "2026-11-25 10:00:00", "/d/t1")
        with pytest.raises(DumpHistoryError, match="no successful full dump"):
            hist.load_sql("pubs2")

    def test_only_failed_full_dumps(self, hist):
        hist.record(database="pubs2", dump_type="D", devices=["/d/f"], status=8009, when=T("2026-11-25 09:00:00"))
        with pytest.raises(DumpHistoryError, match="no successful full dump"):
            hist.load_sql("pubs2")

    def test_until_before_the_first_full_dump(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        with pytest.raises(DumpHistoryError) as e:
            hist.load_sql("pubs2", until=T("2026-11-25 08:00:00"))
        assert "at or before 2026-11-25 08:00:00.000" in e.value.text

    def test_gap_in_log_sequence(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"], lsn_last=100)
        tran(hist, "2026-11-25 10:00:00", "/d/t1", lsn_first=101, lsn_last=150)
        tran(hist, "2026-11-25 11:00:00", "/d/t2", lsn_first=180, lsn_last=200)
        # a time before the gap needs no dump past it
        assert hist.load_sql("pubs2", until=T("2026-11-25 10:00:00")) == [
            "LOAD DATABASE pubs2 FROM '/d/f'", "LOAD TRAN pubs2 FROM '/d/t1'", "ONLINE DATABASE pubs2"]
        with pytest.raises(DumpHistoryError) as e:
            hist.load_sql("pubs2")
        assert e.value.number == 4305 and "gap" in e.value.text and "/d/t2" in e.value.text

    def test_contiguous_log_sequence(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"], lsn_last=100)
        tran(hist, "2026-11-25 10:00:00", "/d/t1", lsn_first=101, lsn_last=150)
        tran(hist, "2026-11-25 11:00:00", "/d/t2", lsn_first=151, lsn_last=200)
        assert len(hist.load_sql("pubs2")) == 4

    def test_script_lines(self):
        assert script_lines(["LOAD DATABASE a FROM '/x'", "ONLINE DATABASE a"]) == [
            "LOAD DATABASE a FROM '/x'", "go", "ONLINE DATABASE a", "go"]


class TestCreateSql:
    def test_with_size(self):
        info = SimpleNamespace(name="pubs2", size_mb=200)
        assert create_sql("pubs2", info) == ["CREATE DATABASE pubs2 ON DEFAULT = 200 FOR LOAD"]

    def test_unknown_size(self):
        assert create_sql("pubs2", SimpleNamespace(size_mb=None)) == ["CREATE DATABASE pubs2 FOR LOAD"]
        assert create_sql("pubs2", None, target="copy") == ["CREATE DATABASE copy FOR LOAD"]

    def test_target_and_parse(self):
        (sql,) = create_sql("pubs2", SimpleNamespace(size_mb=50), target="pubs2_test")
        s = parse_batch(sql)[0]
        assert (s.name, s.size_mb, s.for_load) == ("pubs2_test", 50, True)


class TestTimes:
    @pytest.mark.parametrize("text, expected", [
        ("2026-11-25 10:00:00", dt.datetime(2026, 11, 25, 10, 0, 0)),
        ("2026-11-25 10:00:00.250", dt.datetime(2026, 11, 25, 10, 0, 0, 250000)),
        ("2026-11-25T10:00", dt.datetime(2026, 11, 25, 10, 0)),
        ("2026-11-25", dt.datetime(2026, 11, 25)),
        ("20261125 10:00:05", dt.datetime(2026, 11, 25, 10, 0, 5)),
        ("Mar 26 2007 12:35:59:650PM", dt.datetime(2007, 3, 26, 12, 35, 59, 650000)),
        ("Mar 26, 2024 12:35:59:650am", dt.datetime(2024, 3, 26, 0, 35, 59, 650000)),
        ("january 29,2020 15:00:00:00", dt.datetime(2020, 1, 29, 15, 0)),
    ])
    def test_parse(self, text, expected):
        assert parse_time(text) == expected.timestamp()

    @pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "2026-02-30 10:00", "marz 1 2020",
                                      "Mar 26 2007 13:00PM", "2026-11-25 10:00:00:1234"])
    def test_bad(self, text):
        with pytest.raises(DumpHistoryError) as e:
            parse_time(text)
        assert e.value.number == 249

    def test_format_round_trip(self):
        t = T("2026-11-25 10:30:15.123")
        assert format_time(t) == "2026-11-25 10:30:15.123"
        assert parse_time(format_time(t)) == t
        t = T("2026-11-25 10:30:15.123456")
        assert format_time(t) == "2026-11-25 10:30:15.123456"
        assert parse_time(format_time(t)) == t

    def test_agrees_with_load_transaction(self):
        from engine.dataserver.translog_chain import parse_until_time

        for text in ("2026-11-25 10:30:15.123", "2026-11-25 10:30:15.123456", "Mar 26 2007 12:35:59:650PM",
                     "2026-11-25"):
            assert parse_until_time(format_time(parse_time(text))) == parse_time(text)


class TestSpDumpHistory:
    def test_columns(self):
        columns, rows = history_result([])
        assert [c.name for c in columns] == [
            "Dump Type", "Server Name", "Database Name", "Time", "Status", "Error", "Backup Server Name",
            "Compression Level", "Stripe", "Stripe Name", "Dump ID", "Error Message"]
        assert [c.type for c in columns] == [
            "varchar", "varchar", "varchar", "datetime", "varchar", "int", "varchar", "int", "int", "varchar",
            "varchar", "varchar"]
        assert rows == [] and columns == HISTORY_COLUMNS and columns is not HISTORY_COLUMNS

    def test_list_rows(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/a", "/d/b"], compression=3, dump_id="x1")
        hist.record(database="pubs2", dump_type="T", devices=["/d/t"], status=4207, when=T("2026-11-25 10:00:00"),
                    error="boom", dump_id="x2")
        result = sp_dump_history(hist)
        assert result.columns == HISTORY_COLUMNS
        assert result.rows == [
            ("DATABASE", "SYBAR", "pubs2", dt.datetime(2026, 11, 25, 9), "Success", 0, "SYB_BACKUP", 3, 1, "/d/a",
             "x1", ""),
            ("DATABASE", "SYBAR", "pubs2", dt.datetime(2026, 11, 25, 9), "Success", 0, "SYB_BACKUP", 3, 2, "/d/b",
             "x1", ""),
            ("TRANSACTION", "SYBAR", "pubs2", dt.datetime(2026, 11, 25, 10), "Failed", 4207, "SYB_BACKUP", None, 1,
             "/d/t", "x2", "boom"),
        ]
        # every value fits its column's type
        for row in result.rows:
            for col, v in zip(result.columns, row, strict=True):
                assert v is None or {"varchar": str, "int": int, "datetime": dt.datetime}[col.type] is type(v)

    def test_list_filters(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        full(hist, "2026-11-25 09:00:00", ["/d/o"], db="other")
        tran(hist, "2026-11-25 10:00:00", "/d/t")
        hist.record(database="pubs2", dump_type="T", devices=["/d/bad"], status=1, when=T("2026-11-25 11:00:00"))
        dev = 9

        def devices(*args, **named):
            return [r[dev] for r in sp_dump_history(hist, args, named).rows]

        assert devices(name="pubs2") == ["/d/f", "/d/t", "/d/bad"]
        assert devices("list", "pubs2") == ["/d/f", "/d/t", "/d/bad"]
        assert devices(operation="list", name="pubs2", until_time="2026-11-25 10:00:00") == ["/d/f", "/d/t"]
        assert devices(type="tran") == ["/d/t", "/d/bad"]
        assert devices(type="database", name="other") == ["/d/o"]
        assert devices(status="fail") == ["/d/bad"]
        assert devices(status="success", name="pubs2") == ["/d/f", "/d/t"]
        assert devices(name=Arg("null", "null")) == ["/d/f", "/d/o", "/d/t", "/d/bad"]

    def test_purge(self, hist):
        full(hist, "2026-11-24 09:00:00", ["/d/old"])
        full(hist, "2026-11-24 09:00:00", ["/d/o"], db="other")
        full(hist, "2026-11-25 09:00:00", ["/d/new"])
        result = sp_dump_history(hist, (), {"operation": "purge", "name": "pubs2", "until_time": "Nov 25 2026"})
        assert result.columns is None and result.messages == ["1 dump history record(s) purged."]
        assert [r.device for r in hist.rows()] == ["/d/o", "/d/new"]
        sp_dump_history(hist, ("purge",), {"until_time": "9999-12-31"})
        assert hist.rows() == []

    def test_purge_needs_until_time(self, hist):
        with pytest.raises(DumpHistoryError, match="until_time"):
            sp_dump_history(hist, ("purge",))

    @pytest.mark.parametrize("args, named, match", [
        (("drop",), {}, "@operation"),
        ((), {"type": "log"}, "@type"),
        ((), {"status": "maybe"}, "@status"),
        ((), {"until_time": "soon"}, "DATETIME"),
        ((), {"bogus": "1"}, "no parameter @bogus"),
        ((), {"file": "/x/dumphist"}, "@file"),
        (("list", "db", None, None, None, None, "extra"), {}, "at most 6"),
    ])
    def test_bad_arguments(self, hist, args, named, match):
        with pytest.raises(DumpHistoryError, match=match):
            sp_dump_history(hist, args, named)

    def test_replies(self, hist):
        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        replies = sp_dump_history(hist).replies()
        assert isinstance(replies[0], ResultFormat) and replies[0].columns == HISTORY_COLUMNS
        assert isinstance(replies[1], ResultRow)
        assert replies[2] == Done(count=1) and len(replies) == 3
        replies = sp_dump_history(hist, ("purge",), {"until_time": "2026-11-26"}).replies()
        assert replies == [Info("1 dump history record(s) purged."), Done()]

    def test_result_encodes_as_tds(self, hist):
        from engine.tds import tokens

        full(hist, "2026-11-25 09:00:00", ["/d/f"])
        hist.record(database="pubs2", dump_type="T", devices=["/d/t"], status=4207, when=T("2026-11-25 10:00:00"),
                    compression=101, error="x" * 400)
        result = sp_dump_history(hist)
        assert tokens.rowfmt(result.columns)
        for r in result.rows:
            assert tokens.row(result.columns, r)
