"""``cxclean report``: is the cleaning biased? Exclusion rates per reason broken down by age band,
sex, view and site (top-level folder), with counts, so a detector that over-calls one kind of
patient is visible at a glance before the excluded films are thrown away.

Denominators are the images that were read (status ok); unreadable files are counted per group
separately. When ``review apply`` has run, the overturned (false positive) counts per group are
added, the most direct sign of a detector that over-calls a group.
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from cleaner.scan.folder import (EXCLUSIONS_FINAL_FILE, REPORT_DIR, REPORT_PAGE, ScanOutput, load_scan_output,
                                 split_reasons, write_frame)

AGE_BANDS = [(0, 10, "<10"), (10, 18, "10-17"), (18, 40, "18-39"), (40, 60, "40-59"), (60, 80, "60-79"), (80, 1e9, "80+")]
UNKNOWN = "unknown"
DIMENSIONS = {"age_band": "age band", "sex": "sex", "view": "view", "site": "site (top-level folder)"}


def age_band(value) -> str:
    try:
        age = float(value)
    except (TypeError, ValueError):
        return UNKNOWN
    if not np.isfinite(age) or age < 0:
        return UNKNOWN
    for lo, hi, label in AGE_BANDS:
        if lo <= age < hi:
            return label
    return UNKNOWN


def _label(value) -> str:
    v = str(value or "").strip().upper()
    return v if v else UNKNOWN


def site_of(path: str) -> str:
    parts = str(path).split("/")
    return parts[0] if len(parts) > 1 else "(root)"


def group_columns(scores: pd.DataFrame) -> pd.DataFrame:
    """The grouping value of every scores.csv row for each breakdown dimension."""
    col = lambda name: scores[name] if name in scores else pd.Series([""] * len(scores), index=scores.index)  # noqa: E731
    return pd.DataFrame({
        "age_band": col("age_years").map(age_band),
        "sex": col("sex").map(_label),
        "view": col("view_position").map(_label),
        "site": scores["path"].map(site_of),
    }, index=scores.index)


def _group_order(dimension: str, values) -> list[str]:
    values = set(values)
    if dimension == "age_band":
        order = [b[2] for b in AGE_BANDS] + [UNKNOWN]
        return [v for v in order if v in values]
    return sorted(v for v in values if v != UNKNOWN) + ([UNKNOWN] if UNKNOWN in values else [])


def bias_tables(scan: ScanOutput, decisions: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """One table per dimension: group, images (read), read_errors, excluded, excluded_rate, and
    ``<reason>`` / ``<reason>_rate`` for each reason (plus ``overturned`` when decisions are given);
    a final ``all`` row gives the overall figures."""
    scores = scan.scores
    groups = group_columns(scores)
    ok = scores["status"] == "ok"
    excluded = scores["excluded"].astype(str) == "True"
    reasons = scan.reasons()
    has = {r: scores["reasons"].map(lambda v, r=r: r in split_reasons(v)) for r in reasons}
    overturned = None
    if decisions is not None and "decision" in decisions:
        over_paths = set(decisions.loc[decisions["decision"] == "overturned", "path"])
        overturned = scores["path"].isin(over_paths)
    tables = {}
    for dim in DIMENSIONS:
        rows = []
        for g in _group_order(dim, groups[dim]) + ["all"]:
            sel = (groups[dim] == g) if g != "all" else pd.Series(True, index=scores.index)
            n = int((sel & ok).sum())
            row = {"group": g, "images": n, "read_errors": int((sel & ~ok).sum()),
                   "excluded": int((sel & ok & excluded).sum())}
            row["excluded_rate"] = row["excluded"] / n if n else float("nan")
            for r in reasons:
                k = int((sel & ok & has[r]).sum())
                row[r] = k
                row[f"{r}_rate"] = k / n if n else float("nan")
            if overturned is not None:
                row["overturned"] = int((sel & ok & overturned).sum())
            rows.append(row)
        tables[dim] = pd.DataFrame(rows)
    return tables


def draw_chart(table: pd.DataFrame, reasons: list[str], title: str, path: Path) -> Path:
    """Grouped bars: exclusion rate per reason for each group, with the group size in the label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    body = table[table["group"] != "all"]
    overall = table[table["group"] == "all"].iloc[0]
    series = ["excluded"] + reasons
    labels = [f"{g}\n(n={n})" for g, n in zip(body["group"], body["images"])]
    x = np.arange(len(body))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(body) * max(1, len(series)) * 0.45 + 2), 4.2))
    cmap = plt.get_cmap("tab10")
    for i, s in enumerate(series):
        rates = body[f"{s}_rate"].to_numpy(dtype=float) * 100
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, np.nan_to_num(rates), width,
                      label=("any reason" if s == "excluded" else s), color=cmap(i % 10))
        for b, k in zip(bars, body[s]):
            if k:
                ax.annotate(str(k), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=7)
        ax.axhline(float(overall[f"{s}_rate"]) * 100, color=cmap(i % 10), linestyle=":", linewidth=1)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("excluded (% of images read)")
    ax.set_title(f"Exclusion rate by {title} (dotted: overall; numbers: images)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@dataclass
class ReportResult:
    page: Path
    tables: dict
    charts: list = field(default_factory=list)
    n_images: int = 0


def _cell(k: int, rate: float, top: float, overall: float) -> str:
    if not np.isfinite(rate):
        return "<td>–</td>"
    alpha = 0.0 if top <= 0 else min(1.0, rate / top) * 0.7
    skew = " ▲" if overall > 0 and rate >= 2 * overall and k >= 2 else ""
    return f'<td style="background:rgba(220,60,40,{alpha:.2f})">{k} ({rate * 100:.1f}%){skew}</td>'


def render_report(scan: ScanOutput, tables: dict, charts: dict, reasons: list[str]) -> str:
    s = scan.summary
    parts = []
    for dim, table in tables.items():
        series = ["excluded"] + reasons
        head = "".join(f"<th>{html.escape('any reason' if c == 'excluded' else c)}</th>" for c in series)
        extra = "<th>overturned</th>" if "overturned" in table else ""
        body = []
        overall = table[table["group"] == "all"].iloc[0]
        for _, row in table.iterrows():
            cells = "".join(
                _cell(int(row[c]), float(row[f"{c}_rate"]),
                      float(np.nanmax(table[f"{c}_rate"].to_numpy(dtype=float))) if table[f"{c}_rate"].notna().any() else 0,
                      float(overall[f"{c}_rate"]))
                for c in series)
            over = f"<td>{int(row['overturned'])}</td>" if "overturned" in table else ""
            cls = ' class="all"' if row["group"] == "all" else ""
            body.append(f"<tr{cls}><td>{html.escape(str(row['group']))}</td><td>{int(row['images'])}</td>"
                        f"<td>{int(row['read_errors'])}</td>{cells}{over}</tr>")
        chart = f'<img src="{html.escape(charts[dim])}" alt="chart by {dim}">' if dim in charts else ""
        parts.append(f"<h2>By {html.escape(DIMENSIONS[dim])}</h2><table><tr><th>group</th><th>images read</th>"
                     f"<th>unreadable</th>{head}{extra}</tr>{''.join(body)}</table>{chart}")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>cxclean bias report</title>
<style>body{{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#222}} table{{border-collapse:collapse;margin:8px 0}}
td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}} td:first-child{{text-align:left}}
tr.all td{{font-weight:600;border-top:2px solid #444}} img{{max-width:100%;margin:6px 0 18px}}</style></head><body>
<h1>cxclean bias report</h1>
<p>archive <code>{html.escape(str(s.get('archive', '')))}</code>: {s.get('files', '')} files, {s.get('ok', '')} read,
{s.get('errors', '')} unreadable, {s.get('excluded', '')} excluded (min age {html.escape(str(s.get('min_age', '')))},
unknown age: {html.escape(str(s.get('unknown_age', '')))}). Report built {generated}.</p>
<p>Each cell: excluded images (share of the group's images that were read). Redder = higher rate within the
column; ▲ = at least twice the overall rate. Small groups give noisy rates: read the counts.</p>
{''.join(parts)}
</body></html>
"""


def write_report(scan_out: str | os.PathLike, charts: bool = True) -> ReportResult:
    """Write ``SCAN_OUT/report.html``, ``SCAN_OUT/report/bias_<dimension>.csv`` and the PNG charts."""
    scan = load_scan_output(scan_out)
    decisions = None
    final = scan.root / EXCLUSIONS_FINAL_FILE
    if final.is_file():
        decisions = pd.read_csv(final, dtype=str, keep_default_na=False)
    tables = bias_tables(scan, decisions)
    folder = scan.root / REPORT_DIR
    folder.mkdir(exist_ok=True)
    reasons = scan.reasons()
    chart_links, chart_paths = {}, []
    for dim, table in tables.items():
        write_frame(folder / f"bias_{dim}.csv", table)
        if charts:
            chart_paths.append(draw_chart(table, reasons, DIMENSIONS[dim], folder / f"{dim}.png"))
            chart_links[dim] = f"{REPORT_DIR}/{dim}.png"
    page = scan.root / REPORT_PAGE
    page.write_text(render_report(scan, tables, chart_links, reasons), encoding="utf-8")
    return ReportResult(page, tables, chart_paths, int((scan.scores["status"] == "ok").sum()))
