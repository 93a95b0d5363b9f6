"""The review page in a real browser (headless Debian Chromium over the DevTools protocol): it loads
offline, thumbnails render, the overlay toggle changes the pictures, paging works, and the
exported decisions file is what ``review apply`` reads. Skipped where Chromium is not installed."""
import io
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chromium_cdp import Chromium, find_chromium
from cleaner.review.build import build_review
from cleaner.review.apply import apply_review
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


ALL_LOADED = "Array.from(document.querySelectorAll('img.thumb')).every(i => i.complete && i.naturalWidth > 0)"


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
    assert browser.eval("document.querySelectorAll('.card').length") == 10  # 2 inversion + 5 rotation + 3 age
    wait_for(browser, ALL_LOADED)
    sizes = browser.eval("Array.from(document.querySelectorAll('img.thumb')).map(i => i.naturalWidth)")
    assert len(sizes) == 10 and min(sizes) > 0
    assert browser.eval("document.querySelector('#sec-rotation h2').textContent").startswith("rotation (5)")
    urls = browser.requested_urls()
    assert urls and all(u.startswith(("file://", "data:", "blob:")) for u in urls), urls
    # clicking a thumbnail opens the full image: its link points at a file that exists
    href = browser.eval("document.querySelector('#sec-rotation .card a').getAttribute('href')")
    assert (out / "review" / href).is_file()


def _shot(browser) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(browser.screenshot())).convert("RGB"), dtype=np.int16)


def test_overlay_toggle_changes_the_images(page, browser):
    archive, out = page
    browser.navigate((out / "review" / "index.html").as_uri())
    wait_for(browser, ALL_LOADED)
    rot = "Array.from(document.querySelectorAll('#sec-rotation img.thumb')).map(i => i.getAttribute('src'))"
    before_src = browser.eval(rot)
    before = _shot(browser)
    browser.eval("document.getElementById('overlay-toggle').click()")
    wait_for(browser, "Array.from(document.querySelectorAll('#sec-rotation img.thumb')).every(i => i.getAttribute('src').startsWith('_overlays/'))")
    wait_for(browser, ALL_LOADED)
    after_src = browser.eval(rot)
    assert all(a != b for a, b in zip(after_src, before_src)) and len(after_src) == 5
    after = _shot(browser)
    diff = np.abs(after - before).sum(axis=2) > 30
    assert diff.sum() > 5 * 100 * 100  # five overlays of a ~200 px thumbnail each changed colour
    # sections without overlays keep their thumbnails
    assert browser.eval("document.querySelector('#sec-age_under_10 img.thumb').getAttribute('src')").startswith("_thumbs/")
    browser.eval("document.getElementById('overlay-toggle').click()")
    wait_for(browser, "Array.from(document.querySelectorAll('#sec-rotation img.thumb')).every(i => i.getAttribute('src').startsWith('_thumbs/'))")


def test_ticks_export_decisions_that_review_apply_reads(page, browser):
    archive, out = page
    browser.navigate((out / "review" / "index.html").as_uri())
    wait_for(browser, ALL_LOADED)
    # keep the top-scored rotation image, and declare the age<10 section reviewed
    browser.eval("document.querySelector('#sec-rotation .card[data-path=\"siteA/p001_a.png\"] .keep-box').click()")
    browser.eval("document.querySelector('#sec-age_under_10 .reviewed-box').click()")
    assert browser.eval("document.getElementById('kept-count').textContent") == "1 kept"
    browser.eval("document.getElementById('export').click()")
    target = browser.downloads / "decisions.csv"
    deadline = time.time() + 15
    while not target.is_file() and time.time() < deadline:
        time.sleep(0.1)
    assert target.is_file(), list(browser.downloads.iterdir())
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
    # the ticks survive a reload (kept in the browser's storage, which commits asynchronously)
    kept = "document.querySelector('.card[data-path=\"siteA/p001_a.png\"][data-reason=\"rotation\"] .keep-box').checked"
    for _ in range(10):
        browser.navigate((out / "review" / "index.html").as_uri())
        if browser.eval(kept):
            break
        time.sleep(0.5)
    assert browser.eval(kept)


def test_paging_of_a_large_section(tmp_path, browser):
    specs = [ImageSpec(f"s/img{i:04d}.png", {"rotation": 0.5 + i / 1000}, 40, "F", "PA", f"P{i}") for i in range(450)]
    _, out = build_scan_output(tmp_path, specs, thresholds={"rotation": 0.5}, film_size=24, make_review_copies=False)
    build_review(out, progress=False, saliency=False, contact_sheets=False, workers=2)
    browser.navigate((out / "review" / "index.html").as_uri())
    cards = "document.querySelectorAll('#sec-rotation .card')"
    first = f"{cards}[0].dataset.path"
    assert browser.eval(f"{cards}.length") == 200
    assert browser.eval(first) == "s/img0449.png"  # highest score first
    assert browser.eval("document.getElementById('pageinfo-0').textContent") == "page 1 of 3 (450 images)"
    assert browser.eval("document.querySelector('#sec-rotation img.thumb').loading") == "lazy"
    browser.eval("document.getElementById('next-0').click()")
    assert browser.eval(first) == "s/img0249.png"
    browser.eval("document.getElementById('next-0').click()")
    assert browser.eval(f"{cards}.length") == 50 and browser.eval("document.getElementById('next-0').disabled")
