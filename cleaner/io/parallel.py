"""Ordered parallel map over files, for decoding in worker processes.

Workers come from a ``forkserver`` context: they never inherit a parent that has already
started TensorFlow's threads, which ``fork`` would copy in an undefined state.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def ordered_map(func: Callable[[T], R], items: Iterable[T], workers: int = 1, chunksize: int = 4) -> Iterator[R]:
    """``map(func, items)`` in input order. ``Pool.imap`` reads its input eagerly: use
    ``bounded_ordered_map`` where the input or the results are large.

    ``func`` must be a module-level function and must not raise (return errors as values).
    """
    if workers <= 1:
        for item in items:
            yield func(item)
        return
    ctx = mp.get_context("forkserver")
    with ctx.Pool(workers) as pool:
        yield from pool.imap(func, items, chunksize=chunksize)


def bounded_ordered_map(func: Callable, items: Iterable, workers: int, chunksize: int, ahead: int) -> Iterator:
    """``ordered_map`` with back-pressure: at most ``ahead`` items are decoded but not yet consumed.

    ``Pool.imap`` alone reads its whole input and keeps every finished result until it is asked
    for, so with decoding faster than inference memory would grow with the archive.
    """
    ahead = max(int(ahead), chunksize + 1)
    slots = threading.Semaphore(ahead)
    stop = threading.Event()

    def feed():
        for item in items:
            slots.acquire()
            if stop.is_set():
                return
            yield item

    inner = ordered_map(func, feed(), workers=workers, chunksize=chunksize)
    try:
        for result in inner:
            slots.release()
            yield result
    finally:
        stop.set()
        slots.release(ahead + 1)  # unblock the feeder so the pool can shut down
        inner.close()
