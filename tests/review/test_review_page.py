"""``review build``: the page, its assets and contact sheets, built from a generated scan output."""
import json
import os
import re
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from cleaner.cli import main
from cleaner.review.build import build_review
from cleaner.review.images import asset_id
from cleaner.review.page import PAGE_SIZE
from cleaner.scan.folder import ScanOutputError, load_scan_output, reason_folder
from scan_output_builder import ImageSpec, build_scan_output, flagged_pairs, page_data, save_tiny_bundle


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review")
    bundle = save_tiny_bundle(tmp / "bundles" / "rotation", "rotation", size=64)
    archive, out = build_scan_output(tmp, bundles={"rotation": bundle})
    result = build_review(out, progress=False)
    return out, result


def test_reason_folder_names():
    assert reason_folder("rotation") == "rotation"
    assert reason_folder("age<10") == "age_under_10"
    assert "/" not in reason_folder("a/b c") and reason_folder("a/b c")


def test_page_has_every_flagged_image_once_per_reason(built):
    out, result = built
    data = page_data(result.page)
    pairs = [(it["path"], sec["reason"]) for sec in data["sections"] for it in sec["items"]]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == flagged_pairs(out)
    assert [s["reason"] for s in data["sections"]] == ["inversion", "rotation", "age<10"]
    assert result.sections == {"inversion": 2, "rotation": 5, "age<10": 3}
    assert result.images == 8  # p002_a is flagged for three reasons but read once


def test_sections_sorted_by_score_with_threshold_age_and_view(built):
    out, result = built
    rot = next(s for s in page_data(result.page)["sections"] if s["reason"] == "rotation")
    assert [it["score"] for it in rot["items"]] == [0.97, 0.93, 0.91, 0.75, 0.66]
    assert rot["threshold"] == 0.6 and rot["detector"] == "rotation"
    first = rot["items"][0]
    assert (first["path"], first["age"], first["view"]) == ("siteA/p001_a.png", 45.0, "PA")
    age = next(s for s in page_data(result.page)["sections"] if s["reason"] == "age<10")
    assert [it["age"] for it in age["items"]] == [5.0, 8.0, 8.0]  # a rule: youngest first
    assert age["threshold"] is None


def test_assets_exist_and_links_are_relative(built):
    out, result = built
    review = out / "review"
    for sec in page_data(result.page)["sections"]:
        for it in sec["items"]:
            assert (review / it["thumb"]).is_file()
            with Image.open(review / it["thumb"]) as im:
                assert max(im.size) <= 256
            full = review / it["full"]
            assert full.is_file(), it["full"]
            assert it["full"].endswith(".png")  # DICOM copies are linked through their PNG preview
            if sec["reason"] == "rotation":  # a bundle was given: every rotation image has an overlay
                assert it["overlay"] and (review / it["overlay"]).is_file()
            else:  # inversion's bundle is missing, age is a rule: no overlay
                assert it["overlay"] is None
    assert result.overlays == 5
    assert any("inversion" in w and "not found" in w for w in result.warnings)


def test_page_is_offline(built):
    out, result = built
    html = result.page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and not re.search(r"<script[^>]+src=", html)
    assert "http://" not in html and "https://" not in html


def test_contact_sheets(built):
    out, result = built
    sheets = sorted(p.relative_to(out / "review").as_posix() for p in result.contact_sheets)
    assert sheets == ["age_under_10/contact_sheet_1.jpg", "inversion/contact_sheet_1.jpg", "rotation/contact_sheet_1.jpg"]
    with Image.open(out / "review" / "rotation" / "contact_sheet_1.jpg") as im:
        assert im.size[0] == 6 * 200 and im.size[1] == 200 + 28  # one row of five tiles


def test_many_images_are_paged_and_sheets_split(tmp_path):
    specs = [ImageSpec(f"site{i % 3}/img{i:04d}.png", {"rotation": 0.5 + 0.5 * ((i * 37) % 450) / 450}, 40, "F", "PA", f"P{i}")
             for i in range(450)]
    _, out = build_scan_output(tmp_path, specs, thresholds={"rotation": 0.5}, film_size=32)
    old_format = out / "review" / "rotation" / "contact_sheet_16.png"  # a PNG sheet an earlier build wrote
    old_format.parent.mkdir(parents=True, exist_ok=True)
    old_format.write_bytes(b"png")
    res = build_review(out, progress=False, saliency=False, workers=2)
    data = page_data(res.page)
    items = data["sections"][0]["items"]
    assert data["page_size"] == PAGE_SIZE == 120 and len(items) == 450
    scores = [it["score"] for it in items]
    assert scores == sorted(scores, reverse=True)
    assert len(res.contact_sheets) == 15  # 450 / 30
    assert not old_format.exists() and sorted(p.name for p in old_format.parent.glob("contact_sheet_*")) == sorted(
        f"contact_sheet_{n}.jpg" for n in range(1, 16))
    assert 'loading = \'lazy\'' in res.page.read_text()


def test_unreadable_flagged_image_is_reported_not_fatal(tmp_path):
    _, out = build_scan_output(tmp_path)
    # the archive copy and the review copy of one flagged image go bad after the scan
    (tmp_path / "archive" / "siteA" / "p003.png").write_bytes(b"garbage")
    (out / "review" / "rotation" / "siteA" / "p003.png").unlink()
    res = build_review(out, progress=False, saliency=False)
    rot = next(s for s in page_data(res.page)["sections"] if s["reason"] == "rotation")
    bad = next(it for it in rot["items"] if it["path"] == "siteA/p003.png")
    assert bad["thumb"] is None and bad["error"]
    assert any("siteA/p003.png" in w for w in res.warnings)
    assert len(rot["items"]) == 5


def test_rebuild_after_moving_files_to_keep(tmp_path):
    _, out = build_scan_output(tmp_path)
    keep = out / "review" / "rotation" / "_keep"
    keep.mkdir()
    shutil.move(out / "review" / "rotation" / "siteA" / "p001_a.png", keep / "p001_a.png")
    res = build_review(out, progress=False, saliency=False)
    rot = next(s for s in page_data(res.page)["sections"] if s["reason"] == "rotation")
    it = next(i for i in rot["items"] if i["path"] == "siteA/p001_a.png")
    assert (out / "review" / it["full"]).is_file()
    assert (out / "review" / "_thumbs" / f"{asset_id('siteA/p001_a.png')}.jpg").is_file()


def test_bad_scan_output_is_named(tmp_path):
    with pytest.raises(ScanOutputError, match="summary.json"):
        load_scan_output(tmp_path)
    _, out = build_scan_output(tmp_path)
    (out / "exclusions.csv").write_text("path,score\nx,1\n")
    with pytest.raises(ScanOutputError, match="exclusions.csv.*reasons"):
        load_scan_output(out)
    r = CliRunner().invoke(main, ["review", "build", str(out)])
    assert r.exit_code == 2 and "exclusions.csv" in r.output


def test_cli_build_and_help(tmp_path):
    _, out = build_scan_output(tmp_path)
    r = CliRunner().invoke(main, ["review", "build", str(out), "--no-saliency"])
    assert r.exit_code == 0, r.output
    assert "8 flagged image(s)" in r.output and (out / "review" / "index.html").is_file()
    for args in (["review", "--help"], ["review", "build", "--help"], ["review", "apply", "--help"], ["report", "--help"]):
        h = CliRunner().invoke(main, args)
        assert h.exit_code == 0 and "Examples:" in h.output


def test_scan_with_nothing_flagged(tmp_path):
    specs = [ImageSpec("a/x.png", {"rotation": 0.1}, 40, "F", "PA", "P1")]
    _, out = build_scan_output(tmp_path, specs, thresholds={"rotation": 0.5})
    res = build_review(out, progress=False)
    assert res.sections == {} and res.images == 0 and res.contact_sheets == []
    assert "nothing was flagged" in res.page.read_text()


def test_no_overlays_from_a_different_detector_version(tmp_path):
    """Overlays must come from the detector that flagged the image: a bundle that changed since the
    scan (another version) is not used."""
    import pandas as pd

    bundle = save_tiny_bundle(tmp_path / "bundles" / "rotation", "rotation", size=32)
    _, out = build_scan_output(tmp_path, bundles={"rotation": bundle})
    det = pd.read_csv(out / "detectors.csv", dtype=str, keep_default_na=False)
    det.loc[det["name"] == "rotation", "version"] = "rotation-0123456789ab"
    det.to_csv(out / "detectors.csv", index=False)
    res = build_review(out, progress=False, contact_sheets=False)
    assert res.overlays == 0
    assert any("the scan used rotation-0123456789ab" in w for w in res.warnings)


def test_second_build_prepares_only_new_flagged_films(tmp_path):
    """A resumed or extended scan flags more films: the next build reads only those, reuses every other
    thumbnail, preview and overlay untouched, and drops the assets of films no longer flagged."""
    bundle = save_tiny_bundle(tmp_path / "bundles" / "rotation", "rotation", size=32)
    specs = [ImageSpec(f"s{i % 2}/f{i:02d}.png", {"rotation": 0.7 + i / 100}, 40, "F", "PA", f"P{i}") for i in range(12)]
    _, out = build_scan_output(tmp_path, specs, thresholds={"rotation": 0.6}, bundles={"rotation": bundle},
                               film_size=48, make_review_copies=False)
    review = out / "review"
    excl = pd.read_csv(out / "exclusions.csv", dtype=str, keep_default_na=False)
    excl.iloc[:8].to_csv(out / "exclusions.csv", index=False)  # the scan so far
    first = build_review(out, progress=False, workers=1)
    assert (first.images, first.prepared, first.overlays_made, first.overlays) == (8, 8, 8, 8)
    assets = lambda: {p: p.stat().st_mtime_ns for d in ("_thumbs", "_full", "_overlays") for p in (review / d).rglob("*.jpg")}  # noqa: E731
    before = assets()
    assert len(before) == 3 * 8
    excl.to_csv(out / "exclusions.csv", index=False)  # resumed: four more flagged
    second = build_review(out, progress=False, workers=1)
    assert (second.images, second.prepared, second.overlays_made, second.overlays) == (12, 4, 4, 12)
    after = assets()
    assert len(after) == 3 * 12 and all(after[p] == t for p, t in before.items())  # the first 8 untouched
    items = page_data(second.page)["sections"][0]["items"]
    assert len(items) == 12 and all((review / it["thumb"]).is_file() and (review / it["overlay"]).is_file()
                                    and (review / it["full"]).is_file() for it in items)
    assert build_review(out, progress=False, workers=1).prepared == 0
    # a build without overlays shows none but keeps them for the next build with
    bare = build_review(out, progress=False, workers=1, saliency=False)
    assert bare.overlays == 0 and len(assets()) == 3 * 12
    assert (build_review(out, progress=False, workers=1).prepared, len(assets())) == (0, 3 * 12)
    # another saliency method: every overlay again (films read again for their model inputs)
    occl = build_review(out, progress=False, workers=1, saliency_method="occlusion", contact_sheets=False)
    assert (occl.prepared, occl.overlays_made) == (12, 12)
    assert {it["saliency"] for it in page_data(occl.page)["sections"][0]["items"]} == {"occlusion"}
    # a film no longer flagged: its assets go
    gone = excl.iloc[0]["path"]
    excl.iloc[1:].to_csv(out / "exclusions.csv", index=False)
    fewer = build_review(out, progress=False, workers=1, saliency_method="occlusion")
    assert (fewer.images, fewer.prepared) == (11, 0)
    assert not list(review.rglob(f"{asset_id(gone)}.*")) and len(assets()) == 3 * 11
    assert build_review(out, progress=False, workers=1, rebuild=True).prepared == 11


def test_changed_film_is_prepared_again(tmp_path):
    bundle = save_tiny_bundle(tmp_path / "bundles" / "rotation", "rotation", size=32)
    archive, out = build_scan_output(tmp_path, bundles={"rotation": bundle})
    build_review(out, progress=False, workers=1, contact_sheets=False)
    target = archive / "siteA" / "p003.png"
    Image.new("L", (40, 30), 200).save(target)  # replaced after the first build
    again = build_review(out, progress=False, workers=1, contact_sheets=False)
    assert again.prepared == 1
    with Image.open(out / "review" / "_thumbs" / f"{asset_id('siteA/p003.png')}.jpg") as im:
        assert im.size == (40, 30)


def test_one_progress_bar_per_stage(tmp_path, capsys):
    bundle = save_tiny_bundle(tmp_path / "bundles" / "rotation", "rotation", size=32)
    _, out = build_scan_output(tmp_path, bundles={"rotation": bundle})
    res = build_review(out, progress=True, workers=1, contact_sheets=False)
    err = capsys.readouterr().err
    for stage, unit, total in (("images", "film", 8), ("overlays", "overlay", 5), ("page", "step", 4)):
        assert re.search(rf"{stage}: 100%\|[^|]*\| {total}/{total} \[[0-9:]+<[0-9:]+, +[0-9.]+(s/{unit}|{unit}/s)\]", err), (stage, err)
    assert set(res.stage_seconds) == {"images", "overlays", "page"} and min(res.stage_seconds.values()) >= 0
    assert sum(res.stage_seconds.values()) <= res.seconds + 1e-6


BUDGET = {"rotation": {"threshold": 0.6, "rows": [
    {"threshold": 0.5, "flagged": 9, "share": 0.009, "validation_recall": 0.99},
    {"threshold": 0.6, "flagged": 5, "share": 0.005, "validation_recall": None},
    {"threshold": 0.9, "flagged": 2, "share": 0.002, "validation_recall": 0.8}]},
    "inversion": "not a budget", "flip": {"threshold": 0.7, "rows": "nor this"}}


def test_flag_budget_table_when_the_summary_has_one(tmp_path):
    _, out = build_scan_output(tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    plain = build_review(out, progress=False, saliency=False, contact_sheets=False).page.read_text()
    assert "flag-budget" not in plain
    summary["flag_budget"] = BUDGET
    (out / "summary.json").write_text(json.dumps(summary))
    html = build_review(out, progress=False, saliency=False, contact_sheets=False).page.read_text()
    budget = html[html.index('<details id="flag-budget"'):]
    budget = budget[: budget.index("</details>")]
    rows = re.findall(r"<tr( class=current)?><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", budget)
    assert rows == [("", "0.500", "9", "0.90%", "0.990"), (" class=current", "0.600", "5", "0.50%", "—"),
                    ("", "0.900", "2", "0.20%", "0.800")]
    assert "rotation: threshold in use 0.600" in budget and "inversion" not in budget and "flip" not in budget


@pytest.mark.slow
def test_every_flagged_pair_gets_an_overlay_from_the_default_detectors(tmp_path):
    """With the bundled detectors every flagged (film, detector) pair gets an overlay, none by occlusion, and
    flip's shows what its glyph reader read."""
    from detectors.bundle import default_bundles_dir

    root = default_bundles_dir()
    if root is None:
        pytest.skip("no bundled default detectors")
    names = ("flip", "inversion", "rotation")
    specs = [ImageSpec(f"s/f{i}.png", {"rotation": 0.9, "inversion": 0.9 if i % 2 else 0.1, "flip": 0.9 if i % 3 else 0.1},
                       40, "F", "PA", f"P{i}", rotate=90 * (i % 4)) for i in range(6)]
    _, out = build_scan_output(tmp_path, specs, thresholds={n: 0.5 for n in names},
                               bundles={n: root / n for n in names}, film_size=128)
    res = build_review(out, progress=False, contact_sheets=False, workers=1)
    pairs = {(it["path"], sec["reason"]): it for sec in page_data(res.page)["sections"] for it in sec["items"]}
    assert len(pairs) == 6 + 3 + 4 and res.overlays == len(pairs) and not res.warnings
    for (path, reason), it in pairs.items():
        assert it["overlay"] and (out / "review" / it["overlay"]).is_file(), (path, reason)
        flip_methods = {"gradcam+markers", "markers", "gradcam+no-marker"}
        assert it["saliency"] in (flip_methods if reason == "flip" else {"gradcam", "gradient"}), (path, reason, it)


def test_a_corrupt_model_gives_one_warning_and_the_page_without_its_overlays(tmp_path):
    bundle = save_tiny_bundle(tmp_path / "bundles" / "rotation", "rotation", size=32)
    _, out = build_scan_output(tmp_path, bundles={"rotation": bundle})
    (bundle / "model.keras").write_bytes(b"not a model any more")
    res = build_review(out, progress=False, contact_sheets=False, workers=1)
    assert res.overlays == 0 and res.images == 8
    assert len([w for w in res.warnings if "rotation" in w and "sha256" in w]) == 1  # once, not per batch
    rot = next(s for s in page_data(res.page)["sections"] if s["reason"] == "rotation")
    assert all(it["thumb"] and it["overlay"] is None for it in rot["items"])


def test_scan_with_review_page_builds_the_page_with_the_models_it_loaded(rule_bundles, built_archive, tmp_path,
                                                                       monkeypatch):
    """``--review-page``: the scan's process builds the page, its overlays made by the models the scan loaded
    (each bundle is loaded once, not again for the page); the page is the one ``review build`` writes."""
    import detectors.bundle
    from cleaner.scan import scan_archive

    loads = []
    real_load = detectors.bundle.load
    monkeypatch.setattr(detectors.bundle, "load", lambda path, *a, **k: loads.append(str(path)) or real_load(path, *a, **k))
    out = tmp_path / "out"
    summary = scan_archive(built_archive.root, out, detector_dirs=[rule_bundles], workers=2, progress=False,
                           review_page=True)
    assert summary["review_page"] == str(out / "review" / "index.html") and summary["review_page_seconds"] > 0
    assert sorted(loads) == sorted({*loads}) and len(loads) == 2  # rotation and inversion, once each
    pairs = [it for sec in page_data(out / "review" / "index.html")["sections"] if sec["detector"] for it in sec["items"]]
    assert pairs and all(it["overlay"] for it in pairs)
    again = build_review(out, progress=False)  # nothing new: the page the scan made is complete
    assert again.prepared == 0 and again.overlays_made == 0
    with pytest.raises(Exception, match="--review-page needs the review folders"):
        scan_archive(built_archive.root, tmp_path / "out2", detector_dirs=[rule_bundles], review=False, review_page=True)


def test_overlays_drawn_by_the_worker_process_are_those_drawn_in_process(tmp_path):
    """``workers > 1`` hands the drawing to a worker process: the same overlay files, byte for byte, as a build
    that draws them itself."""
    bundle = save_tiny_bundle(tmp_path / "bundles" / "rotation", "rotation", size=64)
    _, out = build_scan_output(tmp_path, bundles={"rotation": bundle})
    files = {}
    for workers in (1, 2):
        res = build_review(out, progress=False, contact_sheets=False, workers=workers, rebuild=True)
        assert res.overlays_made == res.overlays > 0 and not [w for w in res.warnings if "rotation" in w]
        files[workers] = {p.name: p.read_bytes() for p in (out / "review" / "_overlays").rglob("*.jpg")}
    assert len(files[2]) == res.overlays and files[1] == files[2]


def test_an_overlay_the_pool_cannot_draw_is_drawn_in_process_and_one_that_cannot_be_written_is_a_warning(tmp_path):
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    import numpy as np

    from cleaner.review.overlays import OverlayWriter, draw_overlay

    thumb, heat = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(64, 48), np.eye(8, dtype=np.float32)
    good, bad = tmp_path / "a.jpg", tmp_path / "missing_folder" / "b.jpg"
    assert draw_overlay((thumb, heat, [], 64, str(good))) is None and Image.open(good).size == (48, 64)
    assert "missing_folder" in draw_overlay((thumb, heat, [], 64, str(bad)))

    broken = Future()
    broken.set_exception(BrokenProcessPool("a worker died"))
    warnings = []
    images = {"x.png": {"id": "x"}, "y.png": {"id": "y"}}
    writer = OverlayWriter({}, tmp_path, images, "auto", warnings.append)
    good.unlink()
    writer.drawing = [(broken, (thumb, heat, [], 64, str(good)), ("x.png", "rotation", "a.jpg", "gradcam", "conv")),
                      (broken, (thumb, heat, [], 64, str(bad)), ("y.png", "rotation", "b.jpg", "gradcam", "conv"))]
    writer.finish()
    assert good.is_file() and images["x.png"]["overlays"] == {"rotation": "a.jpg"} and writer.written == 1
    assert "overlays" not in images["y.png"] and len(warnings) == 1 and warnings[0].startswith("y.png: no rotation overlay")


def test_an_overlay_of_a_trimmed_input_is_drawn_on_the_part_of_the_film_the_model_saw(tmp_path):
    """A detector that trims uniform bars sees only the film inside them: its heat map (and any marks) is laid
    on that part of the thumbnail, not stretched over the bars; a detector that keeps bars gets the whole film."""
    import numpy as np

    from cleaner.io.preprocess import InputSpec
    from cleaner.review.images import prepare_image
    from scan_output_builder import make_film

    film = np.pad(make_film(3, 200), ((100, 60), (0, 0)))  # letterboxed: 360 x 200, content rows 100-300
    Image.fromarray(film).save(tmp_path / "boxed.png")
    specs = {"trims": InputSpec(size=64).to_dict(), "keeps": InputSpec(size=64, borders="keep").to_dict()}
    res = prepare_image((tmp_path / "boxed.png", None, tmp_path / "t.jpg", None, specs))
    assert res["ok"] and res["thumb"].shape == (256, 142)
    trimmed = res["frames"]["trims"]
    assert trimmed.shape == (142, 142)  # the 200 x 200 film inside the bars, at the thumbnail's scale
    assert np.mean(trimmed[0] < 0.02) < 0.5 and np.mean(trimmed[-1] < 0.02) < 0.5  # no bar rows left in it
    assert res["frames"]["keeps"] is res["thumb"]
