"""Worker functions that die the way a decode worker dies in the field (the OOM killer, a native decoder's crash),
for the tests of ``cleaner.io.parallel``. Module-level, so forkserver workers can import them."""
from __future__ import annotations

import os
import signal
from pathlib import Path


def die_on_seven(x: int) -> int:
    """Doubles ``x``; the worker dies (SIGKILL) on 7, every time."""
    if x == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    return 2 * x


def die_once(item: tuple) -> int:
    """Doubles ``item[0]``; the first worker to meet 5 dies (a transient kill), the retry succeeds."""
    x, marker = item
    if x == 5 and not Path(marker).exists():
        Path(marker).write_text("died once")
        os.kill(os.getpid(), signal.SIGKILL)
    return 2 * x


def exits_on_three(x: int) -> int:
    if x == 3:
        os._exit(3)
    return x


def hang_on_four(x: int) -> int:
    """Doubles ``x``; on 4 the worker hangs in a sleep that ignores SIGTERM, as a native decoder stuck in a loop."""
    if x == 4:
        import time

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
    return 2 * x


def has_module(name: str) -> bool:
    """Whether the worker running this already has ``name`` imported (``parallel.preload``)."""
    import sys

    return name in sys.modules
