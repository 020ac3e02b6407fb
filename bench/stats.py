"""The harness's arithmetic: medians, ranges, ratios, targets and the results table.

Pure functions on timings (seconds) so tests can check them on synthetic data.
A ratio is peer median / sybar median: above 1 means sybar is faster.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field


def median(values: Iterable[float]) -> float:
    vals = list(values)
    if not vals:
        return math.nan
    return statistics.median(vals)


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation between closest ranks."""
    vals = sorted(values)
    if not vals:
        return math.nan
    if len(vals) == 1:
        return vals[0]
    k = (len(vals) - 1) * p / 100.0
    lo = math.floor(k)
    hi = math.ceil(k)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


def ratio(peer: float, ours: float) -> float:
    """peer / ours; nan where either is missing or ours is zero."""
    if ours is None or peer is None or math.isnan(ours) or math.isnan(peer) or ours <= 0:
        return math.nan
    return peer / ours


def alternate(names: list[str], runs: int) -> list[tuple[int, str]]:
    """The run order A B C A B C ...: (run index, name) pairs."""
    return [(i, n) for i in range(runs) for n in names]


@dataclass
class Row:
    """One measured line of the table."""

    case: str
    subject: str  # what ran: "sybar", "restic backup", "sybar 4 stripes", ...
    values: list[float] = field(default_factory=list)
    unit: str = "s"
    baseline: str | None = None  # subject whose median is the ratio's denominator
    ratio_label: str = ""  # what the ratio means, e.g. "restic/sybar"
    target: float | None = None  # the ratio (or value) the issue requires
    target_kind: str = "ratio>="  # "ratio>=" | "value<" | "info"
    target_text: str = ""
    note: str = ""
    error: str | None = None

    @property
    def median(self) -> float:
        return median(self.values)

    @property
    def lo(self) -> float:
        return min(self.values) if self.values else math.nan

    @property
    def hi(self) -> float:
        return max(self.values) if self.values else math.nan


def compute_ratios(rows: list[Row]) -> dict[int, float]:
    """For each row index with a baseline: baseline-relative ratio.

    For rows whose baseline is sybar, ratio = row median / sybar median
    (peer time / sybar time). For rows that ARE sybar variants with a baseline
    (stripes: "sybar 1 stripe"), ratio = baseline median / row median, the speedup.
    """
    by_key = {(r.case, r.subject): r for r in rows}
    out: dict[int, float] = {}
    for i, r in enumerate(rows):
        if not r.baseline:
            continue
        base = by_key.get((r.case, r.baseline))
        if base is None:
            out[i] = math.nan
            continue
        if r.subject.startswith("sybar"):
            out[i] = ratio(base.median, r.median)  # speedup of this variant over the baseline
        else:
            out[i] = ratio(r.median, base.median)  # peer / sybar
    return out


def target_met(row: Row, ratio_value: float | None) -> bool | None:
    """True/False when the row has a target; None when it has none or nothing was measured."""
    if row.target is None or row.target_kind == "info" or row.error:
        return None
    if row.target_kind == "ratio>=":
        if ratio_value is None or math.isnan(ratio_value):
            return None
        return ratio_value >= row.target
    if row.target_kind == "value<":
        if not row.values:
            return None
        return row.median < row.target
    return None


def fmt_num(v: float | None, unit: str = "s") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if unit == "s":
        return f"{v:.2f}"
    if unit == "ms":
        return f"{v:.1f}"
    if unit == "MB":
        return f"{v:.0f}"
    return f"{v:.3g}"


def render_markdown(rows: list[Row]) -> str:
    ratios = compute_ratios(rows)
    lines = [
        "| case | subject | median | min–max | unit | ratio | target | met |",
        "|---|---|---:|---:|---|---:|---|---|",
    ]
    for i, r in enumerate(rows):
        rv = ratios.get(i)
        met = target_met(r, rv)
        met_s = "yes" if met is True else "**no**" if met is False else ""
        if r.error:
            med = "error"
            rng = r.error.replace("|", "/")[:80]
        else:
            med = fmt_num(r.median, r.unit)
            rng = f"{fmt_num(r.lo, r.unit)}–{fmt_num(r.hi, r.unit)}" if len(r.values) > 1 else ""
        ratio_s = "" if rv is None else (f"{rv:.2f}× {r.ratio_label}".strip() if not math.isnan(rv) else "–")
        subject = r.subject + (f" ({r.note})" if r.note else "")
        lines.append(f"| {r.case} | {subject} | {med} | {rng} | {r.unit} | {ratio_s} | {r.target_text} | {met_s} |")
    return "\n".join(lines) + "\n"


def rows_to_json(rows: list[Row]) -> list[dict]:
    ratios = compute_ratios(rows)
    out = []
    for i, r in enumerate(rows):
        d = asdict(r)
        rv = ratios.get(i)
        d.update(
            median=None if math.isnan(r.median) else r.median,
            min=None if math.isnan(r.lo) else r.lo,
            max=None if math.isnan(r.hi) else r.hi,
            ratio=None if rv is None or math.isnan(rv) else rv,
            met=target_met(r, rv),
        )
        out.append(d)
    return out
