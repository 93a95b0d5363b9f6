"""A review page of 20,000 flagged films in headless Chromium: only one page of cards is in the DOM,
paging, filters and keyboard review work over the whole set, and the exported decisions are exactly
those made. The load time is printed (measured, not asserted: ``benchmarks/review_build.py --page-load``
is where the figure comes from)."""
import time

import pandas as pd
import pytest

from chromium_cdp import Chromium, find_chromium
from cleaner.review.apply import read_decisions_file
from cleaner.review.page import PAGE_SIZE
from review_pages import large_page

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
N = 20000
CARDS = "document.querySelectorAll('#grid .card')"


def text(browser, element_id):
    return browser.eval(f"document.getElementById('{element_id}').textContent")


def set_control(browser, element_id, value, event="change"):
    browser.eval(f"(() => {{ const e = document.getElementById('{element_id}'); e.value = '{value}'; "
                 f"e.dispatchEvent(new Event('{event}')); }})()")


def focused(browser):
    return browser.eval("[document.querySelector('#grid .card.focus').dataset.path, "
                        "document.querySelector('#grid .card.focus').dataset.reason]")


def test_twenty_thousand_cards(tmp_path, record_property):
    page = large_page(tmp_path, N)
    with Chromium(CHROMIUM, width=1400, height=1000) as browser:
        browser.navigate(page.as_uri(), timeout=60)
        ready_ms = browser.eval("window.cxcleanReady")
        record_property("load_ms", ready_ms)
        print(f"\n20,000-card review page usable {ready_ms:.0f} ms after navigation started")
        assert browser.eval(f"{CARDS}.length") == PAGE_SIZE  # not 20,000 nodes
        assert browser.eval("document.querySelectorAll('*').length") < 5000
        pages = -(-N // PAGE_SIZE)
        assert text(browser, "pageinfo") == f"page 1 of {pages} ({N} of {N} cards)"
        assert text(browser, "counts") == f"0 kept · 0 confirmed · {N} undecided"
        # page through: buttons and keys
        for _ in range(3):
            browser.eval("document.getElementById('next-page').click()")
        browser.press("PageDown")
        assert text(browser, "pageinfo").startswith(f"page 5 of {pages} ")
        assert browser.eval(f"{CARDS}[0].dataset.n") == str(4 * PAGE_SIZE)
        browser.press("PageUp")
        assert text(browser, "pageinfo").startswith(f"page 4 of {pages} ")
        # filters: reason, then score range, then site
        set_control(browser, "f-reason", "flip")
        assert text(browser, "pageinfo") == f"page 1 of {-(-5000 // PAGE_SIZE)} (5000 of {N} cards)"
        set_control(browser, "f-min", "0.9", "input")
        above = sum(1 for i in range(5000) if round(1 - 0.5 * i / 5000, 6) >= 0.9)
        assert text(browser, "pageinfo").endswith(f"({above} of {N} cards)")
        set_control(browser, "f-site", "hospital_c")
        shown = browser.eval(f"Array.from({CARDS}).map(c => c.dataset.path)")
        assert shown and all(p.startswith("hospital_c/flip/") for p in shown)
        # keyboard review from the first card: keep and confirm move on; arrows move; u takes a decision back
        first = focused(browser)
        browser.press("k")
        second = focused(browser)
        browser.press("c")
        third = focused(browser)
        browser.press("ArrowRight")
        fourth = focused(browser)
        browser.press("c")
        browser.press("ArrowLeft")
        assert focused(browser) == fourth
        browser.press("u")
        browser.press("ArrowLeft")
        assert focused(browser) == third
        browser.press("c")
        assert len({tuple(first), tuple(second), tuple(third), tuple(fourth)}) == 4
        assert text(browser, "counts") == f"1 kept · 2 confirmed · {N - 3} undecided"
        # toggle the overlay, open the full image (window.open recorded, not followed)
        browser.press("o")
        assert browser.eval("document.getElementById('overlay-toggle').checked")
        assert browser.eval(f"{CARDS}[0].querySelector('img').getAttribute('src')") == "_overlays/o.jpg"
        browser.eval("window.opened = []; window.open = function(u){ window.opened.push(u); }")
        browser.press("Enter")
        assert browser.eval("window.opened") == ["_thumbs/t.jpg"]
        # the decision filter sees them
        set_control(browser, "f-decision", "exclude")
        assert browser.eval(f"{CARDS}.length") == 2
        # export, and the file is exactly the decisions made
        browser.eval("document.getElementById('export').click()")
        target = browser.downloads / "decisions.csv"
        deadline = time.time() + 30
        while not target.is_file() and time.time() < deadline:
            time.sleep(0.1)
        rows = read_decisions_file(target)
        got = sorted((r["path"], r["reason"], r["decision"]) for r in rows)
        assert got == sorted([(first[0], "flip", "keep"), (second[0], "flip", "exclude"), (third[0], "flip", "exclude")])
        assert pd.read_csv(target).columns.tolist() == ["path", "reason", "decision"]
        # reload: the decisions are still there
        for _ in range(10):
            browser.navigate(page.as_uri(), timeout=60)
            if text(browser, "counts") == f"1 kept · 2 confirmed · {N - 3} undecided":
                break
            time.sleep(0.5)
        assert text(browser, "counts") == f"1 kept · 2 confirmed · {N - 3} undecided"
