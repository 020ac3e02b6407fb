"""Real FreeTDS clients (Debian freetds-bin: fisql, tsql) against serve_tds.

These read what the programs print, not only their exit status: fisql exits
1 only when the first DONE of a batch carries the error bit, and tsql exits 0
after any successful login (TDS-NOTES.md, "Client behaviour worth knowing").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.timeout(120)



@pytest.fixture(autouse=True, scope="module")
def _freetds_installed():
    # tools/setup installs freetds-bin; a missing peer is a failure, never a skip
    assert shutil.which("fisql") and shutil.which("tsql"), "install Debian freetds-bin (tools/setup does)"


def run(args, conf, stdin: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, FREETDSCONF=str(conf), LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env.pop("TDSVER", None)
    return subprocess.run(args, input=stdin, capture_output=True, text=True, env=env, timeout=60)


def fisql(conf, stdin: str, *extra: str, password: str = "pw", server: str = "SYBAR"):
    return run(["fisql", "-S", server, "-U", "sa", "-P", password, *extra], conf, stdin)


def tsql(conf, stdin: str, password: str = "pw", server: str = "SYBAR"):
    return run(["tsql", "-S", server, "-U", "sa", "-P", password], conf, stdin)


def test_fisql_typed_rows_and_nulls(freetds_conf):
    res = fisql(freetds_conf, "select * from t\ngo\n")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header = next(line for line in lines if line.startswith("id"))
    assert header.split() == ["id", "name", "big", "ratio", "created", "flag", "data"]
    alpha = next(line for line in lines if "alpha" in line).split()
    assert alpha[:4] == ["1", "alpha", "1099511627776", "1.5"]
    assert " ".join(alpha[4:8]) == "Jan 2 2024 03:04AM"
    assert alpha[8:] == ["1", "0102"]
    nulls = next(line for line in lines if line.startswith("2 ")).split()
    assert nulls == ["2", "NULL", "NULL", "NULL", "NULL", "0", "NULL"]
    assert any("ünïcødé" in line and "-1099511627776" in line for line in lines)
    assert "(3 rows affected)" in res.stdout


def test_fisql_messages_errors_and_several_batches(freetds_conf):
    script = "print hello from sybar\ngo\nfail\ngo\nmulti\ngo\nprint last batch\ngo\n"
    res = fisql(freetds_conf, script)
    out = res.stdout
    assert "hello from sybar" in out
    assert "Msg 208, Level 16, State 1:\nServer 'SYBAR', Line 1:\nnosuch not found." in out
    # multi: info, a result, an error at line 3, another info, all from one batch.
    assert "statement one" in out and "two" in out
    assert (
        "Msg 2601, Level 14, State 1:\nServer 'SYBAR', Line 3:\nAttempt to insert duplicate key row." in out
    )
    assert "statement four" in out
    # fisql carries on after failing batches.
    assert out.index("hello from sybar") < out.index("Msg 208") < out.index("statement one")
    assert out.rstrip().endswith("last batch")
    assert res.returncode == 1  # the first DONE of the "fail" batch had the error bit


def test_fisql_internal_error_and_empty_batch(freetds_conf):
    res = fisql(freetds_conf, "boom\ngo\n\ngo\nprint survived\ngo\n")
    assert "about to fail" in res.stdout
    assert re.search(
        r"Msg 7777, Level 16, State 1:\nServer 'SYBAR', Line 1:\ninternal error: .*kaboom", res.stdout
    )
    assert "survived" in res.stdout


def test_fisql_login_failed(freetds_conf):
    res = fisql(freetds_conf, "print never\ngo\n", password="wrong")
    both = res.stdout + res.stderr
    assert "Msg 4002, Level 14, State 1:" in both
    assert "Login failed." in both
    assert "never" not in res.stdout
    assert res.returncode != 0


def test_fisql_big_packets_many_rows_long_values(freetds_conf):
    res = fisql(freetds_conf, "many\ngo\nlong\ngo\n", "-A", "4096")
    assert res.returncode == 0, res.stderr
    assert "(2000 rows affected)" in res.stdout
    assert re.search(r"^1999\s+row 1999\s*$", res.stdout, re.M)
    assert "é" * 350 in res.stdout
    assert "(2 rows affected)" in res.stdout


def test_fisql_tds_version_auto_retries_after_prelogin(freetds_conf):
    res = fisql(freetds_conf, "print via auto\ngo\n", server="SYBARAUTO")
    assert "via auto" in res.stdout, res.stderr


def test_tsql_rows_messages_and_errors(freetds_conf):
    res = tsql(freetds_conf, "select * from t\ngo\nprint from tsql\ngo\nfail\ngo\nmulti\ngo\nexit\n")
    out, err = res.stdout, res.stderr
    lines = [re.sub(r"^(\d+> )+", "", line) for line in out.splitlines()]  # drop the prompts
    rows = [line.split("\t") for line in lines if "\t" in line or line in ("word", "two")]
    assert rows[0] == ["id", "name", "big", "ratio", "created", "flag", "data"]
    assert rows[1] == ["1", "alpha", "1099511627776", "1.5", "Jan  2 2024 03:04AM", "1", "0102"]
    assert rows[2] == ["2", "NULL", "NULL", "NULL", "NULL", "0", "NULL"]
    assert "(3 rows affected)" in out
    # tsql prints server messages on stderr.
    assert "from tsql" in err
    assert "Msg 208 (severity 16, state 1) from SYBAR Line 1:" in err
    assert "nosuch not found." in err
    assert "Msg 2601 (severity 14, state 1) from SYBAR Line 3:" in err
    assert ["word"] in rows and ["two"] in rows
    assert res.returncode == 0


def test_tsql_login_failed(freetds_conf):
    res = tsql(freetds_conf, "exit\n", password="wrong")
    assert "Msg 4002 (severity 14, state 1) from SYBAR Line 1:" in res.stderr
    assert "Login failed." in res.stderr
    assert res.returncode != 0
