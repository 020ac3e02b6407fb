"""The SQLite translation of the statements sybar hands to SQLite; every translation is also run."""

from __future__ import annotations

import sqlite3

import pytest

from engine.dataserver.tsql import (
    GLOBAL_PARAM,
    NOW,
    SelectAssign,
    Sql,
    TSQLSyntaxError,
    param_name,
    parameters_in,
    parse_batch,
)


def sql(text: str, **kw) -> Sql:
    statements = parse_batch(text, **kw)
    assert len(statements) == 1, statements
    assert isinstance(statements[0], Sql | SelectAssign), statements[0]
    return statements[0]


GLOBALS = {"__version": "sybar 1", "__servername": "SYBAR", "__spid": 7, "__rowcount": 0, "__error": 0,
           "__trancount": 0, "__db_name": "salesdb", "__suser_name": "sa", "__user_name": "dbo",
           "__host_name": "h"}


@pytest.fixture()
def con():
    c = sqlite3.connect(":memory:")
    c.execute("attach ':memory:' as salesdb")
    c.execute("create table orders (id integer primary key, name varchar(30), qty int, ts datetime)")
    c.execute("create table salesdb.items (id integer, descr text)")
    c.executemany("insert into orders values (?, ?, ?, ?)",
                  [(1, "a", 5, "2024-01-02 03:04:05"), (2, "b", None, None), (3, "c", 7, None)])
    c.execute("insert into salesdb.items values (1, 'x')")
    yield c
    c.close()


def run(con, stmt, **variables):
    params = {}
    for p in stmt.params:
        params[p] = GLOBALS[p] if p in GLOBALS else variables[p[2:]]
    return con.execute(stmt.sqlite, params).fetchall()


# --------------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------------
def test_param_names():
    assert param_name("@x") == "v_x"
    assert param_name("@MyVar_1") == "v_MyVar_1"
    assert param_name("@@spid") == "__spid"
    assert param_name("@@SPID") == "__spid"
    assert param_name("@@servername") == GLOBAL_PARAM["@@servername"] == "__servername"
    assert param_name("@@nestlevel") == "__nestlevel"
    assert param_name("@a#b") == "v_a_x23b"
    with pytest.raises(ValueError):
        param_name("x")
    assert set(GLOBAL_PARAM) == {"@@version", "@@servername", "@@spid", "@@rowcount", "@@error", "@@trancount"}


def test_globals_and_variables(con):
    s = sql("select @@version, @@servername, @@spid, @@rowcount, @@error, @@trancount, @x, @x + 1")
    assert s.sqlite == "select :__version, :__servername, :__spid, :__rowcount, :__error, :__trancount, :v_x, :v_x + 1"
    assert s.params == ("__version", "__servername", "__spid", "__rowcount", "__error", "__trancount", "v_x")
    assert run(con, s, x=41) == [("sybar 1", "SYBAR", 7, 0, 0, 0, 41, 42)]


def test_parameters_in():
    assert parameters_in("select :v_a + :__spid, ':v_not' from t where x = :v_a") == ("v_a", "__spid")
    assert parameters_in("select 1") == ()


def test_params_in_where(con):
    s = sql("select name from orders where qty > @min and name <> @skip")
    assert s.params == ("v_min", "v_skip")
    assert run(con, s, min=1, skip="c") == [("a",)]


# --------------------------------------------------------------------------------------------------
# select
# --------------------------------------------------------------------------------------------------
def test_select_1(con):
    assert sql("select 1").sqlite == "select 1"
    assert run(con, sql("select 1")) == [(1,)]


@pytest.mark.parametrize("text, expected", [
    ("select top 2 id from orders order by id", "select id from orders order by id limit 2"),
    ("select distinct top 1 name from orders", "select distinct name from orders limit 1"),
    ("select top 1 * from orders where id in (select top 2 id from orders order by id desc) order by id",
     "select * from orders where id in (select id from orders order by id desc limit 2) order by id limit 1"),
])
def test_top(con, text, expected):
    s = sql(text)
    assert s.sqlite == expected
    run(con, s)


def test_top_variable(con):
    s = sql("select top @n id from orders")
    assert s.sqlite == "select id from orders limit :v_n"
    assert run(con, s, n=1) == [(1,)]


def test_functions(con):
    s = sql("select getdate(), isnull(qty, 0), len(name), char_length(name), convert(varchar(10), qty), "
            "datalength(name), substring(name, 1, 1), upper(name) from orders where id = 2")
    assert s.sqlite == (f"select {NOW}, ifnull(qty, 0), length(name), length(name), cast(qty as text), "
                        "length(cast(name as blob)), substr(name, 1, 1), upper(name) from orders where id = 2")
    (row,) = run(con, s)
    assert row[1:] == (0, 1, 1, None, 1, "b", "B")
    assert len(row[0]) == 23 and row[0][4] == "-"


def test_convert_types(con):
    s = sql("select convert(int, '12'), convert(numeric(10,2), '1.5'), convert(float, '2'), "
            "convert(char(3), 5), convert(datetime, '2024-01-01'), convert(varchar, ts, 112), "
            "convert(varchar(10), ts, 101) from orders where id = 1")
    assert s.sqlite.startswith("select cast('12' as integer), cast('1.5' as numeric), cast('2' as real), "
                               "cast(5 as text), cast('2024-01-01' as text), strftime('%Y%m%d', ts), ")
    assert run(con, s) == [(12, 1.5, 2.0, "5", "2024-01-01", "20240102", "01/02/2024")]


def test_nested_functions(con):
    s = sql("select isnull(convert(varchar(5), isnull(qty, len(name))), 'none') from orders order by id")
    assert s.sqlite == "select ifnull(cast(ifnull(qty, length(name)) as text), 'none') from orders order by id"
    assert run(con, s) == [("5",), ("1",), ("7",)]


def test_charindex_left_right(con):
    s = sql("select charindex('b', 'abc'), left('abcdef', 2), right('abcdef', 3)")
    assert run(con, s) == [(2, "ab", "def")]


def test_more_functions(con):
    s = sql("select db_name(), suser_name(), user_name(), ascii('A'), str_replace('aXb', 'X', '-'), "
            "getutcdate(), newid(), rand()")
    assert s.params == ("__db_name", "__suser_name", "__user_name")
    row = run(con, s)[0]
    assert row[:5] == ("salesdb", "sa", "dbo", 65, "a-b")
    assert len(row[6]) == 32 and 0 <= row[7] < 1


def test_double_quoted_strings(con):
    s = sql('select "it\'s", \'a "b"\', "x""y"')
    assert s.sqlite == "select 'it''s', 'a \"b\"', 'x\"y'"
    assert run(con, s) == [("it's", 'a "b"', 'x"y')]


def test_quoted_identifier_on(con):
    s = sql('select "name" from "orders" where id = 1', quoted_identifier=True)
    assert s.sqlite == 'select "name" from "orders" where id = 1'
    assert run(con, s) == [("a",)]


def test_brackets(con):
    s = sql("select [name], [qty] from [orders] where [id] = 1")
    assert s.sqlite == 'select "name", "qty" from "orders" where "id" = 1'
    assert run(con, s) == [("a", 5)]


def test_owner_and_database_qualifiers(con):
    s = sql("select o.name, i.descr from dbo.orders o, salesdb..items i where o.id = i.id")
    assert s.sqlite == "select o.name, i.descr from orders o, salesdb.items i where o.id = i.id"
    assert run(con, s) == [("a", "x")]
    s = sql("select * from salesdb.dbo.items")
    assert s.sqlite == "select * from salesdb.items"
    run(con, s)


def test_star_and_table_star(con):
    s = sql("select t.*, * from orders t where t.id = 3")
    assert s.sqlite == "select t.*, * from orders t where t.id = 3"
    assert len(run(con, s)[0]) == 8


def test_not_less_not_greater(con):
    s = sql("select id from orders where qty !< 6 and id !> 3 and id != 0")
    assert s.sqlite == "select id from orders where qty >= 6 and id <= 3 and id != 0"
    assert run(con, s) == [(3,)]


def test_plus_between_numbers_is_left_alone():
    assert sql("select 'a' + 'b', 1 + 2").sqlite == "select 'a' || 'b', 1 + 2"


def test_hints_are_dropped(con):
    s = sql("select id from orders holdlock where id = 1 at isolation read committed")
    assert s.sqlite == "select id from orders where id = 1"
    run(con, s)
    assert sql("select id from orders for browse").sqlite == "select id from orders"
    assert sql("select id from orders noholdlock for read only").sqlite == "select id from orders"
    s = sql("select count(*) from dbo.orders o (index ix_name prefetch 16 lru), orders p (index ix) where o.id = p.id")
    assert s.sqlite == "select count(*) from orders o, orders p where o.id = p.id"
    run(con, s)
    assert sql("select f(lru) from t").sqlite == "select f(lru) from t"


def test_select_into(con):
    s = sql("select id, name into recent from orders where id > 1")
    assert s.kind == "select_into"
    assert s.sqlite == "create table recent as select id, name from orders where id > 1"
    run(con, s)
    assert con.execute("select count(*) from recent").fetchone() == (2,)


def test_select_into_temp(con):
    s = sql("select * into #work from orders")
    assert s.sqlite == 'create temp table "#work" as select * from orders'
    run(con, s)
    s = sql("select count(*) from #work")
    assert s.sqlite == 'select count(*) from "#work"'
    assert run(con, s) == [(3,)]


def test_case_expression(con):
    s = sql("select case when qty is null then 'none' else 'some' end from orders order by id")
    assert run(con, s) == [("some",), ("none",), ("some",)]


def test_group_by_having_union(con):
    s = sql("select name, count(*) from orders group by name having count(*) > 0 union select 'z', 0 order by 1")
    assert len(run(con, s)) == 4


# --------------------------------------------------------------------------------------------------
# select @var = ...
# --------------------------------------------------------------------------------------------------
def test_select_assign(con):
    s = sql("select @n = count(*), @m = max(id) from orders where qty > @min")
    assert isinstance(s, SelectAssign)
    assert s.assignments == (("@n", "count(*)"), ("@m", "max(id)"))
    assert run(con, s, min=0) == [(2, 3)]


def test_select_assign_top_and_getdate(con):
    s = sql("select top 1 @name = name, @now = getdate() from orders order by id desc")
    assert s.assignments == (("@name", "name"), ("@now", NOW))
    assert s.sqlite == f"select name, {NOW} from orders order by id desc limit 1"
    assert run(con, s)[0][0] == "c"


# --------------------------------------------------------------------------------------------------
# DML
# --------------------------------------------------------------------------------------------------
def test_insert(con):
    s = sql("insert orders (id, name) values (10, 'k')")
    assert s.kind == "insert" and s.sqlite == "insert into orders (id, name) values (10, 'k')"
    run(con, s)
    s = sql("insert into orders (id, name, ts) values (@id, \"m\", getdate())")
    run(con, s, id=11)
    s = sql("insert orders select id + 100, name, qty, ts from orders where id < 3")
    run(con, s)
    assert con.execute("select count(*) from orders").fetchone() == (7,)


def test_update(con):
    s = sql("update orders set qty = isnull(qty, 0) + 1, name = @n where id = 2")
    assert s.kind == "update"
    run(con, s, n="bb")
    assert con.execute("select name, qty from orders where id = 2").fetchone() == ("bb", 1)


def test_delete(con):
    s = sql("delete orders where id = 1")
    assert s.sqlite == "delete from orders where id = 1"
    run(con, s)
    s = sql("delete from orders where id = @id")
    assert s.sqlite == "delete from orders where id = :v_id"
    run(con, s, id=2)
    assert con.execute("select count(*) from orders").fetchone() == (1,)


def test_truncate(con):
    s = sql("truncate table orders")
    assert (s.kind, s.sqlite) == ("truncate", "delete from orders")
    run(con, s)
    s = sql("truncate table salesdb..items")
    assert s.sqlite == "delete from salesdb.items"
    run(con, s)


# --------------------------------------------------------------------------------------------------
# DDL
# --------------------------------------------------------------------------------------------------
def test_create_table_identity_and_clauses(con):
    s = sql("create table dbo.customers (\n"
            "  id numeric(10,0) identity,\n"
            "  name varchar(40) not null,\n"
            "  balance money default 0 null,\n"
            "  created datetime default getdate() not null,\n"
            "  code char(3) null unique nonclustered,\n"
            "  note text null\n"
            ") lock datarows with max_rows_per_page = 10 on seg1")
    assert s.kind == "create_table"
    assert s.sqlite == (
        "create table customers (id integer primary key autoincrement, name varchar(40) not null, "
        f"balance money default 0 null, created datetime default ({NOW}) not null, "
        "code char(3) null unique, note text null)")
    run(con, s)
    con.execute("insert into customers (name) values ('x')")
    con.execute("insert into customers (name) values ('y')")
    assert con.execute("select id, balance, length(created) from customers").fetchall() == [(1, 0, 23), (2, 0, 23)]


def test_create_table_identity_with_other_primary_key(con):
    s = sql("create table t (id int identity, code char(2) not null, "
            "constraint pk_t primary key clustered (code))")
    assert s.sqlite == "create table t (id integer, code char(2) not null, constraint pk_t primary key (code))"
    run(con, s)


def test_create_table_identity_declared_primary_key(con):
    s = sql("create table t (id int identity constraint pk primary key, v int)")
    assert s.sqlite == "create table t (id integer primary key autoincrement, v int)"
    run(con, s)


def test_create_table_misc(con):
    s = sql("create table [my table] (a int, [b c] varchar(3) default 'x', d numeric(5,2) default -1.5, "
            "e int check (e > 0), f int references orders(id), g double precision, h unsigned int) "
            "lock allpages")
    run(con, s)
    s = sql("create table #tmp (a int)")
    assert s.sqlite == 'create temp table "#tmp" (a int)'
    run(con, s)
    s = sql("create table salesdb..things (a int)")
    assert s.sqlite == "create table salesdb.things (a int)"
    run(con, s)


def test_create_and_drop_index(con):
    s = sql("create unique clustered index ix_name on dbo.orders (name, id desc) with fillfactor = 80 on seg1")
    assert s.sqlite == "create unique index ix_name on orders (name, id desc)"
    run(con, s)
    s = sql("create nonclustered index ix_i on salesdb..items (descr)")
    assert s.sqlite == "create index salesdb.ix_i on items (descr)"
    run(con, s)
    statements = parse_batch("drop index orders.ix_name, salesdb..items.ix_i")
    assert [st.sqlite for st in statements] == ["drop index ix_name", "drop index salesdb.ix_i"]
    for st in statements:
        run(con, st)


def test_drop_tables_and_views(con):
    run(con, sql("create view v1 as select id from orders with check option"))
    run(con, sql("create view v2 (a) as select top 1 id from orders"))
    assert run(con, sql("select * from v2")) == [(1,)]
    statements = parse_batch("drop view v1, v2 drop table orders, salesdb..items")
    assert [st.sqlite for st in statements] == ["drop view v1", "drop view v2", "drop table orders",
                                                "drop table salesdb.items"]
    assert [st.kind for st in statements] == ["drop_view", "drop_view", "drop_table", "drop_table"]
    for st in statements:
        run(con, st)


def test_alter_table(con):
    statements = parse_batch("alter table orders add note varchar(10) default 'n' null, flag bit null")
    assert [st.sqlite for st in statements] == [
        "alter table orders add column note varchar(10) default 'n' null",
        "alter table orders add column flag bit null"]
    for st in statements:
        run(con, st)
    s = sql("alter table orders drop flag")
    assert s.sqlite == "alter table orders drop column flag"
    run(con, s)


def test_update_statistics(con):
    s = sql("update statistics orders")
    assert (s.kind, s.sqlite) == ("update_statistics", "analyze orders")
    run(con, s)
    assert sql("update index statistics dbo.orders").sqlite == "analyze orders"


def test_syntax_errors_in_translation():
    for bad in ("create table t", "create table t (", "create index i", "drop index i",
                "create table t (a)", "create table t (a int,)", "truncate table"):
        with pytest.raises(TSQLSyntaxError):
            parse_batch(bad)


def test_too_deep_nesting_is_a_syntax_error():
    with pytest.raises(TSQLSyntaxError):
        parse_batch("select " + "(" * 500 + "1" + ")" * 500)
    # a reasonable depth is fine
    assert parse_batch("select " + "isnull(" * 30 + "1" + ", 0)" * 30)[0].sqlite.count("ifnull(") == 30


def test_plus_beside_a_string_concatenates():
    """T-SQL builds dump paths with +; SQLite concatenates with || (and + beside numbers stays +)."""
    import sqlite3

    from engine.dataserver.tsql import parse_batch

    stmt = parse_batch("select @path = '/dumps/' + @db + '.dmp'")[0]
    got = sqlite3.connect(":memory:").execute(stmt.sqlite, {"v_db": "salesdb"}).fetchone()[0]
    assert got == "/dumps/salesdb.dmp"
    assert parse_batch("select 1 + 2")[0].sqlite == "select 1 + 2"
    assert "n + 1" in parse_batch("update t set n = n + 1 where s = 'x'")[0].sqlite
