"""The benchmark harness's arithmetic and table on synthetic timings (the benchmarks never run here)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from bench.__main__ import parse_args
from bench.env import dump_sql
from bench.stats import (
    Row,
    alternate,
    compute_ratios,
    median,
    percentile,
    ratio,
    render_markdown,
    rows_to_json,
    target_met,
)


def test_median_and_percentiles():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert math.isnan(median([]))
    values = [float(i) for i in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.5
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert abs(percentile(values, 99) - 99.01) < 1e-9
    assert percentile([7.0], 99) == 7.0


def test_ratio_is_peer_over_sybar():
    assert ratio(5.0, 2.0) == 2.5
    assert math.isnan(ratio(5.0, 0.0)) and math.isnan(ratio(math.nan, 1.0))


def test_runs_alternate():
    assert alternate(["sybar", "restic", "zstd"], 2) == [
        (0, "sybar"), (0, "restic"), (0, "zstd"), (1, "sybar"), (1, "restic"), (1, "zstd")]


def _backup_rows():
    return [
        Row("backup", "sybar", [2.0, 1.0, 3.0]),
        Row("backup", "restic backup", [6.0, 5.0, 4.0], baseline="sybar", target=2.5, target_text="≥ 2.5×"),
        Row("backup", "zstd -1 -T2", [1.0, 1.5, 2.5], baseline="sybar", target=1.0, target_text="≥ 1.0×"),
        Row("backup", "borg create", baseline="sybar", target=2.0, error="borg: not installed"),
        Row("stripes", "sybar 1 stripe", [8.0, 8.2, 7.8]),
        Row("stripes", "sybar 2 stripes", [4.0, 4.4, 4.2], baseline="sybar 1 stripe", ratio_label="speedup",
            target=1.7),
        Row("rss", "sybar", [250.0, 310.0, 280.0], unit="MB", target=300, target_kind="value<"),
        Row("catalog", "by database p99", [61.0], unit="ms", target=50, target_kind="value<"),
    ]


def test_ratios_and_targets():
    rows = _backup_rows()
    ratios = compute_ratios(rows)
    assert ratios[1] == 2.5  # restic median 5 / sybar median 2
    assert ratios[2] == 0.75  # zstd median 1.5 / 2
    assert math.isnan(ratios[3])  # borg failed: no ratio
    assert abs(ratios[5] - 8.0 / 4.2) < 1e-9  # speedup: 1-stripe median / 2-stripe median
    assert 0 not in ratios and 4 not in ratios  # baselines have no ratio
    assert target_met(rows[1], ratios[1]) is True
    assert target_met(rows[2], ratios[2]) is False
    assert target_met(rows[3], ratios[3]) is None  # errors are neither met nor missed
    assert target_met(rows[5], ratios[5]) is True
    assert target_met(rows[6], None) is True  # median 280 < 300
    assert target_met(rows[7], None) is False
    assert target_met(rows[0], None) is None


def test_markdown_table_and_json():
    rows = _backup_rows()
    md = render_markdown(rows)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| case | subject | median | min–max |")
    assert len(lines) == 2 + len(rows)
    assert "| backup | sybar | 2.00 | 1.00–3.00 | s |" in md
    restic = next(line for line in lines if "restic backup" in line)
    assert "2.50×" in restic and restic.rstrip().endswith("| yes |")
    zstd = next(line for line in lines if "zstd" in line)
    assert "0.75×" in zstd and "**no**" in zstd
    borg = next(line for line in lines if "borg" in line)
    assert "error" in borg and "not installed" in borg
    assert "1.90× speedup" in next(line for line in lines if "2 stripes" in line)
    data = json.loads(json.dumps(rows_to_json(rows)))
    assert data[1]["ratio"] == 2.5 and data[1]["met"] is True and data[1]["median"] == 5.0
    assert data[3]["ratio"] is None and data[3]["median"] is None and data[3]["error"]
    assert data[2]["min"] == 1.0 and data[2]["max"] == 2.5


def test_args_quick_and_defaults():
    a = parse_args(["--quick"])
    assert (a.size, a.runs) == (64, 1)
    b = parse_args(["--cases", "backup,restore"])
    assert (b.size, b.runs, b.cases) == (1024, 3, ["backup", "restore"])
    c = parse_args(["--quick", "--size", "128", "--runs", "2"])
    assert (c.size, c.runs) == (128, 2)
    for every in (a, parse_args([])):
        assert {"gui_stall", "gui_launch"} <= set(every.cases)  # in the default set and in --quick
    assert parse_args(["--cases", "gui_stall,gui_launch"]).cases == ["gui_stall", "gui_launch"]


def test_gui_rows_are_sybar_only_with_their_targets():
    rows = [
        Row("gui_stall", "loop turn gap p99", [24.0, 31.0, 28.0], unit="ms", target=30, target_kind="value<",
            target_text="< 30 ms"),
        Row("gui_stall", "main-thread CPU per gap p99", [9.0], unit="ms", target_kind="info"),
        Row("gui_launch", "process start → window shown", [0.8, 1.2, 0.9], target=1.0, target_kind="value<",
            target_text="< 1.0 s"),
    ]
    md = render_markdown(rows)
    assert "| gui_stall | loop turn gap p99 | 28.0 | 24.0–31.0 | ms |  | < 30 ms | yes |" in md
    assert "| gui_launch | process start → window shown | 0.90 | 0.80–1.20 | s |  | < 1.0 s | yes |" in md
    assert target_met(rows[1], None) is None
    assert [r["met"] for r in rows_to_json(rows)] == [True, None, True]


def test_the_bench_process_never_imports_qt():
    """The GUI cases run the window in a child (bench.gui_probe): the harness itself stays Qt-free."""
    code = ("import sys, bench.__main__, bench.cases, bench.gui_probe; "
            "assert not [m for m in sys.modules if m.startswith(('PySide6', 'qasync', 'gui'))], 'Qt imported'")
    r = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_dump_sql_stripes():
    sql = dump_sql("mydb", 2, 1)
    assert sql.count('"sybackup::') == 2 and sql.count("stripe on") == 1
    assert "with compression = 1" in sql and "dump database mydb" in sql
    assert dump_sql("mydb", 8, 1).count("stripe on") == 7
