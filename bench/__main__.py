"""python -m bench [--size MIB] [--runs N] [--cases backup,restore,stripes,rss,catalog] [--quick]

Runs sybar beside restic, borg and zstd on the same test database, alternating
them run by run, and prints a table of medians, min–max and ratios (peer time /
sybar time: above 1 means sybar is faster), also written to
bench/results/latest.md and latest.json with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ALL_CASES = ["backup", "restore", "stripes", "encryption", "rss", "catalog", "gui_stall", "gui_launch"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n", 1)[1])
    p.add_argument("--size", type=int, default=None, help="test database size in MiB (default 1024)")
    p.add_argument("--runs", type=int, default=None, help="runs of each subject (default 3)")
    p.add_argument("--cases", default=",".join(ALL_CASES), help=f"comma-separated, of {','.join(ALL_CASES)}")
    p.add_argument("--quick", action="store_true", help="smoke check: --size 64 --runs 1")
    p.add_argument("--catalog-images", type=int, default=1_000_000, help="images in the catalog case")
    p.add_argument("--workdir", type=Path, default=None, help="where the temp home and repos go (default $TMPDIR)")
    p.add_argument("--db", type=Path, default=None, help="use this test database instead of making one")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--no-install", action="store_true", help="never apt-get install the peers")
    p.add_argument("--results", type=Path, default=Path(__file__).with_name("results"))
    a = p.parse_args(argv)
    a.size = a.size or (64 if a.quick else 1024)
    a.runs = a.runs or (1 if a.quick else 3)
    a.cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    bad = [c for c in a.cases if c not in ALL_CASES]
    if bad:
        p.error(f"unknown case(s) {', '.join(bad)}; choose from {', '.join(ALL_CASES)}")
    return a


def reexec_with_keyring(argv: list[str]) -> None:
    """bphdb feeds sa's password to isql from the OS keyring: run under a private D-Bus session and keyring."""
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS") or os.environ.get("SYBAR_BENCH_REEXEC"):
        return
    from bench.env import REPO

    if not shutil.which("dbus-run-session") or not (REPO / "tools" / "with-keyring").exists():
        print("bench: no dbus-run-session or tools/with-keyring: the keyring may be unavailable", file=sys.stderr)
        return
    os.environ["SYBAR_BENCH_REEXEC"] = "1"
    os.chdir(REPO)
    os.execvp("dbus-run-session", ["dbus-run-session", "--", str(REPO / "tools" / "with-keyring"),
                                   sys.executable, "-m", "bench", *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    reexec_with_keyring(argv)

    from bench import cases as C
    from bench.env import SybarHome, ensure_peers, log, machine, make_db
    from bench.stats import render_markdown, rows_to_json

    started = time.time()
    peers = ensure_peers(install=not args.no_install)
    work = Path(tempfile.mkdtemp(prefix="sybar-bench-", dir=args.workdir))
    log(f"work directory {work}")
    home = SybarHome(work / "home")
    rows = []
    try:
        source = args.db if args.db else make_db(work / "testdb.db", args.size)
        size_mib = source.stat().st_size / 2**20
        home.start()
        home.keep_password_in_keyring()
        db_file = home.place_database("mydb", source)
        if not args.db:
            source.unlink()  # the placed copy is the one every subject reads
        log(f"sybar serve running on {home.root}; mydb is {size_mib:.0f} MiB")
        ctx = C.Ctx(home, work, db_file, args.runs, peers, args.quick)
        for case in ALL_CASES:
            if case not in args.cases:
                continue
            try:
                if case == "catalog":
                    rows += C.case_catalog(ctx, args.catalog_images)
                else:
                    rows += getattr(C, f"case_{case}")(ctx)
            except Exception as e:  # noqa: BLE001 - one case's failure must not lose the others
                log(f"case {case} FAILED: {e}")
                from bench.stats import Row

                rows.append(Row(case=case, subject="sybar", error=str(e).splitlines()[0][:200]))
    finally:
        home.stop()
        desc = machine(work)
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    table = render_markdown(rows)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
    header = (
        f"# sybar benchmarks\n\n{when}; database {size_mib:.0f} MiB; {args.runs} run(s) each, alternating;"
        f" cases {', '.join(args.cases)}; took {time.time() - started:.0f} s.\n"
        "Ratios: peer median / sybar median (above 1: sybar is faster); stripes: speedup over 1 stripe.\n"
        "Page cache warm (every subject reads the same file); peers' times include a final `sync`.\n\n"
    )
    mach = "\n## Machine\n\n" + "\n".join(f"- {k}: {v}" for k, v in desc.items()) + "\n"
    md = header + table + mach
    print(md)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "latest.md").write_text(md)
    (args.results / "latest.json").write_text(json.dumps({
        "started": when, "size_mib": round(size_mib, 1), "runs": args.runs, "cases": args.cases,
        "quick": args.quick, "machine": desc, "rows": rows_to_json(rows),
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
