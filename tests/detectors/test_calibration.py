"""Thresholds chosen on real upright films: the rule, what it records, and what a set of films can promise."""
import json

import numpy as np
import pytest

from detectors.calibration import (calibrate_scores, fpr_upper_bound, recall_at, recall_curve, supported_fpr_note,
                                   threshold_at_fpr)


def test_what_a_number_of_negatives_can_promise():
    assert fpr_upper_bound(0, 200) == pytest.approx(0.0149, abs=2e-4)  # the "1.5 %"
    assert fpr_upper_bound(0, 3000) == pytest.approx(0.000998, abs=2e-5)
    assert fpr_upper_bound(2, 100) > fpr_upper_bound(0, 100) and fpr_upper_bound(5, 5) == 1.0
    assert "1.49%" in supported_fpr_note(200) and "3,000" in supported_fpr_note(200)


def test_threshold_flags_at_most_the_target_share_and_never_drops_below_validation():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 1000)
    for target in (0.0, 0.001, 0.01, 0.05):
        t = threshold_at_fpr(scores, target)
        assert (scores >= t).sum() <= int(target * 1000)
    assert threshold_at_fpr([0.1, 0.2], 0.0, floor=0.7) == 0.7  # uprights far below: the validation threshold stays
    t = threshold_at_fpr([0.1, 0.95], 0.0, floor=0.7)
    assert t > 0.95 and t < 0.97  # just above the highest upright film, by the margin in log-odds


def test_calibration_records_films_sites_and_recall_from_the_validation_curve():
    curve = recall_curve([0, 0, 1, 1, 1, 1], [0.1, 0.2, 0.6, 0.93, 0.97, 0.999], 0.5)
    assert curve[0] == [0.5, 1.0] and recall_at(curve, 0.95) == 0.5 and recall_at(curve, 0.4) is None
    cal = calibrate_scores([0.1, 0.3, 0.92], ["a", "a", "b"], 0.0, validation_threshold=0.5, recall_curve=curve)
    assert cal.threshold > 0.92 and cal.false_positives == 0 and cal.films == 3 and cal.sites == {"a": 2, "b": 1}
    assert cal.validation_recall == 0.75  # the curve's point at 0.9 (0.93, 0.97, 0.999 of 4 positives)
    assert cal.fpr_upper_95 == pytest.approx(fpr_upper_bound(0, 3)) and "raised from" in cal.note


def test_a_bundle_calibrated_on_real_uprights_keeps_its_model_and_records_how(rule_bundles, tmp_path):
    import detectors
    from click.testing import CliRunner

    from cleaner.cli import main
    from imagegen import phantom, write_png8

    uprights = tmp_path / "uprights"
    for i in range(12):  # bright top-right quadrant: the rule rotation detector scores these high
        film = phantom(64, 64, seed=i)
        film[:32, 32:] = 1.0 if i < 3 else film[:32, 32:]
        (uprights / f"site{i % 2}").mkdir(parents=True, exist_ok=True)
        write_png8(uprights / f"site{i % 2}" / f"f{i}.png", film)
    (uprights / "site0" / "broken.png").write_bytes(b"not a png")
    before = detectors.load(rule_bundles / "rotation")
    res = CliRunner().invoke(main, ["calibrate", str(rule_bundles / "rotation"), "--uprights", str(uprights),
                                    "--target-fpr", "0", "--out", str(tmp_path / "calibrated")])
    assert res.exit_code == 0, res.output
    after = detectors.load(tmp_path / "calibrated")
    assert after.version == before.version  # the same model
    scores = after.score(sorted(p for p in uprights.rglob("f*.png")))
    assert scores.max() >= before.threshold and (scores >= after.threshold).sum() == 0
    info = json.loads((tmp_path / "calibrated" / "detector.json").read_text())
    cal = info["threshold_choice"]["calibration"]
    assert cal["films"] == 12 and cal["sites"] == {"site0": 6, "site1": 6} and cal["unreadable"] == 1
    assert info["threshold"] == cal["threshold"] and cal["validation_threshold"] == before.threshold
    assert json.loads((rule_bundles / "rotation" / "detector.json").read_text())["threshold"] == before.threshold
