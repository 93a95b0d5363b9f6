"""A review page with any number of cards, written straight from generated page data (no films, no
models): what the 20,000-card browser test and ``benchmarks/review_build.py --page-load`` load."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cleaner.review.page import render_page
from cleaner.scan.folder import ScanOutput, atomic_write_text

#: (reason, share of the cards) of a generated page; every detector reason has a threshold of 0.5
REASONS = (("rotation", 0.6), ("flip", 0.25), ("inversion", 0.15))
SITES = ("hospital_a", "hospital_b", "hospital_c", "hospital_d", "hospital_e")


def large_page(folder: Path, n: int) -> Path:
    """``folder/review/index.html`` with ``n`` cards over three detector reasons and five sites; scores
    fall from 1.0 towards 0.5 within each reason. All cards share one thumbnail and one overlay."""
    review = Path(folder) / "review"
    for d in ("_thumbs", "_overlays"):
        (review / d).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:256, 0:200]
    Image.fromarray(((xx + yy) % 256).astype(np.uint8)).save(review / "_thumbs" / "t.jpg")
    Image.fromarray(np.stack([(xx % 256), yy % 256, 128 + 0 * xx], -1).astype(np.uint8)).save(review / "_overlays" / "o.jpg")
    sections, start = [], 0
    for k, (reason, share) in enumerate(REASONS):
        count = n - start if k == len(REASONS) - 1 else round(n * share)
        items = [{"path": f"{SITES[i % len(SITES)]}/{reason}/film{start + i:06d}.png", "score": round(1 - 0.5 * i / count, 6),
                  "age": 40, "view": "PA", "turn": "", "sex": "F", "reasons": [reason], "thumb": "_thumbs/t.jpg",
                  "overlay": "_overlays/o.jpg", "saliency": "gradcam", "full": "_thumbs/t.jpg", "error": ""}
                 for i in range(count)]
        sections.append({"reason": reason, "folder": reason, "detector": reason, "version": f"{reason}-0",
                         "threshold": 0.5, "items": items})
        start += count
    detectors = pd.DataFrame([{"name": r, "kind": r, "version": f"{r}-0", "threshold": "0.5", "threshold_source": "bundle"}
                              for r, _ in REASONS])
    scan = ScanOutput(Path(folder), None, None, detectors,
                      {"archive": f"/archive/{n}", "started": "2026-01-01T00:00:00", "files": n * 20, "ok": n * 20,
                       "errors": 0, "excluded": n})
    page = review / "index.html"
    atomic_write_text(page, render_page(scan, sections, []))
    return page
