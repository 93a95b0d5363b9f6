"""A copy of an archive in which every PNG/JPEG film is exported inside uniform bars (letterboxed or
pillarboxed), as screen captures, teaching-file and journal exports and some PACS viewers write them:
how much do bars alone move the detectors? (docs/decisions/0011-trim-uniform-borders.md)

    python benchmarks/build_dev_archive.py --out /tmp/cxdev/archive          # once
    python benchmarks/bordered_archive.py --archive /tmp/cxdev/archive --out /tmp/cxdev/bordered
    cxclean scan /tmp/cxdev/bordered --out /tmp/cxdev/scan_bordered --workers 2 -q --no-review
    cxclean evaluate-archive /tmp/cxdev/scan_bordered /tmp/cxdev/bordered_truth.csv

Each raster gets, by a draw seeded from its path, bars on two opposite sides (letterbox or pillarbox, half
each), each 8-25 % of the film's side, black (four in five) or at the film's own maximum. The bars are added
after the planted artefact, as an export adds them. DICOM files and corrupt files are copied as they are; the
truth table is the archive's, with the same paths.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

RASTERS = {".png", ".jpg", ".jpeg"}


def draw(rel: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{rel}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def with_bars(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``pixels`` (2-D, any integer dtype) inside bars on two opposite sides."""
    letterbox = rng.random() < 0.5
    value = 0 if rng.random() < 0.8 else int(pixels.max())
    h, w = pixels.shape
    side = h if letterbox else w
    before, after = (int(round(side * rng.uniform(0.08, 0.25))) for _ in range(2))
    pad = ((before, after), (0, 0)) if letterbox else ((0, 0), (before, after))
    return np.pad(pixels, pad, constant_values=value)


def copy_bordered(src: Path, dst: Path, rel: str, seed: int) -> bool:
    """Write ``src`` with bars to ``dst``; False (and a plain copy) when it is not a readable greyscale raster."""
    try:
        with Image.open(src) as im:
            im.load()
            if im.mode not in ("L", "I;16", "I"):
                im = im.convert("L")
            pixels = np.asarray(im)
    except Exception:
        shutil.copy2(src, dst)
        return False
    out = Image.fromarray(with_bars(pixels, draw(rel, seed)))
    out.save(dst, format="PNG" if src.suffix.lower() == ".png" else "JPEG", **({} if src.suffix.lower() == ".png" else {"quality": 95}))
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    bordered = copied = 0
    for src in sorted(p for p in args.archive.rglob("*") if p.is_file()):
        rel = src.relative_to(args.archive).as_posix()
        dst = args.out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix.lower() in RASTERS and not rel.startswith("corrupt/") and copy_bordered(src, dst, rel, args.seed):
            bordered += 1
        else:
            shutil.copy2(src, dst)
            copied += 1
    truth = args.archive.parent / f"{args.archive.name}_truth.csv"
    if truth.exists():
        shutil.copy2(truth, args.out.parent / f"{args.out.name}_truth.csv")
    print(f"{bordered} films with bars, {copied} files copied as they are, in {args.out}")


if __name__ == "__main__":
    main()
