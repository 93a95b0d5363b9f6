"""``review apply``: moved files, deleted files, decisions files and unreviewed images read back."""
import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from cleaner.cli import main
from cleaner.review.apply import apply_review, read_decisions_file
from scan_output_builder import build_scan_output

# default_specs(): rotation p001_a, p002_a, p003, sub/p003, s1_2.dcm; inversion p002_a, p004;
# age<10 p002_a, p002_b, s2_1.dcm


@pytest.fixture
def scan(tmp_path):
    archive, out = build_scan_output(tmp_path)
    return archive, out


def final(out):
    df = pd.read_csv(out / "exclusions_final.csv", dtype=str, keep_default_na=False)
    return dict(zip(df["path"], df["decision"]))


def labels(out, name="labels.csv"):
    df = pd.read_csv(out / name, dtype={"path": str, "label": int})
    return dict(zip(df["path"], df["label"]))


def move_to_keep(out, folder, rel, dest_rel):
    keep = out / "review" / folder / "_keep" / dest_rel
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(out / "review" / folder / rel, keep)


def test_nothing_decided_everything_unreviewed(scan):
    archive, out = scan
    res = apply_review(out)
    assert set(final(out).values()) == {"unreviewed"} and len(final(out)) == 8
    assert labels(out) == {} and res.n_labels == 0
    ex = pd.read_csv(out / "exclusions.csv", dtype=str, keep_default_na=False)
    fin = pd.read_csv(out / "exclusions_final.csv", dtype=str, keep_default_na=False)
    assert list(fin.columns[: len(ex.columns)]) == list(ex.columns) and "decision" in fin.columns
    pd.testing.assert_frame_equal(fin[ex.columns], ex)


def test_moved_files_relative_path_name_only_and_dicom_preview(scan):
    archive, out = scan
    move_to_keep(out, "rotation", "siteA/p001_a.png", "siteA/p001_a.png")  # relative path kept
    move_to_keep(out, "rotation", "siteB/s1_2.dcm.png", "s1_2.dcm.png")  # DICOM's preview, name only
    move_to_keep(out, "inversion", "siteA/p004.png", "p004.png")  # file name only
    res = apply_review(out)
    assert final(out) == {
        "siteA/p001_a.png": "overturned", "siteB/s1_2.dcm": "overturned", "siteA/p004.png": "overturned",
        "siteA/p002_a.png": "unreviewed", "siteA/p002_b.png": "unreviewed", "siteA/p003.png": "unreviewed",
        "siteA/sub/p003.png": "unreviewed", "siteB/s2_1.dcm": "unreviewed",
    }
    assert labels(out) == {str(archive / "siteA/p001_a.png"): 0, str(archive / "siteB/s1_2.dcm"): 0,
                           str(archive / "siteA/p004.png"): 0}
    assert res.warnings == []


def test_ambiguous_file_name_in_keep_is_not_guessed(scan):
    archive, out = scan
    # siteA/p003.png and siteA/sub/p003.png are both flagged for rotation
    move_to_keep(out, "rotation", "siteA/sub/p003.png", "p003.png")
    res = apply_review(out)
    assert final(out)["siteA/p003.png"] == "unreviewed" and final(out)["siteA/sub/p003.png"] == "unreviewed"
    assert any("matches 2 flagged images" in w for w in res.warnings)
    # with its relative path it is unambiguous
    (out / "review" / "rotation" / "_keep" / "p003.png").rename(out / "review" / "rotation" / "_keep" / "x.png")
    move_back = out / "review" / "rotation" / "_keep" / "siteA" / "sub"
    move_back.mkdir(parents=True)
    (out / "review" / "rotation" / "_keep" / "x.png").rename(move_back / "p003.png")
    apply_review(out)
    assert final(out)["siteA/sub/p003.png"] == "overturned" and final(out)["siteA/p003.png"] == "unreviewed"


def test_deleted_files_stay_unreviewed(scan):
    archive, out = scan
    (out / "review" / "rotation" / "siteA" / "p003.png").unlink()
    shutil.rmtree(out / "review" / "age_under_10")
    res = apply_review(out, confirm_rest=True)
    assert set(final(out).values()) == {"unreviewed"}
    assert res.warnings == []


def test_decisions_csv_keep_and_exclude(scan, tmp_path):
    archive, out = scan
    d = tmp_path / "decisions.csv"
    d.write_text("path,reason,decision\n"
                 "siteA/p001_a.png,rotation,keep\n"
                 "siteA/p004.png,inversion,exclude\n"
                 "siteA/p002_a.png,rotation,keep\n"  # p002_a stays flagged for inversion and age<10
                 "siteA/unknown.png,rotation,keep\n"
                 "siteB/s1_2.dcm,rotation,maybe\n")
    res = apply_review(out, decisions_files=[d])
    f = final(out)
    assert f["siteA/p001_a.png"] == "overturned" and f["siteA/p004.png"] == "confirmed"
    assert f["siteA/p002_a.png"] == "unreviewed" and f["siteB/s1_2.dcm"] == "unreviewed"
    assert labels(out) == {str(archive / "siteA/p001_a.png"): 0, str(archive / "siteA/p004.png"): 1}
    assert labels(out, "labels/rotation.csv") == {str(archive / "siteA/p001_a.png"): 0, str(archive / "siteA/p002_a.png"): 0}
    assert any("unknown.png" in w for w in res.warnings) and any("maybe" in w for w in res.warnings)
    fin = pd.read_csv(out / "exclusions_final.csv", dtype=str, keep_default_na=False)
    detail = dict(zip(fin["path"], fin["reason_decisions"]))
    assert detail["siteA/p002_a.png"] == "inversion=unreviewed;rotation=overturned;age<10=unreviewed"


def test_decisions_json_star_reason_and_conflict_keep_wins(scan, tmp_path):
    archive, out = scan
    d = tmp_path / "decisions.json"
    d.write_text(json.dumps({"decisions": [
        {"path": "siteA/p002_a.png", "reason": "*", "decision": "keep"},
        {"path": "siteA/p003.png", "reason": "rotation", "decision": "exclude"},
    ]}))
    move_to_keep(out, "rotation", "siteA/p003.png", "siteA/p003.png")  # the folder says keep
    res = apply_review(out, decisions_files=[d])
    f = final(out)
    assert f["siteA/p002_a.png"] == "overturned"  # every reason overturned
    assert f["siteA/p003.png"] == "overturned"
    assert any("keep wins" in w for w in res.warnings)


def test_confirm_rest_and_confirm_reason(scan):
    archive, out = scan
    move_to_keep(out, "rotation", "siteA/p001_a.png", "siteA/p001_a.png")
    apply_review(out, confirm_rest=True)
    f = final(out)
    # rotation was reviewed (one keep): the rest of rotation is confirmed; inversion and age untouched
    assert f["siteA/p001_a.png"] == "overturned"
    assert {f[p] for p in ("siteA/p002_a.png", "siteA/p003.png", "siteA/sub/p003.png", "siteB/s1_2.dcm")} == {"confirmed"}
    assert f["siteA/p004.png"] == "unreviewed" and f["siteB/s2_1.dcm"] == "unreviewed"
    apply_review(out, confirm_reasons=["age<10"])
    f = final(out)
    assert f["siteB/s2_1.dcm"] == "confirmed" and f["siteA/p002_b.png"] == "confirmed"
    assert f["siteA/p003.png"] == "unreviewed"  # without --confirm-rest rotation's rest is not confirmed
    with pytest.raises(ValueError, match="no such reason"):
        apply_review(out, confirm_reasons=["mirror"])


def test_read_decisions_file_errors(tmp_path):
    bad = tmp_path / "d.csv"
    bad.write_text("file,what\na,b\n")
    with pytest.raises(ValueError, match="path,reason,decision"):
        read_decisions_file(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="list of"):
        read_decisions_file(bad)


def test_cli_apply(scan, tmp_path):
    archive, out = scan
    d = tmp_path / "decisions.csv"
    d.write_text("path,reason,decision\nsiteA/p001_a.png,rotation,keep\nsiteA/p003.png,rotation,exclude\n")
    r = CliRunner().invoke(main, ["review", "apply", str(out), "--decisions", str(d)])
    assert r.exit_code == 0, r.output
    assert "1 confirmed, 1 overturned, 6 unreviewed" in r.output
    summary = json.loads((out / "review_apply.json").read_text())
    assert summary["per_reason"]["rotation"] == {"overturned": 1, "confirmed": 1, "unreviewed": 3}
    r = CliRunner().invoke(main, ["review", "apply", str(out), "--confirm-reason", "nope"])
    assert r.exit_code == 2 and "no such reason" in r.output


def test_keep_folder_made_inside_a_subfolder_and_windows_paths(scan, tmp_path):
    archive, out = scan
    # the reviewer browsed into review/rotation/siteA/ and made _keep/ there
    sub_keep = out / "review" / "rotation" / "siteA" / "_keep"
    sub_keep.mkdir()
    (out / "review" / "rotation" / "siteA" / "p003.png").rename(sub_keep / "p003.png")
    d = tmp_path / "decisions.csv"
    d.write_text("path,reason,decision\nsiteB\\s1_2.dcm,rotation,keep\n")
    res = apply_review(out, decisions_files=[d])
    f = final(out)
    assert f["siteA/p003.png"] == "overturned" and f["siteA/sub/p003.png"] == "unreviewed"
    assert f["siteB/s1_2.dcm"] == "overturned" and res.warnings == []


def test_labels_keep_archive_paths_not_link_targets(tmp_path):
    real = tmp_path / "real"
    archive, out = build_scan_output(real)
    link = tmp_path / "linked_archive"
    link.symlink_to(archive, target_is_directory=True)
    summary = json.loads((out / "summary.json").read_text())
    summary["archive"] = str(link)
    (out / "summary.json").write_text(json.dumps(summary))
    apply_review(out, confirm_reasons=["inversion"])
    assert set(labels(out)) == {str(link / "siteA/p002_a.png"), str(link / "siteA/p004.png")}


def test_review_commands_without_a_model_do_not_import_keras(scan):
    """``review apply`` and ``review build --no-saliency`` need no model: they must not pay Keras's ~6 s import
    (a fresh Python, since this test process may have imported Keras already)."""
    import subprocess
    import sys

    archive, out = scan
    code = ("import json, sys\nfrom cleaner.cli.main import main\n"
            "for args in (['review', 'apply', sys.argv[1]], ['review', 'build', sys.argv[1], '--no-saliency', "
            "'--workers', '1', '--no-contact-sheets']):\n"
            "    try:\n        main(args)\n    except SystemExit as exc:\n        assert not exc.code, (args, exc.code)\n"
            "print(json.dumps({'keras': 'keras' in sys.modules, 'tensorflow': 'tensorflow' in sys.modules}))\n")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"keras": False, "tensorflow": False}
    assert (out / "review" / "index.html").is_file() and (out / "exclusions_final.csv").is_file()
