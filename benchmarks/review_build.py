"""Time to build the review page, per flagged film and per stage, with and without saliency overlays; and the
load time of a large page in headless Chromium.

Usage (from the repository root):
  PYTHONPATH=$PWD python benchmarks/review_build.py SCAN_OUT [--workers 2]
      builds SCAN_OUT's page three times (it rewrites SCAN_OUT/review/ assets): from scratch without saliency,
      from scratch with saliency, then once more with nothing new (the incremental rebuild); prints seconds per
      stage (images, overlays, page), per flagged film, the build / scan time ratio (the scan's time from
      summary.json), and how many flagged (film, detector) pairs got an overlay
  PYTHONPATH=$PWD python benchmarks/review_build.py --synthetic 200 [--film-size 512] [--input-size 256]
      the same on a generated scan output with N flagged films and a small conv detector bundle
  PYTHONPATH=$PWD python benchmarks/review_build.py --paired ARCHIVE [--rounds 2] [--workers 2]
      the ratio the issue asks for, both sides measured the same way and under the same load: each round runs
      ``cxclean scan ARCHIVE`` (review folders on), ``cxclean review build --rebuild`` on its output, and
      ``cxclean scan ARCHIVE --review-page`` (the page built by the scan's process, with its loaded detectors),
      each a fresh process; prints each command's own time (what summary.json counts for the scan: after the
      process start and Keras's import, ~6 s here) and its whole-process time, and the ratios
  PYTHONPATH=$PWD python benchmarks/review_build.py --page-load 20000 [--repeat 3]
      writes a page with N cards (tests/helpers/review_pages.py) and times it in headless Chromium: ms from
      navigation start until the page is usable (its script done), median of the repeats

Stages run side by side (workers read films while overlays are computed); each stage's figure is the wall time
charged to it: overlays = time in saliency and drawing, images = the rest of the read loop, page = sheets, page
file and the build record. The load average is printed: on a shared machine the figures are upper bounds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
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


def overlay_coverage(page: Path) -> tuple[int, int]:
    """(flagged (film, detector) pairs with an overlay, all such pairs) on the page."""
    from scan_output_builder import page_data

    pairs = [it for sec in page_data(page)["sections"] if sec["detector"] for it in sec["items"]]
    return sum(1 for it in pairs if it["overlay"]), len(pairs)


def report_build(label: str, res, scan_seconds: float | None) -> None:
    n = max(1, res.images)
    stages = "  ".join(f"{k} {v:6.1f} s ({1000 * v / n:6.1f} ms/film)" for k, v in res.stage_seconds.items())
    ratio = f"  = {res.seconds / scan_seconds:.2f} x the scan's {scan_seconds:.0f} s" if scan_seconds else ""
    print(f"{label:<22} {res.seconds:7.1f} s ({1000 * res.seconds / n:6.1f} ms per flagged film){ratio}")
    print(f"{'':<22} {stages}")
    print(f"{'':<22} films read {res.prepared}, overlays made {res.overlays_made}, warnings {len(res.warnings)}")


def bench_build(out: Path, workers: int, real_scan: bool = True) -> None:
    from cleaner.io.quiet import import_keras_quietly
    from cleaner.review.build import build_review

    import_keras_quietly()  # as the command line does before any command, and as the scan's own time excludes

    summary = json.loads((out / "summary.json").read_text())
    scan_seconds = summary.get("seconds") if real_scan else None  # a generated scan output took no scan
    print(f"scan output      {out}")
    print(f"scan             {summary.get('files')} files in {scan_seconds} s")
    print(f"workers          {workers}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    plain = build_review(out, workers=workers, saliency=False, rebuild=True, progress=False)
    print(f"flagged films    {plain.images} ({', '.join(f'{r}: {n}' for r, n in plain.sections.items())})")
    report_build("without saliency", plain, scan_seconds)
    full = build_review(out, workers=workers, saliency=True, rebuild=True, progress=False)
    report_build("with saliency", full, scan_seconds)
    done, pairs = overlay_coverage(full.page)
    print(f"{'':<22} overlays on {done} of {pairs} flagged (film, detector) pairs")
    again = build_review(out, workers=workers, saliency=True, progress=False)
    report_build("again, nothing new", again, scan_seconds)
    print(f"index.html       {full.page.stat().st_size / 1024:.0f} KiB; load average now {os.getloadavg()[0]:.1f}")


def bench_paired(archive: Path, rounds: int, workers: int) -> None:
    import re
    import subprocess

    def run(args: list[str]) -> tuple[float, str]:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "cleaner", *args], check=True, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))  # this checkout, whatever is installed
        return time.perf_counter() - started, done.stdout

    def own_scan(out: Path) -> float:
        return float(json.loads((out / "summary.json").read_text())["seconds"])

    w = ["--workers", str(workers)]
    build_r, wall_r, page_r = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out, out2 = Path(tmp) / "scan", Path(tmp) / "scan_with_page"
        for r in range(1, rounds + 1):
            load = os.getloadavg()[0]
            scan_wall, _ = run(["scan", str(archive), "--out", str(out), *w, "-q", "--overwrite"])
            build_wall, printed = run(["review", "build", str(out), *w, "--rebuild"])
            build_own = float(re.search(r"; ([0-9.]+) s \(images", printed).group(1))
            both_wall, printed = run(["scan", str(archive), "--out", str(out2), *w, "-q", "--overwrite", "--review-page"])
            page_own = float(re.search(r"built in ([0-9.]+) s", printed).group(1))
            build_r.append(build_own / own_scan(out))
            wall_r.append(build_wall / scan_wall)
            page_r.append(page_own / own_scan(out2))
            flagged = json.loads((out / "summary.json").read_text()).get("excluded")
            print(f"round {r} ({flagged} flagged films; load average {load:.1f} before it):")
            print(f"  cxclean scan:                 {own_scan(out):6.1f} s of its own (summary.json), {scan_wall:6.1f} s "
                  f"with the process start (Keras's import)")
            print(f"  cxclean review build:         {build_own:6.1f} s of its own, {build_wall:6.1f} s with the process "
                  f"start: {build_r[-1]:.2f} x / {wall_r[-1]:.2f} x the scan")
            print(f"  cxclean scan --review-page:   scan {own_scan(out2):6.1f} s, then the page {page_own:6.1f} s "
                  f"({page_r[-1]:.2f} x), {both_wall:6.1f} s in all")
    print(f"median over {rounds} round(s): review build / scan {statistics.median(build_r):.2f} (each its own time), "
          f"{statistics.median(wall_r):.2f} (whole processes); page inside the scan {statistics.median(page_r):.2f}")


def bench_page_load(n: int, repeat: int) -> None:
    from chromium_cdp import Chromium, find_chromium
    from review_pages import large_page

    binary = find_chromium()
    if binary is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        page = large_page(Path(tmp), n)
        ready = []
        for _ in range(repeat):
            with Chromium(binary) as browser:  # a fresh browser each time: no cache
                browser.navigate(page.as_uri(), timeout=120)
                ready.append(browser.eval("window.cxcleanReady"))
                cards = browser.eval("document.querySelectorAll('#grid .card').length")
        print(f"page             {n} cards, {page.stat().st_size / 2**20:.1f} MiB, {cards} cards in the DOM")
        print(f"usable after     {statistics.median(ready):.0f} ms (median of {repeat}: "
              f"{', '.join(f'{r:.0f}' for r in ready)}); load average {os.getloadavg()[0]:.1f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scan_out", nargs="?")
    ap.add_argument("--synthetic", type=int, help="generate a scan output with this many flagged images")
    ap.add_argument("--film-size", type=int, default=512)
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=None, help="default: all cores")
    ap.add_argument("--page-load", type=int, metavar="N", help="time a page of N cards in headless Chromium")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--paired", type=Path, metavar="ARCHIVE", help="scan ARCHIVE and build its page, fresh processes")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    if not (args.scan_out or args.synthetic or args.page_load or args.paired):
        ap.error("give SCAN_OUT, --synthetic N, --paired ARCHIVE or --page-load N")
    from cleaner.io.parallel import default_workers

    workers = args.workers or default_workers()
    if args.page_load:
        bench_page_load(args.page_load, args.repeat)
    if args.paired:
        bench_paired(args.paired, args.rounds, workers)
    if args.scan_out:
        bench_build(Path(args.scan_out), workers)
    elif args.synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            bench_build(synthetic_scan(Path(tmp), args.synthetic, args.film_size, args.input_size), workers, False)


if __name__ == "__main__":
    main()
