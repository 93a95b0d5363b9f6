"""Kinds, synthesis and the split: each artefact is what it claims, nothing else separates the classes,
and no image or patient is on both sides of the split."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cleaner.io.preprocess import InputSpec, preprocess
from detectors.data import TrainingImage, decode_sources, list_sources, parse_label, split_sources, write_manifest
from detectors.kinds import KINDS, get_kind
from detectors.synthesis import (MADE, _plates, any_orientation, augment, build_eval_set, example_plan, make_example,
                                 unframe)
from synthetic_films import fake_radiograph, write_normals

SPEC = InputSpec(size=32)


@pytest.fixture
def image():
    return fake_radiograph(np.random.default_rng(3), 80, 64)


def test_registry_has_the_four_kinds_and_names_them_on_error():
    assert {"rotation", "inversion", "flip", "custom"} <= set(KINDS)
    assert not get_kind("custom").synthetic and get_kind("flip").synthetic
    with pytest.raises(ValueError, match="known kinds: .*rotation"):
        get_kind("sideways")
    with pytest.raises(ValueError, match="labelled"):
        get_kind("custom").positive(np.zeros((4, 4), np.float32), 0)


@pytest.mark.parametrize("variant,k", [(0, 1), (1, 2), (2, 3)])
def test_rotation_positive_is_a_quarter_turn_of_the_decoded_image(image, variant, k):
    kind = get_kind("rotation")
    got = make_example(image, kind, True, variant, SPEC)
    np.testing.assert_array_equal(got, preprocess(np.rot90(image, k), SPEC))
    assert not np.allclose(got, make_example(image, kind, False, 0, SPEC), atol=0.05)


def test_rotation_commutes_with_the_preprocessing_resize():
    """Why caching at a working resolution is safe: turning then resizing = resizing then turning."""
    square = fake_radiograph(np.random.default_rng(5), 96, 96)
    for k in (1, 2, 3):
        np.testing.assert_allclose(preprocess(np.rot90(square, k), SPEC), np.rot90(preprocess(square, SPEC), k), atol=1e-4)


def test_inversion_positive_is_max_minus_x_and_stays_exact_after_preprocessing(image):
    kind = get_kind("inversion")
    np.testing.assert_allclose(kind.positive(image, 0), image.max() - image, atol=1e-7)
    got = make_example(image, kind, True, 0, SPEC)
    np.testing.assert_allclose(got, 1.0 - make_example(image, kind, False, 0, SPEC), atol=1e-4)


def test_flip_positive_is_the_left_right_mirror(image):
    kind = get_kind("flip")
    got = make_example(image, kind, True, 0, SPEC)
    np.testing.assert_allclose(got, make_example(image, kind, False, 0, SPEC)[:, ::-1], atol=1e-5)
    assert not np.allclose(got, make_example(image, kind, False, 0, SPEC), atol=0.05)


def test_negatives_are_exactly_what_scanning_sees(image):
    for name in ("rotation", "inversion", "flip"):
        np.testing.assert_array_equal(make_example(image, get_kind(name), False, 0, SPEC), preprocess(image, SPEC))


@pytest.mark.parametrize("name", ["rotation", "inversion", "flip"])
def test_augmentation_is_the_same_for_both_classes(image, name):
    """Same random draws -> the positive is exactly the artefact of the augmented negative."""
    kind = get_kind(name)
    neg = make_example(image, kind, False, 1, SPEC, np.random.default_rng(11))
    pos = make_example(image, kind, True, 1, SPEC, np.random.default_rng(11))
    rng = np.random.default_rng(11)
    augmented = kind.add_nuisances(augment(image, rng, kind.haze), rng)
    plated = (lambda x: _plates(x, copy.deepcopy(rng))) if kind.plates else (lambda x: x)
    np.testing.assert_array_equal(neg, preprocess(plated(augmented), SPEC))
    np.testing.assert_array_equal(pos, preprocess(plated(kind.positive(augmented, 1)), SPEC))
    assert not np.array_equal(neg, preprocess(image, SPEC))  # augmentation did something


def test_augment_stays_in_range_and_varies(image):
    rng = np.random.default_rng(0)
    outs = [augment(image, rng) for _ in range(5)]
    assert all(o.dtype == np.float32 and o.min() >= 0 and o.max() <= 1 for o in outs)
    assert len({o.shape for o in outs}) > 1 or not np.allclose(outs[0], outs[1])


def test_rotation_plan_is_balanced_across_angles_and_classes():
    plan = example_plan([None] * 30, get_kind("rotation"), np.random.default_rng(0))
    labels = [y for _, y, _ in plan]
    assert labels.count(0) == labels.count(1) == 30
    angles = [v for _, y, v in plan if y == 1]
    assert sorted(angles.count(v) for v in range(3)) == [10, 10, 10]
    # every normal gives exactly one negative and one positive
    assert sorted(i for i, _, _ in plan) == sorted(list(range(30)) * 2)


def test_custom_plan_balances_classes_in_training_but_not_in_evaluation():
    labels = [1] * 3 + [0] * 9
    train_plan = example_plan(labels, get_kind("custom"), np.random.default_rng(0))
    assert [y for _, y, _ in train_plan].count(1) == [y for _, y, _ in train_plan].count(0) == 9
    eval_plan = example_plan(labels, get_kind("custom"), None)
    assert sorted(i for i, _, _ in eval_plan) == list(range(12))


def test_made_positives_are_cut_from_negatives_in_training_only():
    from dataclasses import replace

    labels = [1] * 4 + [0] * 40
    kind = replace(get_kind("custom"), made_positives=0.5)
    plan = example_plan(labels, kind, np.random.default_rng(0))
    made = [(i, y) for i, y, v in plan if v == MADE]
    assert [y for _, y, _ in plan].count(1) == [y for _, y, _ in plan].count(0) == 40  # still balanced
    assert len(made) == 18 and all(y == 1 and labels[i] == 0 for i, y in made)  # half of the 36 added positives
    assert all(v != MADE for _, _, v in example_plan(labels, kind, None))  # validation: real films only
    assert all(v != MADE for _, _, v in example_plan(labels, get_kind("custom"), np.random.default_rng(0)))


def test_turned_positives_lie_every_way_round_in_training_and_negatives_as_they_are(image):
    from dataclasses import replace

    ways = [np.rot90(image, k) for k in range(4)]
    ways += [w[:, ::-1] for w in ways]
    seen = set()
    for seed in range(60):
        got = any_orientation(image, np.random.default_rng(seed))
        seen.add(next(i for i, w in enumerate(ways) if w.shape == got.shape and np.array_equal(w, got)))
    assert seen == set(range(8))  # all four quarter turns, each also mirrored
    turned, plain = replace(get_kind("custom"), turned_positives=True), get_kind("custom")
    for seed in range(6):  # a negative is drawn exactly as without the option, so only the positives change
        np.testing.assert_array_equal(make_example(image, turned, False, 0, SPEC, np.random.default_rng(seed)),
                                      make_example(image, plain, False, 0, SPEC, np.random.default_rng(seed)))
    moved = [not np.allclose(make_example(image, turned, True, 0, SPEC, np.random.default_rng(s)),
                             make_example(image, plain, True, 0, SPEC, np.random.default_rng(s)), atol=1e-6)
             for s in range(40)]
    assert 25 <= sum(moved) < 40  # 7 in 8 turned or mirrored; the rest lie as they were
    np.testing.assert_array_equal(make_example(image, turned, True, 0, SPEC), make_example(image, plain, True, 0, SPEC))


def test_unframe_cuts_a_side_strip_or_a_coned_window(image):
    h, w = image.shape
    shapes = set()
    for seed in range(40):
        part = unframe(image, np.random.default_rng(seed))
        strip = part.shape[0] == h and 0.35 * w - 1 <= part.shape[1] <= 0.6 * w
        window = 0.25 * h - 1 <= part.shape[0] <= 0.5 * h and 0.25 * w - 1 <= part.shape[1] <= 0.5 * w
        assert strip or window, part.shape
        assert any(np.array_equal(part, image[t : t + part.shape[0], l : l + part.shape[1]])
                   for t in range(h - part.shape[0] + 1) for l in range(w - part.shape[1] + 1))
        shapes.add("strip" if strip else "window")
    assert shapes == {"strip", "window"}
    x = make_example(image, get_kind("custom"), True, MADE, SPEC, np.random.default_rng(1))
    assert x.shape == (32, 32, 1)


def test_eval_set_pairs_every_image_with_its_artefact(image):
    x, y, idx, var = build_eval_set([image, image[:, ::-1].copy()], [None, None], get_kind("rotation"), SPEC)
    assert x.shape == (4, 32, 32, 1) and list(y) == [0, 1, 0, 1] and list(idx) == [0, 0, 1, 1]
    np.testing.assert_array_equal(x[1], preprocess(np.rot90(image, var[1] + 1), SPEC))


def _sources(n_patients=30, per_patient=3):
    out = []
    for p in range(n_patients):
        for j in range(per_patient):
            out.append(TrainingImage(f"p{p}_{j}.png", patient_id=f"P{p}", sha256=f"{p:04d}{j}"))
    # byte-identical copies under different names, no patient id: must stay together
    out += [TrainingImage("copy_a.png", sha256="same"), TrainingImage("copy_b.png", sha256="same")]
    out += [TrainingImage(f"solo{i}.png", sha256=f"solo{i}") for i in range(20)]
    return out


def test_split_keeps_patients_and_identical_files_on_one_side():
    sources = _sources()
    split_sources(sources, 0.3, seed=1)
    side = {}
    for s in sources:
        assert s.split in ("train", "val")
        assert side.setdefault(s.group, s.split) == s.split
    n_val = sum(s.split == "val" for s in sources)
    assert 0.25 * len(sources) <= n_val <= 0.4 * len(sources)


def test_split_is_seeded_and_reproducible():
    a, b, c = _sources(), _sources(), _sources()
    split_sources(a, 0.3, seed=7)
    split_sources(b, 0.3, seed=7)
    split_sources(c, 0.3, seed=8)
    assert [s.split for s in a] == [s.split for s in b]
    assert [s.split for s in a] != [s.split for s in c]
    with pytest.raises(ValueError, match="val-fraction"):
        split_sources(a, 1.5, seed=0)


def test_csv_sources_resolve_relative_paths_patients_and_labels(tmp_path):
    paths = write_normals(tmp_path / "imgs", 4)
    pd.DataFrame({"path": [f"imgs/{p.name}" for p in paths], "label": ["1", "no", "positive", "0"],
                  "patient_id": ["a", "a", "b", ""], "weight": ["3", "", "0", "1"]}).to_csv(tmp_path / "list.csv", index=False)
    sources = list_sources(tmp_path / "list.csv", need_label=True)
    assert [s.path for s in sources] == [str(tmp_path / "imgs" / p.name) for p in paths]
    assert [s.label for s in sources] == [1, 0, 1, 0]
    assert [s.patient_id for s in sources] == ["a", "a", "b", None]
    assert [s.weight for s in sources] == [3, 1, 0, 1]
    pd.DataFrame({"path": ["a.png"], "weight": ["1.5"]}).to_csv(tmp_path / "w.csv", index=False)
    with pytest.raises(ValueError, match="row 2: weight '1.5'"):
        list_sources(tmp_path / "w.csv")
    with pytest.raises(ValueError, match="label"):
        parse_label("maybe", "x.csv row 3")
    pd.DataFrame({"file": ["a.png"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="'path' column"):
        list_sources(tmp_path / "bad.csv")


def test_unreadable_images_are_kept_with_their_reason_in_the_manifest(tmp_path):
    write_normals(tmp_path / "n", 6)
    (tmp_path / "n" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    sources = decode_sources(list_sources(tmp_path / "n"), max_side=512, progress=False)
    split_sources(sources, 0.3, seed=0)
    manifest = pd.read_csv(write_manifest(sources, tmp_path / "m.csv", "flip"), keep_default_na=False)
    assert len(manifest) == 7
    broken = manifest[manifest.path.str.endswith("broken.png")].iloc[0]
    assert broken.split == "unreadable" and "PNG" in broken.error
    ok = manifest[manifest.split != "unreadable"]
    assert ok.sha256.str.len().eq(64).all() and set(ok.split) == {"train", "val"}


def test_large_images_are_cached_at_the_working_resolution(tmp_path):
    arr = (fake_radiograph(np.random.default_rng(0), 600, 400) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "big.png")
    (source,) = decode_sources(list_sources(tmp_path), max_side=300, progress=False)
    assert source.pixels.shape == (300, 200)


@pytest.mark.shared_data
def test_nih_patient_split_has_no_leakage(shared_data):
    csv = shared_data / "nih" / "metadata.csv"
    sources = list_sources(csv)
    for s in sources:  # grouping needs no pixels; hash the path as a stand-in for content
        s.sha256 = s.path
    split_sources(sources, 0.3, seed=0)
    train_p = {s.patient_id for s in sources if s.split == "train"}
    val_p = {s.patient_id for s in sources if s.split == "val"}
    assert train_p and val_p and not (train_p & val_p)


def test_nuisance_artefacts_reach_both_classes_and_only_in_training(image):
    """The inversion detector must learn that a rotated or mirrored film is not inverted: some of its
    training negatives are rotated/mirrored uprights, and the positives get the same draws."""
    kind = get_kind("inversion")
    assert set(kind.nuisances) == {"rotation", "flip"}
    orientations = {"upright": 0, "other": 0}
    for seed in range(40):
        neg = make_example(image, kind, False, 0, SPEC, np.random.default_rng(seed))
        pos = make_example(image, kind, True, 0, SPEC, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        augmented = augment(image, rng, kind.haze)
        state = kind.add_nuisances(augmented, rng)
        plates_rng = copy.deepcopy(rng)  # then the same annotation plates on both (kind.plates)
        np.testing.assert_array_equal(pos, preprocess(_plates(kind.positive(state, 0), rng), SPEC))
        orientations["upright" if state is augmented else "other"] += 1
        np.testing.assert_array_equal(neg, preprocess(_plates(state, plates_rng), SPEC))
    assert orientations["upright"] > orientations["other"] > 0
    # validation and evaluation (no rng) never see nuisances
    np.testing.assert_array_equal(make_example(image, kind, False, 0, SPEC), preprocess(image, SPEC))


def test_every_nuisance_names_a_registered_synthetic_kind():
    from detectors.kinds import KINDS

    for kind in KINDS.values():
        for name in kind.nuisances:
            assert name != kind.name and get_kind(name).synthetic, (kind.name, name)


def test_annotation_plates_cover_both_classes_alike_and_never_a_text_reading_kind(image):
    """A figure's "(D)" plate made the rotation and inversion detectors flag an upright film: plates are
    drawn after the artefact, so an inverted film's plate looks like an upright one's; flip (which reads its
    plates) gets none."""
    drawn = 0
    for seed in range(30):
        upright = np.full((300, 240), 0.35, np.float32)
        a = _plates(upright, np.random.default_rng(seed))
        b = _plates(1 - upright, np.random.default_rng(seed))
        changed = np.abs(a - upright) > 0.2
        if not changed.any():
            np.testing.assert_array_equal(b, 1 - upright)
            continue
        drawn += 1
        np.testing.assert_allclose(a[changed], b[changed], atol=0.05)  # the plate, not the film beneath it
        assert changed.mean() < 0.15  # a plate, not a film: the biggest panel label of these draws, "(E)" in a box, is 11 %
    assert 3 <= drawn <= 20  # p = 0.3
    for seed in range(60):  # plates wider or taller than a small film stay inside it
        for shape in ((40, 300), (300, 24), (16, 16)):
            assert _plates(np.full(shape, 0.5, np.float32), np.random.default_rng(seed)).shape == shape
    assert get_kind("rotation").plates and get_kind("inversion").plates and not get_kind("flip").plates
    flush = 0
    for seed in range(200):  # half the plates are panel labels: a box flush with a corner of the film
        a = _plates(np.full((200, 200), 0.5, np.float32), np.random.default_rng(seed))
        corners = [a[0, 0], a[0, -1], a[-1, 0], a[-1, -1]]
        flush += any(abs(c - 0.5) > 0.3 for c in corners)
    assert 15 <= flush <= 50, flush  # 31 of 200 drawn; without panel labels, almost never
    with_plates = 0
    for name in ("rotation", "inversion", "flip"):
        kind = get_kind(name)
        for seed in range(20):
            rng = np.random.default_rng(seed)
            x = kind.positive(kind.add_nuisances(augment(image, rng, kind.haze), rng), 0)
            plates_rng = copy.deepcopy(rng)
            got = make_example(image, kind, True, 0, SPEC, np.random.default_rng(seed))
            np.testing.assert_array_equal(got, preprocess(_plates(x, plates_rng) if kind.plates else x, SPEC))
            with_plates += int(kind.plates and not np.array_equal(got, preprocess(x, SPEC)))
    assert with_plates >= 2


def test_a_kind_that_compares_a_film_with_its_inversion_stretches_symmetric_percentiles(image):
    """Inversion stretches 5-95 (a white label box must not set the film's contrast), symmetric so that an
    inverted film is still exactly 1 - x after preprocessing; other kinds keep 0.5-99.5."""
    from detectors.kinds import Kind

    inversion = get_kind("inversion")
    assert inversion.compares_inverse and inversion.percentiles == (5.0, 95.0)
    assert get_kind("rotation").percentiles == get_kind("flip").percentiles == (0.5, 99.5)
    spec = InputSpec(size=32, low_pct=5.0, high_pct=95.0)
    rng = np.random.default_rng(0)
    film = (np.linspace(0.1, 0.7, 80)[:, None] + 0.02 * rng.standard_normal((80, 64))).astype(np.float32)  # a dark film
    boxed = film.copy()
    boxed[-12:, :10] = 1.0  # a white label box on 2.3 % of it
    got, erased = preprocess(boxed, spec), preprocess(film, spec)
    assert np.abs(got - erased)[:20].max() < 0.05  # the box does not rescale the rest of the film
    assert np.abs(preprocess(boxed, SPEC) - preprocess(film, SPEC))[:20].mean() > 0.1  # with 0.5-99.5 it does
    np.testing.assert_allclose(make_example(boxed, inversion, True, 0, spec), 1 - got, atol=1e-4)
    with pytest.raises(ValueError, match="symmetric"):
        Kind("lopsided", "x", lambda p, v: 1 - p, ("inverted",), compares_inverse=True, percentiles=(1.0, 95.0))
    with pytest.raises(ValueError, match="percentiles"):
        Kind("backwards", "x", lambda p, v: 1 - p, ("inverted",), percentiles=(60.0, 40.0))
