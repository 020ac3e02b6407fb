"""Property tests: whatever the input, only TSQLSyntaxError escapes, and quickly."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.dataserver import tsql
from engine.dataserver.tsql import TSQLSyntaxError, find_backup_statements, parse_batch, split_batches

EXAMPLES = Path(__file__).parent / "data" / "scripts"

SEED_SQL = [p.read_text() for p in sorted(EXAMPLES.glob("*/*.sql"))] + [
    "set textsize 64512 select @@spid ",
    "dump database @db to compress::9::'/a' at SYB_BACKUP blocksize = 512, file = 'x' stripe on @p "
    "with compression = 101, init, verify = full, passwd = 'x'",
    "load tran db from '/t' with until_time = 'Mar 26, 2024', listonly = full online database db for standby_access",
    "create database x on d1 = '1G', default = 5 log on l1 = 20 with override for load drop database x, y",
    "declare @a int, @b varchar(10) select @a = count(*) from t where b = @b print 'n %1!', @a",
    "select top 5 a, getdate(), isnull(b, 0), convert(varchar(10), c, 112) into #t from dbo.x..y "
    "where d in (select top 1 e from f) order by a",
    "create table t (id int identity, n varchar(3) default 'x' not null, constraint pk primary key (n)) lock datarows",
    "insert t values (1, \"a\") update t set a = case when b = 1 then 2 else 3 end delete t where a = 1",
    "begin tran exec @rc = sp_x @a = 1, 'b', null output commit tran waitfor delay '00:00:01'",
    "truncate table t create unique clustered index i on t (a) drop index t.i alter table t add c int null",
    "sp_helpdb mydb\nset nocount on\nbegin select 1 end\ncheckpoint\nset transaction isolation level 1",
    "/* a /* nested */ comment */ -- line\nuse [master]; select [a b], \"s\" from t holdlock",
    "if @@error != 0 begin print 'x' raiserror 20001 'm %1!', @a return end else if exists (select 1) "
    "while @i < 3 begin select @i = @i + 1 if @i = 2 break else continue end",
]

settings.register_profile("tsql", max_examples=300, deadline=2000,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def strict():
    """No safety net: a parser bug shows up as its own exception."""
    old = tsql.SAFETY_NET
    tsql.SAFETY_NET = False
    try:
        yield
    finally:
        tsql.SAFETY_NET = old


def check(text: str) -> None:
    with strict():
        try:
            statements = parse_batch(text, first_line=3)
        except TSQLSyntaxError as e:
            assert isinstance(e.message, str) and e.message
            assert isinstance(e.line, int) and e.line >= 3
            assert isinstance(e.number, int)
        else:
            lines = text.count("\n") + 3
            for s in statements:
                assert s.text and s.text in text
                assert 3 <= s.line <= lines
                tsql.statement_kind(s)
        for shell in (False, True):
            with contextlib.suppress(TSQLSyntaxError):
                parse_batch(text, shell=shell, quoted_identifier=True)
        with contextlib.suppress(TSQLSyntaxError):
            for s in tsql.walk(parse_batch(text, control_flow=True)):
                assert s.text in text
        for batch, repeat in split_batches(text):
            assert batch.text and repeat >= 0
        errors: list = []
        for s in find_backup_statements(text, errors=errors):
            assert isinstance(s, tsql.DumpLoad | tsql.OnlineDatabase)
        assert all(isinstance(e, TSQLSyntaxError) for e in errors)


VOCAB = [
    "select", "from", "where", "into", "top", "5", "break", "continue", "return", "raiserror", "20001", "dump", "load", "database", "tran", "transaction", "to",
    "from", "stripe", "on", "with", "compress::", "at", "=", ",", "(", ")", ";", "'x'", '"y"', "'", '"',
    "/*", "*/", "--", "\n", "go", "\ngo\n", "@x", "@@spid", "[n]", "[", "]", "print", "set", "declare",
    "int", "exec", "sp_who", "begin", "end", "case", "else", "commit", "rollback", "if", "while", "create",
    "table", "index", "view", "drop", "alter", "add", "identity", "default", "getdate()", "convert",
    "isnull", "insert", "values", "update", "delete", "truncate", "union", "all", "online", "for", "load",
    "checkpoint", "waitfor", "delay", "'00:00:01'", "compression", "101", "-", "+", ".", "..", "dbo", "#t",
    "$X", "${Y}", "`z`", "::", ":", "?", "!", "!<", "0x1F", "1e5", "1.5", ".", "null", "output", "key",
    "primary", "constraint", "check", "references", "statistics", "cursor", "as", "listonly", "full",
]


@settings(settings.get_profile("tsql"))
@given(st.text(max_size=300))
def test_random_text(text):
    check(text)


@settings(settings.get_profile("tsql"))
@given(st.lists(st.sampled_from(VOCAB), max_size=60), st.lists(st.sampled_from([" ", "", "\n"]), max_size=60))
def test_random_token_soup(words, gaps):
    text = "".join(w + (gaps[i] if i < len(gaps) else " ") for i, w in enumerate(words))
    check(text)


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(SEED_SQL))
    for _ in range(draw(st.integers(1, 4))):
        n = len(text)
        a = draw(st.integers(0, n))
        b = draw(st.integers(a, min(n, a + 20)))
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "replace", "case"]))
        if op == "delete":
            text = text[:a] + text[b:]
        elif op == "insert":
            text = text[:a] + draw(st.sampled_from(VOCAB)) + " " + text[a:]
        elif op == "duplicate":
            text = text[:b] + text[a:b] + text[b:]
        elif op == "replace":
            text = text[:a] + draw(st.text(max_size=5)) + text[b:]
        else:
            text = text[:a] + text[a:b].upper() + text[b:]
    return text


@settings(settings.get_profile("tsql"))
@given(mutated())
def test_mutated_examples(text):
    check(text)


def test_seeds_parse():
    for text in SEED_SQL:
        for batch, _ in split_batches(text):
            parse_batch(batch.text, batch.first_line, control_flow=True)


@pytest.mark.parametrize("text", [
    "(" * 20000, ")" * 20000, "'" * 20001, "'" * 20000, "/*" * 10000, "*/" * 10000, "[" * 20000,
    "select " * 5000, "select 1 " * 5000, "begin " * 5000, "end " * 5000, "a." * 10000, "@" * 20000,
    "--" * 10000, "dump database x to 'y' " + "stripe on 'z' " * 5000, "print 'x'" + ", @a" * 10000,
    "select " + "isnull(" * 3000 + "1" + ")" * 3000, "1" * 50000, "e" * 50000, "0x" + "f" * 50000,
    "select case " * 3000, "go\n" * 10000, "/* go\n" * 5000, "declare @x " + "unsigned " * 5000,
    "select 1\n" * 3000, "set " * 5000, "exec p " + "x, " * 5000 + "y", "select \"a\"\"" * 5000,
    "create table t (" + "a int, " * 3000 + "b int)", "drop table " + "a, " * 3000 + "b",
    "select " + "a..b" * 5000, "$x" * 5000, "`" * 10001, "select (" * 5000, "select 1 for update " * 3000,
    "${" * 5000, "$(" * 5000, "a$" * 10000, "select 1 at isolation " * 3000, "print " * 5000,
    "dump database x to " * 3000, "select top 1 " * 3000, "select @x = " * 3000, "if " * 5000,
    "dump database x to 'y' with compression = " + "9" * 5000, "raiserror " + "9" * 5000,
    "dump database x to compress::" + "9" * 5000 + "::y", "dump database x to 'compress::" + "9" * 5000 + "::y'",
    "select 1\ngo " + "9" * 5000 + "\nselect 2", "set rowcount " + "9" * 5000, "return " + "9" * 5000,
    "create database x on default = " + "9" * 5000, "waitfor delay '" + "9" * 5000 + ":00'",
    "if 1=1 " * 5000 + "print 'x'", "while 1=1 begin " * 3000, "if 1=1 print 'x' else " * 5000 + "print 'y'",
])
def test_pathological_inputs_are_fast(text):
    start = time.perf_counter()
    check(text)
    with strict():
        for shell in (False, True):
            with contextlib.suppress(TSQLSyntaxError):
                parse_batch(text, shell=shell)
    assert time.perf_counter() - start < 5.0
