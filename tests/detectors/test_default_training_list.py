"""The default detectors' NIH training list: demo patients and reviewed artefacts left out, and a reviewed
film whose bytes changed stops the run instead of being silently dropped or kept."""
from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from imagegen import phantom, write_png8
from scripts import train_default_detectors as defaults


@pytest.fixture
def fake_nih(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "nih" / "images").mkdir(parents=True)
    rows = []
    for i, view in enumerate(["PA", "AP", "PA"]):
        write_png8(data / "nih" / "images" / f"f{i}.png", phantom(32, 32, seed=i))
        rows.append({"path": f"images/f{i}.png", "patient_id": f"p{i}", "view": view})
    pd.DataFrame(rows).to_csv(data / "nih" / "metadata.csv", index=False)
    digest = hashlib.sha256((data / "nih" / "images" / "f1.png").read_bytes()).hexdigest()
    exclusions = tmp_path / "exclusions.csv"
    pd.DataFrame([{"path": "nih/images/f1.png", "sha256": digest, "kinds": "inversion", "reason": "inverted film",
                   "reviewed": "test"}]).to_csv(exclusions, index=False)
    monkeypatch.setattr(defaults, "EXCLUSIONS", exclusions)
    return data


def test_reviewed_film_is_left_out_of_the_kinds_it_names_only(fake_nih, tmp_path):
    out, dropped = defaults.nih_training_list(fake_nih, tmp_path / "inv.csv", ap_weight=3, kind="inversion")
    table = pd.read_csv(out)
    assert dropped == 1 and not table.path.str.endswith("f1.png").any()
    out, dropped = defaults.nih_training_list(fake_nih, tmp_path / "rot.csv", ap_weight=3, kind="rotation")
    table = pd.read_csv(out)
    assert dropped == 0 and table.loc[table.path.str.endswith("f1.png"), "weight"].tolist() == [3]  # AP, repeated


def test_a_reviewed_film_with_other_bytes_stops_the_run(fake_nih, tmp_path):
    write_png8(fake_nih / "nih" / "images" / "f1.png", phantom(32, 32, seed=99))
    with pytest.raises(ValueError, match="f1.png: its sha256 differs"):
        defaults.nih_training_list(fake_nih, tmp_path / "inv.csv", kind="inversion")


def test_publishing_leaves_no_local_path_in_the_shipped_bundle(tmp_path, monkeypatch):
    """The manifest and the suspect list in detector.json name films relative to the shared data."""
    import json

    data = tmp_path / "data"
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    local = str(data.resolve() / "nih" / "images" / "f0.png")
    pd.DataFrame([{"path": local, "split": "train"}]).to_csv(bundle / "training_manifest.csv", index=False)
    (bundle / "detector.json").write_text(json.dumps({"suspect_normals": [{"path": local, "score": 0.9, "split": "val"}]}))
    monkeypatch.setattr(defaults, "REPO", tmp_path)
    (tmp_path / "data_manifests").mkdir()
    target = defaults.publish_manifest(bundle, "flip", data)
    assert pd.read_csv(target).path.tolist() == ["nih/images/f0.png"]
    assert pd.read_csv(bundle / "training_manifest.csv").path.tolist() == ["nih/images/f0.png"]
    assert json.loads((bundle / "detector.json").read_text())["suspect_normals"][0]["path"] == "nih/images/f0.png"
