"""The detectors shipped inside the package: present, small, loadable, used by default, and working."""
import json
from pathlib import Path

import numpy as np
import pytest

from cleaner.scan import default_detector_dirs, scan_archive
from imagegen import phantom, write_png8

REPO = Path(__file__).resolve().parents[2]
KINDS = ("rotation", "inversion", "flip", "non_frontal")
SYNTHETIC = ("rotation", "inversion", "flip")  # trained on presumed-normal NIH films

pytestmark = pytest.mark.skipif(not default_detector_dirs(), reason="default bundles not trained yet")


def test_bundles_are_small_complete_and_traceable():
    import detectors

    root = default_detector_dirs()[0]
    for kind in KINDS:
        bundle = root / kind
        size = sum(f.stat().st_size for f in bundle.iterdir() if f.is_file())
        assert size <= 5 * 1024 * 1024, (kind, size)
        det = detectors.load(bundle)  # safe mode, sha256 checked
        assert det.kind == ("custom" if kind == "non_frontal" else kind) and det.name == kind and 0 < det.threshold < 1
        info = json.loads((bundle / "detector.json").read_text())
        assert info["backbone"] == "compact" and info["seed"] == 0
        assert not any(s["path"].startswith("/") for s in info.get("suspect_normals", []))  # no local paths shipped
        calibration = info["threshold_choice"]["calibration"]  # chosen on real upright films it was not trained on
        assert calibration["films"] >= 300 and calibration["false_positives"] == 0 and det.threshold == calibration["threshold"]
        assert det.threshold >= info["threshold_choice"]["validation_threshold"]
        manifest = REPO / "data_manifests" / f"default_{kind}_training.csv"
        assert manifest.is_file()
        import pandas as pd

        table = pd.read_csv(manifest)
        assert {"path", "sha256", "source_dataset", "licence", "split"} <= set(table.columns)
        assert not table.path.str.startswith("/").any()  # portable paths, relative to the shared data
        demo = set(pd.read_csv(REPO / "data_manifests" / "demo_nih.csv").image_index)
        assert not demo & set(table.path.str.rsplit("/", n=1).str[-1])  # demo films never trained on
        if kind in SYNTHETIC:  # presumed normals: films reviewed as artefacts are left out
            reviewed = pd.read_csv(REPO / "data_manifests" / "default_training_exclusions.csv")
            reviewed = reviewed[[k == "all" or kind in k.split() for k in reviewed.kinds]]
            assert not set(reviewed.path) & set(table.path)
            assert not set(reviewed.sha256) & set(table.sha256)
        else:  # labelled films of every site, each named with its dataset and licence
            assert table.source_dataset.nunique() >= 5 and not table.licence.isna().any()
        assert info["training"]["nuisances"]["kinds"]  # each default ignores the other kinds' artefacts
        reader = info["training"].get("glyph_reader")
        if kind == "flip":  # reads burned-in text at 512 px on the side bands; its backbone sees that input averaged
            assert det.input_spec.size == 512 and reader["input_pool"] * 128 == 512 and det.model.get_layer("marker_side_evidence")
            assert det.model.get_layer("side_bands").fraction == reader["bands"] == 0.2  # flip v2 (decision 0009)
            assert det.model.get_layer("handedness_branch") and info["training"]["compares_mirror"]
            assert det.model.get_layer("side_difference") and reader["mirrored"]  # flip v3 (decision 0017)
            assert det.model.get_layer("mean_of_readers") and reader["added_reader"]["framed_markers"] > 0  # v4
        else:
            assert not reader and det.input_spec.size == 128


def test_scan_without_detectors_uses_the_defaults(tmp_path, capfd):
    archive = tmp_path / "archive"
    archive.mkdir()
    for i in range(3):
        write_png8(archive / f"f{i}.png", phantom(64, 64, seed=i))
    summary = scan_archive(archive, tmp_path / "out", workers=1, progress=False)
    assert sorted(d["name"] for d in summary["detectors"]) == sorted(KINDS)
    assert "using the bundled defaults" in capfd.readouterr().err


def test_defaults_separate_planted_artefacts_in_demo_films():
    """On bundled demo films (never trained on): each detector ranks its artefact above upright films."""
    import detectors
    from sklearn.metrics import roc_auc_score

    from cleaner.io.images import read_image

    films = [read_image(p).pixels for p in sorted((REPO / "demo" / "nih").glob("*.png"))[:16]]
    plants = {"rotation": lambda x: np.rot90(x), "inversion": lambda x: 1 - x, "flip": lambda x: x[:, ::-1]}
    for kind, plant in plants.items():
        det = detectors.load(default_detector_dirs()[0] / kind)
        up, bad = det.score(films), det.score([plant(f) for f in films])
        auc = roc_auc_score([0] * len(up) + [1] * len(bad), np.concatenate([up, bad]))
        assert auc >= (0.9 if kind == "flip" else 0.97), (kind, auc)


def test_the_bundled_inversion_compares_each_film_with_its_inversion():
    """The shipped inversion detector: three members, each voting region by region on the film against its
    own inversion, on a 5-95 percentile stretch; so a demo film's score and its inversion's sum to 1."""
    import detectors

    from cleaner.io.images import read_image

    det = detectors.load(default_detector_dirs()[0] / "inversion")
    assert (det.input_spec.low_pct, det.input_spec.high_pct) == (5.0, 95.0)
    assert det.info["training"]["compares_inverse"] and len(det.info["training"]["members"]) == 3
    films = [read_image(p).pixels for p in sorted((REPO / "demo" / "nih").glob("*.png"))[:6]]
    up, inverted = det.score(films), det.score([f.max() - f for f in films])
    np.testing.assert_allclose(up + inverted, 1.0, atol=1e-4)
    assert up.max() < det.threshold < inverted.min()


def test_the_bundled_flip_compares_each_film_with_its_mirror():
    """Flip v2's anatomy log-odds are (g(x) - g(mirror x)) / 2: a demo film and its mirror get exactly opposite
    anatomy log-odds, and the side-marker evidence is read from the film's edge bands only (decision 0009)."""
    import keras

    import detectors
    from cleaner.io.images import read_image
    from cleaner.io.preprocess import preprocess

    det = detectors.load(default_detector_dirs()[0] / "flip")
    films = [read_image(p).pixels for p in sorted((REPO / "demo" / "nih").glob("*.png"))[:3]]
    x = np.stack([preprocess(f, det.input_spec) for f in films])
    anatomy = keras.Model(det.model.inputs[0], det.model.get_layer("logit").output)
    own, mirrored = (np.asarray(anatomy.predict(v, verbose=0)).reshape(-1) for v in (x, x[:, :, ::-1]))
    assert np.allclose(own, -mirrored, atol=1e-4) and np.abs(own).max() > 0.1
    middle = x.copy()
    middle[:, :, round(0.25 * x.shape[2]): round(0.75 * x.shape[2])] = 0.5  # what the reader does not read
    side = keras.Model(det.model.inputs[0], det.model.get_layer("marker_side_evidence").output)
    assert np.allclose(side.predict(x, verbose=0), side.predict(middle, verbose=0), atol=1e-5)
