"""Data manifests (see data_manifests/README.md): write them, and check files against them."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pandas as pd

from cleaner.io.readonly import open_quietly

REQUIRED = ("path", "sha256", "source_dataset", "licence")


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, read in blocks (manifests, bundles, metadata tables all use this one)."""
    digest = hashlib.sha256()
    with open_quietly(path) as fh:  # training reads archive films too: their access times stay
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_manifest(manifest, base=None) -> list[str]:
    """Problems found: missing columns, missing files, or files whose sha256 differs."""
    manifest = Path(manifest)
    base = Path(base) if base else manifest.resolve().parents[1]
    table = pd.read_csv(manifest, dtype=str)
    problems = [f"{manifest}: missing column {c!r}" for c in REQUIRED if c not in table.columns]
    if problems:
        return problems
    for row in table.itertuples():
        path = Path(row.path) if Path(row.path).is_absolute() else base / row.path
        if not path.is_file():
            problems.append(f"{path}: listed in {manifest.name} but missing")
        elif file_sha256(path) != row.sha256:
            problems.append(f"{path}: sha256 differs from {manifest.name}")
    return problems


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] != "check":
        print("usage: python -m cleaner.io.manifests check MANIFEST.csv [BASE_DIR]", file=sys.stderr)
        return 2
    problems = check_manifest(argv[1], argv[2] if len(argv) > 2 else None)
    for line in problems:
        print(line)
    print(f"{argv[1]}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
