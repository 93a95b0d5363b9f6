"""Decode throughput (images/s) of the one reader on the real radiographs, serial and with a worker pool.

    python benchmarks/decode.py [--data ../shared/data] [--workers 2] [--repeat 1]

Workers return only the image shape, so the figure is decoding, not inter-process copying.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cleaner.io.images import read_image  # noqa: E402
from cleaner.io.parallel import default_workers, ordered_map  # noqa: E402
from cleaner.io.walker import walk_archive  # noqa: E402


def decode_shape(path):
    try:
        return read_image(path).pixels.shape
    except Exception as exc:  # counted, never fatal
        return f"error: {exc}"


def measure(paths, workers):
    start = time.perf_counter()
    results = list(ordered_map(decode_shape, paths, workers=workers, chunksize=4))
    seconds = time.perf_counter() - start
    return len(paths) / seconds, sum(isinstance(r, str) for r in results)


def main():
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CXCLEAN_SHARED_DATA", default_data)))
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeat", type=int, default=1, help="pass over each set this many times")
    args = parser.parse_args()
    sets = {
        "nih 512 px PNG": sorted(walk_archive(args.data / "nih" / "images")),
        "nih 1024 px PNG": sorted(walk_archive(args.data / "nih" / "fullres")),
        "dicom (all syntaxes)": sorted(walk_archive(args.data / "dicom")),
    }
    print(f"cpu cores: {os.cpu_count()}, workers: {args.workers}")
    print(f"{'set':24} {'files':>6} {'serial img/s':>13} {f'{args.workers} workers img/s':>17} {'errors':>7}")
    for name, paths in sets.items():
        paths = paths * args.repeat
        serial, errors = measure(paths, 1)
        pooled, _ = measure(paths, args.workers)
        print(f"{name:24} {len(paths):6d} {serial:13.1f} {pooled:17.1f} {errors:7d}")


if __name__ == "__main__":
    main()
