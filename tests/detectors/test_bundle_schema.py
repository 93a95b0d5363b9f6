"""Hostile bundles: ``detector.json`` is checked against its schema before anything is trusted, a bundle never
loads a model from outside its own folder, and bundle folders reached through symbolic links are found."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from detectors.bundle import BundleError, find_bundles, load


@pytest.fixture
def bundle(rule_bundles, tmp_path) -> Path:
    """A private copy of the rule ``rotation`` bundle, free to be damaged."""
    return Path(shutil.copytree(rule_bundles / "rotation", tmp_path / "rotation"))


def edit(bundle: Path, **changes) -> Path:
    info_path = bundle / "detector.json"
    info = json.loads(info_path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(info.get(key), dict):
            info[key] = {**info[key], **value}
        elif value is DELETE:
            info.pop(key, None)
        else:
            info[key] = value
    info_path.write_text(json.dumps(info))
    return info_path


DELETE = object()


@pytest.mark.parametrize("changes, field, why", [
    ({"threshold": float("nan")}, "threshold", "finite number between 0 and 1"),
    ({"threshold": 5}, "threshold", "finite number between 0 and 1"),
    ({"threshold": -0.1}, "threshold", "finite number between 0 and 1"),
    ({"threshold": "0.5"}, "threshold", "finite number between 0 and 1"),
    ({"threshold": True}, "threshold", "finite number between 0 and 1"),
    ({"threshold": DELETE}, "threshold", "missing"),
    ({"input": {"size": 100000}}, "input.size", "whole number between 16 and 2048"),
    ({"input": {"size": 64.5}}, "input.size", "whole number between 16 and 2048"),
    ({"input": {"size": "64"}}, "input.size", "whole number between 16 and 2048"),
    ({"input": {"low_pct": 60, "high_pct": 40}}, "input", "percentiles"),
    ({"input": {"normalisation": "zscore"}}, "input.normalisation", "one of"),
    ({"input": {"borders": "pad"}}, "input.borders", "one of"),
    ({"input": [32]}, "input", "an object"),
    ({"model_file": "../../x/model.keras"}, "model_file", "a plain file name inside the bundle"),
    ({"model_file": "/etc/model.keras"}, "model_file", "a plain file name inside the bundle"),
    ({"model_file": "sub/model.keras"}, "model_file", "a plain file name inside the bundle"),
    ({"model_file": 7}, "model_file", "a plain file name inside the bundle"),
    ({"model_sha256": None}, "model_sha256", "64 hexadecimal digits"),
    ({"model_sha256": DELETE}, "model_sha256", "missing"),
    ({"model_sha256": "abc"}, "model_sha256", "64 hexadecimal digits"),
    ({"name": "rot;ation"}, "name", "letters, digits and underscores"),
    ({"name": 3}, "name", "letters, digits and underscores"),
    ({"kind": ""}, "kind", "non-empty"),
    ({"format_version": 99}, "format_version", "newer"),
])
def test_malformed_detector_json_is_refused_naming_file_and_field(bundle, changes, field, why):
    info_path = edit(bundle, **changes)
    with pytest.raises(BundleError) as err:
        load(bundle)
    message = str(err.value)
    assert str(info_path) in message and field in message and why in message, message


def test_unreadable_detector_json_is_a_bundle_error(bundle):
    (bundle / "detector.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"detector\.json: not valid JSON"):
        load(bundle)
    (bundle / "detector.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match=r"detector\.json: expected a JSON object"):
        load(bundle)


def test_a_model_outside_the_bundle_is_never_loaded(bundle, rule_bundles, tmp_path):
    """Even with the right sha256, neither a path out of the folder nor a link out of it is followed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(rule_bundles / "inversion" / "model.keras", elsewhere / "model.keras")
    from cleaner.io.manifests import file_sha256

    sha = file_sha256(elsewhere / "model.keras")
    edit(bundle, model_file="../elsewhere/model.keras", model_sha256=sha)
    with pytest.raises(BundleError, match="model_file"):
        load(bundle)
    edit(bundle, model_file="model.keras")
    (bundle / "model.keras").unlink()
    os.symlink(elsewhere / "model.keras", bundle / "model.keras")
    with pytest.raises(BundleError, match="outside the bundle"):
        load(bundle)


def test_a_valid_bundle_still_loads_and_a_changed_model_is_refused(bundle):
    det = load(bundle)
    assert det.name == "rotation" and det.threshold == 0.5 and det.input_spec.size == 32
    with open(bundle / "model.keras", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="does not match the sha256"):
        load(bundle)


def test_default_bundles_pass_the_schema():
    from detectors.bundle import default_bundles_dir
    from detectors.bundle_schema import info_problems

    root = default_bundles_dir()
    if root is None:
        pytest.skip("no default bundles")
    for info_path in sorted(root.glob("*/detector.json")):
        assert info_problems(json.loads(info_path.read_text()), info_path.parent) == [], info_path


def test_symlinked_bundle_folders_are_found_and_loops_cut(rule_bundles, tmp_path):
    detectors_dir = tmp_path / "detectors"
    detectors_dir.mkdir()
    os.symlink(rule_bundles / "rotation", detectors_dir / "rot")
    os.symlink(rule_bundles / "inversion", detectors_dir / "inv")
    os.symlink(detectors_dir, detectors_dir / "loop")  # a loop must not be walked forever
    found = find_bundles(detectors_dir)
    assert found == [detectors_dir / "inv", detectors_dir / "rot"]

    from cleaner.scan.detector_set import resolve_bundle_paths

    assert len(resolve_bundle_paths([detectors_dir], [])) == 2


def test_the_command_line_names_a_bad_bundle_and_exits_2(bundle, built_archive, tmp_path):
    from click.testing import CliRunner

    from cleaner.cli import main

    info_path = edit(bundle, threshold=float("nan"), input={"size": 100000})
    for extra in (["--out", str(tmp_path / "out")], ["--dry-run"]):
        res = CliRunner().invoke(main, ["scan", str(built_archive.root), "--detector", str(bundle), *extra])
        assert res.exit_code == 2 and res.exception is None or isinstance(res.exception, SystemExit), res.output
        assert "error: " in res.output and str(info_path) in res.output
        assert "threshold: must be a finite number between 0 and 1, not nan" in res.output
        assert "input.size: must be a whole number between 16 and 2048 (pixels), not 100000" in res.output
    assert not (tmp_path / "out").exists()  # stopped before anything was written
    info_path.write_text("[]")
    res = CliRunner().invoke(main, ["scan", str(built_archive.root), "--detector", str(bundle), "--dry-run"])
    assert res.exit_code == 2 and "expected a JSON object" in res.output
