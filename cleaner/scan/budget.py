"""The flag budget: how many films each detector would flag at stricter thresholds, and what each costs in recall.

A user who finds too many flags to review can read off a threshold (``--threshold NAME=VALUE``) and know what it
costs: the share of the detector's validation artefacts it would still find (from the bundle's ``recall_curve``;
unknown for bundles trained before it was recorded)."""
from __future__ import annotations

from detectors.calibration import recall_at, stricter_thresholds


class FlagBudget:
    """Counts, over the readable films of a scan, the flags of each detector at its threshold and at every
    stricter grid threshold."""

    def __init__(self, members):
        self.thresholds = {d.name: stricter_thresholds(d.threshold) for d in members}
        self.curves = {d.name: ((d.detector.info.get("metrics") or {}).get("validation") or {}).get("recall_curve")
                       for d in members}
        self.counts = {name: [0] * len(ts) for name, ts in self.thresholds.items()}

    def add(self, row: dict) -> None:
        """Count one scores.csv row (readable films only: the others have no scores)."""
        for name, ts in self.thresholds.items():
            cell = row.get(f"{name}_score")
            if not cell:
                continue
            value = float(cell)
            counts = self.counts[name]
            for i, t in enumerate(ts):
                if value >= t:
                    counts[i] += 1

    def table(self, readable: int) -> dict:
        """summary.json's ``flag_budget``: per detector, its threshold and a row per threshold."""
        return {name: {"threshold": ts[0], "rows": [
            {"threshold": t, "flagged": n, "share": round(n / readable, 6) if readable else None,
             "validation_recall": recall_at(self.curves[name], t)}
            for t, n in zip(ts, self.counts[name])]} for name, ts in self.thresholds.items()}


def format_budget(budget: dict) -> list[str]:
    """The flag budget as lines of the printed summary: ``threshold -> flagged films (validation recall)``."""
    lines = []
    for name, entry in budget.items():
        cells = [f"{row['threshold']:g} -> {row['flagged']}"
                 + ("" if row["validation_recall"] is None else f" ({row['validation_recall']:.1%} recall)")
                 for row in entry["rows"]]
        lines.append(f"  flag budget {name}: " + ", ".join(cells))
    return lines
