"""Build the development archive from ../shared/data (planted artefacts, laterals, other body parts,
children, corrupt files) and its truth table, for benchmarks/evaluate_archive.py.

    python benchmarks/build_dev_archive.py --out /tmp/cxclean_dev/archive
    # -> /tmp/cxclean_dev/archive/... and /tmp/cxclean_dev/archive_truth.csv

NIH is left out: the default detectors are trained on it.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cleaner.demo.archive import FilmFolder, build_archive, load_ages  # noqa: E402


def dev_sources(data: Path) -> list[FilmFolder]:
    ieee_ages = load_ages(data / "ieee" / "metadata.csv")
    return [
        FilmFolder(data / "hannover" / "images", "hannover", "frontal"),
        FilmFolder(data / "ieee" / "frontal", "ieee_frontal", "frontal", ages=ieee_ages),
        FilmFolder(data / "ieee" / "lateral", "ieee_lateral", "lateral", ages=ieee_ages),
        FilmFolder(data / "ieee" / "ct", "ieee_ct", "other_body", ages=ieee_ages),
        FilmFolder(data / "kermany" / "images", "kermany", "child"),
        FilmFolder(data / "hands" / "images", "hands", "other_body"),
        FilmFolder(data / "dicom", "dicom", "other_body"),
    ]


def main():
    default_data = Path(os.environ.get("CXCLEAN_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    truth = build_archive(dev_sources(args.data), args.out, seed=args.seed)
    print(truth.groupby(["source", "truth"]).size().to_string())
    print(f"{len(truth)} files in {args.out}; truth table {args.out.parent / (args.out.name + '_truth.csv')}")


if __name__ == "__main__":
    main()
