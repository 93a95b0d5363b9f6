"""Hostile names, lists and folders through review build and review apply: absolute and ``..`` paths of a list,
a single image, names holding ``\\``, ``\\r``, ``%`` or ``_keep``, decisions files made by the page, and ``_keep``
folders that are links out of the scan folder."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from archive_builder import film, rotated, write_png
from cleaner.review.apply import apply_review
from cleaner.review.build import build_review
from cleaner.scan import scan_archive
from scan_output_builder import page_data


def scan(target, out, bundles):
    return scan_archive(target, out, [bundles / "rotation"], workers=1, progress=False)


def labels(out: Path, name: str = "labels.csv") -> dict:
    df = pd.read_csv(out / name, dtype=str, keep_default_na=False)
    return dict(zip(df["path"], df["label"].astype(int)))


def test_a_list_with_absolute_and_parent_paths_builds_and_labels_the_real_files(rule_bundles, tmp_path):
    elsewhere = write_png(tmp_path / "elsewhere" / "abs.png", rotated(film(1), 1))
    nearby = write_png(tmp_path / "lists" / "sub" / "rel.png", rotated(film(2), 2))
    above = write_png(tmp_path / "above.png", rotated(film(3), 3))
    listing = tmp_path / "lists" / "list.csv"
    listing.write_text(f"path\n{elsewhere}\nsub/rel.png\n../above.png\n")
    out = tmp_path / "out"
    assert scan(listing, out, rule_bundles)["excluded"] == 3

    result = build_review(out, saliency=False, contact_sheets=False, progress=False)  # crashed on the absolute path
    items = {it["path"]: it for sec in page_data(result.page)["sections"] for it in sec["items"]}
    assert set(items) == {str(elsewhere), "sub/rel.png", "../above.png"}
    for it in items.values():
        full = (out / "review" / it["full"]).resolve()
        assert full.is_file() and full.is_relative_to((out / "review").resolve()), it
        assert it["thumb"] and not it["error"]

    decisions = tmp_path / "decisions.csv"
    decisions.write_text(f"path,reason,decision\n{elsewhere},rotation,keep\nsub/rel.png,rotation,exclude\n"
                         "../above.png,rotation,exclude\n")
    apply_review(out, [decisions])
    want = {str(elsewhere): 0, str(nearby): 1, str(above.resolve()): 1}
    assert labels(out) == want and labels(out, "labels/rotation.csv") == want  # were /x/list.csv/sub/rel.png


def test_a_single_image_scan_labels_the_image_itself(rule_bundles, tmp_path):
    image = write_png(tmp_path / "img.png", rotated(film(4), 1))
    out = tmp_path / "out"
    scan(image, out, rule_bundles)
    decisions = tmp_path / "decisions.csv"
    decisions.write_text("path,reason,decision\nimg.png,rotation,exclude\n")
    apply_review(out, [decisions])
    assert labels(out) == {str(image): 1}  # was /x/img.png/img.png


def test_hostile_names_get_their_own_review_copy_and_their_decisions_count(rule_bundles, tmp_path):
    from cleaner.scan.folder import review_relpath

    archive = tmp_path / "archive"
    names = {"a\\b.png": 1, "a/b.png": 2, "c\r.png": 3, "_keep/d.png": 4, "50%5Cb.png": 5, " sp .png": 6}
    for i, name in enumerate(names):
        write_png(archive / name, rotated(film(names[name]), 1 + i % 3))
    out = tmp_path / "out"
    assert scan(archive, out, rule_bundles)["excluded"] == len(names)
    for name in names:  # one copy each, of its own file: a\b.png no longer lands on a/b.png, nor 50%5Cb.png on it
        copy = out / "review" / "rotation" / review_relpath(name)
        assert copy.read_bytes() == (archive / name).read_bytes(), name
    # the archive's own _keep/ folder is no reviewer's decision
    assert set(pd.read_csv(apply_review(out).exclusions_final, dtype=str)["decision"]) == {"unreviewed"}

    keep = out / "review" / "rotation" / "_keep"
    keep.mkdir()
    shutil.move(out / "review" / "rotation" / review_relpath("a\\b.png"), keep)  # a reviewer's move
    page_export = tmp_path / "decisions.csv"  # as the page's exporter writes it: quoted, "\r" kept
    with open(page_export, "w", newline="") as fh:
        fh.write('path,reason,decision\n"c\rb.png",rotation,keep\n"c\r.png",rotation,keep\n'
                 '" sp .png",rotation,exclude\n')
    result = apply_review(out, [page_export])
    final = pd.read_csv(result.exclusions_final, dtype=str, keep_default_na=False)
    decided = dict(zip(final["path"], final["decision"]))
    assert decided == {"a\\b.png": "overturned", "c\r.png": "overturned", " sp .png": "confirmed",
                       "a/b.png": "unreviewed", "_keep/d.png": "unreviewed", "50%5Cb.png": "unreviewed"}
    assert any("c\rb.png" in w and "not flagged" in w for w in result.warnings)


def test_a_keep_folder_that_links_out_of_the_scan_folder_is_not_followed(rule_bundles, tmp_path):
    archive = tmp_path / "archive"
    write_png(archive / "r.png", rotated(film(7), 1))
    out = tmp_path / "out"
    scan(archive, out, rule_bundles)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(archive / "r.png", outside / "r.png")  # a file that would read as "r.png kept"
    os.symlink(outside, out / "review" / "rotation" / "_keep")
    result = apply_review(out)
    final = pd.read_csv(result.exclusions_final, dtype=str)
    assert list(final["decision"]) == ["unreviewed"]
    assert any("symbolic link" in w and "not followed" in w for w in result.warnings)
