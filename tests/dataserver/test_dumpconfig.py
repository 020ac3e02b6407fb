"""Named dump configurations: sp_config_dump and ``dump ... using config = NAME``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import stat

import pytest

from engine.dataserver.dumpconfig import (
    CONFIG_COLUMNS,
    DumpConfig,
    DumpConfigError,
    DumpConfigs,
    apply_config,
    config_dump_proc,
    resolve_devices,
    stripe_file_name,
)
from engine.dataserver.errors import ServerError
from engine.dataserver.tsql import Device, parse_batch
from engine.tds import tokens
from engine.tds.replies import Done, Info, ResultFormat

WHEN = dt.datetime(2026, 11, 25, 15, 34, 26).timestamp()


@pytest.fixture
def configs(tmp_path):
    c = DumpConfigs(tmp_path / "data" / "dumphist.db")
    yield c
    c.close()


def proc(configs, *args, **named):
    return config_dump_proc(configs, args, named)


class TestStore:
    def test_create_get_list_drop(self, configs):
        configs.create(DumpConfig("nightly", stripe_dir="/dumps", num_stripes=2, compression=101))
        configs.create(DumpConfig("arch", stripe_dir="sybackup::-POLICY Sybase_ASE"))
        assert configs.get("nightly") == DumpConfig("nightly", stripe_dir="/dumps", num_stripes=2, compression=101)
        assert [c.name for c in configs.list()] == ["arch", "nightly"]
        assert configs.drop("arch") and not configs.drop("arch")
        assert configs.get("arch") is None

    def test_private_file_persists(self, tmp_path):
        path = tmp_path / "data" / "dumphist.db"
        c = DumpConfigs(path)
        c.create(DumpConfig("n", stripe_dir="/d", retaindays=7, verify="full", init=True, notify="client",
                            backup_server="SYB_BACKUP", description="every night"))
        c.close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        c = DumpConfigs(path)
        assert c.get("n") == DumpConfig("n", stripe_dir="/d", retaindays=7, verify="full", init=True,
                                        notify="client", backup_server="SYB_BACKUP", description="every night")
        c.close()

    def test_shares_a_file_with_the_history(self, tmp_path):
        from engine.dataserver.dumphist import DumpHistory

        path = tmp_path / "dumphist.db"
        h, c = DumpHistory(path), DumpConfigs(path)
        c.create(DumpConfig("n", stripe_dir="/d"))
        h.record(database="db", dump_type="D", devices=["/d/x"], status=0, when=WHEN)
        assert c.get("n") is not None and len(h.rows()) == 1
        h.close()
        c.close()

    def test_create_twice(self, configs):
        configs.create(DumpConfig("n", stripe_dir="/d"))
        with pytest.raises(DumpConfigError, match="already exists"):
            configs.create(DumpConfig("n", stripe_dir="/e"))

    def test_unknown_name_lists_the_known_ones(self, configs):
        with pytest.raises(DumpConfigError, match=r"'nope' does not exist \(none is defined yet\)"):
            configs.require("nope")
        configs.create(DumpConfig("b", stripe_dir="/d"))
        configs.create(DumpConfig("a", stripe_dir="/d"))
        with pytest.raises(DumpConfigError) as e:
            configs.require("nope")
        assert isinstance(e.value, ServerError) and e.value.number == 19410 and e.value.severity == 16
        assert "the known ones are a, b" in e.value.text

    @pytest.mark.parametrize("config, match", [
        (DumpConfig("n"), "needs @stripe_dir"),
        (DumpConfig("bad name", stripe_dir="/d"), "not a valid"),
        (DumpConfig("n", stripe_dir="/d", num_stripes=0), "@num_stripes"),
        (DumpConfig("n", stripe_dir="/d", num_stripes=33), "@num_stripes"),
        (DumpConfig("n", stripe_dir="/d", compression=10), "@compression"),
        (DumpConfig("n", stripe_dir="/d", retaindays=-1), "@retain_days"),
        (DumpConfig("n", stripe_dir="/d", verify="crc"), "@verify"),
        (DumpConfig("n", stripe_dir="/d", notify="mail"), "@notify"),
        (DumpConfig("n", ext_api="syb_tsm"), "@ext_api"),
        (DumpConfig("n", stripe_dir="/d\nx"), "line breaks"),
    ])
    def test_validation(self, configs, config, match):
        with pytest.raises(DumpConfigError, match=match):
            configs.create(config)


class TestResolve:
    def test_file_names_as_ase_names_them(self):
        assert stripe_file_name("pubs2", "D", WHEN, 0) == "pubs2.DB.20261125.153426.000"
        assert stripe_file_name("pubs2", "T", WHEN, 11) == "pubs2.TR.20261125.153426.011"
        assert stripe_file_name("pubs2", "C", WHEN, 1) == "pubs2.CU.20261125.153426.001"

    def test_stripe_dir(self):
        devices, options = resolve_devices(DumpConfig("n", stripe_dir="/dumps", num_stripes=3), "pubs2", "D", WHEN)
        assert devices == ["/dumps/pubs2.DB.20261125.153426.000", "/dumps/pubs2.DB.20261125.153426.001",
                           "/dumps/pubs2.DB.20261125.153426.002"]
        assert options == {}

    def test_relative_dir_stays_relative(self):
        devices, _ = resolve_devices(DumpConfig("n", stripe_dir="nightly"), "pubs2", "T", WHEN)
        assert devices == ["nightly/pubs2.TR.20261125.153426.000"]

    def test_options(self):
        config = DumpConfig("n", stripe_dir="/d", compression=101, retaindays=7, verify="header", init=False,
                            notify="client", backup_server="SYB_BACKUP2")
        _, options = resolve_devices(config, "pubs2", "D", WHEN)
        assert options == {"compression": 101, "retaindays": 7, "verify": "header", "noinit": True,
                           "notify": "client", "backup_server": "SYB_BACKUP2"}

    def test_sybackup_string_on_every_stripe(self):
        config = DumpConfig("n", stripe_dir="sybackup::-POLICY Sybase_ASE -SCHED Full", num_stripes=2)
        devices, _ = resolve_devices(config, "pubs2", "D", WHEN)
        assert devices == ["sybackup::-POLICY Sybase_ASE -SCHED Full"] * 2

    def test_ext_api(self):
        assert resolve_devices(DumpConfig("n", ext_api="sybackup"), "db", "D", WHEN)[0] == ["sybackup::"]
        devices, _ = resolve_devices(DumpConfig("n", ext_api="sybackup", stripe_dir="-POL p", num_stripes=2),
                                     "db", "T", WHEN)
        assert devices == ["sybackup::-POL p"] * 2

    def test_resolve_by_name(self, configs):
        configs.create(DumpConfig("n", stripe_dir="/d"))
        assert configs.resolve("n", "db", "D", WHEN)[0] == ["/d/db.DB.20261125.153426.000"]
        with pytest.raises(DumpConfigError, match="'m' does not exist"):
            configs.resolve("m", "db", "D", WHEN)

    def test_bad_type(self):
        with pytest.raises(ValueError):
            resolve_devices(DumpConfig("n", stripe_dir="/d"), "db", "X", WHEN)


class TestApply:
    def one(self, sql):
        return parse_batch(sql)[0]

    def test_devices_and_options_from_the_config(self, configs):
        configs.create(DumpConfig("nightly", stripe_dir="/d", num_stripes=2, compression=101, verify="header"))
        stmt = apply_config(configs, self.one("dump database pubs2 using config = nightly"), when=WHEN)
        assert stmt.devices == (Device("/d/pubs2.DB.20261125.153426.000"), Device("/d/pubs2.DB.20261125.153426.001"))
        assert stmt.options == {"compression": 101, "verify": "header", "config": "nightly"}
        assert type(stmt).__name__ == "DumpDatabase" and stmt.config == "nightly"

    def test_statement_options_win(self, configs):
        configs.create(DumpConfig("nightly", stripe_dir="/d", compression=101, init=True))
        stmt = apply_config(configs, self.one(
            "dump database pubs2 using config = nightly with compression = 3, noinit"), when=WHEN)
        assert stmt.options == {"compression": 3, "noinit": True, "config": "nightly"}

    def test_to_clause_wins(self, configs):
        configs.create(DumpConfig("nightly", stripe_dir="/d", num_stripes=4, compression=5))
        stmt = apply_config(configs, self.one("dump database pubs2 using config = nightly to '/x'"), when=WHEN)
        assert stmt.devices == (Device("/x"),) and stmt.options["compression"] == 5

    def test_transaction_and_cumulative(self, configs):
        configs.create(DumpConfig("c", stripe_dir="/d"))
        assert apply_config(configs, self.one("dump tran pubs2 using config = c"), when=WHEN).devices == (
            Device("/d/pubs2.TR.20261125.153426.000"),)
        assert apply_config(configs, self.one("dump database pubs2 cumulative using config = c"),
                            when=WHEN).devices == (Device("/d/pubs2.CU.20261125.153426.000"),)

    def test_backup_server_goes_on_each_device(self, configs):
        configs.create(DumpConfig("c", stripe_dir="/d", backup_server="REMOTE_BS"))
        stmt = apply_config(configs, self.one("dump database pubs2 using config = c"), when=WHEN)
        assert stmt.devices[0].backup_server == "REMOTE_BS" and "backup_server" not in stmt.options

    def test_without_config_unchanged(self, configs):
        stmt = self.one("dump database pubs2 to '/x'")
        assert apply_config(configs, stmt) is stmt
        stmt = self.one("dump tran pubs2 with truncate_only")
        assert apply_config(configs, stmt) is stmt

    def test_unknown_config(self, configs):
        with pytest.raises(DumpConfigError, match="'nightly' does not exist"):
            apply_config(configs, self.one("dump database pubs2 using config = nightly"))


class TestSpConfigDump:
    def test_create_list_show_update_drop(self, configs):
        r = proc(configs, config_name="nightly", stripe_dir="/dumps", num_stripes="2", compression="101",
                 retain_days="7", verify="HEADER", init="noinit", description="nightly full dumps")
        assert r.messages == ["The dump configuration 'nightly' has been created."] and r.columns is None
        assert configs.get("nightly") == DumpConfig(
            "nightly", stripe_dir="/dumps", num_stripes=2, compression=101, retaindays=7, verify="header",
            init=False, description="nightly full dumps")
        r = proc(configs, config_name="arch", ext_api="sybackup", stripe_dir="-POLICY Sybase_ASE")
        assert r.messages == ["The dump configuration 'arch' has been created."]

        r = proc(configs)
        assert r.columns == CONFIG_COLUMNS
        assert r.rows == [
            ("arch", "-POLICY Sybase_ASE", "sybackup", 1, None, None, None, None, None, None, ""),
            ("nightly", "/dumps", None, 2, 101, 7, "noinit", "header", None, None, "nightly full dumps"),
        ]
        assert proc(configs, config_name="nightly").rows == [r.rows[1]]
        assert proc(configs, "list").rows == r.rows

        r = proc(configs, config_name="nightly", num_stripes="4")
        assert r.messages == ["The dump configuration 'nightly' has been updated."]
        assert configs.get("nightly").num_stripes == 4 and configs.get("nightly").compression == 101

        assert proc(configs, "drop", "nightly").messages == ["The dump configuration 'nightly' has been dropped."]
        assert proc(configs, operation="drop", config_name="arch").messages == [
            "The dump configuration 'arch' has been dropped."]
        assert proc(configs).rows == []

    def test_positional_create(self, configs):
        proc(configs, "n", "/d", None, "3")
        assert configs.get("n") == DumpConfig("n", stripe_dir="/d", num_stripes=3)

    def test_aliases(self, configs):
        proc(configs, **{"@config_name": "n", "stripe_dir": "/d", "retaindays": "2"})
        assert configs.get("n").retaindays == 2

    def test_explicit_create_and_update(self, configs):
        proc(configs, "create", config_name="n", stripe_dir="/d")
        with pytest.raises(DumpConfigError, match="already exists"):
            proc(configs, "create", config_name="n", stripe_dir="/d")
        with pytest.raises(DumpConfigError, match="'m' does not exist"):
            proc(configs, "update", config_name="m", stripe_dir="/d")

    def test_update_keeps_validation(self, configs):
        proc(configs, config_name="n", stripe_dir="/d")
        with pytest.raises(DumpConfigError, match="@num_stripes"):
            proc(configs, config_name="n", num_stripes="99")
        assert configs.get("n").num_stripes == 1

    @pytest.mark.parametrize("args, named, match", [
        ((), {"config_name": "n"}, "'n' does not exist"),
        (("drop",), {}, "needs the name"),
        (("drop", "n"), {}, "'n' does not exist"),
        ((), {"stripe_dir": "/d"}, "needs @config_name"),
        ((), {"config_name": "n", "num_stripes": "two", "stripe_dir": "/d"}, "takes a number"),
        ((), {"config_name": "n", "init": "maybe", "stripe_dir": "/d"}, "@init"),
        ((), {"config_name": "n", "blocksizes": "1"}, "no parameter @blocksizes"),
        ((), {"operation": "explode"}, "@operation"),
        (("list",), {"config_name": "n", "stripe_dir": "/d"}, "takes only @config_name"),
    ])
    def test_errors(self, configs, args, named, match):
        with pytest.raises(DumpConfigError, match=match):
            config_dump_proc(configs, args, named)

    def test_help(self, configs):
        assert "Usage: sp_config_dump" in proc(configs, "help").messages[0]

    def test_replies_and_encoding(self, configs):
        proc(configs, config_name="n", stripe_dir="/d", compression="1")
        r = proc(configs)
        replies = r.replies()
        assert isinstance(replies[0], ResultFormat) and replies[-1] == Done(count=1)
        assert tokens.rowfmt(r.columns) and all(tokens.row(r.columns, row) for row in r.rows)
        assert proc(configs, "drop", "n").replies() == [Info("The dump configuration 'n' has been dropped."),
                                                        Done()]

    def test_config_round_trips_every_field(self, configs):
        names = {f.name for f in dataclasses.fields(DumpConfig)}
        assert names == {"name", "stripe_dir", "ext_api", "num_stripes", "compression", "retaindays", "verify",
                         "init", "notify", "backup_server", "description"}
