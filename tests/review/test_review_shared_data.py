"""The review page over real radiographs in ../shared/data (real DICOM transfer syntaxes,
MONOCHROME1, 1024 px PNGs), left where they are. Skipped when the data is absent."""
import pytest
from PIL import Image

from cleaner.review.build import build_review
from scan_output_builder import page_data, scan_output_for_existing

pytestmark = pytest.mark.shared_data


def test_page_over_real_dicom_and_png(tmp_path, shared_data):
    # MONOCHROME1 uncompressed, 12-bit JPEG extended (GDCM only), JPEG 2000, colour ultrasound
    picks = ["REF/RG3_UNC.dcm", "JPLY/RG2_JPLY", "J2KR/RG3_J2KR", "J2KR/US1_J2KR"]
    dicoms = [shared_data / "dicom" / p for p in picks if (shared_data / "dicom" / p).is_file()]
    pngs = sorted((shared_data / "nih" / "fullres").glob("*.png"))[:3]
    flagged = {p.relative_to(shared_data).as_posix(): (["rotation"], 0.9 - i / 100) for i, p in enumerate(dicoms + pngs)}
    before = {p: p.stat().st_mtime_ns for p in dicoms + pngs}
    out = scan_output_for_existing(tmp_path, shared_data, flagged)
    res = build_review(out, progress=False, saliency=False)
    data = page_data(res.page)
    items = data["sections"][0]["items"]
    assert {it["path"] for it in items} == set(flagged)
    readable = [it for it in items if it["thumb"]]
    # every file the reader can decode gets a thumbnail and a browser-viewable full-size preview
    assert len(readable) == len(items) == len(dicoms) + len(pngs) >= 5, [it["error"] for it in items if not it["thumb"]]
    for it in readable:
        assert it["full"].startswith("_full/")
        with Image.open(out / "review" / it["full"]) as im:
            assert im.format == "JPEG" and min(im.size) > 16
    for it in items:
        if not it["thumb"]:
            assert it["error"]  # named, not silently dropped
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the archive is never modified
