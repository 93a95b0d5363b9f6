"""Ordered parallel map over files, for decoding in worker processes.

Workers come from a ``forkserver`` context: they never inherit a parent that has already
started TensorFlow's threads, which ``fork`` would copy in an undefined state.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def ordered_map(func: Callable[[T], R], items: Iterable[T], workers: int = 1, chunksize: int = 4) -> Iterator[R]:
    """``map(func, items)`` in input order; lazy, so memory stays bounded on huge inputs.

    ``func`` must be a module-level function and must not raise (return errors as values).
    """
    if workers <= 1:
        for item in items:
            yield func(item)
        return
    ctx = mp.get_context("forkserver")
    with ctx.Pool(workers) as pool:
        yield from pool.imap(func, items, chunksize=chunksize)
