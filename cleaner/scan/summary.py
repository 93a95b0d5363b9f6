"""The end of a scan: the journal streamed into the final CSVs (atomic, walker order, no duplicates), the
counts of ``summary.json``, and the summary a person reads."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterator

from cleaner.io.walker import WalkStats
from cleaner.scan import folder as so
from cleaner.scan.budget import format_budget
from cleaner.scan.journal import Journal
from cleaner.scan.targets import ScanTarget

#: summary.json's leading keys, in this order (the rest follow as they come)
SUMMARY_ORDER = (
    "archive", "root", "out", "cxclean_version", "started", "finished", "seconds", "files", "ok", "errors", "excluded",
    "excluded_per_reason", "skipped", "images_per_second", "min_age", "unknown_age", "unknown_age_count",
    "detectors",
)


def _journal_rows_in_walk_order(target: ScanTarget, journal: Journal) -> Iterator[dict]:
    """Fallback when the archive changed between runs: the journal's rows in the current walk's order."""
    by_path: dict[str, dict] = {}
    for row in journal.iter_rows():
        by_path.setdefault(row["path"], row)
    for rel, _ in target.iter_files(WalkStats()):
        if rel in by_path:
            yield by_path[rel]


def finalise(target: ScanTarget, out: Path, journal: Journal, columns: list[str], names: list[str],
             det_rows: list[dict], stats: WalkStats, needs_reorder: bool, turn: bool = False, budget=None) -> dict:
    """Stream the journal into the final CSVs (atomic, walker order, no duplicates) and count (and, given a
    ``budget.FlagBudget``, count its flags too)."""
    rows = _journal_rows_in_walk_order(target, journal) if needs_reorder else journal.iter_rows()
    scores = so.AtomicCsv(out / so.SCORES_FILE, columns)
    exclusions = so.AtomicCsv(out / so.EXCLUSIONS_FILE, so.exclusion_columns(names, turn))
    errors = so.AtomicCsv(out / so.ERRORS_FILE, so.ERROR_COLUMNS)
    counts = Counter()
    per_reason = Counter()
    seen = set()
    try:
        for row in rows:
            if row["path"] in seen:
                continue
            seen.add(row["path"])
            scores.write(row)
            counts["files"] += 1
            if row["status"] == "ok":
                counts["ok"] += 1
                if budget is not None:
                    budget.add(row)
                if not row["age_years"]:
                    counts["unknown_age"] += 1
            else:
                counts["errors"] += 1
                errors.write(row)
            if row["excluded"] == "True":
                counts["excluded"] += 1
                per_reason.update(row["reasons"].split(";"))
                exclusions.write(row)
        for folder, reason in stats.folder_errors:
            try:
                shown = Path(folder).relative_to(target.root).as_posix()
            except ValueError:
                shown = folder
            errors.write({"path": so.text_path(shown), "error": so.text_path(reason)})
    except BaseException:
        for f in (scores, exclusions, errors):
            f.abort()
        raise
    for f in (scores, exclusions, errors):
        f.commit()
    so.write_csv(out / so.DETECTORS_FILE, so.DETECTOR_COLUMNS, det_rows)
    return {
        "files": counts["files"], "ok": counts["ok"], "errors": counts["errors"], "excluded": counts["excluded"],
        "excluded_per_reason": dict(sorted(per_reason.items())), "skipped": dict(sorted(stats.skipped.items())),
        "unknown_age_count": counts["unknown_age"], "folder_errors": len(stats.folder_errors),
    }


def ordered_summary(summary: dict) -> dict:
    """``summary`` with ``SUMMARY_ORDER``'s keys first."""
    ordered = {k: summary[k] for k in SUMMARY_ORDER if k in summary}
    ordered.update({k: v for k, v in summary.items() if k not in ordered})
    return ordered


def format_summary(summary: dict) -> str:
    """The summary a person reads at the end of a scan."""
    lines = [
        f"Scanned {summary['files']} file(s) in {summary['seconds']:.1f} s "
        f"({summary.get('images_per_second') or 0:.1f} images/s this run): "
        f"{summary['ok']} ok, {summary['errors']} unreadable, {summary['excluded']} excluded.",
    ]
    for reason, n in summary["excluded_per_reason"].items():
        lines.append(f"  excluded for {reason}: {n}")
    lines += format_budget(summary.get("flag_budget") or {})
    if summary.get("min_age") is not None:
        lines.append(f"  unknown age: {summary['unknown_age_count']} ({summary['unknown_age']})")
    if summary.get("folder_errors"):
        lines.append(f"  folders that could not be read: {summary['folder_errors']} (see errors.csv)")
    if summary["skipped"]:
        lines.append("  not candidates: " + ", ".join(f"{n} {why}" for why, n in summary["skipped"].items()))
    lines.append(f"Results in {summary['out']}")
    return "\n".join(lines)
