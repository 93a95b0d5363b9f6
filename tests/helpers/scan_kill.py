"""Killing a scan part-way, as a crash would: the scan tests of both engines start one, wait for its journal to
hold some rows, and SIGKILL it with everything it started."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from cleaner.scan.folder import JOURNAL_FILE


def journalled_rows(out: Path) -> int:
    """Rows in ``out``'s journal so far (0 before it exists)."""
    journal = Path(out) / JOURNAL_FILE
    return max(0, len(journal.read_text().splitlines()) - 1) if journal.is_file() else 0


def kill_when_journalled(cmd: list[str], env: dict, out: Path, rows: int = 4, seconds: float = 180):
    """Run the scan ``cmd``; once ``out``'s journal holds ``rows`` rows (or it ends, or ``seconds`` pass) SIGKILL
    its process group (the machine dies: the scan and its workers at once). Returns (exit status, rows journalled
    by then, the scan's stderr)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline, journalled = time.monotonic() + seconds, 0
    try:
        while time.monotonic() < deadline and proc.poll() is None and journalled < rows:
            journalled = journalled_rows(out)
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode, journalled, proc.stderr.read().decode(errors="replace")
