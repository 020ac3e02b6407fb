"""The script analysis and the linter over the example folders (tests/dataserver/data/scripts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.bphdb.lint import lint
from engine.bphdb.script import analyze_script

EXAMPLES = Path(__file__).parent.parent / "dataserver" / "data" / "scripts"
FOLDERS = sorted(p for p in EXAMPLES.iterdir() if (p / "expect.json").is_file())


def _expect(folder: Path) -> dict:
    return json.loads((folder / "expect.json").read_text())


def test_there_are_examples():
    assert len(FOLDERS) >= 6


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_analysis_matches_expect(folder):
    exp = _expect(folder)
    a = analyze_script(folder / exp["script"])
    got = a.to_dict()
    for key in ("databases", "stripes", "device", "sql_source", "sql_files", "isql_line"):
        assert got[key] == exp[key], key
    if exp["kind"] != "broken":
        assert got["kind"] == exp["kind"]
    assert a.is_sybase_script
    assert len(got["statements"]) == len(exp["statements"])
    for g, e in zip(got["statements"], exp["statements"], strict=True):
        assert g["op"] == e["op"]
        assert g["database"] == e["database"]
        for key in ("file", "line", "with", "sybackup"):
            if key in e:
                assert g[key] == e[key], key
        if "devices" in e:
            assert len(g["devices"]) == len(e["devices"])
            for gd, ed in zip(g["devices"], e["devices"], strict=True):
                if "<" not in ed:  # <DUMPDIR> and the like stand for run-time values
                    assert gd == ed
                else:
                    assert "<" in gd


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_lint_matches_expect(folder):
    exp = _expect(folder)
    script = folder / exp["script"]
    findings = lint(script, known_databases={"salesdb", "salesdb_test", "master"})
    got = {(f.code, f.line) for f in findings if f.severity == "error"}
    want = {(x["code"], x["line"]) for x in exp["lint"]}
    assert want <= {(f.code, f.line) for f in findings}
    assert got == want, [str(f) for f in findings]
    for f in findings:
        assert ";" in f.problem  # what is wrong; what to do
        assert f.severity in ("error", "warning")


@pytest.mark.parametrize("folder", [f for f in FOLDERS if _expect(f)["kind"] != "broken"], ids=lambda p: p.name)
def test_valid_examples_have_no_error(folder):
    exp = _expect(folder)
    assert not [f for f in lint(folder / exp["script"]) if f.severity == "error"]


def test_expected_sentences():
    """The sentences the examples quote are what the linter says (it may add what to do)."""
    for folder in FOLDERS:
        exp = _expect(folder)
        findings = lint(folder / exp["script"])
        for want in exp["lint"]:
            match = [f for f in findings if f.code == want["code"] and f.line == want["line"]]
            assert match and match[0].problem.startswith(want["problem"]), (match, want)
            assert match[0].file == str(folder / exp["script"])


def test_commented_isql_is_not_attached_to_its_sql_file():
    folder = EXAMPLES / "17-never-runs-isql"
    a = analyze_script(folder / "sybase_invdb_backup")
    assert a.isql_calls == [] and a.statements == [] and a.sql_files == []
    assert a.commented_isql_lines == [12]


def test_prose_about_isql_in_a_comment_is_not_a_commented_isql_line():
    a = analyze_script(EXAMPLES / "07-restore-file-stripes" / "load_salesdb_test.sh")
    assert a.commented_isql_lines == []
