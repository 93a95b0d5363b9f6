"""Time to build the review page (thumbnails, Grad-CAM overlays, contact sheets, index.html).

Usage (from the repository root):
  PYTHONPATH=$PWD python benchmarks/review_build.py SCAN_OUT [--workers 2]
      times ``review build`` on an existing scan output (it rewrites SCAN_OUT/review/ assets)
  PYTHONPATH=$PWD python benchmarks/review_build.py --synthetic 1000 [--film-size 512] [--input-size 256]
      generates a scan output with N flagged images (tests/scan_output_builder.py) and a small conv
      detector bundle, then times the build

Prints one block of figures: images, overlays, seconds, images per second, page size.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "helpers"))


def synthetic_scan(tmp: Path, n: int, film_size: int, input_size: int) -> Path:
    from scan_output_builder import ImageSpec, build_scan_output, save_tiny_bundle

    bundle = save_tiny_bundle(tmp / "bundles" / "rotation", "rotation", size=input_size)
    specs = [ImageSpec(f"site{i % 4}/img{i:06d}.png", {"rotation": 0.6 + 0.4 * ((i * 7919) % n) / n, "inversion": 0.0},
                       20 + i % 70, "MF"[i % 2], ("PA", "AP")[i % 2], f"P{i:06d}", rotate=90 * (i % 4))
             for i in range(n)]
    _, out = build_scan_output(tmp, specs, thresholds={"rotation": 0.5, "inversion": 0.5},
                               bundles={"rotation": bundle}, film_size=film_size)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scan_out", nargs="?")
    ap.add_argument("--synthetic", type=int, help="generate a scan output with this many flagged images")
    ap.add_argument("--film-size", type=int, default=512)
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--no-saliency", action="store_true")
    args = ap.parse_args(argv)
    if not args.scan_out and not args.synthetic:
        ap.error("give SCAN_OUT or --synthetic N")
    from cleaner.review.build import build_review

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.scan_out) if args.scan_out else synthetic_scan(Path(tmp), args.synthetic, args.film_size, args.input_size)
        t0 = time.perf_counter()
        res = build_review(out, workers=args.workers, saliency=not args.no_saliency)
        seconds = time.perf_counter() - t0
        print(f"scan output      {out}")
        print(f"flagged images   {res.images} ({', '.join(f'{r}: {n}' for r, n in res.sections.items())})")
        print(f"overlays         {res.overlays}")
        print(f"contact sheets   {len(res.contact_sheets)}")
        print(f"workers          {args.workers}")
        print(f"build seconds    {seconds:.1f}")
        print(f"images / second  {res.images / seconds:.1f}")
        print(f"index.html       {res.page.stat().st_size / 1024:.0f} KiB")
        print(f"warnings         {len(res.warnings)}")


if __name__ == "__main__":
    main()
