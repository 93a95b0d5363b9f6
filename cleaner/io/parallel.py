"""Ordered parallel map over files, for decoding in worker processes.

Workers come from a ``forkserver`` context: they never inherit a parent that has already
started TensorFlow's threads, which ``fork`` would copy in an undefined state.

A worker can die under a file (the OOM killer, a crashing native decoder). ``multiprocessing.Pool`` never
notices and waits forever; ``concurrent.futures`` fails every unfinished task instead. Those files are then
run again one at a time, each in a pool of its own, so only a file that kills its worker again is reported
(through ``on_crash``, as that file's result) and the others are read as usual; then the map goes on in
parallel. A worker can also hang on a file (a decoder looping on a crafted file): when the oldest chunk has
given no result within ``item_timeout()`` seconds per item, its pool is killed and the window is run again the
same way, so the file that hangs again is reported (``on_crash``) instead of stopping the map forever.
Every worker imports the ``__main__`` script again, so a script that starts a map without
``if __name__ == "__main__":`` would start it again in each worker: every pool runs a no-op first, and
workers that cannot run even that are reported as ``WorkerStartError`` with that advice, not as every file
crashing its decoder. Workers ignore Ctrl-C: the parent alone handles it, and stops them. The forkserver
imports the mapped functions' modules once (``preload``), so a new pool's workers start without importing them
again.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import Callable, Iterable, Iterator, TypeVar

from cleaner.io.errors import CxcleanError

T = TypeVar("T")
R = TypeVar("R")


class WorkerCrashError(CxcleanError):
    """A worker process died on an item and no ``on_crash`` says what stands for its result."""


class WorkerStartError(CxcleanError):
    """Worker processes could not run at all, before any file was given to them: no file is to blame."""


#: the usual reason workers cannot start: each one imports the ``__main__`` script again (forkserver and spawn)
MAIN_GUARD_HINT = ('a script that calls cxclean must make the call under `if __name__ == "__main__":`, because every '
                   'worker process imports the script again')


#: seconds one file may take in a worker before it counts as hung (``CXCLEAN_FILE_TIMEOUT`` overrides; 0: no limit).
#: Decoding the largest films (80 M pixels of JPEG 2000) takes well under a minute on one core.
FILE_TIMEOUT_S = 600.0


#: seconds a new pool's workers may take to run a no-op (not the per-file limit: a busy machine starts slowly)
STARTUP_TIMEOUT_S = 300.0


def item_timeout() -> float | None:
    """The time limit per item, from ``CXCLEAN_FILE_TIMEOUT`` if set, else ``FILE_TIMEOUT_S``; None: none."""
    raw = os.environ.get("CXCLEAN_FILE_TIMEOUT", "")
    try:
        value = float(raw) if raw.strip() else FILE_TIMEOUT_S
    except ValueError:
        raise CxcleanError(f"CXCLEAN_FILE_TIMEOUT={raw!r}: not a number of seconds") from None
    return value if value > 0 else None


def _hung(limit: float) -> str:
    return f"hung (no result within {limit:g} s; its worker was killed)"


#: modules the forkserver imports before it forks its first worker; a pool's workers then start in milliseconds
#: instead of importing them (~0.8 s for the review's, pandas and pydicom included), pool after pool
_PRELOAD: set[str] = set()


def preload(*modules: str) -> None:
    """Have the forkserver import ``modules`` when it starts. It starts once per process, at the first pool:
    name there every module a later pool of the same job will need (the first pool's own is added by itself).
    Only modules that start no threads on import (never TensorFlow): the forkserver forks every worker."""
    _PRELOAD.update(modules)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def ordered_map(func: Callable[[T], R], items: Iterable[T], workers: int = 1, chunksize: int = 4,
                on_crash: Callable | None = None) -> Iterator[R]:
    """``map(func, items)`` in input order, in ``workers`` processes, reading ahead a bounded window.

    ``func`` must be a module-level function and must not raise (return errors as values). ``on_crash(item,
    why)`` gives the result for an item whose worker died twice on it; without it, ``WorkerCrashError``."""
    return bounded_ordered_map(func, items, workers, chunksize, max(64, 8 * workers * chunksize), on_crash)


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_chunk(func, chunk: list) -> list:
    return [func(item) for item in chunk]


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of forkserver workers that ignore Ctrl-C, for work whose inputs this program made
    (files are read through ``bounded_ordered_map``, which survives workers that die or hang). Its workers have
    run a no-op already: workers that cannot start are ``WorkerStartError`` here, not a failure of the work."""
    if getattr(mp.process.current_process(), "_inheriting", False):
        # this process is a worker (or the forkserver) importing the script that started the job: starting the job
        # again here would start workers that import it again, without end
        raise WorkerStartError(f"cxclean was started again while a worker process imported the script: {MAIN_GUARD_HINT}")
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["__main__", *sorted(_PRELOAD)])  # no effect once the forkserver runs
    executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_interrupts)
    processes = executor._processes  # the dict the executor fills; a broken executor drops its reference
    try:
        executor.submit(os.getpid).result(timeout=STARTUP_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - a dead forkserver raises OSError or EOFError, a dead worker BrokenProcessPool
        why = (_hung(STARTUP_TIMEOUT_S) if isinstance(exc, FuturesTimeout) else
               _exit_reason(processes) if isinstance(exc, BrokenProcessPool) else f"{type(exc).__name__}: {exc}")
        _shutdown(executor, processes, "kill")
        raise WorkerStartError(f"worker processes could not start ({why}); the error a worker printed is above. "
                               f"If this is a script: {MAIN_GUARD_HINT}") from None
    return executor


def submit(executor: ProcessPoolExecutor, func: Callable, *args) -> Future:
    """``executor.submit(func, *args)``, except that when a worker died since the last submission (the executor
    then refuses new work) the future comes back failed already, instead of raising here: the caller handles it
    where it handles the work the pool held when it broke."""
    try:
        return executor.submit(func, *args)
    except BrokenProcessPool as exc:
        failed: Future = Future()
        failed.set_exception(exc)
        return failed


def _shutdown(executor: ProcessPoolExecutor, processes: dict, stop: str | None = None) -> None:
    """Shut ``executor`` down; ``stop`` ("terminate" or "kill") its live workers first, so that it does not wait
    for work nobody will read, or (SIGKILL) for a worker stuck in native code. ``processes``: the executor's own
    dict of workers, taken when it was made (a broken executor drops its reference)."""
    if stop:
        for process in list(processes.values()):
            if process.is_alive():
                getattr(process, stop)()
    executor.shutdown(wait=True, cancel_futures=True)


def _exit_reason(processes: dict) -> str:
    """Why a worker ended, from the exit codes a broken pool left (after its shutdown all are known; the others
    were stopped by the pool with SIGTERM)."""
    codes = [p.exitcode for p in list(processes.values())]
    dead = [c for c in codes if c not in (None, 0, -signal.SIGTERM)] or [c for c in codes if c]
    if not dead:
        return "worker process died"
    if dead[0] < 0:
        return f"worker killed by signal {-dead[0]} ({signal.Signals(-dead[0]).name})"
    return f"worker exited with status {dead[0]}"


class _Pool:
    """A process pool that can say how its worker died, and be stopped without waiting for stuck workers."""

    def __init__(self, workers: int):
        self.executor = process_pool(workers)
        self.processes = self.executor._processes  # the same dict the executor fills; kept to read exit codes

    def submit(self, func, chunk: list) -> Future:
        return submit(self.executor, _run_chunk, func, chunk)

    def death(self) -> str:
        """Why a worker of this pool ended (``_exit_reason``)."""
        return _exit_reason(self.processes)

    def close(self, kill: bool = False, hard: bool = False) -> None:
        """``kill``: stopped early (Ctrl-C, an error downstream): do not wait for work nobody will read;
        ``hard``: SIGKILL, for a worker stuck in native code."""
        _shutdown(self.executor, self.processes, "kill" if hard else "terminate" if kill else None)


def bounded_ordered_map(func: Callable, items: Iterable, workers: int, chunksize: int, ahead: int,
                        on_crash: Callable | None = None, timeout: float | None = -1, isolate: bool = False) -> Iterator:
    """``map(func, items)`` in order, with back-pressure: at most ``ahead`` items are submitted but not yet
    consumed, so memory does not grow with the input when decoding is faster than what consumes it.

    A dead or hung worker is survived as the module docstring says; ``on_crash(item, why)`` stands for the result
    of an item that killed its worker (or hung) twice (``WorkerCrashError`` without it). ``timeout``: seconds per
    item (default ``item_timeout()``; None: no limit). With one worker the map runs in this process, unprotected,
    unless ``isolate``: then in one worker process, so that a file which crashes or hangs its decoder is reported
    like any other (what a scan of an archive needs whatever ``--workers`` says)."""
    limit = item_timeout() if timeout == -1 else timeout
    if workers <= 1 and not isolate:
        for item in items:
            yield func(item)
        return
    workers = max(1, int(workers))
    ahead = max(int(ahead), chunksize + 1)
    if getattr(func, "__module__", "").startswith("cleaner."):
        preload(func.__module__)
    source = iter(items)
    window: deque = deque()  # (items, future), oldest first
    in_flight = 0
    pool = _Pool(workers)
    finished = False
    try:
        while True:
            while in_flight + chunksize <= ahead:
                chunk = list(islice(source, chunksize))
                if not chunk:
                    break
                window.append((chunk, pool.submit(func, chunk)))
                in_flight += len(chunk)
            if not window:
                break
            chunk, future = window[0]
            try:
                results = future.result(timeout=limit * len(chunk) if limit else None)
            except (BrokenProcessPool, FuturesTimeout) as exc:
                hung = isinstance(exc, FuturesTimeout)
                pool.close(hard=hung)
                results = _rerun_window(func, window, _hung(limit) if hung else pool.death(), on_crash, limit)
                pool = _Pool(workers)
                in_flight = 0
                window.clear()
                yield from results
                continue
            window.popleft()
            for result in results:
                in_flight -= 1
                yield result
        finished = True
    finally:
        pool.close(kill=not finished)


def _rerun_window(func, window: deque, why: str, on_crash, limit: float | None = None) -> list:
    """Every result of a window whose pool broke or hung, in order: finished chunks as they were, the others run
    again an item at a time in a one-worker pool (a fresh one after each death), so that the item that kills its
    worker (or hangs) again is known."""
    results, single = [], None
    try:
        for chunk, future in window:
            if future.done() and not future.cancelled() and future.exception() is None:
                results += future.result()
                continue
            for item in chunk:
                single = single or _Pool(1)
                try:
                    results += single.submit(func, [item]).result(timeout=limit)
                except (BrokenProcessPool, FuturesTimeout) as exc:
                    hung = isinstance(exc, FuturesTimeout)
                    single.close(hard=hung)
                    again, single = (_hung(limit) if hung else single.death()), None
                    if on_crash is None:
                        raise WorkerCrashError(f"{item!r}: {again} while reading it (first: {why})") from None
                    results.append(on_crash(item, again))
    finally:
        if single is not None:
            single.close()
    return results
