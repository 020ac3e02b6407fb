"""`sybar` start-up imports only what the command runs (benchmark issue 7).

Structural checks in a fresh interpreter: building the parser, `--version`,
`--help` and `list --help` load none of the heavy modules (aiohttp, zstandard,
cryptography, the bphdb script parser); `sybar-isql -v` loads no TDS client.
No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("aiohttp", "zstandard", "cryptography", "engine.bphdb", "engine.control.client", "engine.archive",
         "engine.daemon", "asyncio")

PROBE = """
import contextlib, io, json, sys
import engine.cli
argv = json.loads(sys.argv[1])
out = io.StringIO()
code = None
with contextlib.redirect_stdout(out):
    if argv == ["parser"]:
        engine.cli.build_parser()
    else:
        try:
            code = engine.cli.main(argv)
        except SystemExit as e:
            code = e.code
heavy = json.loads(sys.argv[2])
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
print(json.dumps({"code": code, "out": out.getvalue(), "loaded": loaded}))
"""


def _probe(*argv: str) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(argv)), json.dumps(HEAVY)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def test_parser_version_and_help_load_no_heavy_module():
    results = {}
    for argv in (["parser"], ["--version"], ["--help"], ["list", "--help"], ["key", "--help"]):
        result = results[" ".join(argv)] = _probe(*argv)
        assert result["loaded"] == [], f"sybar {' '.join(argv)} imported {result['loaded']}"
        if argv != ["parser"]:
            assert result["code"] == 0, (argv, result)
    assert results["--version"]["out"].startswith("sybar ")
    help_text = results["--help"]["out"]
    for command in ("serve", "backup", "restore", "list", "verify", "jobs", "cleanup", "lint", "expire",
                    "catalog", "key", "password", "isql", "gui", "demo"):
        assert f"    {command}" in help_text, command
    list_help = results["list --help"]["out"]
    for flag in ("--home", "--json", "--database", "--since", "--until", "--type", "--keyword", "--limit"):
        assert flag in list_help, flag


def test_lint_runs_without_the_control_client(tmp_path):
    """A command loads its own modules when it runs, and only those: lint needs no aiohttp."""
    script = tmp_path / "none.sh"
    result = _probe("lint", str(script))
    assert result["code"] == 1  # the missing script is an error finding
    assert "engine.bphdb" in result["loaded"] and "engine.bphdb.lint" in result["loaded"]
    assert not any(m.startswith(("aiohttp", "engine.control.client")) for m in result["loaded"]), result["loaded"]


def test_isql_version_loads_no_tds_client():
    code = ("import sys, runpy; sys.argv = ['sybar-isql', '-v']\n"
            "from engine.isql.main import main\n"
            "rc = main(['-v'])\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('engine.tds', 'keyring', 'asyncio')))\n"
            "print(rc, bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "sybar-isql" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "0 []", r.stdout
