"""Signals and dying workers during a scan: a file that kills its decoder is an error row, a worker killed from
outside costs nothing, Ctrl-C stops quietly; every scan ends with the outputs of an undisturbed one."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archive_builder import film, write_png
from cleaner.scan import scan_archive
from cleaner.scan.folder import JOURNAL_FILE

CRASH_SITE = Path(__file__).resolve().parents[1] / "helpers" / "crash_site"
OUTPUTS = ("scores.csv", "exclusions.csv", "errors.csv", "detectors.csv")


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def scan_cmd(archive: Path, out: Path, bundles: Path, *extra, workers: str = "2") -> list[str]:
    return [sys.executable, "-m", "cleaner", "scan", str(archive), "--out", str(out), "--detectors", str(bundles),
            "--workers", workers, "--batch-size", "2", "--quiet", *extra]


def hostile_env(subprocess_env: dict, **extra) -> dict:
    """The scan's processes (its decode workers too) load ``crash_site/sitecustomize.py``."""
    env = dict(subprocess_env, **extra)
    env["PYTHONPATH"] = str(CRASH_SITE) + os.pathsep + env["PYTHONPATH"]
    return env


def reference(archive: Path, bundles: Path, tmp_path: Path) -> Path:
    out = tmp_path / "reference"
    scan_archive(archive, out, detector_dirs=[bundles], workers=1, batch_size=5, progress=False)
    return out


def decode_workers(scan_pid: int) -> list[int]:
    """The scan's decode workers: the children of its forkserver (the scan's child that forks them)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    servers = [p for p, pp in parents.items() if pp == scan_pid and b"forkserver" in _cmdline(p)]
    return sorted(p for p, pp in parents.items() if pp in servers)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def wait_for(predicate, proc, seconds=180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("name,why,workers", [
    ("crash_me.png", "worker killed by signal 9 (SIGKILL)", "2"),  # a native decoder's crash
    ("hang_me.png", "hung (no result within 3 s; its worker was killed)", "2"),  # a decoder looping, deaf to SIGTERM
    ("crash_me.png", "worker killed by signal 9 (SIGKILL)", "1"),  # one worker is still a process of its own
    ("hang_me.png", "hung (no result within 3 s; its worker was killed)", "1"),
])
def test_a_file_that_kills_or_hangs_its_decoder_is_an_error_row_and_the_scan_finishes(
        built_archive, rule_bundles, tmp_path, subprocess_env, name, why, workers):
    archive = built_archive.root
    write_png(archive / "site1" / name, film(50))
    out = tmp_path / "out"
    env = hostile_env(subprocess_env, CXCLEAN_FILE_TIMEOUT="3")
    done = subprocess.run(scan_cmd(archive, out, rule_bundles, workers=workers), env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    errors = {r["path"]: r["error"] for r in read_rows(out / "errors.csv")}
    assert errors[f"site1/{name}"] == f"decoder crashed: {why}"
    ref = reference(archive, rule_bundles, tmp_path)  # read here, where opening it harms nothing
    got = [r for r in read_rows(out / "scores.csv") if r["path"] != f"site1/{name}"]
    want = [r for r in read_rows(ref / "scores.csv") if r["path"] != f"site1/{name}"]
    assert got == want and len(got) == len(built_archive.expected)


def test_a_decode_worker_killed_mid_scan_changes_nothing(built_archive, rule_bundles, tmp_path, subprocess_env):
    """The OOM killer takes a decode worker: the files it and its pool held are read again; nothing hangs."""
    out = tmp_path / "out"
    env = hostile_env(subprocess_env, CXCLEAN_TEST_OPEN_DELAY="0.3")
    proc = subprocess.Popen(scan_cmd(built_archive.root, out, rule_bundles), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert wait_for(lambda: len(decode_workers(proc.pid)) == 2, proc), "no decode workers seen"
        os.kill(decode_workers(proc.pid)[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    ref = reference(built_archive.root, rule_bundles, tmp_path)
    for name in OUTPUTS:
        assert (out / name).read_text() == (ref / name).read_text(), name


def test_ctrl_c_stops_quietly_and_resume_finishes_the_scan(built_archive, rule_bundles, tmp_path, subprocess_env):
    """Ctrl-C reaches the whole process group: only the scan speaks (how to resume), no worker prints a traceback."""
    out = tmp_path / "out"
    cmd = scan_cmd(built_archive.root, out, rule_bundles)
    env = hostile_env(subprocess_env, CXCLEAN_TEST_OPEN_DELAY="0.3", CXCLEAN_SCAN_BATCH_DELAY="0.5")
    # as a terminal starts it: a suite run as a background job (``cmd &``) ignores SIGINT, and children inherit that
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert wait_for(lambda: (out / JOURNAL_FILE).is_file() and len(decode_workers(proc.pid)) == 2, proc)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Interrupted" in stderr and "--resume" in stderr
    for noise in ("Traceback", "KeyboardInterrupt", "Process ForkServer"):  # a worker's dying words
        assert noise not in stderr, stderr[-3000:]
    resumed = subprocess.run(cmd + ["--resume"], env=subprocess_env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ref = reference(built_archive.root, rule_bundles, tmp_path)
    for name in OUTPUTS:
        assert (out / name).read_text() == (ref / name).read_text(), name


def test_inspect_with_one_worker_reports_a_file_that_crashes_its_decoder(tmp_path, subprocess_env):
    """``cxclean inspect`` decodes in one worker process by default: a crashing decoder is a row, not the end."""
    folder = tmp_path / "films"
    write_png(folder / "crash_me.png", film(50))
    write_png(folder / "ok.png", film(60))
    table = tmp_path / "inspect.csv"
    done = subprocess.run([sys.executable, "-m", "cleaner", "inspect", str(folder), "--csv", str(table), "-q"],
                          env=hostile_env(subprocess_env), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {Path(r["path"]).name: r for r in read_rows(table)}
    assert rows["ok.png"]["status"] == "ok"
    assert rows["crash_me.png"]["status"] == "error"
    assert "worker killed by signal 9" in rows["crash_me.png"]["error"]
