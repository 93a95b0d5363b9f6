"""Hostile archives, lists and output folders for a whole scan: links out of the archive, repeated list lines,
leftovers of a killed final write, the permissions and access times a scan leaves."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from archive_builder import film, rotated, write_png
from cleaner.scan import scan_archive
from cleaner.scan.folder import CONFIG_FILE, JOURNAL_FILE


def scan(target, out, bundles, **kw):
    return scan_archive(target, out, detector_dirs=[bundles], workers=kw.pop("workers", 1), progress=False, **kw)


def test_repeated_list_lines_are_counted_and_a_link_to_the_output_is_not_followed(rule_bundles, tmp_path):
    archive = tmp_path / "archive"
    write_png(archive / "a.png", film(1))
    write_png(archive / "b.png", rotated(film(2), 1))
    listing = tmp_path / "list.csv"
    listing.write_text("path\narchive/a.png\narchive/b.png\narchive/a.png\narchive/a.png\n")
    summary = scan(listing, tmp_path / "list_out", rule_bundles)
    assert summary["files"] == 2 and summary["skipped"] == {"repeated in the list (scanned once)": 2}

    out = tmp_path / "out"
    os.symlink(out, archive / "live_out")  # scanning the scan's own review copies, while it makes them
    summary = scan(archive, out, rule_bundles)
    assert summary["files"] == 2
    assert summary["skipped"] == {"symlinked folder outside the archive (not followed)": 1}


def test_outputs_have_the_permissions_of_any_file_the_user_writes(rule_bundles, built_archive, tmp_path):
    from cleaner.review.apply import apply_review

    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        scan(built_archive.root, out, rule_bundles, min_age=10)
        apply_review(out)
    finally:
        os.umask(old)
    for name in ("scores.csv", "exclusions.csv", "errors.csv", "detectors.csv", "summary.json",
                 "exclusions_final.csv", "labels.csv", "review_apply.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name  # mkstemp made the scan's 0600


def test_overwrite_and_resume_remove_what_a_killed_final_write_left(rule_bundles, built_archive, tmp_path):
    out = tmp_path / "out"
    scan(built_archive.root, out, rule_bundles)
    leftovers = [out / ".scores.csv.1a2b3c4d.tmp", out / ".summary.json.ffff0000.tmp"]
    for p in leftovers:
        p.write_text("half a file")
    users = out / ".notes.txt.tmp"
    users.write_text("not cxclean's")
    scan(built_archive.root, out, rule_bundles, overwrite=True)
    assert not any(p.exists() for p in leftovers) and users.exists()

    # killed while writing the final files: the journal is still there, and a temporary file beside it
    from cleaner.scan.folder import score_columns
    from cleaner.scan.journal import Journal

    Journal(out, score_columns(["inversion", "rotation"], turn=True), {}).start()
    (out / CONFIG_FILE).write_text(json.dumps(_record(built_archive.root, out, rule_bundles)))
    leftovers[0].write_text("half a file")
    summary = scan(built_archive.root, out, rule_bundles, resume=True)
    assert summary["resumed"] is True and not leftovers[0].exists() and not (out / JOURNAL_FILE).exists()


def _record(archive, out, bundles) -> dict:
    from cleaner.scan.config import ScanConfig
    from cleaner.scan.runner import ScanRun

    return json.loads(json.dumps(ScanRun(archive, out, ScanConfig(detector_dirs=[bundles], workers=1),
                                         progress=False).record(), default=str))


def _entries(root: Path) -> list[Path]:
    found = [root]
    for folder, dirs, files in os.walk(root):
        found += [Path(folder) / n for n in dirs + files if not (Path(folder) / n).is_symlink()]
    return found


def test_a_scan_leaves_the_archive_access_times_alone(rule_bundles, built_archive, tmp_path):
    """Reading updates access times (relatime: when older than the last change); the README promises none is."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    os.utime(probe, (1_000_000_000, probe.stat().st_mtime))
    probe.read_bytes()
    if probe.stat().st_atime == 1_000_000_000:
        pytest.skip("this file system does not update access times on reading (noatime)")
    entries = _entries(built_archive.root)
    for p in entries:
        os.utime(p, (1_000_000_000, p.stat().st_mtime))
    summary = scan(built_archive.root, tmp_path / "out", rule_bundles, workers=2, min_age=10,
                   metadata=built_archive.metadata_csv)
    assert summary["excluded"] > 0 and (tmp_path / "out" / "review").is_dir()  # copies were read too
    touched = [str(p.relative_to(built_archive.root)) for p in entries if p.stat().st_atime != 1_000_000_000]
    assert touched == []


HOSTILE_NAMES = ["new\nline.png", 'q"uote.png', "com,ma.png", "-dash.png", "ünï.png", "sp ace .png", "semi;colon.png",
                 "#hash?%.png", "back\\slash.png", "cr\r.png"]


def test_hostile_file_names_are_each_a_row_with_their_own_review_copy(rule_bundles, tmp_path):
    """Every name a POSIX file system allows, also bytes that are not UTF-8 (written as \\xNN in the CSVs)."""
    from cleaner.review.apply import apply_review
    from cleaner.review.build import build_review
    from cleaner.scan.folder import load_scan_output, review_relpath

    archive = tmp_path / "archive"
    for i, name in enumerate(HOSTILE_NAMES):
        write_png(archive / name, rotated(film(i), 1))
    raw = os.path.join(os.fsencode(archive), b"latin\xe9.png")  # a name from an old Windows export
    write_png(Path(os.fsdecode(raw)), rotated(film(20), 1))
    out = tmp_path / "out"
    summary = scan(archive, out, rule_bundles, workers=2)
    assert summary["files"] == summary["excluded"] == len(HOSTILE_NAMES) + 1 and summary["errors"] == 0
    scanned = load_scan_output(out)  # the CSVs read back, every name intact
    assert sorted(scanned.scores["path"]) == sorted(HOSTILE_NAMES + ["latin\\xe9.png"])
    for name in HOSTILE_NAMES:
        assert (out / "review" / "rotation" / review_relpath(name)).read_bytes() == (archive / name).read_bytes()
    assert (out / "review" / "rotation" / "latin%5Cxe9.png").read_bytes() == Path(os.fsdecode(raw)).read_bytes()

    assert build_review(out, saliency=False, contact_sheets=False, progress=False).warnings == []
    decisions = tmp_path / "decisions.json"
    decisions.write_text(json.dumps([{"path": n, "reason": "rotation", "decision": "keep"} for n in HOSTILE_NAMES]))
    result = apply_review(out, [decisions])
    assert result.counts == {"overturned": len(HOSTILE_NAMES), "unreviewed": 1} and result.warnings == []


def test_a_blank_film_is_excluded_as_blank_a_strip_is_an_error_and_reading_policies_are_noted(rule_bundles, tmp_path):
    """What the reader did to a file is in scores.csv's ``notes`` (only the first page of a multi-page file was
    scored); a film whose pixels are all one value is excluded as ``blank`` whatever the detectors said (a blank
    image reads as "inverted" to an inversion detector); a strip of a few pixels is not a film to score."""
    import csv

    from PIL import Image

    archive = tmp_path / "archive"
    write_png(archive / "a.png", film(1))
    write_png(archive / "blank.png", np.zeros_like(film(2)))
    write_png(archive / "strip.png", film(3)[:4])
    pages = [Image.fromarray((film(s) * 255).astype(np.uint8)) for s in (4, 5, 6)]
    pages[0].save(archive / "pages.tif", save_all=True, append_images=pages[1:])
    out = tmp_path / "out"
    summary = scan(archive, out, rule_bundles)
    with open(out / "scores.csv", newline="", encoding="utf-8") as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh)}
    assert rows["blank.png"]["reasons"] == "blank" and rows["blank.png"]["excluded"] == "True"
    assert "blank image" in rows["blank.png"]["notes"]
    assert rows["strip.png"]["status"] == "error" and "too small to be a radiograph" in rows["strip.png"]["error"]
    assert rows["pages.tif"]["status"] == "ok" and "first of 3 pages" in rows["pages.tif"]["notes"]
    assert rows["a.png"]["notes"] == "" and "blank" not in rows["a.png"]["reasons"]
    assert summary["excluded_per_reason"].get("blank") == 1
    assert (out / "review" / "blank" / "blank.png").is_file()
