"""The scan's parts on their own: the output contract, reason folders, the metadata join, back-pressure."""
from __future__ import annotations

import threading
import time

import pytest

from cleaner.scan import folder as so
from cleaner.io.metadata import AgeTable, MetadataError
from cleaner.io.parallel import bounded_ordered_map
from cleaner.scan import ScanError, parse_threshold_overrides


def test_score_columns_follow_the_contract():
    assert so.score_columns(["inversion", "rotation"]) == [
        "path", "status", "error", "format", "photometric", "width", "height", "age_years", "age_source", "sex",
        "view_position", "body_part", "modality", "patient_id", "study_uid", "notes",
        "inversion_score", "inversion_flag", "rotation_score", "rotation_flag", "excluded", "reasons",
    ]
    assert so.exclusion_columns(["rotation"]) == ["path", "reasons", "rotation_score", "age_years"]
    # with a rotation detector: the turn that makes a flagged film upright, before excluded / age_years
    assert so.score_columns(["rotation"], turn=True)[-3:] == ["turn_upright_cw", "excluded", "reasons"]
    assert so.exclusion_columns(["rotation"], turn=True) == ["path", "reasons", "rotation_score",
                                                              "turn_upright_cw", "age_years"]
    assert so.DETECTOR_COLUMNS == ["name", "kind", "version", "threshold", "threshold_source", "bundle_path",
                                   "input_size", "input_borders", "gate"]


@pytest.mark.parametrize("reason, folder", [
    ("rotation", "rotation"), ("age<10", "age_under_10"), ("age<2.5", "age_under_2.5"),
    ("age_unknown", "age_unknown"), ("body part/other", "body_part_other"), ("<", "under"), ("", "unnamed"),
])
def test_reason_folder(reason, folder):
    assert so.reason_folder(reason) == folder


def test_age_reason_text():
    assert so.age_reason(10) == "age<10" and so.age_reason(2.5) == "age<2.5" and so.age_reason(18.0) == "age<18"


def test_review_targets_keep_the_relative_path_and_cannot_escape(tmp_path):
    targets = so.review_targets(tmp_path, "a/b/img.png", ["rotation", "age<10"])
    assert targets == [tmp_path / "review/rotation/a/b/img.png", tmp_path / "review/age_under_10/a/b/img.png"]
    (escaped,) = so.review_targets(tmp_path, "../../etc/passwd", ["x"])
    assert escaped == tmp_path / "review/x/%2E%2E/%2E%2E/etc/passwd"  # ".." is a name here, never a way up
    (absolute,) = so.review_targets(tmp_path, "/etc/passwd", ["x"])
    assert absolute == tmp_path / "review/x/%2F/etc/passwd"
    # every scan path its own copy: a name holding "\\" is no folder, "%" is escaped so no escape collides
    names = ["a/b.png", "a\\b.png", "a%5Cb.png", "_keep/c.png", "%5Fkeep/c.png", "c\r.png", "./a", ".", "", "/x"]
    relpaths = [so.review_relpath(n) for n in names]
    assert len(set(relpaths)) == len(names)
    assert all(".." not in p.split("/") and not p.startswith("/") and "\\" not in p for p in relpaths)


def test_age_table_joins_by_path_then_name_and_refuses_ambiguous_names(tmp_path):
    meta = tmp_path / "m.csv"
    meta.write_text("Image Index,Patient Age\n"
                    "site1/a.png,45\nb.png,061Y\nc.png,30\nc.png,70\nd.png,31\nd.png,31\nx/c.png,12\ne.png,\n"
                    "f.png,old\n")
    table = AgeTable.from_csv(meta)
    assert (table.id_column, table.age_column) == ("Image Index", "Patient Age")
    assert table.age_for("site1/a.png") == 45
    assert table.age_for("images/site1/a.png") == 45  # CSV paths relative to another root: joined by unique name
    assert table.age_for("deep/b.png") == 61  # by file name
    assert table.age_for("y/c.png") is None  # c.png has two different ages: never guessed
    assert table.age_for("x/c.png") == 12  # but the exact path is unambiguous
    assert table.age_for("z/d.png") == 31  # repeated with the same age: fine
    assert table.age_for("e.png") is None and table.age_for("f.png") is None
    assert table.unparsable == 1


def test_age_table_errors_name_the_file_and_columns(tmp_path):
    meta = tmp_path / "m.csv"
    meta.write_text("file,years\na.png,4\n")
    with pytest.raises(MetadataError, match=r"m\.csv: cannot tell which column holds the age.*'years'"):
        AgeTable.from_csv(meta)
    assert AgeTable.from_csv(meta, age_column="years").age_for("a.png") == 4
    with pytest.raises(MetadataError, match="no column 'Age'"):
        AgeTable.from_csv(meta, age_column="Age")
    with pytest.raises(MetadataError, match="not found"):
        AgeTable.from_csv(tmp_path / "missing.csv")


def test_threshold_overrides():
    assert parse_threshold_overrides(["rotation=0.8", " inversion = 0.25"]) == {"rotation": 0.8, "inversion": 0.25}
    for bad in ("rotation", "rotation=high", "rotation=1.5", "=0.5"):
        with pytest.raises(ScanError, match="NAME=VALUE"):
            parse_threshold_overrides([bad])


@pytest.mark.parametrize("workers", [1, 2])
def test_bounded_ordered_map_keeps_order_and_limits_work_in_flight(workers):
    lock = threading.Lock()
    state = {"pulled": 0, "consumed": 0, "max_ahead": 0}

    def items():
        for i in range(60):
            with lock:
                state["pulled"] += 1
                state["max_ahead"] = max(state["max_ahead"], state["pulled"] - state["consumed"])
            yield -i

    got = []
    for value in bounded_ordered_map(abs, items(), workers=workers, chunksize=2, ahead=6):
        time.sleep(0.005)  # a slow consumer (inference) behind fast producers (decoding)
        with lock:
            state["consumed"] += 1
        got.append(value)
    assert got == list(range(60))
    # the window, plus the result being consumed (its slot already freed) and one item waiting for a slot
    assert state["max_ahead"] <= 6 + 2


def test_bounded_ordered_map_closes_cleanly_when_the_consumer_stops_early():
    started = time.monotonic()
    gen = bounded_ordered_map(abs, iter(range(10_000)), workers=2, chunksize=2, ahead=5)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()  # must not hang on the feeder blocked for a slot
    assert time.monotonic() - started < 60


def test_detector_names_must_be_unique_and_bundles_must_exist(rule_bundles, tmp_path):
    import shutil

    from cleaner.scan.detector_set import load_scan_detectors, resolve_bundle_paths

    twin = tmp_path / "more" / "rotation_copy"
    shutil.copytree(rule_bundles / "rotation", twin)
    paths = resolve_bundle_paths([rule_bundles], [rule_bundles / "rotation", twin])
    assert len(paths) == 3  # the bundle named twice is used once
    with pytest.raises(ScanError, match="share a name"):
        load_scan_detectors(paths)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScanError, match="no detector bundles"):
        resolve_bundle_paths([empty], [])
    with pytest.raises(ScanError, match="not a detector bundle"):
        resolve_bundle_paths([], [empty])


def test_turn_degrees_round_trip_and_bad_values_are_named():
    from cleaner.scan.orientation import clockwise_degrees, quarter_turns

    # np.rot90 with k=1 turns a film a quarter counter-clockwise; the viewer applies that as 270 degrees clockwise
    assert [clockwise_degrees(k) for k in (0, 1, 2, 3)] == [0, 270, 180, 90]
    assert [quarter_turns(str(clockwise_degrees(k))) for k in (1, 2, 3)] == [1, 2, 3]
    assert quarter_turns("") == 0 and quarter_turns(None) == 0 and quarter_turns(float("nan")) == 0
    with pytest.raises(ValueError, match="turn_upright_cw '45'"):
        quarter_turns("45")


def test_uninverting_a_model_input_is_inverting_the_film_before_preprocessing():
    """The scan un-inverts the preprocessed inputs of the films inversion flags (decision 0014): that is only
    right if it equals preprocessing the inverted film, bars trimmed and percentiles stretched."""
    import numpy as np

    from cleaner.io.preprocess import InputSpec, preprocess
    from cleaner.scan.orientation import scored_input, scored_view, uninvert

    rng = np.random.default_rng(3)
    film = np.clip(rng.normal(0.4, 0.15, (90, 70)), 0, 1).astype(np.float32)
    film[:, :6] = 0.0  # a black bar at the side: trimmed on both, white on the inverted film
    film[10:30, 20:40] += 0.3
    for spec in (InputSpec(size=32), InputSpec(size=48, low_pct=5.0, high_pct=95.0), InputSpec(size=32, borders="keep")):
        plain, inverted = preprocess(film, spec), preprocess(np.float32(film.max()) - film, spec)
        stack = np.stack([inverted, plain])
        back = uninvert(stack, np.array([0]))
        np.testing.assert_allclose(back[0], plain, atol=1e-5)
        np.testing.assert_array_equal(back[1], plain)  # only the films named are un-inverted
        np.testing.assert_allclose(scored_input(inverted, 1, True), np.rot90(plain, 1), atol=1e-5)
    # rotation reads a film as it lies, inversion turned but as it is, the others turned and un-inverted
    assert [scored_view(k, 3, True) for k in ("rotation", "inversion", "flip", "custom")] == [
        (0, True), (3, False), (3, True), (3, True)]


def test_a_gate_detector_overrides_the_others_reasons_but_not_the_age_rule():
    from cleaner.scan.rules import ExclusionRules

    rules = ExclusionRules({"flip": 0.5, "non_frontal": 0.5, "rotation": 0.5}, min_age=10, gates=("non_frontal",))
    assert rules.reasons({"flip": True, "non_frontal": False, "rotation": True}, 40) == ["flip", "rotation"]
    assert rules.reasons({"flip": True, "non_frontal": True, "rotation": True}, 40) == ["non_frontal"]
    assert rules.reasons({"flip": False, "non_frontal": True, "rotation": False}, 5) == ["non_frontal", "age<10"]
    no_gate = ExclusionRules({"non_frontal": 0.5, "rotation": 0.5})
    assert no_gate.reasons({"non_frontal": True, "rotation": True}, None) == ["non_frontal", "rotation"]
