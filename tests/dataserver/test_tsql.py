"""The T-SQL front end: batches, statement splitting, classification, line numbers, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.dataserver import tsql
from engine.dataserver.tsql import (
    Arg,
    Batch,
    BeginTransaction,
    Checkpoint,
    CommitTransaction,
    CreateDatabase,
    Declare,
    Device,
    DropDatabase,
    DumpDatabase,
    DumpTransaction,
    Execute,
    LoadDatabase,
    LoadTransaction,
    OnlineDatabase,
    Print,
    RollbackTransaction,
    SelectAssign,
    SetOption,
    Sql,
    TSQLSyntaxError,
    Use,
    Waitfor,
    find_backup_statements,
    parse_batch,
    split_batches,
    statement_kind,
)

EXAMPLES = Path(__file__).parent / "data" / "scripts"


def one(sql: str, **kw):
    statements = parse_batch(sql, **kw)
    assert len(statements) == 1, statements
    return statements[0]


# --------------------------------------------------------------------------------------------------
# split_batches
# --------------------------------------------------------------------------------------------------
class TestSplitBatches:
    def test_go_ends_batches_and_lines_are_counted(self):
        script = "use master\ngo\nselect 1\nselect 2\ngo\n"
        batches = split_batches(script)
        assert batches == [(Batch("use master", 1), 1), (Batch("select 1\nselect 2", 3), 1)]

    def test_go_any_case_with_spaces_around(self):
        script = "select 1\n  GO   \nselect 2\n\tGo\t\nselect 3\ngo   \n"
        assert [b.text.strip() for b, _ in split_batches(script)] == ["select 1", "select 2", "select 3"]

    def test_go_with_a_count(self):
        (b1, r1), (b2, r2) = split_batches("insert t values (1)\ngo 3\nselect 1\ngo  12  \n")
        assert (b1.text, r1) == ("insert t values (1)", 3)
        assert (b2.text, r2, b2.first_line) == ("select 1", 12, 3)

    def test_not_a_separator(self):
        # go as part of another line, go followed by other text
        script = "select 'go'\ngo on\ngoto x\nselect 1 go\n"
        batches = split_batches(script)
        assert len(batches) == 1
        assert batches[0][0].text == script.rstrip("\n")

    def test_go_inside_a_comment_or_string_is_not_a_separator(self):
        script = "/* old batch:\ngo\n*/\nselect 1\ngo\nprint 'a\ngo\nb'\ngo\n"
        batches = split_batches(script)
        assert len(batches) == 2
        assert batches[0][0].text == "/* old batch:\ngo\n*/\nselect 1"
        assert batches[1][0].text == "print 'a\ngo\nb'"
        assert batches[1][0].first_line == 6

    def test_nested_comment_and_line_comment(self):
        script = "/* a /* b */ still comment\ngo\n*/ select 1\n-- go /* not a comment start\ngo\nselect 2\n"
        batches = split_batches(script)
        assert [b.first_line for b, _ in batches] == [1, 6]
        assert parse_batch(batches[0][0].text)[0].sqlite == "select 1"

    def test_double_quoted_string_holds_an_apostrophe(self):
        script = 'print "don\'t"\ngo\nselect 1\ngo\n'
        assert len(split_batches(script)) == 2

    def test_final_batch_without_go_is_returned(self):
        batches = split_batches("select 1\ngo\nselect 2\n")
        assert batches[-1] == (Batch("select 2", 3), 1)

    def test_empty_batches_are_dropped(self):
        script = "go\n\n  \ngo\n-- just a comment\n/* and a\nblock */\ngo\nselect 1\ngo\ngo\n   \n"
        batches = split_batches(script)
        assert len(batches) == 1
        assert batches[0][0].first_line == 9

    def test_reset_discards_the_pending_batch(self):
        batches = split_batches("select 1\nreset\nselect 2\ngo\n")
        assert batches == [(Batch("select 2", 3), 1)]

    @pytest.mark.parametrize("word", ["quit", "exit", "QUIT", "  exit  "])
    def test_quit_and_exit_stop_the_input(self, word):
        batches = split_batches(f"select 1\ngo\nselect 2\n{word}\nselect 3\ngo\n")
        assert batches == [(Batch("select 1", 1), 1)]

    def test_windows_line_endings(self):
        batches = split_batches("select 1\r\ngo\r\nselect 2\r\nGO\r\n")
        assert len(batches) == 2
        assert [s.sqlite for s in parse_batch(batches[1][0].text)] == ["select 2"]

    def test_never_raises_on_unclosed_things(self):
        batches = split_batches("select 'abc\ngo\n/* x\ngo\n")
        assert len(batches) == 1  # the go lines are inside the string
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch(batches[0][0].text)
        assert e.value.number == 105

    def test_empty_script(self):
        assert split_batches("") == []
        assert split_batches("\n\n") == []


# --------------------------------------------------------------------------------------------------
# splitting a batch into statements
# --------------------------------------------------------------------------------------------------
class TestStatementSplitting:
    def test_freetds_login_line(self):
        # FreeTDS 1.3.17 sends this one line right after login: two statements
        s1, s2 = parse_batch("set textsize 64512 select @@spid ")
        assert s1 == SetOption(name="textsize", value=64512)
        assert s1.text == "set textsize 64512"
        assert s2 == Sql(kind="select", sqlite="select :__spid", params=("__spid",))
        assert s2.text == "select @@spid"

    def test_freetds_probe(self):
        s = one("SELECT CONVERT(NVARCHAR(3),'abc') nvc")
        assert s.kind == "select"
        assert s.sqlite == "SELECT cast('abc' as text) nvc"

    def test_semicolons_separate_and_are_optional(self):
        statements = parse_batch("select 1; select 2;;\nselect 3")
        assert [s.sqlite for s in statements] == ["select 1", "select 2", "select 3"]
        assert [s.text for s in statements] == ["select 1", "select 2", "select 3"]

    def test_many_statements_without_separators(self):
        sql = ("use salesdb declare @n int select @n = count(*) from orders print 'n = %1!', @n "
               "insert orders values (1, 'x') update orders set qty = 2 where id = 1 "
               "delete orders where id = 1 select * from orders")
        kinds = [statement_kind(s) for s in parse_batch(sql)]
        assert kinds == ["use", "declare", "select", "print", "insert", "update", "delete", "select"]

    def test_subqueries_unions_and_insert_select_stay_whole(self):
        sql = ("insert into t (a) select x from u where x in (select y from v) union all select 3 "
               "select 1")
        s1, s2 = parse_batch(sql)
        assert s1.kind == "insert"
        assert s1.text.endswith("union all select 3")
        assert s2.sqlite == "select 1"

    def test_update_set_versus_set_option(self):
        s1, s2 = parse_batch("update t set a = 1 where b = 2 set nocount on")
        assert s1.kind == "update" and s1.sqlite == "update t set a = 1 where b = 2"
        assert s2 == SetOption(name="nocount", value="on")

    def test_case_end_does_not_end_the_statement(self):
        s1, s2 = parse_batch("select case when a = 1 then 'x' else 'y' end from t select 2")
        assert s1.sqlite == "select case when a = 1 then 'x' else 'y' end from t"
        assert s2.sqlite == "select 2"

    def test_foreign_key_actions_do_not_split(self):
        s = one("create table c (id int, p int references p(id) on delete cascade on update cascade)")
        assert "on delete cascade on update cascade" in s.sqlite

    def test_create_view_body(self):
        s1, s2 = parse_batch("create view v as select a from t union select b from u\nselect * from v")
        assert s1.kind == "create_view"
        assert s1.sqlite == "create view v as select a from t union select b from u"
        assert s2.kind == "select"

    def test_begin_end_blocks_are_flattened(self):
        statements = parse_batch("begin\n  print 'a'\n  begin select 1 end\nend\nprint 'b'")
        assert [statement_kind(s) for s in statements] == ["print", "select", "print"]
        assert [s.line for s in statements] == [2, 3, 5]

    def test_unbalanced_blocks(self):
        with pytest.raises(TSQLSyntaxError):
            parse_batch("begin select 1")
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("select 1 end")
        assert e.value.near == "end"

    def test_comments_everywhere(self):
        sql = "select /* a */ 1 -- b\n, /* nested /* c */ d */ 2 /* e */ select 3"
        s1, s2 = parse_batch(sql)
        assert s1.sqlite == "select 1, 2"
        assert s1.text == "select /* a */ 1 -- b\n, /* nested /* c */ d */ 2"
        assert s2.sqlite == "select 3"

    def test_empty_batch(self):
        assert parse_batch("") == []
        assert parse_batch("  -- nothing\n/* at all */ ;") == []


# --------------------------------------------------------------------------------------------------
# line numbers
# --------------------------------------------------------------------------------------------------
class TestLines:
    def test_relative_and_absolute(self):
        sql = "\n\nuse master\n\n  select 1\nselect 2"
        assert [s.line for s in parse_batch(sql)] == [3, 5, 6]
        assert [s.line for s in parse_batch(sql, first_line=10)] == [12, 14, 15]

    def test_device_on_the_next_line(self):
        sql = "load database salesdb_test from\n        \"/x/s1\"\n    stripe on \"/x/s2\"\nonline database salesdb_test"
        load, online = parse_batch(sql, first_line=8)
        assert load.line == 8 and online.line == 11
        assert [d.spec for d in load.devices] == ["/x/s1", "/x/s2"]
        assert load.text == 'load database salesdb_test from\n        "/x/s1"\n    stripe on "/x/s2"'

    def test_statements_after_a_comment_block(self):
        sql = "/*\n * history:\n *   load database x from 'y'\n */\nuse master\nselect 1"
        statements = parse_batch(sql)
        assert [type(s) for s in statements] == [Use, Sql]
        assert [s.line for s in statements] == [5, 6]

    def test_string_spanning_lines(self):
        s1, s2 = parse_batch("print 'a\nb\nc'\nselect 1")
        assert s1.message == "a\nb\nc"
        assert s2.line == 4

    def test_error_lines(self):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("select 1\nselect 2\nuse", first_line=20)
        assert e.value.line == 22
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("select 1\n\nprint 'abc", first_line=5)
        assert (e.value.number, e.value.line) == (105, 7)


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------
class TestErrors:
    def test_message_shape(self):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("use master\nfoo bar")
        err = e.value
        assert (err.number, err.line, err.near) == (102, 2, "foo")
        assert str(err) == err.message == "Incorrect syntax near 'foo'."

    def test_keyword_message(self):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("from t")
        assert e.value.number == 156
        assert e.value.message == "Incorrect syntax near the keyword 'from'."

    def test_unclosed_quote(self):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("select 1\nprint 'hello there\n")
        err = e.value
        assert err.number == 105
        assert err.message == "Unclosed quote before the character string 'hello there'."
        assert err.line == 2

    def test_unclosed_double_quote(self):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch('dump database x to "/tmp/x')
        assert e.value.number == 105

    def test_missing_end_comment(self):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("select 1\n/* never /* closed */\nselect 2")
        err = e.value
        assert (err.number, err.message, err.line) == (113, "Missing end comment mark '*/'.", 2)

    @pytest.mark.parametrize("sql", ["if exists (select 1) print 'x'", "while 1 = 1 select 1",
                                     "select 1 if @@error != 0 print 'x'"])
    def test_control_of_flow(self, sql):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch(sql)
        assert "control-of-flow is not supported by this dataserver yet" in e.value.message

    @pytest.mark.parametrize("sql, near", [
        ("select 1 )", ")"), ("select (1", "1"), ("dump database", "database"), ("dump database x", "x"),
        ("dump database x to", "to"), ("load database x", "x"), ("dump database x to 'y' with", "with"),
        ("online x", "x"), ("use", "use"), ("print", "print"), ("print 'x' 'y'", "'y'"), ("set nocount", "nocount"),
        ("declare x int", "x"), ("create database", "database"), ("use master foo", "foo"),
        ("exec", "exec"), ("waitfor delay 'soon'", "'soon'"), ("commit 5", "5"), ("create foo", "foo"),
        ("dump database x to 'y' stripe 'z'", "'z'"), ("select @x = 1, 2", "2"), ("[x", "["),
    ])
    def test_near(self, sql, near):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch(sql)
        assert e.value.near == near

    def test_mixed_assignment_and_retrieval(self):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("select @x = 1, a from t")
        assert e.value.number == 141

    @pytest.mark.parametrize("sql", ["create procedure p as select 1", "dbcc checkdb(x)", "grant all to x",
                                     "declare c cursor for select 1", "exec ('select 1')", "alter database x"])
    def test_unsupported_but_legal(self, sql):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch(sql)
        assert "not supported" in e.value.message

    def test_bare_procedure_only_first_or_sp(self):
        assert isinstance(one("myproc 1, 2"), Execute)
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("use master myproc 1")
        assert e.value.near == "myproc"
        # `select 1 myproc` is a column alias, as in ASE
        assert one("select 1 myproc").sqlite == "select 1 myproc"
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("print 'x' myproc")
        assert e.value.near == "myproc"
        s1, s2 = parse_batch("print 'x' sp_who")
        assert s2 == Execute(procedure="sp_who")


# --------------------------------------------------------------------------------------------------
# database statements
# --------------------------------------------------------------------------------------------------
class TestDatabaseStatements:
    @pytest.mark.parametrize("sql, name", [("use master", "master"), ("USE [sales db]", "sales db"),
                                           ('use "salesdb"', "salesdb")])
    def test_use(self, sql, name):
        assert one(sql) == Use(database=name)

    @pytest.mark.parametrize("sql, expected", [
        ("create database x", CreateDatabase(name="x")),
        ("create database x on default = 100", CreateDatabase(name="x", size_mb=100)),
        ("create database x on datadev1 = '100M', logdev = 50 log on logdev1 = 20",
         CreateDatabase(name="x", size_mb=150, log_size_mb=20)),
        ("create database x on d1 = '1G', d2 = '512K', d3 = \"2.5m\"", CreateDatabase(name="x", size_mb=1024 + 1 + 3)),
        ("create database x for load", CreateDatabase(name="x", for_load=True)),
        ("create database x on default = 200 with override for load",
         CreateDatabase(name="x", size_mb=200, for_load=True, options={"override": True})),
        ("CREATE DATABASE x ON default", CreateDatabase(name="x")),
        ("create database x on default = '10' log on default = '5M'",
         CreateDatabase(name="x", size_mb=10, log_size_mb=5)),
        ("create temporary database t1", CreateDatabase(name="t1", options={"temporary": True})),
    ])
    def test_create_database(self, sql, expected):
        assert one(sql) == expected

    def test_create_database_bad_size(self):
        with pytest.raises(TSQLSyntaxError) as e:
            parse_batch("create database x on default = 'lots'")
        assert e.value.near == "'lots'"

    def test_drop_database(self):
        assert one("drop database a") == DropDatabase(names=("a",))
        assert one("drop database a, [b], c") == DropDatabase(names=("a", "b", "c"))

    def test_online(self):
        assert one("online database salesdb") == OnlineDatabase(database="salesdb")
        assert one("ONLINE DATABASE salesdb FOR STANDBY_ACCESS") == OnlineDatabase(
            database="salesdb", for_standby_access=True)


# --------------------------------------------------------------------------------------------------
# dump / load
# --------------------------------------------------------------------------------------------------
class TestDumpLoad:
    def test_dump_database_simple(self):
        s = one('dump database salesdb to "/tmp/x.dmp"')
        assert s == DumpDatabase(database="salesdb", devices=(Device("/tmp/x.dmp"),), options={})
        assert statement_kind(s) == "dump database"

    @pytest.mark.parametrize("device", ["'/tmp/x.dmp'", '"/tmp/x.dmp"'])
    def test_quotes(self, device):
        assert one(f"dump database db to {device}").devices == (Device("/tmp/x.dmp"),)

    def test_bare_logical_device(self):
        s = one("dump database db to tapedump1")
        assert s.devices == (Device("tapedump1"),)

    def test_variables(self):
        s = one("dump database @db to @path")
        assert s.database == "@db" and s.database.is_variable
        assert s.devices == (Device("@path", is_variable=True),)

    def test_case_and_layout(self):
        s = one("DUMP DATABASE salesdb\nTO\n  '/a'\n  STRIPE ON '/b'\n  Stripe On '/c'\nWITH INIT")
        assert [d.spec for d in s.devices] == ["/a", "/b", "/c"]
        assert s.options == {"init": True}

    def test_many_stripes_are_not_limited_here(self):
        sql = "dump database db to '/s0'" + "".join(f" stripe on '/s{i}'" for i in range(1, 40))
        assert len(one(sql).devices) == 40

    @pytest.mark.parametrize("spec, level, rest", [
        ("compress::9::/tmp/x", 9, "/tmp/x"), ("compress::/tmp/x", 1, "/tmp/x"),
        ("COMPRESS::101::/tmp/x", 101, "/tmp/x"), ("/tmp/compress::x", None, "/tmp/compress::x"),
    ])
    def test_compress_prefix(self, spec, level, rest):
        s = one(f"dump database db to '{spec}'")
        assert s.devices == (Device(rest, compress_level=level),)

    def test_bare_compress_prefix(self):
        s = one("dump database db to compress::4::tapedump1 stripe on compress::tapedump2")
        assert s.devices == (Device("tapedump1", 4), Device("tapedump2", 1))

    def test_at_backup_server_and_per_stripe_options(self):
        s = one("dump database db to '/dev/nrmt0' at REMOTE_BKP blocksize = 16384, capacity = 100, "
                "dumpvolume = VOL1 stripe on '/dev/nrmt1' at 'SYB_BACKUP' file = 'f1' with init")
        d0, d1 = s.devices
        assert d0 == Device("/dev/nrmt0", backup_server="REMOTE_BKP",
                            options={"blocksize": 16384, "capacity": 100, "dumpvolume": "VOL1"})
        assert d1 == Device("/dev/nrmt1", backup_server="SYB_BACKUP", options={"file": "f1"})
        assert s.options == {"init": True}

    def test_with_options(self):
        s = one("dump database db to '/x' with compression=101, init, retaindays = 30, passwd = 'secret', "
                "verify = HEADER, notify = client, dumpvolume = v1, file = 'f', blocksize = 65536, "
                "capacity = 10, nodismount, nounload, noinit")
        assert s.options == {
            "compression": 101, "init": True, "retaindays": 30, "passwd": "secret", "verify": "header",
            "notify": "client", "dumpvolume": "v1", "file": "f", "blocksize": 65536, "capacity": 10,
            "nodismount": True, "nounload": True, "noinit": True,
        }
        assert isinstance(s.options["compression"], int)

    def test_compression_spacing(self):
        for text in ("compression=9", "compression =9", "compression= 9", "COMPRESSION = 9"):
            assert one(f"dump database db to '/x' with {text}").options == {"compression": 9}

    def test_numeric_password_stays_a_string(self):
        assert one("dump database db to '/x' with passwd = 12345").options == {"passwd": "12345"}

    def test_dump_transaction(self):
        s = one("dump tran salesdb to '/x.trn' with standby_access")
        assert s == DumpTransaction(database="salesdb", devices=(Device("/x.trn"),),
                                    options={"standby_access": True})
        assert statement_kind(s) == "dump transaction"
        assert one("dump transaction salesdb with truncate_only") == DumpTransaction(
            database="salesdb", options={"truncate_only": True})
        assert one("dump transaction db with no_log").options == {"no_log": True}
        assert one("dump tran db to '/x' with no_truncate").options == {"no_truncate": True}

    def test_load_database(self):
        s = one("load database db from '/a' stripe on '/b'")
        assert s == LoadDatabase(database="db", devices=(Device("/a"), Device("/b")), options={})
        assert statement_kind(s) == "load database"

    @pytest.mark.parametrize("opts, expected", [
        ("headeronly", {"headeronly": True}), ("listonly", {"listonly": True}),
        ("listonly = full", {"listonly": "full"}), ("LISTONLY=FULL, headeronly", {"listonly": "full", "headeronly": True}),
        ("passwd = 'p', notify = operator_console", {"passwd": "p", "notify": "operator_console"}),
    ])
    def test_load_options(self, opts, expected):
        assert one(f"load database db from '/a' with {opts}").options == expected

    def test_load_transaction_until_time(self):
        s = one("load tran db from '/t1' with until_time = 'Mar 26, 2024 12:35:59:650pm'")
        assert s == LoadTransaction(database="db", devices=(Device("/t1"),),
                                    options={"until_time": "Mar 26, 2024 12:35:59:650pm"})
        assert statement_kind(s) == "load transaction"

    def test_cumulative_and_config(self):
        assert one("dump database db cumulative to '/x'").options == {"cumulative": True}
        s = one("dump database db using config = 'nightly'")
        assert s.devices == () and s.options == {"config": "nightly"}

    def test_sybackup_device_string(self):
        s = one('dump database salesdb to "sybackup::-SERV localhost -POL Sybase_ASE -SCHED Default-Application-Backup"')
        assert s.devices[0].spec == "sybackup::-SERV localhost -POL Sybase_ASE -SCHED Default-Application-Backup"

    def test_option_values_are_typed(self):
        s = one("dump database db to '/x' with passwd = @pw, retaindays = @days")
        assert s.options["passwd"] == "@pw" and s.options["passwd"].is_variable

    def test_load_needs_from_and_dump_database_needs_to(self):
        for sql in ("load database db", "load database db with listonly", "dump database db with init",
                    "dump tran db", "dump tran db with init"):
            with pytest.raises(TSQLSyntaxError):
                parse_batch(sql)


# --------------------------------------------------------------------------------------------------
# session statements
# --------------------------------------------------------------------------------------------------
class TestSessionStatements:
    @pytest.mark.parametrize("sql, message, args", [
        ('print "text"', "text", ()), ("print 'text'", "text", ()), ("print 'it''s'", "it's", ()),
        ("print 'a %1! b %2!', @x, 5", "a %1! b %2!", ("@x", "5")), ("print @var", "@var", ()),
        ("print 'x', 'y', -1, @@spid", "x", ("y", "-1", "@@spid")),
    ])
    def test_print(self, sql, message, args):
        s = one(sql)
        assert s == Print(message=message, args=args)
        assert s.parts == (message, *args)

    def test_print_kinds(self):
        s = one("print @msg, 'lit', @@error")
        assert s.message.is_variable
        assert [a.kind for a in s.args] == ["string", "global"]

    @pytest.mark.parametrize("sql, name, value, target", [
        ("set textsize 64512", "textsize", 64512, None),
        ("set nocount on", "nocount", "on", None),
        ("SET NOCOUNT OFF", "nocount", "off", None),
        ("set rowcount 10", "rowcount", 10, None),
        ("set quoted_identifier on", "quoted_identifier", "on", None),
        ("set chained off", "chained", "off", None),
        ("set transaction isolation level 1", "transaction isolation level", 1, None),
        ("set transaction isolation level serializable", "transaction isolation level", 3, None),
        ("set statistics io on", "statistics io", "on", None),
        ("set dateformat dmy", "dateformat", "dmy", None),
        ("set language us_english", "language", "us_english", None),
        ("set identity_insert orders on", "identity_insert", "on", "orders"),
        ("set role 'sa_role' off", "role", "off", "sa_role"),
        ("set clientname 'nightly'", "clientname", "nightly", None),
        ("set lock nowait", "lock", "nowait", None),
        ("set lock wait 5", "lock", 5, None),
        ("set close on endtran on", "close on endtran", "on", None),
    ])
    def test_set_option(self, sql, name, value, target):
        assert one(sql) == SetOption(name=name, value=value, target=target)

    def test_set_variable(self):
        s = one("set @x = @y + 1")
        assert isinstance(s, SelectAssign) and tsql.SetVariable is SelectAssign
        assert s.assignments == (("@x", ":v_y + 1"),)
        assert s.sqlite == "select :v_y + 1" and s.params == ("v_y",)

    def test_declare(self):
        s = one("declare @a int, @b varchar(30), @c numeric(10, 2), @d double precision")
        assert s == Declare(variables=(("@a", "int"), ("@b", "varchar(30)"), ("@c", "numeric(10, 2)"),
                                       ("@d", "double precision")))

    def test_declare_then_select(self):
        s1, s2 = parse_batch("declare @x int select @x = 1")
        assert s1 == Declare(variables=(("@x", "int"),))
        assert s2 == SelectAssign(assignments=(("@x", "1"),), sqlite="select 1", params=())

    def test_select_assign_with_from(self):
        s = one("select @n = count(*), @m = max(id) from orders where qty > @min")
        assert s.assignments == (("@n", "count(*)"), ("@m", "max(id)"))
        assert s.sqlite == "select count(*), max(id) from orders where qty > :v_min"
        assert s.params == ("v_min",)
        assert tsql.parameters_in(s.assignments[0][1]) == ()

    def test_select_variable_is_a_query(self):
        s = one("select @x")
        assert s == Sql(kind="select", sqlite="select :v_x", params=("v_x",))
        s = one("select @x = 1 where 1 = 0")
        assert isinstance(s, SelectAssign)

    @pytest.mark.parametrize("sql, expected", [
        ("sp_helpdb", Execute(procedure="sp_helpdb")),
        ("sp_helpdb mydb", Execute(procedure="sp_helpdb", args=("mydb",))),
        ("sp_helpdb 'mydb'", Execute(procedure="sp_helpdb", args=("mydb",))),
        ("exec sp_who", Execute(procedure="sp_who")),
        ("EXECUTE sp_helpdb @dbname = 'x'", Execute(procedure="sp_helpdb", named={"dbname": "x"})),
        ("exec sp_addumpdevice 'disk', tape1, \"/dev/x\"",
         Execute(procedure="sp_addumpdevice", args=("disk", "tape1", "/dev/x"))),
        ("exec master..sp_helpdb", Execute(procedure="master..sp_helpdb")),
        ("sybsystemprocs.dbo.sp_who 'sa'", Execute(procedure="sybsystemprocs.dbo.sp_who", args=("sa",))),
        ("exec @rc = sp_x 1, -2, null, @v output", Execute(procedure="sp_x", args=("1", "-2", "null", "@v"),
                                                            return_status="@rc")),
        ("exec sp_dboption mydb, 'trunc log on chkpt', true",
         Execute(procedure="sp_dboption", args=("mydb", "trunc log on chkpt", "true"))),
        ("exec sp_recompile t with recompile", Execute(procedure="sp_recompile", args=("t",))),
    ])
    def test_execute(self, sql, expected):
        assert one(sql) == expected

    def test_execute_arg_kinds(self):
        s = one("exec p 'a', b, 3, @c, null, default")
        assert [a.kind for a in s.args] == ["string", "name", "number", "variable", "null", "default"]
        assert all(isinstance(a, Arg) and isinstance(a, str) for a in s.args)

    def test_bare_procedure_then_statements(self):
        s1, s2, s3 = parse_batch("sp_helpdb mydb\nsp_who\nselect 1")
        assert s1 == Execute(procedure="sp_helpdb", args=("mydb",))
        assert s2 == Execute(procedure="sp_who")
        assert s3.kind == "select"
        assert [s.line for s in (s1, s2, s3)] == [1, 2, 3]

    def test_sp_anywhere(self):
        s1, s2 = parse_batch("use master sp_helpdb salesdb")
        assert s2 == Execute(procedure="sp_helpdb", args=("salesdb",))

    @pytest.mark.parametrize("sql, cls, name", [
        ("begin tran", BeginTransaction, None), ("begin transaction t1", BeginTransaction, "t1"),
        ("BEGIN TRAN", BeginTransaction, None), ("commit", CommitTransaction, None),
        ("commit tran", CommitTransaction, None), ("commit transaction t1", CommitTransaction, "t1"),
        ("commit work", CommitTransaction, None), ("rollback", RollbackTransaction, None),
        ("rollback tran t1", RollbackTransaction, "t1"), ("rollback work", RollbackTransaction, None),
    ])
    def test_transactions(self, sql, cls, name):
        assert one(sql) == cls(name=name)

    def test_transaction_in_a_batch(self):
        statements = parse_batch("begin tran\ninsert t values (1)\ncommit tran\nselect 1")
        assert [statement_kind(s) for s in statements] == [
            "begin transaction", "insert", "commit transaction", "select"]

    def test_checkpoint(self):
        assert one("checkpoint") == Checkpoint()
        assert one("checkpoint salesdb, master") == Checkpoint(databases=("salesdb", "master"))
        assert one("checkpoint all") == Checkpoint(all_databases=True)
        s1, s2 = parse_batch("checkpoint select 1")
        assert s1 == Checkpoint()

    @pytest.mark.parametrize("sql, expected", [
        ("waitfor delay '00:00:05'", Waitfor(delay_seconds=5.0)),
        ('waitfor delay "0:01:30"', Waitfor(delay_seconds=90.0)),
        ("waitfor delay '00:00:00.5'", Waitfor(delay_seconds=0.5)),
        ("waitfor delay '01:00'", Waitfor(delay_seconds=3600.0)),
        ("waitfor delay '00:00:01:250'", Waitfor(delay_seconds=1.25)),
        ("waitfor delay @d", Waitfor(variable="@d")),
        ("waitfor time '22:00'", Waitfor(time_of_day="22:00")),
    ])
    def test_waitfor(self, sql, expected):
        assert one(sql) == expected


# --------------------------------------------------------------------------------------------------
# statement_kind
# --------------------------------------------------------------------------------------------------
def test_statement_kinds():
    cases = {
        "use master": "use", "create database x": "create database", "drop database x": "drop database",
        "online database x": "online database", "dump database x to 'y'": "dump database",
        "dump tran x to 'y'": "dump transaction", "load database x from 'y'": "load database",
        "load transaction x from 'y'": "load transaction", "print 'x'": "print", "set nocount on": "set",
        "declare @x int": "declare", "select @x = 1": "select", "sp_who": "execute",
        "begin tran": "begin transaction", "commit": "commit transaction", "rollback": "rollback transaction",
        "checkpoint": "checkpoint", "waitfor delay '0:0:1'": "waitfor", "select 1": "select",
        "select 1 into t": "select into", "insert t values (1)": "insert", "update t set a = 1": "update",
        "delete t": "delete", "truncate table t": "truncate table", "create table t (a int)": "create table",
        "drop table t": "drop table", "create index i on t (a)": "create index", "drop index t.i": "drop index",
        "create view v as select 1": "create view", "drop view v": "drop view",
        "alter table t add a int null": "alter table", "update statistics t": "update statistics",
    }
    for sql, kind in cases.items():
        assert statement_kind(one(sql)) == kind, sql


# --------------------------------------------------------------------------------------------------
# the example scripts (copied from shared/examples/scripts into tests/dataserver/data/scripts)
# --------------------------------------------------------------------------------------------------
def _examples():
    return sorted(p for p in EXAMPLES.iterdir() if p.is_dir())


def _heredoc(script: str) -> tuple[str, int]:
    """The here-document fed to isql and the file line of its first line."""
    lines = script.split("\n")
    for i, line in enumerate(lines):
        m = re.search(r"<<\s*-?\s*['\"]?(\w+)['\"]?", line)
        if m and "ISQL" in line:
            end = lines.index(m.group(1), i + 1)
            return "\n".join(lines[i + 1 : end]), i + 2
    raise AssertionError("no here-document")


def _shell_vars(script: str) -> dict[str, str]:
    """Just enough of the examples' shell assignments to resolve their devices (placeholders as expect.json)."""
    return {"DB": "salesdb", "DUMPDIR": "<DUMPDIR>", "STAMP": "<YYYYmmdd_HHMMSS>",
            "OUT": "<DUMPDIR>/salesdb_full_<YYYYmmdd_HHMMSS>.dmp"}


def _expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), text)


def _as_expected(stmt) -> dict:
    d = {"op": statement_kind(stmt), "database": stmt.database, "line": stmt.line}
    if isinstance(stmt, tsql.DumpLoad):
        d["devices"] = [dev.spec for dev in stmt.devices]
        d["with"] = dict(stmt.options)
    return d


@pytest.mark.parametrize("folder", _examples(), ids=lambda p: p.name)
def test_example_scripts(folder):
    expect = json.loads((folder / "expect.json").read_text())
    script = (folder / expect["script"]).read_text()
    found = []
    if expect["sql_source"] == "heredoc":
        body, offset = _heredoc(script)
        # as written (shell words kept) ...
        raw = find_backup_statements(body, shell=True)
        assert all(s.database.startswith("$") or s.database == "salesdb" for s in raw)
        # ... and after the shell expanded it
        found = find_backup_statements(_expand(body, _shell_vars(script)))
        for s in found:
            assert s.line + offset - 1 >= 1
        for batch, _ in split_batches(_expand(body, _shell_vars(script))):
            parse_batch(batch.text, batch.first_line)  # every batch is valid T-SQL
    elif expect["sql_source"] == "file":
        for name in expect["sql_files"]:
            path = folder / name
            if not path.exists():
                assert "(missing)" in name
                continue
            text = path.read_text()
            for batch, _ in split_batches(text):
                parse_batch(batch.text, batch.first_line)  # every batch is valid T-SQL
            found += find_backup_statements(text)
    else:
        # the script never runs isql; its SQL file (if any) still parses
        for path in folder.glob("*.sql"):
            assert find_backup_statements(path.read_text())
        assert expect["statements"] == []
        return
    got = [_as_expected(s) for s in found]
    assert len(got) == len(expect["statements"])
    for g, e in zip(got, expect["statements"], strict=True):
        assert g["op"] == e["op"]
        assert g["database"] == e["database"]
        if "line" in e:
            assert g["line"] == e["line"]
        if "devices" in e:
            assert g["devices"] == e["devices"]
            assert g["with"] == e["with"]
    if expect.get("stripes"):
        assert len(got[0]["devices"]) == expect["stripes"]


def test_example_07_comment_is_not_a_statement():
    text = (EXAMPLES / "07-restore-file-stripes" / "load_salesdb_test.sql").read_text()
    found = find_backup_statements(text)
    assert [type(s) for s in found] == [LoadDatabase, OnlineDatabase]
    assert [s.line for s in found] == [9, 13]
    assert len(found[0].devices) == 2


def test_example_01_go_with_trailing_spaces():
    body, offset = _heredoc((EXAMPLES / "01-heredoc-file-dump" / "dump_salesdb.sh").read_text())
    assert offset == 19
    batches = split_batches(body)
    assert len(batches) == 3
    statements = [parse_batch(b.text, b.first_line + offset - 1, shell=True)[0] for b, _ in batches]
    assert [statement_kind(s) for s in statements] == ["use", "execute", "dump database"]
    assert [s.line for s in statements] == [19, 21, 23]
    assert statements[1].args == ("$DB",) and statements[1].args[0].kind == "shell"
    assert statements[2].devices == (Device("$OUT"),)


# --------------------------------------------------------------------------------------------------
# find_backup_statements
# --------------------------------------------------------------------------------------------------
class TestFindBackupStatements:
    def test_across_batches_with_file_lines(self):
        script = ("-- header\nuse master\ngo\ndump database a to '/a'\ngo 2\nselect 1\n"
                  "dump tran a to '/t'\ngo\nload database b from '/a'\nload tran b from '/t'\n"
                  "online database b\ngo\n")
        found = find_backup_statements(script)
        assert [statement_kind(s) for s in found] == [
            "dump database", "dump transaction", "load database", "load transaction", "online database"]
        assert [s.line for s in found] == [4, 7, 9, 10, 11]

    def test_bad_statements_do_not_hide_the_dump(self):
        errors: list = []
        script = "use master\nfrobnicate the thing\ndump database a to '/a'\ngo\ndbcc checkdb(a)\ngo\n" \
                 "dump database b to '/b'\n"
        found = find_backup_statements(script, errors=errors)
        assert [s.database for s in found] == ["a", "b"]
        assert [e.line for e in errors] == [2, 5]

    def test_never_raises(self):
        assert find_backup_statements("dump database 'x\n") == []
        assert find_backup_statements("/* dump database x to 'y'") == []
        errors: list = []
        assert find_backup_statements("dump database x to 'a'\nselect 'oops", errors=errors)[0].database == "x"
        assert errors and errors[0].number == 105

    def test_shell_words(self):
        found = find_backup_statements('dump database ${DB}_test to "$DIR/${DB}.dmp" stripe on "`pwd`/x"\n', shell=True)
        assert found[0].database == "${DB}_test"
        assert [d.spec for d in found[0].devices] == ["$DIR/${DB}.dmp", "`pwd`/x"]


# --------------------------------------------------------------------------------------------------
# control-of-flow (opt-in: parse_batch(..., control_flow=True))
# --------------------------------------------------------------------------------------------------
class TestControlFlow:
    def test_off_by_default(self):
        for sql in ("if 1 = 1 print 'x'", "while 1 = 0 select 1", "return", "break", "raiserror 20001 'x'"):
            with pytest.raises(TSQLSyntaxError) as e:
                parse_batch(sql)
            assert "not supported" in e.value.message

    def test_if_after_a_dump(self):
        sql = ("dump database salesdb to '/x'\n"
               "if @@error != 0\n"
               "begin\n"
               "    print 'dump failed'\n"
               "    raiserror 20001 'dump of %1! failed', 'salesdb'\n"
               "    return\n"
               "end\n"
               "else\n"
               "    print 'ok'\n"
               "select 1")
        dump, cond, sel = parse_batch(sql, control_flow=True)
        assert isinstance(dump, DumpDatabase)
        assert isinstance(cond, tsql.If)
        assert (cond.condition, cond.params, cond.line) == (":__error != 0", ("__error",), 2)
        assert cond.sqlite == "select case when :__error != 0 then 1 else 0 end"
        assert [statement_kind(s) for s in cond.then] == ["print", "raiserror", "return"]
        assert [s.line for s in cond.then] == [4, 5, 6]
        raiserror = cond.then[1]
        assert (raiserror.number, raiserror.message, raiserror.args) == (20001, "dump of %1! failed", ("salesdb",))
        assert cond.otherwise == (Print(message="ok"),)
        assert cond.text.startswith("if @@error != 0\nbegin") and cond.text.endswith("print 'ok'")
        assert sel.sqlite == "select 1"

    def test_single_statement_bodies_and_else_if(self):
        (s,) = parse_batch("if exists (select top 1 name from t where a = @a) select 1 else if @b = 2 "
                           "update t set a = 1 else delete t", control_flow=True)
        assert s.condition == "exists (select name from t where a = :v_a limit 1)"
        assert s.then == (Sql(kind="select", sqlite="select 1"),)
        (inner,) = s.otherwise
        assert inner.condition == ":v_b = 2"
        assert inner.then[0].kind == "update" and inner.otherwise[0].kind == "delete"

    def test_while_break_continue(self):
        (w,) = parse_batch("while (select count(*) from t) < 5 begin insert t values (1) "
                           "if @x = 1 break else continue end", control_flow=True)
        assert isinstance(w, tsql.While)
        assert w.condition == "(select count(*) from t) < 5"
        assert [statement_kind(s) for s in w.body] == ["insert", "if"]
        assert isinstance(w.body[1].then[0], tsql.Break) and isinstance(w.body[1].otherwise[0], tsql.Continue)

    def test_condition_with_case_and_sp_body(self):
        (s,) = parse_batch("if case when @a = 1 then 1 else 0 end = 1 sp_who", control_flow=True)
        assert s.condition == "case when :v_a = 1 then 1 else 0 end = 1"
        assert s.then == (Execute(procedure="sp_who"),)

    def test_return_status(self):
        assert parse_batch("return 5", control_flow=True) == [tsql.Return(status="5")]
        assert parse_batch("return", control_flow=True) == [tsql.Return()]

    def test_begin_tran_is_not_a_block(self):
        (s,) = parse_batch("if @@trancount = 0 begin tran", control_flow=True)
        assert s.then == (BeginTransaction(),)

    @pytest.mark.parametrize("sql", ["if", "if print 'x'", "if 1 = 1", "if (1 = 1 print 'x'", "while 1=1",
                                     "if 1=1 begin print 'x'", "else print 'x'", "if 1=1 print 'x' else",
                                     "raiserror 'x'", "return 1.5", "if 1=1 " * 40 + "print 'x'"])
    def test_errors(self, sql):
        with pytest.raises(TSQLSyntaxError):
            parse_batch(sql, control_flow=True)

    def test_walk_and_find_backup_statements_look_inside(self):
        script = ("if not exists (select 1 from master..sysdatabases where name = 'x')\n"
                  "    create database x\n"
                  "go\n"
                  "if @@servername = 'SYBAR'\n"
                  "begin\n"
                  "    dump database x to '/a'\n"
                  "    dump tran x with truncate_only\n"
                  "end\n"
                  "else load database x from '/b'\n"
                  "go\n")
        found = find_backup_statements(script)
        assert [(statement_kind(s), s.line) for s in found] == [
            ("dump database", 6), ("dump transaction", 7), ("load database", 9)]
        statements = parse_batch(split_batches(script)[1][0].text, control_flow=True)
        assert [statement_kind(s) for s in tsql.walk(statements)] == [
            "if", "dump database", "dump transaction", "load database"]


def test_waitfor_time_variable():
    s = one("waitfor time @t")
    assert s == Waitfor(time_of_day="@t") and s.time_of_day.is_variable and s.delay_seconds is None
