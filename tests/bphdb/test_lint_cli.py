"""`sybar lint`: output lines, --json, --databases, exit status."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import pytest

from engine import cli_lint
from engine.bphdb.lint import CODES, Finding, lint

EXAMPLES = Path(__file__).parent.parent / "dataserver" / "data" / "scripts"
GOOD = EXAMPLES / "02-nbu-template-sybackup" / "sybase_salesdb_backup"
MISSING = EXAMPLES / "11-missing-sql-file" / "sybase_hrdb_backup"
PASSWORD = EXAMPLES / "13-password-on-argv" / "dump_salesdb_pw.sh"


def test_clean_script_exits_0(capsys):
    assert cli_lint.main([str(GOOD)]) == 0
    assert capsys.readouterr().out == ""


def test_findings_as_lines(capsys):
    assert cli_lint.main([str(GOOD), str(MISSING), str(PASSWORD)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{MISSING}:9: error [sql-file-missing] isql -i names sybase_hrdb_backup.sql beside the script, and that "
        "file does not exist; create it or correct the path",
        f"{PASSWORD}:10: error [password-on-command-line] isql gets the password with -P$PW, so it is visible "
        "in the process list; use the keyring",
    ]


def test_json(capsys):
    assert cli_lint.main(["--json", str(MISSING), str(GOOD)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc == [{"file": str(MISSING), "line": 9, "code": "sql-file-missing", "severity": "error",
                    "problem": doc[0]["problem"]}]
    assert cli_lint.main(["--json", str(GOOD)]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_databases_option(capsys):
    assert cli_lint.main(["--databases", "salesdb,master", str(GOOD)]) == 0
    assert cli_lint.main(["--databases", "hrdb", str(GOOD)]) == 1
    out = capsys.readouterr().out
    assert "sybase_salesdb_backup.sql:6: error [unknown-database]" in out


def test_warnings_only_exit_0_unless_strict(tmp_path, capsys):
    s = tmp_path / "s.sh"
    s.write_text("#!/bin/sh\nisql -Usa -SSYBAR <<EOF\nsp_helpdb\ngo\nEOF\n")
    s.chmod(0o755)
    assert cli_lint.main([str(s)]) == 0
    assert "warning [no-backup-statement]" in capsys.readouterr().out
    assert cli_lint.main(["--strict", str(s)]) == 1


def test_missing_script_and_usage(tmp_path, capsys):
    assert cli_lint.main([str(tmp_path / "none")]) == 1
    assert "[script-not-found]" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli_lint.main([])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli_lint.main(["--bogus", str(GOOD)])
    assert e.value.code == 2


def test_add_parser_and_run_as_the_lead_wires_them(capsys):
    parser = argparse.ArgumentParser(prog="sybar")
    sub = parser.add_subparsers(dest="command")
    cli_lint.add_parser(sub, lambda p: p.add_argument("--home"))
    args = parser.parse_args(["lint", "--home", "/tmp/x", str(PASSWORD)])
    assert args.command == "lint" and cli_lint.run(args) == 1


def test_relative_paths_stay_relative(tmp_path, capsys, monkeypatch):
    d = tmp_path / "scripts"
    shutil.copytree(EXAMPLES / "02-nbu-template-sybackup", d)
    os.chmod(d / "sybase_salesdb_backup.sql", 0o666)
    monkeypatch.chdir(tmp_path)
    f = lint("scripts/sybase_salesdb_backup")
    assert [(x.file, x.code) for x in f] == [("scripts/sybase_salesdb_backup.sql", "world-writable")]


def test_sql_file_selected_instead_of_its_script(capsys):
    sql = EXAMPLES / "02-nbu-template-sybackup" / "sybase_salesdb_backup.sql"
    f = lint(sql)
    assert [(x.code, x.line) for x in f] == [("not-a-script", 0)]
    assert "sybase_salesdb_backup uses it" in f[0].problem


def test_every_code_has_a_severity():
    assert set(CODES.values()) == {"error", "warning"}
    f = Finding("a", 1, "sql-syntax", "error", "x; y")
    assert str(f) == "a:1: error [sql-syntax] x; y" and f.to_dict()["code"] == "sql-syntax"


def test_the_sample_scripts_lint_clean():
    """What we ship as an example must pass our own linter, warnings included."""
    import subprocess
    import sys
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[2] / "resources" / "scripts"
    names = [p for p in sorted(scripts.iterdir()) if not p.name.endswith(".sql")]
    assert len(names) >= 5
    r = subprocess.run([sys.executable, "-m", "engine.cli", "lint", "--strict", "--databases",
                        "mydb,mydb_restore", *map(str, names)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
