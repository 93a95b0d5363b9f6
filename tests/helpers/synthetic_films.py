"""Helpers for the detector tests: small synthetic 'radiographs' with a clear up/down and left/right.

Each image has a bright band at the top (shoulders), a darker lower half, and a bright blob on
the right (the heart), with per-image random jitter, so rotation, mirroring and inversion are
all learnable in a few steps at 32-64 px.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

def fake_radiograph(rng: np.random.Generator, h: int = 80, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.25 + 0.45 * (1.0 - yy / h)  # brighter at the top
    cy, cx = h * rng.uniform(0.55, 0.7), w * rng.uniform(0.6, 0.75)
    img += 0.5 * np.exp(-(((yy - cy) / (h * 0.12)) ** 2 + ((xx - cx) / (w * 0.12)) ** 2))
    img[: max(2, h // 10), : w // 3] = 0.95  # a marker at the top left
    img += rng.normal(0, 0.03, size=img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def write_normals(folder: Path, n: int, seed: int = 0, size=(80, 64)) -> list[Path]:
    """``n`` 8-bit PNG fakes in ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = fake_radiograph(rng, *size)
        path = folder / f"img_{i:03d}.png"
        Image.fromarray((arr * 255).round().astype(np.uint8)).save(path)
        paths.append(path)
    return paths
