"""Threshold choice, validation metrics and curve plots."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from detectors.metrics import binary_metrics, choose_threshold, save_curves

Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
S = np.array([0.1, 0.2, 0.3, 0.6, 0.5, 0.7, 0.8, 0.9])


def test_threshold_is_highest_recall_with_target_precision_and_keeps_a_margin():
    choice = choose_threshold(Y, S, target_precision=0.999)
    # precision 1 needs t > 0.6 (the top negative); recall is then 3/4; the threshold sits mid-gap
    assert choice.met and choice.precision == 1.0 and choice.recall == 0.75
    assert choice.threshold == pytest.approx(0.65)
    flagged = S >= choice.threshold
    assert flagged.tolist() == [False] * 5 + [True] * 3


def test_lower_target_buys_more_recall():
    choice = choose_threshold(Y, S, target_precision=0.75)
    assert choice.met and choice.recall == 1.0 and choice.precision == pytest.approx(0.8)
    assert 0.3 < choice.threshold <= 0.5


def test_target_not_met_is_said_plainly_and_the_most_precise_threshold_is_used():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.95, 0.1, 0.9, 0.8])
    choice = choose_threshold(y, s, target_precision=0.999)
    assert not choice.met
    assert "TARGET NOT MET" in choice.note
    assert choice.precision == pytest.approx(2 / 3) and choice.recall == 1.0
    with pytest.raises(ValueError, match="both positive and negative"):
        choose_threshold(np.ones(3), np.ones(3))


def test_binary_metrics_match_a_hand_count():
    m = binary_metrics(Y, S, threshold=0.55)
    assert m["confusion_matrix"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 3}
    assert m["accuracy"] == 0.75 and m["precision"] == 0.75 and m["recall"] == 0.75
    assert m["auc"] == pytest.approx(15 / 16)
    assert binary_metrics(np.zeros(3), np.array([0.1, 0.2, 0.9]), 0.5)["auc"] is None


def test_curves_are_written_as_png(tmp_path):
    names = save_curves(Y, S, tmp_path, "test", threshold=0.65)
    for name in names.values():
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.size[0] > 100


def test_a_real_artefact_among_the_normals_is_suspect_even_above_the_threshold_it_forced():
    from detectors.metrics import is_suspect_normal

    # NIH's inverted film: the threshold was pushed to just above it (0.99981), its own inversion scores 0.0005
    assert is_suspect_normal(0.999805, 0.000489, threshold=0.99981)
    assert is_suspect_normal(0.7, 0.99, threshold=0.6)  # flagged
    assert not is_suspect_normal(0.3, 0.01, threshold=0.6)  # low score, whatever its artefact scores
    assert not is_suspect_normal(0.55, 0.98, threshold=0.6)  # its artefact looks more like one: a normal
    assert not is_suspect_normal(None, None, threshold=0.6)  # unreadable
