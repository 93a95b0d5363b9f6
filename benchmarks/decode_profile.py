"""What a scan's decode workers spend per file, by stage and by folder of the archive: CPU milliseconds of reading
(PNG/JPEG decoding, DICOM decompression and LUTs), of the resize to each input size, and of the percentile stretches
the default detectors' input specs ask for, and of trimming uniform bars (``content_box``).

    PYTHONPATH=$PWD python benchmarks/decode_profile.py [/tmp/cxdev/archive] [--repeat 3]

CPU time of this one process (``time.process_time``), not wall time, so that the profile holds on a shared machine;
each figure is the least of ``--repeat`` passes. One pass runs the stages as ``decode_for_scan`` does
(``read_or_error``, then ``preprocess_all``'s one trim, one resize per size and one stretch per spec).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cleaner.io.images import read_or_error  # noqa: E402
from cleaner.io.preprocess import InputSpec, _normalise, content_box, crop, resize_square  # noqa: E402
from cleaner.io.walker import WalkStats, walk_archive  # noqa: E402
from detectors.bundle import default_bundles_dir  # noqa: E402

STAGES = ("read", "trim", "resize", "stretch")


def default_specs() -> list[InputSpec]:
    specs = []
    for info in sorted(default_bundles_dir().glob("*/detector.json")):
        spec = InputSpec.from_dict(json.loads(info.read_text())["input"])
        specs += [spec] if spec not in specs else []
    return specs


def one_pass(root: Path, files: list[Path], specs: list[InputSpec]) -> dict:
    """{folder: {stage: CPU seconds, "n": files}} for one pass over ``files``."""
    clock = time.process_time
    spent: dict = defaultdict(lambda: defaultdict(float))
    for path in files:
        where = spent[path.relative_to(root).parts[0] if len(path.relative_to(root).parts) > 1 else "."]
        where["n"] += 1
        t = clock()
        loaded, _ = read_or_error(path)
        where["read"] += clock() - t
        if loaded is None:
            continue
        framed = {"keep": loaded.pixels}
        if any(s.borders == "trim" for s in specs):
            t = clock()
            framed["trim"] = crop(loaded.pixels, content_box(loaded.pixels))
            where["trim"] += clock() - t
        for size, borders in sorted({(s.size, s.borders) for s in specs}):
            t = clock()
            resized = resize_square(framed[borders], size)
            where["resize"] += clock() - t
            t = clock()
            for spec in (s for s in specs if (s.size, s.borders) == (size, borders)):
                _normalise(resized, spec)
            where["stretch"] += clock() - t
    return spent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archive", type=Path, nargs="?", default=Path("/tmp/cxdev/archive"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    specs = default_specs()
    files = list(walk_archive(args.archive, WalkStats()))
    passes = [one_pass(args.archive, files, specs) for _ in range(args.repeat)]
    folders = sorted(passes[0])
    print(f"{len(files)} files; specs {[(s.size, s.low_pct, s.high_pct) for s in specs]}; CPU ms per file, least of "
          f"{args.repeat} passes")
    print(f"{'folder':16} {'files':>6} " + " ".join(f"{s:>9}" for s in STAGES) + f" {'total':>9}")
    totals = dict.fromkeys(STAGES, 0.0)
    for folder in folders:
        n = passes[0][folder]["n"]
        best = {s: min(p[folder][s] for p in passes) for s in STAGES}
        for s in STAGES:
            totals[s] += best[s]
        print(f"{folder:16} {n:6.0f} " + " ".join(f"{1000 * best[s] / n:9.2f}" for s in STAGES)
              + f" {1000 * sum(best.values()) / n:9.2f}")
    n = len(files)
    print(f"{'all':16} {n:6d} " + " ".join(f"{1000 * totals[s] / n:9.2f}" for s in STAGES)
          + f" {1000 * sum(totals.values()) / n:9.2f}")
    print(f"CPU seconds for the archive: " + ", ".join(f"{s} {totals[s]:.2f}" for s in STAGES)
          + f", total {sum(totals.values()):.2f}")


if __name__ == "__main__":
    main()
