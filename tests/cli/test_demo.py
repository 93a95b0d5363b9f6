"""The quick start's main job, end to end: plant, scan with the bundled defaults, review page, evaluation."""
import pandas as pd
import pytest

from cleaner.scan import default_detector_dirs

pytestmark = pytest.mark.skipif(not default_detector_dirs(), reason="default bundles not trained yet")


def test_demo_runs_the_whole_job(tmp_path):
    from cleaner.demo.run import run_demo

    result = run_demo(tmp_path / "demo", workers=1, progress=False)
    truth = pd.read_csv(result["truth"])
    scores = pd.read_csv(result["scan"] / "scores.csv")
    assert sorted(scores.path) == sorted(truth.path)  # every file of the archive is a row
    assert result["planted"] == int((truth.truth != "upright").sum()) > 0
    errors = pd.read_csv(result["scan"] / "errors.csv")
    assert set(truth[truth.truth == "corrupt"].path) == set(errors.path)
    assert result["page"].is_file() and "cxclean review" in result["page"].read_text()
    assert result["summary"]["excluded_per_reason"].get("age<10") == 4  # the four children of the sample
    per = {d["detector"]: d for d in result["evaluation"]["per_detector"]}
    assert set(per) == {"rotation", "inversion", "flip", "non_frontal"}
    # every demo film is a frontal chest film: non_frontal may flag only young children, whom the age rule excludes
    ages = truth.set_index("path").age_years  # a planted copy has its original's age
    assert (ages[scores.path[scores.non_frontal_flag.eq(True)]] < 10).all()
    assert per["rotation"]["recall"] >= 0.9 and per["inversion"]["recall"] >= 0.9
    with pytest.raises(Exception, match="not empty"):
        run_demo(tmp_path / "demo", workers=1, progress=False)
