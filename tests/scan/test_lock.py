"""One process at a time in ``--out``: a second scan stops at once and names the first; a lock left by a dead
process is taken over."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from cleaner.io.folderlock import LOCK_FILE, FolderBusyError, FolderLock
from cleaner.scan.folder import JOURNAL_FILE


def test_a_held_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    with FolderLock(out, "scan"):
        holder = json.loads((out / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]
        with pytest.raises(FolderBusyError) as err:
            FolderLock(out, "scan").acquire()  # another open file description: flock refuses it too
        message = str(err.value)
        assert str(out) in message and f"pid {os.getpid()} on {socket.gethostname()}" in message
        assert holder["started"] in message
    assert not out.exists()  # made for the lock only, nothing written: removed again
    out.mkdir()
    with FolderLock(out, "scan"):
        pass
    assert out.is_dir() and not (out / LOCK_FILE).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"pid": int(dead.stdout), "host": socket.gethostname(), "started": "2020-01-01T00:00:00+00:00"}
    (out / LOCK_FILE).write_text(json.dumps(stale))  # its process was killed: the file stayed, its flock did not
    with FolderLock(out, "scan"):
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_second_scan_into_a_busy_out_stops_naming_the_first(built_archive, rule_bundles, tmp_path, subprocess_env):
    """Before the lock, a second ``--resume`` scanned the same files into the same journal (and one crashed)."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cleaner", "scan", str(built_archive.root), "--out", str(out), "--detectors",
           str(rule_bundles), "--workers", "1", "--batch-size", "1", "--quiet"]
    first = subprocess.Popen(cmd, env=dict(subprocess_env, CXCLEAN_SCAN_BATCH_DELAY="120"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (out / JOURNAL_FILE).is_file() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        for extra in (["--resume"], []):  # a resume, and a fresh run racing past the "not empty" check
            second = subprocess.run(cmd + extra, env=subprocess_env, capture_output=True, text=True, timeout=300)
            assert first.poll() is None, "the first scan ended too soon for this test"
            assert second.returncode == 2, second.stderr[-2000:]
            assert "another cxclean is using this folder" in second.stderr
            assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # it dies holding the lock: the file stays, the kernel's lock goes
        first.wait()
    assert (out / LOCK_FILE).is_file()
    resumed = subprocess.run(cmd + ["--resume"], env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == len(built_archive.expected) and summary["resumed"] is True
    assert not (out / LOCK_FILE).exists()
