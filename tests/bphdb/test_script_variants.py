"""Real-world variants of Sybase scripts: quoting, case, comments, loops, here-documents, ..."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bphdb.lint import lint
from engine.bphdb.script import analyze_script, parse_shell


def write(tmp_path: Path, name: str, text: str, mode: int = 0o755) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n").replace("·", " "))  # · marks a trailing space
    p.chmod(mode)
    return p


def lint_(path, **kw):
    """lint without no-shebang: most variants here are fragments without a #! line."""
    return [f for f in lint(path, **kw) if f.code != "no-shebang"]


def codes(findings, severity=None):
    """(code, line) of the findings; most variants are fragments without a #! line, so no-shebang is
    left out here (test_no_shebang checks it)."""
    return [(f.code, f.line) for f in findings
            if (severity is None or f.severity == severity) and f.code != "no-shebang"]


# ---------------------------------------------------------------------------------------------- isql words
@pytest.mark.parametrize("word", [
    "isql", "$ISQL", '"$ISQL"', "${ISQL}", '"${ISQL}"', "fisql", "sybar-isql", "sybar isql",
    "$SYBASE/$SYBASE_OCS/bin/isql", '"$SYBASE/$SYBASE_OCS/bin/isql"', "/opt/sybase/OCS-16_0/bin/isql",
    "$MYISQL_PROG", "exec isql", "nohup $ISQL", "$SQLCMD",
])
def test_isql_command_words(tmp_path, word):
    s = write(tmp_path, "s.sh", f"""
        #!/bin/sh
        SQLCMD=/usr/bin/fisql
        {word} -Usa -SSYBAR <<EOF
        dump database salesdb to "/tmp/x.dmp"
        go
        EOF
    """)
    a = analyze_script(s)
    assert a.isql_line == 3, word
    assert a.databases == ["salesdb"]
    assert [c.line for c in a.isql_calls] == [3]
    assert not codes(lint_(s), "error")


def test_not_isql(tmp_path):
    s = write(tmp_path, "s.sh", """
        #!/bin/sh
        echo isql -Usa
        grep isql /etc/passwd
        cat <<EOF
        isql -Usa -Psecret
        EOF
        # isql -Usa -Psecret -i x.sql
    """)
    a = analyze_script(s)
    assert a.isql_calls == []
    assert a.commented_isql_lines == [7]
    assert codes(lint_(s)) == [("no-isql-invocation", 0)]


def test_variable_assigned_an_isql_path_anywhere(tmp_path):
    s = write(tmp_path, "s.sh", """
        #!/bin/sh
        if [ -x /opt/sybase/bin/isql ]; then
            RUN=/opt/sybase/bin/isql
        else
            RUN=fisql
        fi
        $RUN -Usa -SSYBAR -i "$(dirname "$0")/d.sql"
    """)
    (tmp_path / "d.sql").write_text("dump database db1 to '/tmp/db1.dmp'\ngo\n")
    a = analyze_script(s)
    assert a.isql_line == 7 and a.databases == ["db1"] and a.sql_files == ["d.sql"]


# ---------------------------------------------------------------------------------------------- flags
def test_flags_glued_and_spaced(tmp_path):
    s = write(tmp_path, "s.sh", """
        isql -U sa -SSYBAR -D master -w250 -e -b -I /etc/interfaces -o out.log -i x.sql
    """)
    (tmp_path / "x.sql").write_text("dump tran salesdb to '/tmp/t1'\ngo\n")
    a = analyze_script(s)
    call = a.isql_calls[0]
    assert call.flag("U") == "sa" and call.flag("S") == "SYBAR" and call.flag("D") == "master"
    assert call.flag("w") == "250" and call.flag("e") == "" and call.flag("b") == ""
    assert call.flag("I") == "/etc/interfaces" and call.flag("o") == "out.log" and call.flag("i") == "x.sql"
    assert call.flag("P") is None
    assert a.kind == "tran_backup"


@pytest.mark.parametrize("pw", ["-Psecret", '-P "$PW"', "-P$PW", "-P ''", "-P"])
def test_password_on_command_line(tmp_path, pw):
    s = write(tmp_path, "s.sh", f"""
        #!/bin/sh
        PW=x
        isql -Usa \\
            {pw} -SSYBAR <<EOF
        dump database salesdb to "/tmp/x"
        go
        EOF
    """)
    f = [x for x in lint_(s) if x.code == "password-on-command-line"]
    assert [(x.line, x.severity) for x in f] == [(4, "error")]
    assert "keyring" in f[0].problem and f"with {pw}," in f[0].problem


def test_backslash_continuation_keeps_the_command_line(tmp_path):
    s = write(tmp_path, "s.sh", """
        #!/bin/sh
        "$ISQL" -Usa \\
          -SSYBAR \\
          -i "`dirname "$0"`/x.sql"
    """)
    (tmp_path / "x.sql").write_text("dump database a to '/tmp/a'\ngo\n")
    a = analyze_script(s)
    assert a.isql_line == 2 and a.isql_calls[0].flag("S") == "SYBAR" and a.databases == ["a"]


# ---------------------------------------------------------------------------------------------- SQL sources
@pytest.mark.parametrize("form", [
    '-i "$HERE/x.sql"', "-i $HERE/x.sql", '-i "`dirname "$0"`/x.sql"', '-i "$(dirname "$0")/x.sql"',
    "-i `dirname $0`/x.sql", '-i "$SQLFILE"', "-i x.sql", "< $HERE/x.sql", '-i "${0%/*}/x.sql"',
    '-i "$(cd "$(dirname "$0")" && pwd)/x.sql"', "-i ${SQLDIR:-$HERE}/x.sql",
])
def test_sql_file_forms(tmp_path, form):
    s = write(tmp_path, "s.sh", f"""
        #!/bin/sh
        HERE=`dirname "$0"`
        SQLFILE=$HERE/x.sql
        $ISQL -Usa -SSYBAR {form}
    """)
    (tmp_path / "x.sql").write_text("-- c\nuse master\ngo\nDUMP DATABASE Sales1 TO 'compress::4::/tmp/s1.dmp'\ngo\n")
    a = analyze_script(s)
    assert a.sql_source == "file" and a.sql_files == ["x.sql"], form
    assert a.databases == ["Sales1"] and a.device == "compress"
    assert a.statements[0].file == str(tmp_path / "x.sql") and a.statements[0].line == 4
    assert not codes(lint_(s), "error")


def test_sql_file_missing_with_a_variable_path(tmp_path):
    s = write(tmp_path, "s.sh", """
        #!/bin/sh
        SQLFILE=`dirname "$0"`/nothere.sql
        isql -Usa -SSYBAR -i $SQLFILE
    """)
    a = analyze_script(s)
    assert a.sql_files == ["nothere.sql (missing)"]
    assert codes(lint_(s)) == [("sql-file-missing", 3)]


def test_sql_file_known_only_at_run_time_is_a_warning(tmp_path):
    s = write(tmp_path, "s.sh", """
        #!/bin/sh
        isql -Usa -SSYBAR -i "$SQLDIR/x.sql"
    """)
    assert codes(lint_(s)) == [("sql-file-unresolved", 2)]
    assert lint_(s)[0].severity == "warning"


def test_sql_file_written_by_the_script(tmp_path):
    s = write(tmp_path, "s.sh", """
        #!/bin/sh
        TMP=${TMPDIR:-/tmp}/dump.$$.sql
        DB=salesdb
        cat > $TMP <<EOF
        dump database $DB to "/tmp/$DB.dmp"
        go
        EOF
        isql -Usa -SSYBAR -i $TMP
        rm -f $TMP
    """)
    a = analyze_script(s)
    assert a.databases == ["salesdb"] and a.isql_line == 8
    assert a.statements[0].line == 5 and a.statements[0].devices == ["/tmp/salesdb.dmp"]
    assert a.sql_files[0].endswith("(written by the script, line 4)")
    assert not codes(lint_(s), "error")


@pytest.mark.parametrize("op", ["<<EOF", "<< EOF", "<<'EOF'", '<<"EOF"', "<<-EOF", "<<\\EOF"])
def test_heredoc_forms(tmp_path, op):
    s = write(tmp_path, "s.sh", f"""
        #!/bin/sh
        isql -Usa -SSYBAR {op}
        \tuse master
        \tgo\t
        \tdump database salesdb to "/tmp/sales.dmp"
        \tgo
        EOF
        echo done
    """)
    if "-" in op:  # <<-: leading tabs stripped, the end line may be indented too
        s.write_text(s.read_text().replace("\nEOF", "\n\tEOF"))
    a = analyze_script(s)
    assert a.sql_source == "heredoc" and a.databases == ["salesdb"]
    assert a.statements[0].line == 5 and a.statements[0].file == str(s)
    assert not codes(lint_(s), "error")


def test_heredoc_go_with_trailing_spaces_and_case(tmp_path):
    s = write(tmp_path, "s.sh", """
        ISQL=${ISQL:-isql}
        $ISQL -Usa -SSYBAR <<END
        Use Master
        GO···
        Dump Transaction salesdb To "/tmp/t.trn"
        Go·
        END
    """)
    a = analyze_script(s)
    assert a.kind == "tran_backup" and a.databases == ["salesdb"] and a.statements[0].line == 5


def test_hash_in_quotes_is_not_a_comment(tmp_path):
    s = write(tmp_path, "s.sh", """
        echo "# not a comment" ; isql -Usa -SSYBAR -i "x#1.sql"  # a comment
    """)
    (tmp_path / "x#1.sql").write_text("dump database a to '/tmp/a'\ngo\n")
    a = analyze_script(s)
    assert a.isql_line == 1 and a.databases == ["a"]


def test_isql_in_command_substitution(tmp_path):
    s = write(tmp_path, "s.sh", """
        #!/bin/sh
        OUT=$(isql -Usa -SSYBAR <<EOF
        dump database salesdb to "/tmp/s.dmp"
        go
        EOF
        )
        echo "$OUT" | grep -q Msg && exit 1
    """)
    a = analyze_script(s)
    assert a.isql_line == 2 and a.databases == ["salesdb"] and a.statements[0].line == 3


def test_isql_fed_by_a_pipe(tmp_path):
    s = write(tmp_path, "s.sh", """
        printf 'dump database a to "/tmp/a"\\ngo\\n' | isql -Usa -SSYBAR
    """)
    a = analyze_script(s)
    assert a.isql_calls[0].sql_source == "pipe"
    assert not codes(lint_(s))


def test_isql_without_input(tmp_path):
    s = write(tmp_path, "s.sh", "isql -Usa -SSYBAR\n")
    assert codes(lint_(s)) == [("no-sql-input", 1)]


# ---------------------------------------------------------------------------------------------- variables
def test_variables_in_device_strings(tmp_path):
    s = write(tmp_path, "s.sh", """
        #!/bin/sh
        DB=salesdb
        MASTER=${SYBACKUP_SERVER:-localhost}
        isql -Usa -SSYBAR <<EOF
        dump database $DB to "sybackup::-SERV $MASTER -POL Sybase_ASE -SCHED $SCHED"
          stripe on "sybackup::-SERV ${MASTER} -POL Sybase_ASE -SCHED $SCHED"
        go
        EOF
    """)
    a = analyze_script(s)
    st = a.statements[0]
    assert st.devices == ["sybackup::-SERV <MASTER> -POL Sybase_ASE -SCHED <SCHED>",
                          "sybackup::-SERV <MASTER> -POL Sybase_ASE -SCHED <SCHED>"]
    assert st.device_lines == [5, 6]
    assert a.device == "sybackup" and a.stripes == 2
    assert not codes(lint_(s))


def test_loop_over_databases(tmp_path):
    s = write(tmp_path, "s.sh", """
        #!/bin/sh
        for db in salesdb hrdb
        do
            isql -Usa -SSYBAR <<EOF
        dump database $db to "/tmp/$db.dmp"
        go
        EOF
        done
        for x in 1 2; do echo $x; done
    """)
    a = analyze_script(s)
    assert a.databases == ["salesdb", "hrdb"]
    assert a.statements[0].database == "<db>" and a.statements[0].devices == ["/tmp/<db>.dmp"]
    assert codes(lint_(s, known_databases={"salesdb"}), "error") == [("unknown-database", 5)]
    assert not codes(lint_(s, known_databases={"salesdb", "hrdb"}))


def test_database_known_only_at_run_time_is_not_an_error(tmp_path):
    s = write(tmp_path, "s.sh", """
        #!/bin/sh
        DB=${1:?usage: $0 database}
        isql -Usa -SSYBAR <<EOF
        dump database $DB to "/tmp/$DB.dmp"
        go
        EOF
    """)
    a = analyze_script(s)
    assert a.databases == [] and a.statements[0].database == "<DB>"
    assert not codes(lint_(s, known_databases={"salesdb"}))


def test_quoted_heredoc_keeps_dollar_literal(tmp_path):
    s = write(tmp_path, "s.sh", """
        isql -Usa -SSYBAR <<'EOF'
        dump database $DB to "/tmp/x.dmp"
        go
        EOF
    """)
    f = lint_(s)
    assert ("sql-syntax", 2) in codes(f)


# ---------------------------------------------------------------------------------------------- findings
def test_too_many_stripes(tmp_path):
    stripes = "\n".join(f'    stripe on "/tmp/s{i}"' for i in range(1, 33))
    (tmp_path / "x.sql").write_text(f'use master\ngo\ndump database salesdb to "/tmp/s0"\n{stripes}\ngo\n')
    s = write(tmp_path, "s.sh", "isql -Usa -SSYBAR -i x.sql\n")
    f = lint_(s)
    assert codes(f) == [("too-many-stripes", 3)]
    assert f[0].file == str(tmp_path / "x.sql") and "33" in f[0].problem
    assert analyze_script(s).stripes == 33


def test_thirty_two_stripes_are_fine(tmp_path):
    stripes = "\n".join(f'    stripe on "/tmp/s{i}"' for i in range(1, 32))
    (tmp_path / "x.sql").write_text(f'dump database salesdb to "/tmp/s0"\n{stripes}\ngo\n')
    s = write(tmp_path, "s.sh", "isql -Usa -SSYBAR -i x.sql\n")
    assert not codes(lint_(s))


def test_unknown_sybackup_option_on_the_device_line(tmp_path):
    (tmp_path / "x.sql").write_text(
        'dump database salesdb\n  to "sybackup::-SERV m -POL p"\n  stripe on "sybackup::-SERV m -POLCY p"\ngo\n')
    s = write(tmp_path, "s.sh", "isql -Usa -SSYBAR -i x.sql\n")
    f = lint_(s)
    assert codes(f) == [("unknown-sybackup-option", 3)]
    assert "-POLCY" in f[0].problem and f[0].file == str(tmp_path / "x.sql")


def test_bad_sybackup_device(tmp_path):
    (tmp_path / "x.sql").write_text('dump database salesdb to "sybackup::-SERV a -SERV b"\ngo\n')
    s = write(tmp_path, "s.sh", "isql -Usa -SSYBAR -i x.sql\n")
    assert codes(lint_(s)) == [("bad-sybackup-device", 1)]


def test_sql_syntax_in_the_sql_file(tmp_path):
    (tmp_path / "x.sql").write_text('use master\ngo\ndump databse salesdb to "/tmp/x"\ngo\n'
                                    'dump database salesdb to "/tmp/y"\ngo\n')
    s = write(tmp_path, "s.sh", "isql -Usa -SSYBAR -i x.sql\n")
    f = lint_(s)
    assert codes(f) == [("sql-syntax", 3)]
    assert f[0].file == str(tmp_path / "x.sql") and "databse" in f[0].problem
    assert analyze_script(s).databases == ["salesdb"]


def test_no_backup_statement(tmp_path):
    s = write(tmp_path, "s.sh", """
        isql -Usa -SSYBAR <<EOF
        sp_helpdb
        go
        EOF
    """)
    f = lint_(s)
    assert codes(f) == [("no-backup-statement", 1)] and f[0].severity == "warning"
    assert analyze_script(s).kind == "unknown"


def test_unknown_database(tmp_path):
    (tmp_path / "x.sql").write_text('dump database Salesdb to "/tmp/x"\ngo\n')
    s = write(tmp_path, "s.sh", "isql -Usa -SSYBAR -i x.sql\n")
    assert not codes(lint_(s))
    f = lint_(s, known_databases={"salesdb"})
    assert codes(f) == [("unknown-database", 1)] and "salesdb" in f[0].problem


def test_permissions(tmp_path):
    (tmp_path / "x.sql").write_text('dump database a to "/tmp/x"\ngo\n')
    s = write(tmp_path, "s.sh", "isql -Usa -SSYBAR -i x.sql\n", mode=0o644)
    assert codes(lint_(s)) == [("not-executable", 0)]
    os.chmod(s, 0o777)
    os.chmod(tmp_path / "x.sql", 0o666)
    f = lint_(s)
    assert codes(f) == [("world-writable", 0), ("world-writable", 0)]
    assert {x.file for x in f} == {str(s), str(tmp_path / "x.sql")}


def test_script_not_found(tmp_path):
    f = lint_(tmp_path / "nope.sh")
    assert codes(f) == [("script-not-found", 0)]
    assert codes(lint_(tmp_path)) == [("script-not-found", 0)]


def test_unterminated_heredoc(tmp_path):
    s = write(tmp_path, "s.sh", """
        isql -Usa -SSYBAR <<EOF
        dump database a to "/tmp/a"
        go
        EOF·
    """)
    assert codes(lint_(s)) == [("unterminated-heredoc", 1)]


def test_duplicate_stripe_file(tmp_path):
    (tmp_path / "x.sql").write_text('dump database a to "/tmp/a"\n stripe on "/tmp/a"\ngo\n')
    s = write(tmp_path, "s.sh", "isql -Usa -SSYBAR -i x.sql\n")
    assert codes(lint_(s)) == [("duplicate-stripe-device", 2)]


def test_truncate_only_and_load_without_online(tmp_path):
    (tmp_path / "x.sql").write_text('dump tran a with truncate_only\ngo\nload database b from "/tmp/b"\ngo\n')
    s = write(tmp_path, "s.sh", "isql -Usa -SSYBAR -i x.sql\n")
    assert codes(lint_(s)) == [("truncate-only", 1), ("load-not-onlined", 3)]
    assert all(f.severity == "warning" for f in lint_(s))


def test_load_then_tran_then_online_is_fine(tmp_path):
    (tmp_path / "x.sql").write_text('load database b from "/tmp/b"\ngo\nload tran b from "/tmp/t1"\ngo\n'
                                    "online database b\ngo\n")
    s = write(tmp_path, "s.sh", "isql -Usa -SSYBAR -i x.sql\n")
    assert not codes(lint_(s))
    assert analyze_script(s).kind == "restore"


def test_two_isql_calls_one_check_one_dump(tmp_path):
    s = write(tmp_path, "s.sh", """
        isql -Usa -SSYBAR <<EOF
        sp_helpdb salesdb
        go
        EOF
        isql -Usa -SSYBAR <<EOF
        dump database salesdb to "/tmp/s"
        go
        EOF
    """)
    a = analyze_script(s)
    assert a.isql_line == 5 and a.databases == ["salesdb"]
    assert not codes(lint_(s))


def test_is_sybase_script(tmp_path):
    assert not analyze_script(write(tmp_path, "a.sh", "echo hello\ncp a b\n")).is_sybase_script
    assert analyze_script(write(tmp_path, "b.sh", "isql -Usa -i x.sql\n")).is_sybase_script


def test_parse_shell_never_raises_on_garbage():
    for text in ['"unterminated', "'x", "$(", "`", "${", "a <<", "a <<EOF", "((", "))", "\\", "for", "done done"]:
        parse_shell(text)


def test_no_shebang(tmp_path):
    s = write(tmp_path, "s.sh", 'isql -Usa -SSYBAR <<EOF\ndump database a to "/tmp/a"\ngo\nEOF\n')
    assert [(f.code, f.line, f.severity) for f in lint(s)] == [("no-shebang", 1, "error")]


def test_crlf_line_endings(tmp_path):
    s = tmp_path / "s.sh"
    s.write_bytes(b'#!/bin/sh\r\nisql -Usa -SSYBAR <<EOF\r\ndump database a to "/tmp/a"\r\ngo\r\nEOF\r\n')
    s.chmod(0o755)
    assert codes(lint(s)) == [("crlf-line-endings", 1)]
    assert analyze_script(s).databases == ["a"]


def test_preview_helpers(tmp_path):
    (tmp_path / "x.sql").write_text('use master\ngo\ndump database a\n to "/tmp/a"\n stripe on "/tmp/b"\ngo\n')
    s = write(tmp_path, "s.sh", "#!/bin/sh\nisql -Usa -SSYBAR -i x.sql\n")
    a = analyze_script(s)
    assert a.sql_paths == [tmp_path / "x.sql"]
    stmt = a.statements[0]
    assert (stmt.line, stmt.end_line, stmt.device_lines) == (3, 5, [4, 5])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab $`\"'(){}<>|&;#\\\n-=EOFisqlP", max_size=80))
def test_analysis_never_raises(tmp_path_factory, text):
    from engine.bphdb.lint import lint_analysis
    from engine.bphdb.script import analyze_text

    a = analyze_text(text, tmp_path_factory.getbasetemp() / "fuzz.sh")
    lint_analysis(a)
    a.to_dict()


@pytest.mark.parametrize("form", ['-i "$HERE/dump_$db.sql"', "-i $F", "< ${HERE}/dump_${db}.sql"])
def test_loop_with_one_sql_file_per_database(tmp_path, form):
    s = write(tmp_path, "s.sh", f"""
        #!/bin/sh
        HERE=$(dirname "$0")
        DBS="salesdb hrdb"
        for db in $DBS; do
            F=$HERE/dump_$db.sql
            isql -Usa -SSYBAR {form} || exit 1
        done
    """)
    (tmp_path / "dump_salesdb.sql").write_text('dump database salesdb to "/tmp/s"\ngo\n')
    a = analyze_script(s)
    assert a.databases == ["salesdb"]
    assert a.sql_files == ["dump_salesdb.sql", "dump_hrdb.sql (missing)"]
    assert codes(lint_(s)) == [("sql-file-missing", 6)]
    assert "dump_hrdb.sql" in lint_(s)[0].problem


def test_password_in_a_loop_is_reported_once(tmp_path):
    s = write(tmp_path, "s.sh", """
        #!/bin/sh
        for db in a b; do
            isql -Usa -P"$PW" -SSYBAR -i "$(dirname "$0")/$db.sql"
        done
    """)
    for n in "ab":
        (tmp_path / f"{n}.sql").write_text(f'dump database {n} to "/tmp/{n}"\ngo\n')
    assert codes(lint_(s)) == [("password-on-command-line", 3)]
    assert analyze_script(s).databases == ["a", "b"]


def test_binary_file(tmp_path):
    s = tmp_path / "a.out"
    s.write_bytes(b"\x7fELF\0\0isql -Psecret")
    s.chmod(0o755)
    a = analyze_script(s)
    assert a.binary and not a.is_sybase_script and a.isql_calls == []
    assert codes(lint(s)) == [("not-a-script", 0)]
