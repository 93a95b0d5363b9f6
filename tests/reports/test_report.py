"""Study table and bias report: exact numbers on a generated archive."""
import pandas as pd
import pytest
from click.testing import CliRunner

from cleaner.cli import main
from cleaner.reports.bias import age_band, bias_tables, site_of, write_report
from cleaner.scan.folder import load_scan_output
from cleaner.review.apply import apply_review
from cleaner.reports.studies import study_table, write_studies
from scan_output_builder import build_scan_output


@pytest.fixture
def out(tmp_path):
    return build_scan_output(tmp_path)[1]


def test_studies_exact(out):
    res = write_studies(out)
    t = pd.read_csv(res.path, dtype=str, keep_default_na=False).set_index("study")
    assert list(t.index) == ["1.2.3.1", "1.2.3.2", "P001", "P002", "P003", "P004", "P005", "P006"]
    assert t.loc["1.2.3.1"].to_dict() == {
        "key_type": "study_uid", "patient_id": "B01", "images": "2", "read_errors": "0", "flagged": "1",
        "all_flagged": "False", "reasons": "rotation:1", "flagged_paths": "siteB/s1_2.dcm"}
    assert t.loc["P002"].to_dict() == {
        "key_type": "patient_id", "patient_id": "P002", "images": "2", "read_errors": "0", "flagged": "2",
        "all_flagged": "True", "reasons": "age<10:2;inversion:1;rotation:1",
        "flagged_paths": "siteA/p002_a.png;siteA/p002_b.png"}
    assert t.loc["P005", "flagged"] == "0" and t.loc["P005", "reasons"] == ""
    assert res.n_without_key == 1  # the unreadable file has neither a study nor a patient id


def test_study_uid_beats_patient_id_and_errors_count():
    scores = pd.DataFrame({
        "path": ["a/1.dcm", "a/2.dcm", "a/3.dcm", "b/4.png"],
        "status": ["ok", "ok", "error", "ok"],
        "patient_id": ["X", "X", "X", "X"],
        "study_uid": ["1.1", "1.2", "1.2", ""],
        "excluded": ["True", "False", "False", "True"],
        "reasons": ["rotation", "", "", "inversion;rotation"],
    })
    t, without = study_table(scores)
    assert without == 0
    assert list(zip(t["study"], t["key_type"], t["images"], t["read_errors"], t["flagged"])) == [
        ("1.1", "study_uid", 1, 0, 1), ("1.2", "study_uid", 2, 1, 0), ("X", "patient_id", 1, 0, 1)]
    assert t.set_index("study").loc["X", "reasons"] == "inversion:1;rotation:1"


def test_helpers():
    assert [age_band(v) for v in ("5", 9.99, "10", "17.5", "18", "45", "61", "79.9", "80", "101", "", "x", "-1")] == [
        "<10", "<10", "10-17", "10-17", "18-39", "40-59", "60-79", "60-79", "80+", "80+", "unknown", "unknown", "unknown"]
    assert site_of("siteA/sub/x.png") == "siteA" and site_of("x.png") == "(root)"


def test_bias_tables_exact(out):
    tables = bias_tables(load_scan_output(out))
    site = tables["site"].set_index("group")
    assert list(site.index) == ["siteA", "siteB", "all"]
    assert site.loc["siteA", ["images", "read_errors", "excluded", "rotation", "inversion", "age<10"]].tolist() == [8, 0, 6, 4, 2, 2]
    assert site.loc["siteB", ["images", "read_errors", "excluded", "rotation", "inversion", "age<10"]].tolist() == [3, 1, 2, 1, 0, 1]
    assert site.loc["siteA", "rotation_rate"] == pytest.approx(4 / 8)
    assert site.loc["all", "excluded_rate"] == pytest.approx(8 / 11)
    age = tables["age_band"].set_index("group")
    assert list(age.index) == ["<10", "18-39", "40-59", "60-79", "unknown", "all"]
    assert age["images"].tolist() == [3, 1, 2, 4, 1, 11]
    assert age.loc["60-79", ["excluded", "rotation"]].tolist() == [3, 3]
    assert age.loc["unknown", ["images", "read_errors", "inversion"]].tolist() == [1, 1, 1]
    sex = tables["sex"].set_index("group")
    assert list(sex.index) == ["F", "M", "unknown", "all"]
    assert sex.loc["F", ["images", "excluded", "rotation", "age<10"]].tolist() == [6, 5, 3, 3]
    assert sex.loc["M", ["images", "excluded", "rotation", "inversion"]].tolist() == [5, 3, 2, 1]
    view = tables["view"].set_index("group")
    assert view.loc["AP", ["images", "excluded", "age<10"]].tolist() == [4, 4, 3]
    assert view.loc["PA", ["images", "excluded", "rotation"]].tolist() == [7, 4, 4]


def test_overturned_counts_after_review(out):
    move = out / "review" / "rotation" / "_keep"
    move.mkdir()
    (out / "review" / "rotation" / "siteB" / "s1_2.dcm.png").rename(move / "s1_2.dcm.png")
    apply_review(out)
    res = write_report(out, charts=False)
    site = res.tables["site"].set_index("group")
    assert site["overturned"].tolist() == [0, 1, 1]
    assert "overturned" in res.page.read_text()


def test_report_files_and_cli(out):
    r = CliRunner().invoke(main, ["report", str(out)])
    assert r.exit_code == 0, r.output
    html = (out / "report.html").read_text()
    for dim in ("age_band", "sex", "view", "site"):
        assert (out / "report" / f"{dim}.png").stat().st_size > 1000
        assert f'src="report/{dim}.png"' in html
        assert (out / "report" / f"bias_{dim}.csv").is_file()
    assert "4 (50.0%)" in html  # siteA rotation
    assert (out / "studies.csv").is_file() and "8 stud" in r.output
    assert "http://" not in html and "https://" not in html
