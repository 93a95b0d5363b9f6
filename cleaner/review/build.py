"""``cxclean review build``: the page (and contact sheets) a person uses to check what a scan flagged.

Reads a scan output folder (the scan contract: scores.csv, exclusions.csv, detectors.csv,
summary.json, review/); never re-scores. For each flagged image it writes a thumbnail and, with
the detector that flagged it, a saliency overlay (Grad-CAM), so the reviewer sees *why*. The page
``review/index.html`` is a single offline file: inline CSS/JS, the data as inline JSON, images
as relative links; it pages through thousands of images (200 per page, lazy loading).

Decisions made on the page are exported as ``decisions.csv`` (``path,reason,decision`` where
decision is ``keep`` = false positive, or ``exclude`` = confirmed); ``cxclean review apply``
reads them back (see ``review_apply.py``).
"""
from __future__ import annotations

import hashlib
import html
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from cleaner.io.errors import ImageReadError
from cleaner.io.images import read_image
from cleaner.scan.orientation import TURN_COLUMN, quarter_turns

THUMB_SIZE = 256  # longest side of a page thumbnail / overlay, pixels
TILE_SIZE = 200  # contact sheet tile
SHEET_COLS, SHEET_ROWS = 6, 5
PAGE_SIZE = 200  # thumbnails per page on the HTML page
KEEP_FOLDER = "_keep"
ASSET_DIRS = ("_thumbs", "_overlays", "_full")


class ScanOutputError(Exception):
    """A scan output folder that cannot be read: names the folder and what is missing or wrong."""


from cleaner.scan.folder import reason_folder  # noqa: E402  the scan owns the reason -> folder mapping


# ----------------------------------------------------------------------------------------------
# Reading a scan output


@dataclass
class ScanOutput:
    """A scan output folder read back: the tables as strings (empty = unknown), as the scan wrote them."""

    root: Path
    scores: pd.DataFrame
    exclusions: pd.DataFrame
    detectors: pd.DataFrame
    summary: dict
    errors: pd.DataFrame | None = None

    @property
    def archive(self) -> Path:
        return Path(self.summary.get("archive", ""))

    @property
    def review_dir(self) -> Path:
        return self.root / "review"

    def reasons(self) -> list[str]:
        """Every exclusion reason, detector reasons first (detectors.csv order), then the rest sorted."""
        found = []
        for r in self.exclusions["reasons"]:
            for reason in split_reasons(r):
                if reason not in found:
                    found.append(reason)
        names = list(self.detectors["name"]) if len(self.detectors) else []
        return [n for n in names if n in found] + sorted(r for r in found if r not in names)

    def flagged(self, reason: str) -> pd.DataFrame:
        mask = self.exclusions["reasons"].map(lambda r: reason in split_reasons(r))
        return self.exclusions[mask]

    def detector_for(self, reason: str) -> dict | None:
        """The detectors.csv row whose name (or, failing that, kind) is the reason; None for rules like age<10."""
        for key in ("name", "kind"):
            if key in self.detectors:
                hit = self.detectors[self.detectors[key] == reason]
                if len(hit):
                    return hit.iloc[0].to_dict()
        return None


def split_reasons(value) -> list[str]:
    return [r for r in str(value or "").split(";") if r]


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise ScanOutputError(f"{path}: missing (is {path.parent} a cxclean scan output folder?)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ScanOutputError(f"{path}: cannot be read as CSV ({exc})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ScanOutputError(f"{path}: lacks column(s) {', '.join(missing)}")
    return df


def load_scan_output(root: str | os.PathLike) -> ScanOutput:
    """Read the scan output folder ``root``; ``ScanOutputError`` names what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise ScanOutputError(f"{root}: not a folder")
    summary_path = root / "summary.json"
    if not summary_path.is_file():
        raise ScanOutputError(f"{summary_path}: missing (is {root} a cxclean scan output folder?)")
    try:
        summary = json.loads(summary_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScanOutputError(f"{summary_path}: not valid JSON ({exc})") from None
    scores = _read_csv(root / "scores.csv", ["path", "status", "excluded", "reasons"])
    exclusions = _read_csv(root / "exclusions.csv", ["path", "reasons"])
    detectors = _read_csv(root / "detectors.csv", ["name", "threshold"])
    errors = _read_csv(root / "errors.csv", ["path", "error"]) if (root / "errors.csv").is_file() else None
    return ScanOutput(root, scores, exclusions, detectors, summary, errors)


def _float(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def asset_id(rel_path: str) -> str:
    """A stable, file-name-safe id for an archive path (thumbnail and overlay file names)."""
    return hashlib.sha1(rel_path.encode("utf-8")).hexdigest()[:16]


def find_review_copy(review_dir: Path, folder: str, rel: str) -> Path | None:
    """The browser-viewable copy of ``rel`` in ``review/<folder>/`` (for DICOM its PNG preview),
    also when a reviewer moved it to ``_keep/``; None if it is gone."""
    from cleaner.io.images import sniff_format

    for base in (review_dir / folder, review_dir / folder / KEEP_FOLDER):
        preview = base / (rel + ".png")
        if preview.is_file():
            return preview
        copy = base / rel
        if copy.is_file():
            try:
                if sniff_format(copy) in ("PNG", "JPEG", "BMP"):
                    return copy
            except OSError:
                pass
    return None


# ----------------------------------------------------------------------------------------------
# Image work (runs in worker processes)


def _display_pixels(path: Path) -> np.ndarray:
    return read_image(path).pixels


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)


def _thumb_array(pixels: np.ndarray, size: int) -> np.ndarray:
    im = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32))
    h, w = pixels.shape
    scale = size / max(h, w)
    if scale < 1:
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(im, dtype=np.float32), 0, 1)


def prepare_image(task: tuple) -> dict:
    """Read one flagged image once: write its thumbnail (and a full-size PNG when no review copy
    can be linked) and return the thumbnail plus the model inputs its detectors need."""
    source, fallback, thumb_path, full_path, specs = task
    from cleaner.io.preprocess import InputSpec, preprocess_all

    pixels = None
    error = None
    for cand in (source, fallback):
        if cand is None:
            continue
        try:
            pixels = _display_pixels(Path(cand))
            break
        except ImageReadError as exc:
            error = exc.reason
        except Exception as exc:  # a reader bug must not end the page build
            error = f"unexpected {type(exc).__name__}: {exc}"
    if pixels is None:
        return {"ok": False, "error": error or "no readable copy"}
    try:  # ordered_map's workers must not raise: a failure here is reported for this image only
        thumb = _thumb_array(pixels, THUMB_SIZE)
        Image.fromarray(_to_uint8(thumb)).save(thumb_path, quality=85)
        if full_path is not None:
            Image.fromarray(_to_uint8(_thumb_array(pixels, 2048))).save(full_path)
        inputs = dict(zip(specs, preprocess_all(pixels, [InputSpec.from_dict(spec) for spec in specs.values()])))
    except Exception as exc:
        return {"ok": False, "error": f"thumbnail or model input failed: {type(exc).__name__}: {exc}"}
    return {"ok": True, "thumb": thumb, "inputs": inputs}


# ----------------------------------------------------------------------------------------------
# Building the page


@dataclass
class BuildResult:
    page: Path
    sections: dict  # reason -> number of images
    images: int
    overlays: int
    contact_sheets: list
    warnings: list = field(default_factory=list)
    seconds: float = 0.0


def _load_detectors(scan: ScanOutput, reasons: list[str], warn) -> dict:
    """Detector bundles for the reasons that came from a detector: reason -> Detector."""
    loaded = {}
    for reason in reasons:
        row = scan.detector_for(reason)
        if row is None:
            continue
        bundle = Path(row.get("bundle_path") or "")
        if not row.get("bundle_path") or not bundle.exists():
            warn(f"no saliency overlays for {reason}: bundle {bundle} not found")
            continue
        try:
            from detectors.bundle import load

            det = load(bundle)
        except Exception as exc:
            warn(f"no saliency overlays for {reason}: bundle {bundle} does not load ({exc})")
            continue
        if row.get("version") and det.version != row["version"]:
            warn(f"no saliency overlays for {reason}: bundle {bundle} is {det.version}, the scan used {row['version']}")
            continue
        loaded[reason] = det
    return loaded


def build_review(scan_out: str | os.PathLike, workers: int = 1, saliency: bool = True,
                 contact_sheets: bool = True, progress: bool = True, saliency_method: str = "auto") -> BuildResult:
    """Write ``SCAN_OUT/review/index.html`` with thumbnails, overlays and contact sheets."""
    from tqdm import tqdm

    from cleaner.io.parallel import ordered_map

    t0 = time.perf_counter()
    scan = load_scan_output(scan_out)
    review = scan.review_dir
    review.mkdir(exist_ok=True)
    for d in ASSET_DIRS:
        if (review / d).is_dir():
            shutil.rmtree(review / d)
        (review / d).mkdir()
    notes: list[str] = []

    def warn(msg):
        notes.append(msg)
        print(f"warning: {msg}", file=sys.stderr)

    reasons = scan.reasons()
    detectors = _load_detectors(scan, reasons, warn) if saliency else {}

    # one entry per flagged image (an image flagged for two reasons is read once)
    images: dict[str, dict] = {}
    for reason in reasons:
        for _, row in scan.flagged(reason).iterrows():
            entry = images.setdefault(row["path"], {"reasons": [], "row": row})
            entry["reasons"].append(reason)
    specs = {name: det.info["input"] for name, det in detectors.items()}
    tasks = []
    for rel, entry in images.items():
        aid = asset_id(rel)
        entry["id"] = aid
        src = scan.archive / rel if scan.summary.get("archive") else None  # else only review copies
        copy = None
        for reason in entry["reasons"]:
            copy = copy or find_review_copy(review, reason_folder(reason), rel)
        needed = {r: specs[r] for r in entry["reasons"] if r in specs}
        # the page links the review copy; where none is viewable (TIFF, gone) it gets a PNG of its own
        full = review / "_full" / f"{aid}.png" if copy is None else None
        entry["full"] = copy.relative_to(review).as_posix() if copy is not None else f"_full/{aid}.png"
        tasks.append((str(src) if src else None, str(copy) if copy else None, str(review / "_thumbs" / f"{aid}.jpg"),
                      str(full) if full else None, needed))

    # read every image once (in parallel), then overlays batch by batch per detector
    pending: dict[str, list] = {r: [] for r in detectors}
    overlays = 0

    def flush(reason):
        nonlocal overlays
        batch = pending[reason]
        if not batch:
            return
        from detectors.saliency import detector_saliency, overlay

        det = detectors[reason]
        try:
            result = detector_saliency(det, np.stack([b[1] for b in batch]), method=saliency_method)
        except Exception as exc:
            warn(f"saliency failed for {reason} on {len(batch)} image(s): {exc}")
            pending[reason] = []
            return
        folder = review / "_overlays" / reason_folder(reason)
        folder.mkdir(parents=True, exist_ok=True)
        for i, ((rel, _x, thumb, k), heat) in enumerate(zip(batch, result.maps)):
            heat = np.rot90(heat, -k) if k else heat  # back onto the film as the thumbnail shows it
            Image.fromarray(overlay(thumb, heat)).save(folder / f"{images[rel]['id']}.jpg", quality=85)
            images[rel].setdefault("overlays", {})[reason] = f"_overlays/{reason_folder(reason)}/{images[rel]['id']}.jpg"
            method = "occlusion" if i in result.occlusion_fallback else result.method
            images[rel].setdefault("saliency_method", {})[reason] = method
            overlays += 1
        pending[reason] = []

    results = ordered_map(prepare_image, tasks, workers=workers, chunksize=4)
    bar = tqdm(total=len(tasks), desc="review page", unit="img", disable=not progress, file=sys.stderr)
    for rel, res in zip(images, results):
        bar.update(1)
        entry = images[rel]
        if not res["ok"]:
            entry["error"] = res["error"]
            warn(f"{rel}: no thumbnail ({res['error']})")
            continue
        entry["thumb"] = f"_thumbs/{entry['id']}.jpg"
        try:
            turn = quarter_turns(entry["row"].get(TURN_COLUMN)) if TURN_COLUMN in entry["row"] else 0
        except ValueError as exc:
            warn(f"{rel}: overlays drawn on the film as it lies ({exc})")
            turn = 0
        for reason, x in res["inputs"].items():
            # the scan scored a rotated film turned upright with every detector but the rotation one
            k = turn if detectors[reason].kind != "rotation" else 0
            pending[reason].append((rel, np.rot90(x, k).copy() if k else x, res["thumb"], k))
            if len(pending[reason]) >= 32:
                flush(reason)
    for reason in list(pending):
        flush(reason)
    bar.close()

    sections = []
    sheets = []
    scores_by_path = {r["path"]: r for r in scan.scores.to_dict("records")}
    for reason in reasons:
        section = _section(scan, reason, images, review, scores_by_path)
        sections.append(section)
        if contact_sheets:
            sheets += write_contact_sheets(review, reason, section["items"])
    page = review / "index.html"
    page.write_text(render_page(scan, sections, notes), encoding="utf-8")
    return BuildResult(page, {s["reason"]: len(s["items"]) for s in sections}, len(images), overlays, sheets,
                       notes, time.perf_counter() - t0)


def _section(scan: ScanOutput, reason: str, images: dict, review: Path, scores_by_path: dict) -> dict:
    det = scan.detector_for(reason)
    folder = reason_folder(reason)
    items = []
    for _, row in scan.flagged(reason).iterrows():
        rel = row["path"]
        entry = images[rel]
        full_row = entry["row"]
        score = _float(full_row.get(f"{det['name']}_score")) if det else None
        copy = find_review_copy(review, folder, rel)
        full = copy.relative_to(review).as_posix() if copy is not None else entry.get("full")
        srow = scores_by_path.get(rel, {})
        items.append({
            "path": rel,
            "score": score,
            "age": _float(full_row.get("age_years")),
            "view": srow.get("view_position", ""),
            "turn": srow.get(TURN_COLUMN, ""),
            "sex": srow.get("sex", ""),
            "reasons": entry["reasons"],
            "thumb": entry.get("thumb"),
            "overlay": entry.get("overlays", {}).get(reason),
            "saliency": entry.get("saliency_method", {}).get(reason),
            "full": full,
            "error": entry.get("error", ""),
        })
    if det:
        items.sort(key=lambda it: (-(it["score"] if it["score"] is not None else -1), it["path"]))
    else:  # rule-based reasons (age): youngest first
        items.sort(key=lambda it: (it["age"] if it["age"] is not None else 1e9, it["path"]))
    return {
        "reason": reason,
        "folder": folder,
        "detector": det["name"] if det else None,
        "version": det.get("version", "") if det else "",
        "threshold": _float(det["threshold"]) if det else None,
        "items": items,
    }


# ----------------------------------------------------------------------------------------------
# Contact sheets


def write_contact_sheets(review: Path, reason: str, items: list[dict]) -> list[Path]:
    """``review/<reason-folder>/contact_sheet_N.png``: 6 x 5 tiles per sheet, in page order, each
    captioned with its file name and score, for people who review in a file browser."""
    folder = review / reason_folder(reason)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("contact_sheet_*.png"):
        old.unlink()
    per_sheet = SHEET_COLS * SHEET_ROWS
    font = ImageFont.load_default()
    cap = 28
    out = []
    for n, start in enumerate(range(0, len(items), per_sheet), start=1):
        chunk = items[start : start + per_sheet]
        rows = math.ceil(len(chunk) / SHEET_COLS)
        sheet = Image.new("RGB", (SHEET_COLS * TILE_SIZE, rows * (TILE_SIZE + cap)), (24, 24, 24))
        draw = ImageDraw.Draw(sheet)
        for i, item in enumerate(chunk):
            x, y = (i % SHEET_COLS) * TILE_SIZE, (i // SHEET_COLS) * (TILE_SIZE + cap)
            if item.get("thumb"):
                with Image.open(review / item["thumb"]) as im:
                    im = im.convert("RGB")
                    im.thumbnail((TILE_SIZE - 4, TILE_SIZE - 4))
                    sheet.paste(im, (x + (TILE_SIZE - im.width) // 2, y + (TILE_SIZE - im.height) // 2))
            else:
                draw.text((x + 8, y + TILE_SIZE // 2), "unreadable", fill=(255, 96, 96), font=font)
            name = Path(item["path"]).name
            if len(name) > 32:
                name = name[:14] + "..." + name[-15:]
            label = f"score {item['score']:.3f}" if item.get("score") is not None else (
                f"age {item['age']:g}" if item.get("age") is not None else "")
            draw.text((x + 4, y + TILE_SIZE + 2), name, fill=(230, 230, 230), font=font)
            draw.text((x + 4, y + TILE_SIZE + 14), f"#{start + i + 1} {label}", fill=(255, 200, 80), font=font)
        path = folder / f"contact_sheet_{n}.png"
        sheet.save(path)
        out.append(path)
    return out


# ----------------------------------------------------------------------------------------------
# The HTML page


def _json_for_script(data) -> str:
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\!--")


def render_page(scan: ScanOutput, sections: list[dict], notes: list[str]) -> str:
    """The self-contained page: no network, no server. The data is inline JSON, the script renders
    it a page (200 images) at a time with lazy-loaded thumbnails."""
    s = scan.summary
    det_rows = "".join(
        f"<tr><td>{html.escape(str(r.get('name', '')))}</td><td>{html.escape(str(r.get('kind', '')))}</td>"
        f"<td><code>{html.escape(str(r.get('version', '')))}</code></td><td>{html.escape(str(r.get('threshold', '')))}</td>"
        f"<td>{html.escape(str(r.get('threshold_source', '')))}</td></tr>"
        for r in scan.detectors.to_dict("records")
    )
    data = {
        "scan_id": f"{s.get('archive', '')}|{s.get('started', '')}",
        "page_size": PAGE_SIZE,
        "sections": sections,
    }
    nav = " · ".join(
        f'<a href="#sec-{html.escape(sec["folder"])}">{html.escape(sec["reason"])} ({len(sec["items"])})</a>'
        for sec in sections
    ) or "nothing was flagged"
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _PAGE.format(
        title=html.escape(f"cxclean review: {Path(str(s.get('archive', ''))).name}"),
        archive=html.escape(str(s.get("archive", ""))),
        files=s.get("files", ""), ok=s.get("ok", ""), errors=s.get("errors", ""), excluded=s.get("excluded", ""),
        generated=generated, det_rows=det_rows, nav=nav,
        notes=f"<details><summary>{len(notes)} warning(s) while building</summary><ul>{note_html}</ul></details>" if notes else "",
        data=_json_for_script(data), css=_CSS, js=_JS,
    )


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#111;color:#ddd}
header{padding:12px 20px;background:#1c1c1c;border-bottom:1px solid #333;position:sticky;top:0;z-index:2}
header h1{font-size:18px;margin:0 0 4px}
a{color:#7cc4ff} code{color:#bbb}
.bar{display:flex;gap:14px;align-items:center;flex-wrap:wrap;margin-top:6px}
button{background:#2a5d8a;color:#fff;border:0;padding:5px 12px;border-radius:4px;cursor:pointer}
button:disabled{background:#444;cursor:default}
main{padding:0 20px 40px}
section{margin-top:24px;scroll-margin-top:110px}
section h2{font-size:17px;border-bottom:1px solid #333;padding-bottom:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px}
.card{background:#1d1d1d;border:1px solid #333;border-radius:6px;padding:6px;position:relative}
.card.kept{border-color:#3fae5a;background:#17261a}
.card img{width:100%;height:210px;object-fit:contain;background:#000;display:block}
.meta{font-size:12px;margin-top:4px;word-break:break-all}
.meta .score{color:#ffc850;font-weight:600}
.keep{display:block;margin-top:4px;font-size:13px}
.pager{margin:10px 0;display:flex;gap:8px;align-items:center}
table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #333;padding:2px 6px}
.err{color:#ff7070} .ov{color:#999}
"""

_JS = r"""
(function(){
const DATA = JSON.parse(document.getElementById('review-data').textContent);
const KEY = 'cxclean-review:' + DATA.scan_id;
let state = {};
try { state = JSON.parse(localStorage.getItem(KEY) || '{}'); } catch (e) { state = {}; }
state.keep = state.keep || {}; state.reviewed = state.reviewed || {};
function save(){ try { localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) {} updateCount(); }
const pages = {};
const overlayBox = document.getElementById('overlay-toggle');
function k(path, reason){ return reason + '\u0000' + path; }
function fmt(v, d){ return (v === null || v === undefined) ? '?' : Number(v).toFixed(d); }
function imgSrc(it){ return (overlayBox.checked && it.overlay) ? it.overlay : it.thumb; }
function render(si){
  const sec = DATA.sections[si];
  const grid = document.getElementById('grid-' + si);
  const page = pages[si] || 0;
  const n = sec.items.length, size = DATA.page_size;
  const last = Math.max(0, Math.ceil(n / size) - 1);
  grid.textContent = '';
  sec.items.slice(page * size, (page + 1) * size).forEach(function(it, j){
    const card = document.createElement('div');
    card.className = 'card';
    card.dataset.path = it.path; card.dataset.reason = sec.reason;
    const a = document.createElement('a');
    if (it.full) { a.href = it.full; a.target = '_blank'; }
    const img = document.createElement('img');
    img.loading = 'lazy'; img.alt = it.path; img.className = 'thumb';
    img.dataset.thumb = it.thumb || ''; img.dataset.overlay = it.overlay || '';
    if (it.thumb) img.src = imgSrc(it);
    a.appendChild(img); card.appendChild(a);
    const meta = document.createElement('div'); meta.className = 'meta';
    const p = document.createElement('div'); p.textContent = '#' + (page * size + j + 1) + ' ' + it.path; meta.appendChild(p);
    const s = document.createElement('div');
    if (sec.detector) {
      const sc = document.createElement('span'); sc.className = 'score'; sc.textContent = 'score ' + fmt(it.score, 3);
      s.appendChild(sc); s.appendChild(document.createTextNode(' / threshold ' + fmt(sec.threshold, 3)));
    }
    s.appendChild(document.createTextNode((sec.detector ? ' · ' : '') + 'age ' + (it.age === null ? '?' : it.age) + ' · view ' + (it.view || '?')
      + (it.turn ? ' · turn ' + it.turn + '° clockwise to upright' : '')
      + (it.reasons.length > 1 ? ' · also: ' + it.reasons.filter(function(r){return r !== sec.reason;}).join(', ') : '')));
    meta.appendChild(s);
    if (it.error) { const e = document.createElement('div'); e.className = 'err'; e.textContent = it.error; meta.appendChild(e); }
    if (sec.detector) { const o = document.createElement('div'); o.className = 'ov'; o.textContent = it.overlay ? ('overlay: ' + (it.saliency === 'occlusion' ? 'occlusion sensitivity' : 'Grad-CAM')) : 'no overlay'; meta.appendChild(o); }
    card.appendChild(meta);
    const lab = document.createElement('label'); lab.className = 'keep';
    const box = document.createElement('input'); box.type = 'checkbox'; box.className = 'keep-box';
    box.checked = !!state.keep[k(it.path, sec.reason)];
    card.classList.toggle('kept', box.checked);
    box.addEventListener('change', function(){
      if (box.checked) state.keep[k(it.path, sec.reason)] = 1; else delete state.keep[k(it.path, sec.reason)];
      card.classList.toggle('kept', box.checked); save();
    });
    lab.appendChild(box); lab.appendChild(document.createTextNode(' keep (false positive)'));
    card.appendChild(lab);
    grid.appendChild(card);
  });
  document.getElementById('pageinfo-' + si).textContent = n ? ('page ' + (page + 1) + ' of ' + (last + 1) + ' (' + n + ' images)') : 'no images';
  document.getElementById('prev-' + si).disabled = page <= 0;
  document.getElementById('next-' + si).disabled = page >= last;
}
function build(){
  const main = document.getElementById('sections');
  DATA.sections.forEach(function(sec, si){
    const el = document.createElement('section'); el.id = 'sec-' + sec.folder;
    const h = document.createElement('h2');
    h.textContent = sec.reason + ' (' + sec.items.length + ')' + (sec.detector ? ' — detector ' + sec.version + ', threshold ' + fmt(sec.threshold, 3) + ', sorted by score' : ' — rule, youngest first');
    el.appendChild(h);
    const rv = document.createElement('label');
    const rb = document.createElement('input'); rb.type = 'checkbox'; rb.className = 'reviewed-box'; rb.dataset.reason = sec.reason;
    rb.checked = !!state.reviewed[sec.reason];
    rb.addEventListener('change', function(){ if (rb.checked) state.reviewed[sec.reason] = 1; else delete state.reviewed[sec.reason]; save(); });
    rv.appendChild(rb); rv.appendChild(document.createTextNode(' I reviewed this whole section: export the images not ticked as confirmed (exclude)'));
    el.appendChild(rv);
    const pager = document.createElement('div'); pager.className = 'pager';
    const prev = document.createElement('button'); prev.textContent = '◀ previous'; prev.id = 'prev-' + si;
    const next = document.createElement('button'); next.textContent = 'next ▶'; next.id = 'next-' + si;
    const info = document.createElement('span'); info.id = 'pageinfo-' + si;
    prev.onclick = function(){ pages[si] = (pages[si] || 0) - 1; render(si); el.scrollIntoView(); };
    next.onclick = function(){ pages[si] = (pages[si] || 0) + 1; render(si); el.scrollIntoView(); };
    pager.appendChild(prev); pager.appendChild(info); pager.appendChild(next);
    el.appendChild(pager);
    const grid = document.createElement('div'); grid.className = 'grid'; grid.id = 'grid-' + si;
    el.appendChild(grid);
    main.appendChild(el);
    render(si);
  });
}
function decisionsCsv(){
  const rows = ['path,reason,decision'];
  function q(v){ v = String(v); return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
  DATA.sections.forEach(function(sec){
    sec.items.forEach(function(it){
      if (state.keep[k(it.path, sec.reason)]) rows.push([q(it.path), q(sec.reason), 'keep'].join(','));
      else if (state.reviewed[sec.reason]) rows.push([q(it.path), q(sec.reason), 'exclude'].join(','));
    });
  });
  return rows.join('\n') + '\n';
}
function updateCount(){
  document.getElementById('kept-count').textContent = Object.keys(state.keep).length + ' kept';
}
overlayBox.addEventListener('change', function(){
  document.querySelectorAll('img.thumb').forEach(function(img){
    const src = (overlayBox.checked && img.dataset.overlay) ? img.dataset.overlay : img.dataset.thumb;
    if (src) img.setAttribute('src', src);
  });
});
document.getElementById('export').addEventListener('click', function(){
  const blob = new Blob([decisionsCsv()], {type: 'text/csv'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob); a.download = 'decisions.csv';
  document.body.appendChild(a); a.click();
  setTimeout(function(){ URL.revokeObjectURL(a.href); a.remove(); }, 1000);
});
window.cxcleanDecisionsCsv = decisionsCsv;
build(); updateCount();
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style></head>
<body>
<header>
<h1>{title}</h1>
<div>archive <code>{archive}</code> · {files} files, {ok} read, {errors} unreadable, {excluded} flagged · page built {generated}</div>
<div class="bar">
<label><input type="checkbox" id="overlay-toggle"> show saliency overlay (why the detector flagged it)</label>
<button id="export" type="button">export decisions</button> <span id="kept-count"></span>
<span>{nav}</span>
</div>
</header>
<main>
<details><summary>How to review</summary>
<p>Each section lists the images flagged for one reason, highest score first. Click an image to open it full size.
Tick <b>keep (false positive)</b> for every image that was flagged wrongly. Tick <i>I reviewed this whole section</i> when
the remaining images of a section are truly artefacts. Then press <b>export decisions</b>: it downloads
<code>decisions.csv</code> (<code>path,reason,decision</code>, decision <code>keep</code> or <code>exclude</code>), and run
<code>cxclean review apply SCAN_OUT --decisions decisions.csv</code>. Ticks are remembered in this browser.
Alternatively move false positives into <code>review/&lt;reason&gt;/_keep/</code> in a file browser.</p>
</details>
<details><summary>Detectors used</summary>
<table><tr><th>name</th><th>kind</th><th>version</th><th>threshold</th><th>threshold source</th></tr>{det_rows}</table>
</details>
{notes}
<div id="sections"></div>
</main>
<script type="application/json" id="review-data">{data}</script>
<script>{js}</script>
</body></html>
"""
