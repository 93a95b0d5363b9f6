"""The review page itself: one offline HTML file (``review/index.html``) from the package's template,
stylesheet and script (``cleaner/review/assets/``), with the flagged films as inline JSON."""
from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template

from cleaner.scan.folder import ScanOutput, as_float, find_review_copy, reason_folder
from cleaner.scan.orientation import TURN_COLUMN

#: cards in the page's DOM at once (one page of the filtered list): what keeps 20,000 flagged films fast
PAGE_SIZE = 120


def asset(name: str) -> str:
    """A file of ``cleaner/review/assets`` (the page's HTML template, CSS and JS) as text."""
    return resources.files("cleaner.review").joinpath("assets", name).read_text(encoding="utf-8")


def section(scan: ScanOutput, reason: str, images: dict, review: Path, scores_by_path: dict) -> dict:
    """One reason's films as the page shows them: detector films by score (highest first), rule films by age."""
    det = scan.detector_for(reason)
    folder = reason_folder(reason)
    items = []
    for row in scan.flagged(reason).to_dict("records"):
        rel = row["path"]
        entry = images[rel]
        full_row = entry["row"]
        copy = find_review_copy(review, folder, rel)
        srow = scores_by_path.get(rel, {})
        items.append({
            "path": rel,
            "score": as_float(full_row.get(f"{det['name']}_score")) if det else None,
            "age": as_float(full_row.get("age_years")),
            "view": srow.get("view_position", ""),
            "turn": srow.get(TURN_COLUMN, ""),
            "sex": srow.get("sex", ""),
            "reasons": entry["reasons"],
            "thumb": entry.get("thumb"),
            "overlay": entry.get("overlays", {}).get(reason),
            "saliency": entry.get("saliency_method", {}).get(reason),
            "full": copy.relative_to(review).as_posix() if copy is not None else entry.get("full"),
            "error": entry.get("error", ""),
        })
    if det:
        items.sort(key=lambda it: (-(it["score"] if it["score"] is not None else -1), it["path"]))
    else:  # rule-based reasons (age): youngest first
        items.sort(key=lambda it: (it["age"] if it["age"] is not None else 1e9, it["path"]))
    return {
        "reason": reason, "folder": folder, "detector": det["name"] if det else None,
        "version": det.get("version", "") if det else "", "threshold": as_float(det["threshold"]) if det else None,
        "items": items,
    }


def _json_for_script(data) -> str:
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\!--")


def flag_budget_html(summary: dict) -> str:
    """The scan's flag budget (``summary["flag_budget"]``: per detector, how many films each threshold would
    flag and its recall on the bundle's validation set) as tables, the row nearest the threshold in use marked;
    empty when the scan has none. Malformed entries are left out, never fatal."""
    budget = summary.get("flag_budget")
    if not isinstance(budget, dict):
        return ""
    tables = [_budget_table(name, spec) for name, spec in budget.items() if isinstance(spec, dict)]
    tables = [t for t in tables if t]
    if not tables:
        return ""
    return ('<details id="flag-budget" open><summary>Flag budget: how many films each threshold would flag</summary>'
            "<p>Counted on this scan's films; recall on the bundle's validation set (— where unknown). The marked row "
            "is the threshold this scan used.</p>" + "".join(tables) + "</details>")


def _budget_table(name: str, spec: dict) -> str:
    rows = [r for r in spec.get("rows") or [] if isinstance(r, dict) and as_float(r.get("threshold")) is not None]
    if not rows:
        return ""
    current = as_float(spec.get("threshold"))
    marked = min(rows, key=lambda r: abs(as_float(r["threshold"]) - current)) if current is not None else None

    def cell(value, fmt):
        v = as_float(value)
        return "—" if v is None else fmt.format(v)

    body = "".join(
        f'<tr{" class=current" if r is marked else ""}><td>{cell(r["threshold"], "{:.3f}")}</td>'
        f'<td>{cell(r.get("flagged"), "{:.0f}")}</td><td>{cell(r.get("share"), "{:.2%}")}</td>'
        f'<td>{cell(r.get("validation_recall"), "{:.3f}")}</td></tr>' for r in rows)
    return (f"<h3>{html.escape(str(name))}: threshold in use {cell(current, '{:.3f}')}</h3><table><tr><th>threshold</th>"
            f"<th>flagged</th><th>share of readable films</th><th>validation recall</th></tr>{body}</table>")


def render_page(scan: ScanOutput, sections: list[dict], notes: list[str]) -> str:
    """The self-contained page: no network, no server. The data is inline JSON; the script shows one page
    (``PAGE_SIZE`` cards) of the filtered list at a time, thumbnails lazy-loaded."""
    s = scan.summary
    esc = lambda v: html.escape(str(v))  # noqa: E731
    det_rows = "".join(
        f"<tr><td>{esc(r.get('name', ''))}</td><td>{esc(r.get('kind', ''))}</td>"
        f"<td><code>{esc(r.get('version', ''))}</code></td><td>{esc(r.get('threshold', ''))}</td>"
        f"<td>{esc(r.get('threshold_source', ''))}</td></tr>"
        for r in scan.detectors.to_dict("records")
    )
    versions = ",".join(sorted(str(v) for v in scan.detectors.get("version", [])))
    # where the browser keeps the decisions: the same after a resumed or extended scan (whose start time is new),
    # so a rebuilt page shows the decisions made on the last one; the scan-start key is read once, for pages
    # built before
    data = {"scan_id": f"{s.get('archive', '')}|{Path(scan.root).resolve()}|{versions}",
            "legacy_id": f"{s.get('archive', '')}|{s.get('started', '')}", "page_size": PAGE_SIZE, "sections": sections}
    note_html = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return Template(asset("page.html")).substitute(
        title=esc(f"cxclean review: {Path(str(s.get('archive', ''))).name}"), archive=esc(s.get("archive", "")),
        files=esc(s.get("files", "")), ok=esc(s.get("ok", "")), errors=esc(s.get("errors", "")),
        excluded=esc(s.get("excluded", "")), generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        det_rows=det_rows, budget=flag_budget_html(s),
        notes=f"<details><summary>{len(notes)} warning(s) while building</summary><ul>{note_html}</ul></details>"
        if notes else "",
        data=_json_for_script(data), css=asset("page.css"), js=asset("page.js"),
    )
