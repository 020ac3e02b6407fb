"""Parser forms of ASE's history tools: ``using config``, ``listonly = load_sql | create_sql``."""

from __future__ import annotations

import pytest

from engine.dataserver.tsql import (
    Device,
    DumpDatabase,
    DumpTransaction,
    LoadDatabase,
    TSQLSyntaxError,
    parse_batch,
    statement_kind,
)


def one(sql: str):
    statements = parse_batch(sql)
    assert len(statements) == 1
    return statements[0]


class TestUsingConfig:
    def test_dump_database_using_config_without_to(self):
        s = one("dump database pubs2 using config = nightly")
        assert isinstance(s, DumpDatabase)
        assert s.config == "nightly" and s.devices == () and s.options == {"config": "nightly"}

    def test_quoted_config_and_with_options(self):
        s = one("dump database pubs2 using config = 'nightly' with compression = 100, verify = header")
        assert s.config == "nightly"
        assert s.options == {"config": "nightly", "compression": 100, "verify": "header"}

    def test_dump_transaction_using_config(self):
        s = one("dump tran pubs2 using config = logs")
        assert isinstance(s, DumpTransaction) and s.config == "logs" and s.devices == ()
        s = one("dump transaction pubs2 using config = logs with standby_access")
        assert s.config == "logs" and s.options["standby_access"] is True

    def test_to_clause_may_be_given_too(self):
        s = one("dump database pubs2 using config = nightly to '/d/a' stripe on '/d/b'")
        assert s.config == "nightly" and s.devices == (Device("/d/a"), Device("/d/b"))

    def test_cumulative_using_config(self):
        s = one("dump database pubs2 cumulative using config = c1")
        assert s.config == "c1" and s.options == {"cumulative": True, "config": "c1"}

    def test_without_config_the_field_is_none(self):
        assert one("dump database db to '/x'").config is None
        assert one("dump tran db to '/x'").config is None
        assert one("dump tran db with truncate_only").config is None

    def test_dataclass_compatibility(self):
        # statements built without the new field still compare equal to parsed ones
        assert one("dump database db to '/x'") == DumpDatabase(database="db", devices=(Device("/x"),))
        assert DumpTransaction(database="db").config is None

    @pytest.mark.parametrize("sql", [
        "dump database db using config",
        "dump database db using config nightly",
        "dump database db using nightly",
        "dump database db using config =",
    ])
    def test_malformed_using(self, sql):
        with pytest.raises(TSQLSyntaxError):
            parse_batch(sql)


class TestListonlyHistory:
    def test_load_sql_with_until_time_without_from(self):
        s = one("load database pubs2 with listonly = load_sql, until_time = '2026-11-25 10:00:00'")
        assert isinstance(s, LoadDatabase)
        assert s.devices == ()
        assert s.options == {"listonly": "load_sql", "until_time": "2026-11-25 10:00:00"}
        assert statement_kind(s) == "load database"

    def test_load_sql_without_from(self):
        s = one("load database DB with listonly=load_sql")
        assert s.database == "DB" and s.devices == () and s.options == {"listonly": "load_sql"}

    def test_create_sql_without_from(self):
        s = one("load database pubs2 with listonly = create_sql")
        assert s.devices == () and s.options == {"listonly": "create_sql"}

    def test_value_is_lower_cased(self):
        assert one("LOAD DATABASE pubs2 WITH LISTONLY = LOAD_SQL").options == {"listonly": "load_sql"}
        assert one("load database pubs2 with listonly = 'Create_SQL'").options == {"listonly": "create_sql"}

    def test_with_from_clause_still_parses(self):
        s = one("load database db from '/x' with listonly = load_sql, until_time = '2026-11-25 10:00:00'")
        assert s.devices == (Device("/x"),)
        assert s.options == {"listonly": "load_sql", "until_time": "2026-11-25 10:00:00"}
        assert one("load database db from '/x' with listonly = full").options == {"listonly": "full"}
        assert one("load database db from '/x' with listonly").options == {"listonly": True}

    @pytest.mark.parametrize("sql", [
        "load database db",
        "load database db with listonly",
        "load database db with listonly = full",
        "load database db with headeronly",
        "load database db with until_time = '2026-11-25 10:00:00'",
        "load tran db with listonly = load_sql",
        "load transaction db with until_time = '2026-11-25 10:00:00'",
    ])
    def test_other_loads_still_need_from(self, sql):
        with pytest.raises(TSQLSyntaxError):
            parse_batch(sql)

    def test_error_points_at_with(self):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("load database db with headeronly")
        assert "with" in str(e.value)

    def test_generated_statements_parse(self):
        # what listonly = load_sql prints must run as it is
        batch = ("LOAD DATABASE db FROM '/d/db.DB.20261125.100000.000' STRIPE ON '/d/db.DB.20261125.100000.001'\n"
                 "LOAD TRAN db FROM 'sybackup::SYBAR.db.T.0.1' WITH UNTIL_TIME = '2026-11-25 10:30:00.250'\n"
                 "ONLINE DATABASE db\n"
                 "CREATE DATABASE db ON DEFAULT = 100 FOR LOAD")
        s = parse_batch(batch)
        assert [statement_kind(x) for x in s] == ["load database", "load transaction", "online database",
                                                   "create database"]
        assert s[1].options == {"until_time": "2026-11-25 10:30:00.250"}
        assert s[3].size_mb == 100 and s[3].for_load
