"""The archive builder plants what its truth table says, and the evaluator counts a scan's output exactly."""
import numpy as np
import pandas as pd

from cleaner.demo.archive import FilmFolder, build_archive
from cleaner.reports.evaluate_archive import evaluate, format_report
from cleaner.io.images import read_image
from imagegen import phantom, write_dicom, write_png8


def make_sources(root):
    (root / "front").mkdir(parents=True)
    for i in range(5):
        write_png8(root / "front" / f"f{i}.png", phantom(40, 40, seed=i))
    (root / "lat").mkdir()
    write_png8(root / "lat" / "l0.png", phantom(40, 40, seed=9))
    (root / "other").mkdir()
    write_dicom(root / "other" / "hand", phantom(40, 40, seed=8))
    return [FilmFolder(root / "front", "front", "frontal", ages={"f0.png": 30.0}), FilmFolder(root / "lat", "lat", "lateral"),
            FilmFolder(root / "other", "other", "other_body")]


def write_scan_folder(out, scores: pd.DataFrame, detectors: pd.DataFrame, errors: pd.DataFrame) -> None:
    """A scan output folder as the scan-folder contract describes it, from hand-made tables."""
    import json

    from cleaner.scan import folder as so

    scores.to_csv(out / so.SCORES_FILE, index=False)
    scores[scores.excluded][["path", "reasons"]].to_csv(out / so.EXCLUSIONS_FILE, index=False)
    detectors.to_csv(out / so.DETECTORS_FILE, index=False)
    errors.to_csv(out / so.ERRORS_FILE, index=False)
    (out / so.SUMMARY_FILE).write_text(json.dumps({"archive": "", "files": len(scores)}))


def test_build_archive_plants_what_truth_says(tmp_path):
    truth = build_archive(make_sources(tmp_path / "src"), tmp_path / "archive", seed=1)
    assert (tmp_path / "archive_truth.csv").is_file()
    counts = truth.truth.value_counts().to_dict()
    assert counts["upright"] == 5 and counts["lateral"] == 1 and counts["other_body"] == 1 and counts["corrupt"] == 5
    planted = truth[truth.path.str.contains("/planted/")]
    assert sorted(planted.truth) == sorted(["rot90", "rot180", "rot270", "inverted", "hflip"])  # 5 films, one of each
    ops = {"rot90": lambda x: np.rot90(x, 1), "rot180": lambda x: np.rot90(x, 2), "rot270": lambda x: np.rot90(x, 3),
           "inverted": lambda x: 1 - x, "hflip": lambda x: x[:, ::-1]}
    for row in planted.itertuples():
        original = read_image(tmp_path / "archive" / row.origin).pixels
        assert np.abs(read_image(tmp_path / "archive" / row.path).pixels - ops[row.truth](original)).max() <= 1 / 255 + 1e-6
    assert truth.set_index("path").loc["front/f0.png", "age_years"] == 30.0


def test_evaluate_counts_exactly(tmp_path):
    truth = pd.DataFrame(dict(
        path=["a.png", "b.png", "c.png", "d.png", "e.png", "bad.png"],
        truth=["upright", "rot90", "rot180", "upright", "lateral", "corrupt"],
        source=["s1", "s1", "s2", "s2", "lat", "corrupt"], role=["frontal"] * 4 + ["lateral", "corrupt"],
    ))
    truth.to_csv(tmp_path / "truth.csv", index=False)
    out = tmp_path / "scan"
    out.mkdir()
    scores = pd.DataFrame(dict(
        path=["a.png", "b.png", "c.png", "d.png", "e.png", "bad.png"], status=["ok"] * 5 + ["error"],
        rotation_score=[0.9, 0.95, 0.2, 0.1, 0.8, None], rotation_flag=["True", "True", "False", "False", "True", ""],
        inversion_score=[0.1] * 5 + [None], inversion_flag=["False"] * 5 + [""],
        turn_upright_cw=[180, 90, None, None, 270, None],
    ))
    scores["excluded"] = scores.rotation_flag == "True"
    scores["reasons"] = ["rotation" if e else "" for e in scores.excluded]
    write_scan_folder(out, scores, pd.DataFrame(dict(name=["inversion", "rotation"], kind=["inversion", "rotation"],
                                                     threshold=[0.5, 0.5])),
                      pd.DataFrame(dict(path=["bad.png"], error=["truncated"])))
    result = evaluate(out, tmp_path / "truth.csv")
    rot = next(d for d in result["per_detector"] if d["detector"] == "rotation")
    assert (rot["positives"], rot["flagged"], rot["true_pos"], rot["false_pos"]) == (2, 3, 1, 2)
    assert rot["recall"] == 0.5 and abs(rot["precision"] - 1 / 3) < 1e-9 and rot["precision_frontal"] == 0.5
    assert rot["precision_vs_upright"] == 0.5  # the lateral flagged as rotated is not a good film lost
    assert abs(rot["auc"] - 4 / 6) < 1e-9  # positives 0.95, 0.2 against 0.9, 0.1, 0.8: 4 of 6 pairs ordered
    assert result["upright_adult_frontal"] == dict(files=2, flagged_by_any=1, rate=0.5)
    assert result["corrupt"] == dict(files=1, in_errors_csv=1)
    fps = {(f["detector"], f["source"], f["truth"]): f["count"] for f in result["false_positives"]}
    assert fps == {("rotation", "s1", "upright"): 1, ("rotation", "lat", "lateral"): 1}
    assert "Upright adult frontal films flagged by any detector: 1/2" in format_report(result)
    # the turn is judged on planted rotations only: b (rot90) is undone by 90 degrees clockwise
    from cleaner.reports.evaluate_archive import undoing_turns

    assert undoing_turns() == {"rot90": 90, "rot180": 180, "rot270": 270}
    assert result["turn_upright"] == dict(turned=1, right=1, wrong="")
    scores = pd.read_csv(out / "scores.csv")
    scores.loc[scores.path == "b.png", "turn_upright_cw"] = 270
    scores.to_csv(out / "scores.csv", index=False)
    result = evaluate(out, tmp_path / "truth.csv")
    assert result["turn_upright"] == dict(turned=1, right=0, wrong="b.png")
    assert "turned back upright by turn_upright_cw: 0/1 right (wrong: b.png)" in format_report(result)


def test_evaluate_archive_cli(tmp_path):
    from click.testing import CliRunner

    from cleaner.cli import main

    test_evaluate_counts_exactly(tmp_path)  # leaves tmp_path/scan and tmp_path/truth.csv
    result = CliRunner().invoke(main, ["evaluate-archive", str(tmp_path / "scan"), str(tmp_path / "truth.csv"),
                                       "--json", str(tmp_path / "e.json"), "--target", "inversion=inverted,hflip"])
    assert result.exit_code == 0, result.output
    assert "Corrupt files in errors.csv: 1/1" in result.output
    import json

    per = {d["detector"]: d for d in json.loads((tmp_path / "e.json").read_text())["per_detector"]}
    assert per["inversion"]["targets"] == "hflip/inverted"
    bad = CliRunner().invoke(main, ["evaluate-archive", str(tmp_path / "scan"), str(tmp_path / "truth.csv"), "--target", "x"])
    assert bad.exit_code != 0 and "DETECTOR=TRUTH" in bad.output


def test_children_do_not_count_as_adult_uprights(tmp_path):
    test_evaluate_counts_exactly(tmp_path)
    truth = pd.read_csv(tmp_path / "truth.csv")
    truth["age_years"] = [5, None, None, 40, None, None]  # a.png, the flagged upright, is a child
    truth.to_csv(tmp_path / "truth.csv", index=False)
    assert evaluate(tmp_path / "scan", tmp_path / "truth.csv")["upright_adult_frontal"] == dict(files=1, flagged_by_any=0, rate=0.0)
