"""Worker death in the ordered map: noticed, the item that killed its worker named, the rest unharmed, no hang.

Each map runs in a child Python with a time limit: before the fix, ``multiprocessing.Pool`` waited forever for
the result a dead worker held, and a hang must fail the test, not stop the suite."""
from __future__ import annotations

import json
import subprocess
import sys

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HELPERS = REPO / "tests" / "helpers"

RUN = """
import json, sys
sys.path[:0] = [{repo!r}, {helpers!r}]
import crashers
from cleaner.io.parallel import bounded_ordered_map, ordered_map, WorkerCrashError
{body}
"""


def run_child(body: str, timeout: float = 180) -> dict:
    code = RUN.format(repo=str(REPO), helpers=str(HELPERS), body=body)
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the map hung (no result in {timeout} s)") from None
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_item_that_kills_its_worker_is_named_and_the_rest_are_read():
    got = run_child("""
out = list(bounded_ordered_map(crashers.die_on_seven, range(30), workers=2, chunksize=2, ahead=8,
                               on_crash=lambda item, why: ["crash", item, why]))
print(json.dumps({"out": out}))
""")["out"]
    expected = [2 * x for x in range(30)]
    expected[7] = ["crash", 7, "worker killed by signal 9 (SIGKILL)"]
    assert got == expected


def test_a_worker_that_dies_while_more_files_are_handed_out_is_survived_the_same_way():
    """The pool can break between two submissions (the worker died while the next chunk was being read from the
    input): that submission fails at once, and its files must be read again like those the pool held."""
    got = run_child("""
import time
def files():
    yield 7
    time.sleep(2)  # the worker dies on 7 meanwhile: the next submission meets a broken pool
    yield from range(8, 12)
out = list(bounded_ordered_map(crashers.die_on_seven, files(), workers=2, chunksize=1, ahead=8,
                               on_crash=lambda item, why: ["crash", item, why]))
print(json.dumps({"out": out}))
""")["out"]
    assert got == [["crash", 7, "worker killed by signal 9 (SIGKILL)"], 16, 18, 20, 22]


def test_a_broken_pool_gives_a_failed_future_for_new_work_instead_of_raising():
    """What the review's overlay drawing relies on: it draws in this process any picture whose future failed."""
    got = run_child("""
from concurrent.futures.process import BrokenProcessPool
from cleaner.io.parallel import process_pool, submit
pool = process_pool(1)
try:
    pool.submit(crashers.die_on_seven, 7).result(timeout=60)
except BrokenProcessPool:
    pass
later = submit(pool, crashers.die_on_seven, 3)
print(json.dumps({"done": later.done(), "error": type(later.exception(timeout=0)).__name__}))
pool.shutdown()
""")
    assert got == {"done": True, "error": "BrokenProcessPool"}


def test_a_worker_killed_once_from_outside_costs_nothing(tmp_path):
    """The OOM killer takes a worker while it reads a good file: every file is read again, none is an error."""
    marker = tmp_path / "died"
    got = run_child(f"""
out = list(bounded_ordered_map(crashers.die_once, [(i, {str(marker)!r}) for i in range(20)], workers=2,
                               chunksize=3, ahead=9, on_crash=lambda item, why: None))
print(json.dumps({{"out": out}}))
""")["out"]
    assert marker.read_text() == "died once"
    assert got == [2 * x for x in range(20)]


def test_without_on_crash_the_map_stops_naming_the_item_and_the_exit_status():
    got = run_child("""
try:
    list(ordered_map(crashers.exits_on_three, range(10), workers=2, chunksize=1))
    print(json.dumps({"error": None}))
except WorkerCrashError as exc:
    print(json.dumps({"error": str(exc)}))
""")
    assert got["error"].startswith("3: worker exited with status 3"), got


@pytest.mark.parametrize("workers,isolate", [(2, False), (1, True)])
def test_an_item_that_hangs_its_worker_is_named_after_the_time_limit_and_the_rest_are_read(workers, isolate):
    """A decoder stuck on a crafted file (ignoring SIGTERM) must not stop the map: after the limit per item its
    worker is killed, the window read again one item at a time, and only the file that hangs again is reported.
    ``isolate``: one worker, still a process of its own (in this process the map would hang for good)."""
    got = run_child(f"""
import time
started = time.perf_counter()
out = list(bounded_ordered_map(crashers.hang_on_four, range(12), workers={workers}, chunksize=2, ahead=6,
                               on_crash=lambda item, why: ["hung", item, why], timeout=1.5, isolate={isolate}))
print(json.dumps({{"out": out, "seconds": time.perf_counter() - started}}))
""", timeout=120)
    expected = [2 * x for x in range(12)]
    expected[4] = ["hung", 4, "hung (no result within 1.5 s; its worker was killed)"]
    assert got["out"] == expected
    assert got["seconds"] < 60


def test_the_time_limit_per_file_comes_from_the_environment(monkeypatch):
    from cleaner.io.errors import CxcleanError
    from cleaner.io.parallel import FILE_TIMEOUT_S, item_timeout

    monkeypatch.delenv("CXCLEAN_FILE_TIMEOUT", raising=False)
    assert item_timeout() == FILE_TIMEOUT_S
    monkeypatch.setenv("CXCLEAN_FILE_TIMEOUT", "0")
    assert item_timeout() is None
    monkeypatch.setenv("CXCLEAN_FILE_TIMEOUT", "2.5")
    assert item_timeout() == 2.5
    monkeypatch.setenv("CXCLEAN_FILE_TIMEOUT", "soon")
    with pytest.raises(CxcleanError, match="CXCLEAN_FILE_TIMEOUT"):
        item_timeout()


@pytest.mark.parametrize("preloaded", [True, False])
def test_preloaded_modules_are_imported_once_by_the_forkserver_not_by_each_worker(preloaded):
    """``preload``: the workers of a fresh process's pools find the module already imported (the forkserver did
    it before forking them); without it, they do not have it."""
    got = run_child(f"""
from cleaner.io.parallel import preload
if {preloaded}:
    preload("cleaner.review.sheets")
print(json.dumps(list(ordered_map(crashers.has_module, ["cleaner.review.sheets"] * 4, workers=2, chunksize=1))))
""")
    assert got == [preloaded] * 4


@pytest.mark.parametrize("guarded", [True, False])
def test_a_script_without_a_main_guard_is_told_why_instead_of_every_file_crashing(tmp_path, guarded):
    """Every worker imports the script that started the map again. Unguarded, that import starts the map again
    in the worker, the worker dies, and each item used to be reported as crashing its worker (a scan wrote
    "decoder crashed" for every film). Now the map refuses to start and says how to fix the script."""
    body = 'print(json.dumps(list(ordered_map(crashers.die_on_seven, range(5), workers=2))))'
    if guarded:
        body = 'if __name__ == "__main__":\n    ' + body
    script = tmp_path / "user_script.py"
    script.write_text(RUN.format(repo=str(REPO), helpers=str(HELPERS), body=body))
    try:
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        raise AssertionError("the unguarded script hung") from None
    if guarded:
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, 2, 4, 6, 8]
    else:
        assert done.returncode != 0
        assert "WorkerStartError: worker processes could not start" in done.stderr
        assert 'if __name__ == "__main__":' in done.stderr
        assert "[0, 2" not in done.stdout
