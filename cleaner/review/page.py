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

#: thumbnails per page of a section
PAGE_SIZE = 200


def asset(name: str) -> str:
    """A file of ``cleaner/review/assets`` (the page's HTML template, CSS and JS) as text."""
    return resources.files("cleaner.review").joinpath("assets", name).read_text(encoding="utf-8")


def section(scan: ScanOutput, reason: str, images: dict, review: Path, scores_by_path: dict) -> dict:
    """One reason's films as the page shows them: detector films by score (highest first), rule films by age."""
    det = scan.detector_for(reason)
    folder = reason_folder(reason)
    items = []
    for _, row in scan.flagged(reason).iterrows():
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


def render_page(scan: ScanOutput, sections: list[dict], notes: list[str]) -> str:
    """The self-contained page: no network, no server. The data is inline JSON, the script renders
    it a page (``PAGE_SIZE`` images) at a time with lazy-loaded thumbnails."""
    s = scan.summary
    esc = lambda v: html.escape(str(v))  # noqa: E731
    det_rows = "".join(
        f"<tr><td>{esc(r.get('name', ''))}</td><td>{esc(r.get('kind', ''))}</td>"
        f"<td><code>{esc(r.get('version', ''))}</code></td><td>{esc(r.get('threshold', ''))}</td>"
        f"<td>{esc(r.get('threshold_source', ''))}</td></tr>"
        for r in scan.detectors.to_dict("records")
    )
    data = {"scan_id": f"{s.get('archive', '')}|{s.get('started', '')}", "page_size": PAGE_SIZE, "sections": sections}
    nav = " · ".join(
        f'<a href="#sec-{esc(sec["folder"])}">{esc(sec["reason"])} ({len(sec["items"])})</a>' for sec in sections
    ) or "nothing was flagged"
    note_html = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return Template(asset("page.html")).substitute(
        title=esc(f"cxclean review: {Path(str(s.get('archive', ''))).name}"), archive=esc(s.get("archive", "")),
        files=s.get("files", ""), ok=s.get("ok", ""), errors=s.get("errors", ""), excluded=s.get("excluded", ""),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), det_rows=det_rows, nav=nav,
        notes=f"<details><summary>{len(notes)} warning(s) while building</summary><ul>{note_html}</ul></details>"
        if notes else "",
        data=_json_for_script(data), css=asset("page.css"), js=asset("page.js"),
    )
