"""End-to-end scans of a generated archive with rule-based detectors: rows, exclusions, errors, review, safety."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cleaner.scan import folder as so
from cleaner.cli import main
from cleaner.scan import ScanError, scan_archive
from cleaner.scan.folder import JOURNAL_FILE
from scan_kill import kill_when_journalled

MIN_AGE = 10


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def snapshot(root: Path) -> dict:
    """Every entry below ``root`` (links not followed): type, size, mtime and content hash."""
    snap = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = Path(folder) / name
            st = p.lstat()
            digest = None
            if p.is_file() and not p.is_symlink():
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            snap[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return snap


def review_tree(out: Path) -> dict:
    root = out / so.REVIEW_DIR
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_full_scan(archive, out, bundles, **kw):
    return scan_archive(archive.root, out, detector_dirs=[bundles], min_age=MIN_AGE, metadata=archive.metadata_csv,
                        progress=False, **kw)


def test_scan_yields_exactly_the_expected_rows_exclusions_errors_and_review(built_archive, rule_bundles, tmp_path):
    arch = built_archive
    before = snapshot(arch.root)
    out = tmp_path / "out"
    summary = run_full_scan(arch, out, rule_bundles, workers=2, batch_size=4)

    rows = read_csv(out / "scores.csv")
    names = ["inversion", "rotation"]
    assert list(rows[0].keys()) == so.score_columns(names, turn=True)
    # one row per candidate, in walker order; nothing dropped, nothing extra
    assert [r["path"] for r in rows] == list(arch.expected)
    for row in rows:
        exp = arch.expected[row["path"]]
        assert row["status"] == exp.status, row
        assert row["reasons"] == ";".join(exp.reasons), row
        assert row["excluded"] == str(bool(exp.reasons))
        if exp.status == "error":
            assert row["error"] and row["inversion_score"] == "" and row["rotation_flag"] == ""
            continue
        assert row["error"] == ""
        assert (float(row["age_years"]) if row["age_years"] else None) == exp.age
        assert row["age_source"] == exp.age_source
        for name in names:
            score = float(row[f"{name}_score"])
            assert 0.0 <= score <= 1.0
            assert row[f"{name}_flag"] == str(name in exp.reasons)
            assert (score >= 0.5) == (name in exp.reasons)
        if exp.photometric:
            assert row["photometric"] == exp.photometric
        # a rotated film gets the turn that makes it upright; any other film none
        assert row["turn_upright_cw"] == (str(exp.turn_cw) if exp.turn_cw else ""), row
    mono1 = next(r for r in rows if r["path"] == "dicom/mono1.dcm")
    assert mono1["photometric"] == "MONOCHROME1" and mono1["inversion_flag"] == "False"
    assert float(mono1["inversion_score"]) < 0.1  # read as displayed, not as stored

    excl = read_csv(out / "exclusions.csv")
    assert list(excl[0].keys()) == so.exclusion_columns(names, turn=True)
    assert {r["path"]: r["reasons"].split(";") for r in excl} == arch.excluded()

    errors = read_csv(out / "errors.csv")
    assert [e["path"] for e in errors] == [p for p, e in arch.expected.items() if e.status == "error"]
    reasons = {e["path"]: e["error"] for e in errors}
    assert "empty" in reasons["bad/empty.png"]
    assert "truncated" in reasons["bad/truncated.png"]
    assert "unrecognised" in reasons["bad/not_an_image.png"]

    dets = read_csv(out / "detectors.csv")
    assert [d["name"] for d in dets] == names
    assert list(dets[0].keys()) == so.DETECTOR_COLUMNS
    assert {d["input_size"] for d in dets} == {"32", "48"}
    assert all(d["threshold_source"] == "bundle" and d["version"].startswith(d["name"] + "-") for d in dets)

    # review copies: one per (file, reason), the relative path kept (two img.png never collide), a PNG beside DICOM
    expected_review = set()
    for rel, reasons_ in arch.excluded().items():
        for reason in reasons_:
            expected_review.add(f"{so.reason_folder(reason)}/{rel}")
            if rel.endswith(".dcm"):
                expected_review.add(f"{so.reason_folder(reason)}/{rel}.png")
    assert set(review_tree(out)) == expected_review
    assert "age_under_10/dicom/dates_rotated.dcm" in expected_review
    assert "rotation/dicom/dates_rotated.dcm" in expected_review
    for entry in expected_review:
        copy = out / "review" / entry
        if entry.endswith(".dcm.png"):
            from PIL import Image

            with Image.open(copy) as im:
                assert im.format == "PNG" and im.mode == "L"
            continue
        original = arch.root / entry.split("/", 1)[1]
        assert copy.read_bytes() == original.read_bytes()
        assert copy.stat().st_mtime_ns == original.stat().st_mtime_ns  # copy2

    n_err = sum(e.status == "error" for e in arch.expected.values())
    assert summary["files"] == len(arch.expected)
    assert summary["ok"] == len(arch.expected) - n_err and summary["errors"] == n_err
    assert summary["excluded"] == len(arch.excluded())
    assert summary["excluded_per_reason"] == {"age<10": 3, "inversion": 2, "rotation": 4}
    assert summary["skipped"] == arch.skipped
    assert summary["unknown_age_count"] == 2  # the two img.png (ambiguous in the metadata)
    assert summary["min_age"] == MIN_AGE and summary["unknown_age"] == "keep"
    assert [d["name"] for d in summary["detectors"]] == names
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["files"] == summary["files"] and on_disk["archive"] == str(arch.root)
    assert not (out / JOURNAL_FILE).exists()

    assert snapshot(arch.root) == before  # the archive is never modified (files, sizes, mtimes, contents)


def test_sigkill_part_way_then_resume_equals_uninterrupted(built_archive, rule_bundles, tmp_path, subprocess_env):
    arch = built_archive
    before = snapshot(arch.root)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "cleaner", "scan", str(arch.root), "--out", str(out), "--detectors",
           str(rule_bundles), "--min-age", str(MIN_AGE), "--metadata", str(arch.metadata_csv),
           "--workers", "2", "--batch-size", "2", "--quiet"]
    env = dict(subprocess_env, CXCLEAN_SCAN_BATCH_DELAY="0.5")
    status, journalled, stderr = kill_when_journalled(cmd, env, out, rows=4)  # main process and decoders at once
    assert status == -signal.SIGKILL, stderr[-2000:]
    assert 4 <= journalled < len(arch.expected)
    assert not (out / "summary.json").exists() and not (out / "scores.csv").exists()

    refused = subprocess.run(cmd, env=subprocess_env, capture_output=True, text=True)
    assert refused.returncode != 0 and "--resume" in refused.stderr and "not empty" in refused.stderr

    resumed = subprocess.run(cmd + ["--resume"], env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Scanned" in resumed.stdout

    ref = tmp_path / "uninterrupted"
    reference = run_full_scan(arch, ref, rule_bundles, workers=1, batch_size=5)
    for name in ("scores.csv", "exclusions.csv", "errors.csv", "detectors.csv"):
        assert (out / name).read_text() == (ref / name).read_text(), name
    assert review_tree(out) == review_tree(ref)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("files", "ok", "errors", "excluded", "excluded_per_reason", "skipped", "unknown_age_count"):
        assert summary[key] == reference[key], key
    assert summary["resumed"] is True and 0 < summary["files_this_run"] < len(arch.expected)
    assert not (out / JOURNAL_FILE).exists()
    assert snapshot(arch.root) == before


def test_non_empty_out_is_refused_and_overwrite_replaces(built_archive, rule_bundles, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "someone_elses.txt").write_text("keep me")
    with pytest.raises(ScanError, match="not empty.*--resume.*--overwrite"):
        run_full_scan(built_archive, out, rule_bundles, workers=1)
    run_full_scan(built_archive, out, rule_bundles, workers=1, overwrite=True)
    (out / "review" / "stale").mkdir()
    summary = run_full_scan(built_archive, out, rule_bundles, workers=1, overwrite=True,
                            thresholds={"rotation": 0.999})
    assert not (out / "review" / "stale").exists()  # our own outputs are replaced...
    assert (out / "someone_elses.txt").read_text() == "keep me"  # ...nothing else is touched
    assert "rotation" not in summary["excluded_per_reason"]  # scores ~0.993 are below the override
    dets = {d["name"]: d for d in read_csv(out / "detectors.csv")}
    assert dets["rotation"]["threshold_source"] == "override" and float(dets["rotation"]["threshold"]) == 0.999
    assert dets["inversion"]["threshold_source"] == "bundle"
    with pytest.raises(ScanError, match="already finished"):
        run_full_scan(built_archive, out, rule_bundles, workers=1, resume=True, thresholds={"rotation": 0.999})


def journal_config(archive, bundles, out) -> dict:
    """The settings an interrupted ``run_full_scan`` with the rule bundles leaves beside its journal."""
    from cleaner.scan.config import ScanConfig
    from cleaner.scan.runner import ScanRun

    config = ScanConfig(detector_dirs=[bundles], min_age=MIN_AGE, metadata=archive.metadata_csv, workers=1)
    return ScanRun(archive.root, out, config, progress=False).record()


def test_resume_with_different_settings_refuses(built_archive, rule_bundles, tmp_path):
    from cleaner.scan.folder import CONFIG_FILE
    from cleaner.scan.journal import Journal

    out = tmp_path / "out"
    run_full_scan(built_archive, out, rule_bundles, workers=1)
    # fake an interrupted scan: the journal of a run with min_age 10 is still there
    Journal(out, so.score_columns(["inversion", "rotation"], turn=True), {}).start()
    (out / CONFIG_FILE).write_text(json.dumps(journal_config(built_archive, rule_bundles, out)))
    with pytest.raises(ScanError, match="different settings.*min_age"):
        scan_archive(built_archive.root, out, detector_dirs=[rule_bundles], min_age=18,
                     metadata=built_archive.metadata_csv, progress=False, workers=1, resume=True)
    with pytest.raises(ScanError, match="different settings.*threshold"):
        run_full_scan(built_archive, out, rule_bundles, workers=1, resume=True, thresholds={"rotation": 0.9})
    # the same settings resume (an empty journal: everything is scanned now)
    summary = run_full_scan(built_archive, out, rule_bundles, workers=1, resume=True)
    assert summary["resumed"] is True and summary["files"] == len(built_archive.expected)
    assert not Journal(out, [], {}).exists()


def test_journal_drops_a_half_written_last_line(built_archive, rule_bundles, tmp_path):
    out = tmp_path / "out"
    run_full_scan(built_archive, out, rule_bundles, workers=1)
    full = (out / "scores.csv").read_text()
    rows = read_csv(out / "scores.csv")
    from cleaner.scan.folder import CONFIG_FILE
    from cleaner.scan.journal import Journal

    journal = Journal(out, list(rows[0]), {})
    journal.start()
    journal.append(rows[:6])
    journal.close()
    data = (out / JOURNAL_FILE).read_bytes()
    (out / JOURNAL_FILE).write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 25])  # killed in the middle of a row
    (out / CONFIG_FILE).write_text(json.dumps(journal_config(built_archive, rule_bundles, out)))
    (out / "scores.csv").unlink()
    summary = run_full_scan(built_archive, out, rule_bundles, workers=1, resume=True)
    assert (out / "scores.csv").read_text() == full
    assert summary["files_this_run"] == len(built_archive.expected) - 5


def test_age_filter_alone_without_detectors(built_archive, tmp_path):
    out = tmp_path / "out"
    summary = scan_archive(built_archive.root, out, min_age=MIN_AGE, unknown_age="exclude",
                           metadata=built_archive.metadata_csv, workers=1, progress=False, default_detectors=False)
    rows = read_csv(out / "scores.csv")
    assert list(rows[0].keys()) == so.score_columns([])
    got = {r["path"]: r["reasons"] for r in rows}
    for rel, exp in built_archive.expected.items():
        if exp.status == "error":
            assert got[rel] == ""
        elif exp.age is None:
            assert got[rel] == "age_unknown"
        else:
            assert got[rel] == ("age<10" if exp.age < MIN_AGE else "")
    assert summary["excluded_per_reason"] == {"age<10": 3, "age_unknown": 2}
    assert summary["detectors"] == []
    assert (out / "review" / "age_unknown" / "site1" / "img.png").is_file()
    assert read_csv(out / "detectors.csv") == []


def test_cli_errors_are_clear(built_archive, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["scan", str(built_archive.root), "--out", str(tmp_path / "o"), "--no-default-detectors"])
    assert res.exit_code != 0 and "no detectors given" in res.output
    res = runner.invoke(main, ["scan", str(built_archive.root), "--out", str(built_archive.root / "out"),
                               "--min-age", "10"])
    assert res.exit_code != 0 and "inside the archive" in res.output
    res = runner.invoke(main, ["scan", str(built_archive.root), "--out", str(tmp_path / "o"), "--unknown-age",
                               "exclude"])
    assert res.exit_code != 0 and "needs --min-age" in res.output
    res = runner.invoke(main, ["scan", str(built_archive.root), "--out", str(tmp_path / "o"), "--min-age", "10",
                               "--threshold", "rotation"])
    assert res.exit_code != 0 and "NAME=VALUE" in res.output
    res = runner.invoke(main, ["scan", str(built_archive.root), "--out", str(tmp_path / "o"), "--min-age", "10",
                               "--metadata", str(built_archive.metadata_csv), "--age-column", "Age"])
    assert res.exit_code != 0 and "no column 'Age'" in res.output and "Patient Age" in res.output
    res = runner.invoke(main, ["scan", "--help"])
    assert res.exit_code == 0 and "Examples:" in res.output and "--resume" in res.output


def test_cli_dry_run_lists_candidates_and_reads_nothing(built_archive, rule_bundles, tmp_path):
    res = CliRunner().invoke(main, ["scan", str(built_archive.root), "--dry-run", "--detectors", str(rule_bundles)])
    assert res.exit_code == 0, res.output
    listed = [line for line in res.stdout.splitlines() if line]
    assert listed == list(built_archive.expected)
    assert "15 file(s) would be scanned" in res.stderr and "detector rotation" in res.stderr


def test_cli_scan_prints_summary_and_scans_a_csv_list(built_archive, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\narchive/site2/scan.jpg,a\narchive/dicom/child.dcm,b\narchive/missing.png,c\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["scan", str(listing), "--out", str(out), "--min-age", "10", "--metadata",
                                    str(built_archive.metadata_csv), "--workers", "1", "-q", "--no-default-detectors"])
    assert res.exit_code == 0, res.output
    assert "Scanned 3 file(s)" in res.output and "excluded for age<10: 2" in res.output
    rows = read_csv(out / "scores.csv")
    assert [(r["path"], r["status"], r["reasons"]) for r in rows] == [
        ("archive/site2/scan.jpg", "ok", "age<10"), ("archive/dicom/child.dcm", "ok", "age<10"),
        ("archive/missing.png", "error", ""),
    ]
    assert (out / "review" / "age_under_10" / "archive" / "dicom" / "child.dcm.png").is_file()


@pytest.mark.shared_data
def test_scan_real_dicom_age_filter(shared_data, tmp_path):
    """Real DICOM in every transfer syntax: every file is a row, none silently dropped, ages from headers."""
    from cleaner.io.walker import WalkStats, walk_archive

    archive = shared_data / "dicom"
    n = sum(1 for _ in walk_archive(archive, WalkStats()))
    summary = scan_archive(archive, tmp_path / "out", min_age=10, workers=2, progress=False, default_detectors=False)
    rows = read_csv(tmp_path / "out" / "scores.csv")
    assert len(rows) == n == summary["files"]
    assert summary["ok"] + summary["errors"] == n
    mono1 = [r for r in rows if r["photometric"] == "MONOCHROME1" and r["status"] == "ok"]
    assert mono1, "the RG3 MONOCHROME1 films should read"


def marker_top_left_model(size: int):
    """An orientation-sensitive rule: high when the generated film's bright marker is in the top-left quadrant."""
    import keras

    inp = keras.Input((size, size, 1))
    q = keras.layers.Flatten()(keras.layers.AveragePooling2D(pool_size=size // 2)(inp))  # TL, TR, BL, BR
    out = keras.layers.Dense(1, activation="sigmoid", name="top_left")(q)
    model = keras.Model(inp, out)
    model.get_layer("top_left").set_weights([np.array([[10.0], [0.0], [0.0], [0.0]]), np.array([-5.0])])
    return model


def test_other_detectors_score_a_rotated_film_turned_upright(built_archive, rule_bundles, tmp_path):
    """Detectors other than rotation see the films the rotation detector flags turned upright: a rule
    that fires on a marker at the top left fires on every rotated film too, but only with the turn."""
    from cleaner.io.preprocess import InputSpec
    from cleaner.review.build import build_review
    from detectors.bundle import save_bundle

    probe = save_bundle(marker_top_left_model(32), {"name": "probe", "kind": "custom", "threshold": 0.5,
                                                    "input": InputSpec(size=32).to_dict(),
                                                    "backbone": "rule (tests only)"}, tmp_path / "probe")
    out = tmp_path / "out"
    scan_archive(built_archive.root, out, [rule_bundles / "rotation", probe], progress=False, workers=1)
    rows = {r["path"]: r for r in read_csv(out / "scores.csv") if r["status"] == "ok"}
    rotated_films = [p for p, e in built_archive.expected.items() if e.turn_cw]
    assert len(rotated_films) == 4
    for path in rotated_films:
        assert rows[path]["rotation_flag"] == "True" and rows[path]["probe_flag"] == "True", rows[path]
        assert rows[path]["turn_upright_cw"] == str(built_archive.expected[path].turn_cw)
    # the review page says how to turn each one, and draws the probe's overlay for the film as shown
    result = build_review(out, progress=False, contact_sheets=False)
    from scan_output_builder import page_data

    data = page_data(result.page)
    items = {(sec["reason"], it["path"]): it for sec in data["sections"] for it in sec["items"]}
    for path in rotated_films:
        assert items[("probe", path)]["turn"] == str(built_archive.expected[path].turn_cw)
        assert items[("probe", path)]["overlay"]
    assert "clockwise to upright" in result.page.read_text()
    # without a rotation detector nothing is turned: the probe sees each rotated film as it lies
    alone = tmp_path / "alone"
    scan_archive(built_archive.root, alone, [probe], progress=False, workers=1)
    rows = {r["path"]: r for r in read_csv(alone / "scores.csv") if r["status"] == "ok"}
    assert all(rows[p]["probe_flag"] == "False" for p in rotated_films)
    assert "turn_upright_cw" not in rows[rotated_films[0]]


def naive_rotation_model(size: int):
    """A rotation rule that knows nothing of polarity: high when the top-left quadrant is not bright, so it calls
    every inverted film (dark marker on a bright film) rotated."""
    import keras

    inp = keras.Input((size, size, 1))
    q = keras.layers.Flatten()(keras.layers.AveragePooling2D(pool_size=size // 2)(inp))  # TL, TR, BL, BR
    out = keras.layers.Dense(1, activation="sigmoid", name="not_top_left")(q)
    model = keras.Model(inp, out)
    model.get_layer("not_top_left").set_weights([np.array([[-10.0], [0.0], [0.0], [0.0]]), np.array([5.0])])
    return model


def test_other_detectors_score_an_inverted_film_uninverted(built_archive, rule_bundles, tmp_path):
    """Films the inversion detector flags are scored un-inverted by every other detector (decision 0014): a rule
    that needs a bright top-left marker fires on the inverted films only with the inversion detector, and a
    rotation rule blind to polarity, which calls them rotated as they lie, reads them again un-inverted."""
    import json

    from cleaner.io.preprocess import InputSpec
    from cleaner.review.build import build_review
    from detectors.bundle import save_bundle

    probe = save_bundle(marker_top_left_model(32), {"name": "probe", "kind": "custom", "threshold": 0.5,
                                                    "input": InputSpec(size=32).to_dict(),
                                                    "backbone": "rule (tests only)"}, tmp_path / "probe")
    naive = save_bundle(naive_rotation_model(32), {"name": "rotation", "kind": "rotation", "threshold": 0.5,
                                                   "input": InputSpec(size=32).to_dict(),
                                                   "backbone": "rule (tests only)"}, tmp_path / "naive" / "rotation")
    inverted_films = sorted(p for p, e in built_archive.expected.items() if "inversion" in e.reasons)
    assert len(inverted_films) == 2

    def scan(name, bundles):
        out = tmp_path / name
        scan_archive(built_archive.root, out, bundles, progress=False, workers=1)
        return out, {r["path"]: r for r in read_csv(out / "scores.csv") if r["status"] == "ok"}

    out, rows = scan("chained", [naive, rule_bundles / "inversion", probe])
    _, alone = scan("alone", [naive, probe])
    for path in inverted_films:
        row = rows[path]
        assert row["inversion_flag"] == "True" and row["probe_flag"] == "True", row
        assert row["rotation_flag"] == "False" and row["turn_upright_cw"] == "" and "rotation" not in row["reasons"]
        # without the inversion detector the rotation rule calls the film rotated, and a turn is reported
        assert alone[path]["rotation_flag"] == "True" and alone[path]["turn_upright_cw"] != "", alone[path]
    # films inversion does not flag are scored exactly as without it
    for path, row in rows.items():
        if path not in inverted_films:
            assert (row["rotation_score"], row["probe_score"]) == (alone[path]["rotation_score"],
                                                                   alone[path]["probe_score"]), path
    # the review page draws the probe's overlay on the film as the scan scored it, un-inverted, and says so
    build_review(out, progress=False, contact_sheets=False)
    assets = json.loads((out / "review" / "_assets.json").read_text())["images"]
    for path in inverted_films:
        assert assets[path]["overlays"]["probe"]["uninverted"] is True
        assert assets[path]["overlays"]["inversion"]["uninverted"] is False
    normal = next(p for p in assets if p not in inverted_films and "probe" in assets[p]["overlays"])
    assert assets[normal]["overlays"]["probe"]["uninverted"] is False


def test_flag_budget_counts_the_flags_at_stricter_thresholds(built_archive, rule_bundles, tmp_path):
    """summary.json's flag budget says, per detector, how many readable films each stricter threshold flags."""
    out = tmp_path / "out"
    summary = run_full_scan(built_archive, out, rule_bundles, workers=1)
    rows = [r for r in read_csv(out / "scores.csv") if r["status"] == "ok"]
    for name in ("inversion", "rotation"):
        budget = summary["flag_budget"][name]
        assert budget["threshold"] == 0.5 and [r["threshold"] for r in budget["rows"]][:3] == [0.5, 0.7, 0.8]
        for entry in budget["rows"]:
            assert entry["flagged"] == sum(float(r[f"{name}_score"]) >= entry["threshold"] for r in rows)
            assert entry["share"] == pytest.approx(entry["flagged"] / len(rows), abs=1e-6)
            assert entry["validation_recall"] is None  # the rule bundles have no validation curve
        assert budget["rows"][0]["flagged"] == sum(r[f"{name}_flag"] == "True" for r in rows) > 0
    from cleaner.scan import format_summary

    assert "flag budget rotation" in format_summary(summary)


def test_a_letterboxed_or_pillarboxed_film_scores_as_the_film_itself(rule_bundles, tmp_path):
    """Exports that frame a film in bars (black or white) must not change what a detector says about it:
    trimming bundles score the framed copies exactly as the film; detectors.csv says the bars were trimmed."""
    from archive_builder import film, write_png

    arch = tmp_path / "arch"
    x = film(7, (120, 90))
    write_png(arch / "film.png", x)
    write_png(arch / "letterboxed.png", np.pad(x, ((40, 30), (0, 0))))
    write_png(arch / "pillarboxed_white.png", np.pad(x, ((0, 0), (25, 25)), constant_values=1.0))
    out = tmp_path / "out"
    scan_archive(arch, out, detector_dirs=[rule_bundles], progress=False, workers=1, review=False)
    rows = {r["path"]: r for r in read_csv(out / "scores.csv")}
    for name in ("rotation", "inversion"):
        want = float(rows["film.png"][f"{name}_score"])
        for framed in ("letterboxed.png", "pillarboxed_white.png"):
            assert abs(float(rows[framed][f"{name}_score"]) - want) < 1e-6, (name, framed)
    assert {r["input_borders"] for r in read_csv(out / "detectors.csv")} == {"trim"}
