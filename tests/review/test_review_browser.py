"""The review page in a real browser (headless Debian Chromium over the DevTools protocol): it loads
offline, thumbnails render, the overlay toggle changes the pictures, paging and filters work, the keyboard
reviews, links to awkward file names resolve, and the exported decisions file is what ``review apply``
reads; a 20,000-card page keeps only one page of cards in the DOM. Skipped where Chromium is not installed
(``.ci/run`` installs it)."""
import io
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chromium_cdp import Chromium, find_chromium
from cleaner.review.apply import apply_review
from cleaner.review.build import build_review
from cleaner.review.page import PAGE_SIZE
from scan_output_builder import ImageSpec, build_scan_output, save_tiny_bundle

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def wait_for(browser, expression, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if browser.eval(expression):
            return True
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {expression}")


def wait_for_file(path, timeout=15.0):
    deadline = time.time() + timeout
    while not path.is_file() and time.time() < deadline:
        time.sleep(0.1)
    assert path.is_file(), list(path.parent.iterdir())


ALL_LOADED = "Array.from(document.querySelectorAll('img.thumb')).every(i => i.complete && i.naturalWidth > 0)"
CARDS = "document.querySelectorAll('#grid .card')"


def card(path, reason):
    return f"document.querySelector('#grid .card[data-path=\"{path}\"][data-reason=\"{reason}\"]')"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    bundle = save_tiny_bundle(tmp / "bundles" / "rotation", "rotation", size=64)
    archive, out = build_scan_output(tmp, bundles={"rotation": bundle})
    build_review(out, progress=False)
    return archive, out


@pytest.fixture
def browser():
    with Chromium(CHROMIUM, width=1400, height=4000) as b:
        yield b


def test_page_loads_offline_and_thumbnails_render(page, browser):
    archive, out = page
    browser.navigate((out / "review" / "index.html").as_uri())
    assert browser.eval(f"{CARDS}.length") == 10  # 2 inversion + 5 rotation + 3 age
    wait_for(browser, ALL_LOADED)
    sizes = browser.eval("Array.from(document.querySelectorAll('img.thumb')).map(i => i.naturalWidth)")
    assert len(sizes) == 10 and min(sizes) > 0
    assert browser.eval(f"{CARDS}[0].dataset.reason") == "inversion"  # detector reasons first, by score
    assert browser.eval("document.getElementById('pageinfo').textContent") == "page 1 of 1 (10 of 10 cards)"
    urls = browser.requested_urls()
    assert urls and all(u.startswith(("file://", "data:", "blob:")) for u in urls), urls
    # clicking a thumbnail opens the full image: its link points at a file that exists
    href = browser.eval(f"{card('siteA/p001_a.png', 'rotation')}.querySelector('a.full').getAttribute('href')")
    assert (out / "review" / href).is_file()


def _shot(browser) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(browser.screenshot())).convert("RGB"), dtype=np.int16)


def test_overlay_toggle_changes_the_images(page, browser):
    archive, out = page
    browser.navigate((out / "review" / "index.html").as_uri())
    wait_for(browser, ALL_LOADED)
    rot = "Array.from(document.querySelectorAll('#grid .card[data-reason=\"rotation\"] img.thumb')).map(i => i.getAttribute('src'))"
    before_src = browser.eval(rot)
    before = _shot(browser)
    browser.press("o")
    wait_for(browser, f"({rot}).every(s => s.startsWith('_overlays/'))")
    assert browser.eval("document.getElementById('overlay-toggle').checked")
    wait_for(browser, ALL_LOADED)
    after_src = browser.eval(rot)
    assert all(a != b for a, b in zip(after_src, before_src)) and len(after_src) == 5
    after = _shot(browser)
    diff = np.abs(after - before).sum(axis=2) > 30
    assert diff.sum() > 5 * 100 * 100  # five overlays of a ~200 px thumbnail each changed colour
    # cards without overlays keep their thumbnails
    assert browser.eval(f"{card('siteA/p002_a.png', 'age<10')}.querySelector('img.thumb').getAttribute('src')").startswith("_thumbs/")
    browser.eval("document.getElementById('overlay-toggle').click()")
    wait_for(browser, f"({rot}).every(s => s.startsWith('_thumbs/'))")


def test_decisions_export_what_review_apply_reads_and_survive_a_reload(page, browser):
    archive, out = page
    browser.navigate((out / "review" / "index.html").as_uri())
    wait_for(browser, ALL_LOADED)
    # keep the top-scored rotation image (its button), and confirm the rest of age<10
    browser.eval(f"{card('siteA/p001_a.png', 'rotation')}.querySelector('.keep-btn').click()")
    browser.eval("document.querySelector('.reviewed-box[data-reason=\"age<10\"]').click()")
    assert browser.eval("document.getElementById('counts').textContent") == "1 kept · 3 confirmed · 6 undecided"
    browser.eval("document.getElementById('export').click()")
    target = browser.downloads / "decisions.csv"
    wait_for_file(target)
    d = pd.read_csv(target, dtype=str)
    assert sorted(map(tuple, d.values.tolist())) == [
        ("siteA/p001_a.png", "rotation", "keep"), ("siteA/p002_a.png", "age<10", "exclude"),
        ("siteA/p002_b.png", "age<10", "exclude"), ("siteB/s2_1.dcm", "age<10", "exclude")]
    res = apply_review(out, decisions_files=[target])
    fin = pd.read_csv(out / "exclusions_final.csv", dtype=str, keep_default_na=False)
    decisions = dict(zip(fin["path"], fin["decision"]))
    assert decisions["siteA/p001_a.png"] == "overturned"
    assert decisions["siteB/s2_1.dcm"] == "confirmed" and decisions["siteA/p002_a.png"] == "confirmed"
    assert decisions["siteA/p003.png"] == "unreviewed" and res.warnings == []
    # the decisions survive a reload (kept in the browser's storage, which commits asynchronously)
    kept = f"{card('siteA/p001_a.png', 'rotation')}.classList.contains('keep')"
    for _ in range(10):
        browser.navigate((out / "review" / "index.html").as_uri())
        if browser.eval(kept):
            break
        time.sleep(0.5)
    assert browser.eval(kept)
    assert browser.eval("document.getElementById('counts').textContent") == "1 kept · 3 confirmed · 6 undecided"


def test_paging_of_a_large_section(tmp_path, browser):
    specs = [ImageSpec(f"s/img{i:04d}.png", {"rotation": 0.5 + i / 1000}, 40, "F", "PA", f"P{i}") for i in range(450)]
    _, out = build_scan_output(tmp_path, specs, thresholds={"rotation": 0.5}, film_size=24, make_review_copies=False)
    build_review(out, progress=False, saliency=False, contact_sheets=False, workers=2)
    browser.navigate((out / "review" / "index.html").as_uri())
    first = f"{CARDS}[0].dataset.path"
    assert browser.eval(f"{CARDS}.length") == PAGE_SIZE == 120
    assert browser.eval(first) == "s/img0449.png"  # highest score first
    assert browser.eval("document.getElementById('pageinfo').textContent") == "page 1 of 4 (450 of 450 cards)"
    assert browser.eval("document.querySelector('#grid img.thumb').loading") == "lazy"
    browser.eval("document.getElementById('next-page').click()")
    assert browser.eval(first) == "s/img0329.png"
    browser.press("PageDown")
    browser.press("PageDown")
    assert browser.eval(f"{CARDS}.length") == 450 - 3 * 120 and browser.eval("document.getElementById('next-page').disabled")


AWKWARD = ["odd/hash#1.png", "odd/what?.png", "odd/100%.png", "odd/with space.png", "odd/back\\slash.png",
           "odd dir/ü é.png"]


def test_full_image_links_are_url_encoded(tmp_path, browser):
    """Links to files whose names hold '#', '?', '%', spaces, backslashes or non-ASCII resolve to the file."""
    specs = [ImageSpec(p, {"rotation": 0.9 - i / 100}, 40, "F", "PA", f"P{i}") for i, p in enumerate(AWKWARD)]
    for with_copies in (True, False):  # links to the review copies, or to the previews the build writes
        _, out = build_scan_output(tmp_path / str(with_copies), specs, thresholds={"rotation": 0.5}, film_size=24,
                                   make_review_copies=with_copies)
        build_review(out, progress=False, saliency=False, contact_sheets=False, workers=1)
        browser.navigate((out / "review" / "index.html").as_uri())
        hrefs = browser.eval(f"Array.from({CARDS}).map(c => c.querySelector('a.full').getAttribute('href'))")
        assert len(hrefs) == len(AWKWARD) and not any(c in h for h in hrefs for c in "#? \\"), hrefs
        loaded = browser.eval("""Promise.all(Array.from(document.querySelectorAll('#grid a.full')).map(a =>
            new Promise(ok => { const i = new Image(); i.onload = () => ok(i.naturalWidth); i.onerror = () => ok(0);
                                i.src = a.href; })))""", await_promise=True)
        assert all(w > 0 for w in loaded), dict(zip(hrefs, loaded))


def test_decisions_survive_a_rebuild_after_a_resumed_scan(tmp_path, browser):
    """A resumed scan has a new start time; the rebuilt page still shows the decisions made on the last one."""
    import json

    _, out = build_scan_output(tmp_path, film_size=24)
    build_review(out, progress=False, saliency=False, contact_sheets=False, workers=1)
    page = (out / "review" / "index.html").as_uri()
    browser.navigate(page)
    browser.eval(f"{card('siteA/p003.png', 'rotation')}.querySelector('.keep-btn').click()")
    summary = json.loads((out / "summary.json").read_text())
    summary["started"], summary["resumed"] = "2099-01-01T00:00:00+00:00", True
    (out / "summary.json").write_text(json.dumps(summary))
    build_review(out, progress=False, saliency=False, contact_sheets=False, workers=1)
    kept = f"{card('siteA/p003.png', 'rotation')}.classList.contains('keep')"
    for _ in range(10):
        browser.navigate(page)
        if browser.eval(kept):
            break
        time.sleep(0.5)
    assert browser.eval(kept) and browser.eval("document.getElementById('counts').textContent").startswith("1 kept")
