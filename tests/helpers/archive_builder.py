"""A generated archive with planted artefacts and known answers, plus rule-based detectors that find them.

Every generated "film" is mostly dark with a bright marker filling its top-left quadrant. A
rotated film has the marker in another quadrant; an inverted film is ``1 - film`` (bright, with
a dark marker). The detectors are real Keras models with hand-set weights implementing those
rules, saved with ``save_bundle`` and loaded through ``detectors.bundle.load``, so a scan can be
tested end to end without training. Reused by other test modules: import from ``archive_builder``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

import imagegen

FILM_SHAPE = (72, 56)  # height, width: not square, so the scan's square resize is exercised


def film(seed: int, shape=FILM_SHAPE) -> np.ndarray:
    """A normal film in [0, 1]: dark noisy background, bright top-left quadrant marker."""
    rng = np.random.default_rng(seed)
    h, w = shape
    x = 0.2 + rng.normal(0.0, 0.02, size=(h, w))
    x[: h // 2, : w // 2] = 0.9 + rng.normal(0.0, 0.02, size=(h // 2, w // 2))
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def rotated(x: np.ndarray, quarter_turns: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(x, quarter_turns))


def inverted(x: np.ndarray) -> np.ndarray:
    return (1.0 - x).astype(np.float32)


def write_png(path: Path, x: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(x * 255).astype(np.uint8)).save(path)
    return path


def write_jpeg(path: Path, x: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(x * 255).astype(np.uint8)).save(path, quality=95)
    return path


def write_dicom(path: Path, x: np.ndarray, *, photometric: str = "MONOCHROME2", age: str | None = None,
                birth_date: str | None = None, study_date: str | None = "20200101", uid_seed: str = "") -> Path:
    """A 12-bit DICOM that a viewer shows as ``x`` (MONOCHROME1 is stored inverted, as on a real CR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return imagegen.write_dicom(path, x, photometric=photometric, age=age, birth_date=birth_date,
                                study_date=study_date, patient_id=f"P-{path.stem}", uid_seed=uid_seed or path.name)


@dataclass
class Expected:
    """The known answer for one candidate file."""

    status: str = "ok"
    reasons: list[str] = field(default_factory=list)  # detector names (name order) then the age reason
    age: float | None = None
    age_source: str = ""
    photometric: str = ""
    turn_cw: int = 0  # a rotated film: the clockwise degrees that turn it upright (rotated(x, k): 90 k)


@dataclass
class BuiltArchive:
    root: Path
    metadata_csv: Path  # ChestX-ray14 style: Image Index, Patient Age (outside the archive)
    expected: dict[str, Expected]  # relative path -> answer, in walker order
    skipped: dict[str, int]  # walker skip reason -> count

    def excluded(self) -> dict[str, list[str]]:
        return {rel: e.reasons for rel, e in self.expected.items() if e.reasons}


def build_archive(base: Path, min_age: float = 10) -> BuiltArchive:
    """The test archive under ``base/archive`` and its metadata CSV beside it; expected answers for
    a scan with the rule detectors ``inversion`` and ``rotation`` and ``--min-age min_age`` plus
    the metadata CSV."""
    root = base / "archive"
    root.mkdir(parents=True)
    age_reason = f"age<{min_age:g}"
    exp: dict[str, Expected] = {}

    def add(rel, status="ok", reasons=(), age=None, age_source="", photometric="", turn_cw=0):
        exp[rel] = Expected(status, list(reasons), age, age_source, photometric, turn_cw)

    # .DS_Store, notes.txt, .thumb.png: skipped by the walker, counted, never rows.
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "notes.txt").write_text("export notes\n")
    write_png(root / "site1" / ".thumb.png", film(98))
    # corrupt and non-image files that look like images: error rows
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    (bad / "not_an_image.png").write_text("this is text, not a PNG\n")
    full = write_png(bad / "truncated.png", film(99)).read_bytes()
    (bad / "truncated.png").write_bytes(full[: len(full) // 2])
    add("bad/empty.png", "error")
    add("bad/not_an_image.png", "error")
    add("bad/truncated.png", "error")

    # DICOM: ages in the header; one MONOCHROME1 that must read as a normal film
    d = root / "dicom"
    write_dicom(d / "adult.dcm", film(1), age="045Y")
    add("dicom/adult.dcm", age=45, age_source="dicom", photometric="MONOCHROME2")
    write_dicom(d / "child.dcm", film(2), age="006Y")
    add("dicom/child.dcm", reasons=[age_reason], age=6, age_source="dicom", photometric="MONOCHROME2")
    write_dicom(d / "dates_rotated.dcm", rotated(film(3), 2), age=None, birth_date="20170101",
                study_date="20200101")
    add("dicom/dates_rotated.dcm", reasons=["rotation", age_reason], age=round(1095 / 365.25, 4),
        age_source="dicom", photometric="MONOCHROME2", turn_cw=180)
    write_dicom(d / "inverted.dcm", inverted(film(4)), age="050Y")
    add("dicom/inverted.dcm", reasons=["inversion"], age=50, age_source="dicom", photometric="MONOCHROME2")
    write_dicom(d / "mono1.dcm", film(5), photometric="MONOCHROME1", age="033Y")
    add("dicom/mono1.dcm", age=33, age_source="dicom", photometric="MONOCHROME1")

    # PNG / JPEG in nested folders; ages from the metadata CSV; two files named img.png
    write_png(root / "site1" / "2020" / "normal_a.png", film(10))
    add("site1/2020/normal_a.png", age=45, age_source="metadata")
    write_png(root / "site1" / "2020" / "rot90.png", rotated(film(11), 1))
    add("site1/2020/rot90.png", reasons=["rotation"], age=60, age_source="metadata", turn_cw=90)
    write_png(root / "site1" / "img.png", film(12))
    add("site1/img.png", age=None)  # listed twice in the metadata with different ages: ambiguous, unknown
    os.symlink("..", root / "site1" / "loop")  # a symlink loop back to the archive root
    write_png(root / "site2" / "img.png", rotated(film(13), 2))
    add("site2/img.png", reasons=["rotation"], age=None, turn_cw=180)
    write_png(root / "site2" / "inv.png", inverted(film(14)))
    add("site2/inv.png", reasons=["inversion"], age=61, age_source="metadata")
    write_jpeg(root / "site2" / "scan.jpg", film(15))
    add("site2/scan.jpg", reasons=[age_reason], age=8, age_source="metadata")
    write_jpeg(root / "site2" / "z_rot270.jpeg", rotated(film(16), 3))
    add("site2/z_rot270.jpeg", reasons=["rotation"], age=70, age_source="metadata", turn_cw=270)

    metadata_csv = base / "Data_Entry.csv"
    metadata_csv.write_text(
        "Image Index,Patient Age,Patient Gender\n"
        "normal_a.png,45,M\nrot90.png,60,F\nimg.png,30,F\nimg.png,71,M\ninv.png,061Y,F\nscan.jpg,8,M\n"
        "z_rot270.jpeg,70,F\nadult.dcm,99,F\nunrelated.png,50,M\n"
    )
    expected = dict(sorted(exp.items()))  # the walker sorts names at each level; these names sort the same
    skipped = {"system file": 1, "hidden file": 1, "non-image (.txt)": 1, "folder already walked (symlink loop or second link)": 1}
    return BuiltArchive(root, metadata_csv, expected, skipped)


# --------------------------------------------------------------------------- rule detectors


def rotation_model(size: int):
    """Quadrant means -> high when the bright quadrant is not top-left (and the film is not inverted)."""
    import keras

    inp = keras.Input((size, size, 1))
    q = keras.layers.Flatten()(keras.layers.AveragePooling2D(pool_size=size // 2)(inp))  # TL, TR, BL, BR
    many = keras.layers.Dense(1, activation="relu", name="many_bright")(q)
    out = keras.layers.Dense(1, activation="sigmoid", name="rotated")(keras.layers.Concatenate()([q, many]))
    model = keras.Model(inp, out)
    model.get_layer("many_bright").set_weights([np.array([[0.0], [1.0], [1.0], [1.0]]), np.array([-1.5])])
    model.get_layer("rotated").set_weights([np.array([[-10.0], [10.0], [10.0], [10.0], [-20.0]]), np.array([-5.0])])
    return model


def inversion_model(size: int):
    """Mean brightness -> high when the film is mostly bright (a pixel-inverted dark film)."""
    import keras

    inp = keras.Input((size, size, 1))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    out = keras.layers.Dense(1, activation="sigmoid", name="bright")(x)
    model = keras.Model(inp, out)
    model.get_layer("bright").set_weights([np.array([[20.0]]), np.array([-10.0])])
    return model


def build_detectors(base: Path) -> dict[str, Path]:
    """Bundles ``rotation`` (input 32 px) and ``inversion`` (input 48 px: a second input spec) under ``base``."""
    from cleaner.io.preprocess import InputSpec
    from detectors.bundle import save_bundle

    bundles = {}
    for name, make, size in (("rotation", rotation_model, 32), ("inversion", inversion_model, 48)):
        info = {"name": name, "kind": name, "input": InputSpec(size=size).to_dict(), "threshold": 0.5,
                "backbone": "rule (hand-set weights, tests only)"}
        bundles[name] = save_bundle(make(size), info, base / name)
    return bundles
