"""`sybar lint SCRIPT...`: the Sybase script linter on the command line.

Prints one ``FILE:LINE: SEVERITY [CODE] problem`` line per finding (line 0 =
the whole file), or with ``--json`` one JSON document: a list of findings, each
``{"file", "line", "code", "severity", "problem"}``.

Exit status: 0 when no finding is an error (warnings alone do not fail, unless
``--strict``), 1 when any error is found (with ``--strict``: any finding at
all), 2 on usage errors (argparse). ``--databases db1,db2`` names the databases
the dataserver has, which turns on the ``unknown-database`` check. ``--home`` is
accepted for symmetry with the other commands and not used yet.
"""

from __future__ import annotations

import json
import sys


def add_parser(sub, add_home) -> None:
    p = sub.add_parser("lint", help="check Sybase backup/restore scripts (missing SQL file, -P, stripes...)",
                       description="Check Sybase backup and restore scripts without running them. Exit 0: no "
                                   "error (warnings allowed), 1: errors found (--strict: any finding), 2: usage.")
    add_home(p)
    p.add_argument("scripts", nargs="+", metavar="SCRIPT")
    p.add_argument("--json", action="store_true", help="print one JSON document (a list of findings)")
    p.add_argument("--databases", metavar="DB1,DB2",
                   help="the databases the dataserver has: names outside this list are reported")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")


def run(args) -> int:
    from engine.bphdb.lint import lint  # here, not at import: building the parser must stay quick

    known = None
    if getattr(args, "databases", None) is not None:
        known = {d.strip() for d in args.databases.split(",") if d.strip()}
    findings = []
    for script in args.scripts:
        findings.extend(lint(script, known_databases=known))
    if args.json:
        json.dump([f.to_dict() for f in findings], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for f in findings:
            print(f)
    if any(f.severity == "error" for f in findings):
        return 1
    if getattr(args, "strict", False) and findings:
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (tests; the lead wires add_parser/run into engine/cli.py)."""
    import argparse

    parser = argparse.ArgumentParser(prog="sybar")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_home(p):
        p.add_argument("--home", metavar="DIR", help="sybar home")

    add_parser(sub, add_home)
    args = parser.parse_args(["lint", *(sys.argv[1:] if argv is None else argv)])
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
