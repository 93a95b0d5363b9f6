"""How a scan's work is executed: decode every file once (worker processes), score batches with the detectors.

``decode_for_scan`` and ``score_batch`` are the two steps; an engine runs them and yields, in walker order,
batches of (decoded film, its scores). The local engine decodes in a process pool on this machine and scores
in this process; another engine (a cluster) runs the same two steps elsewhere, so results are the same.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from cleaner.io.images import read_or_error
from cleaner.io.parallel import bounded_ordered_map
from cleaner.io.preprocess import preprocess_all
from cleaner.scan.rules import META_FIELDS


def decode_for_scan(task: tuple) -> dict:
    """Read one file once and preprocess it once per spec; never raises (errors are values).

    Returns only metadata and the small model inputs, never the full-size image."""
    rel, path, specs = task
    loaded, error = read_or_error(path)
    if loaded is None:
        return {"rel": rel, "error": error}
    meta = loaded.meta.as_row()  # the reader's own record of the file (its notes joined as text)
    result = {"rel": rel, "error": "", "meta": {k: meta[k] for k in META_FIELDS}}
    try:
        result["inputs"] = preprocess_all(loaded.pixels, specs)
    except Exception as exc:
        result["error"] = f"cannot preprocess: {type(exc).__name__}: {exc}"
    return result


def crashed(task: tuple, why: str) -> dict:
    """The decode result of a file whose worker died on it twice (``bounded_ordered_map``'s ``on_crash``): an
    error row naming why, so the scan goes on and the file is listed in errors.csv."""
    return {"rel": task[0], "error": f"decoder crashed: {why}"}


def score_batch(detector_set, batch: list[dict], batch_size: int) -> list[dict]:
    """Scores for each decoded film of ``batch`` (``{}`` for a film that could not be read)."""
    ok_idx = [i for i, r in enumerate(batch) if not r["error"]]
    scores: list[dict] = [{} for _ in batch]
    if ok_idx and detector_set.members:
        stacks = [np.stack([batch[i]["inputs"][k] for i in ok_idx]) for k in range(len(detector_set.specs))]
        for i, s in zip(ok_idx, detector_set.score(stacks, batch_size)):
            scores[i] = s
    return scores


class LocalEngine:
    """Decoding in ``workers`` processes of this machine (bounded read-ahead), scoring in this process. Even one
    worker is a process of its own: a file that crashes or hangs its decoder must not take the scan with it."""

    name = "local"

    def __init__(self, workers: int, batch_size: int, chunksize: int = 4):
        self.workers, self.batch_size, self.chunksize = workers, batch_size, chunksize

    def batches(self, tasks: Iterable[tuple], detector_set) -> Iterator[tuple[list[dict], list[dict]]]:
        """(decoded films, their scores) a batch at a time, in the order of ``tasks``."""
        ahead = max(4 * self.batch_size, 4 * self.workers * self.chunksize)
        batch: list[dict] = []
        for result in bounded_ordered_map(decode_for_scan, tasks, self.workers, self.chunksize, ahead, crashed,
                                          isolate=True):
            batch.append(result)
            if len(batch) >= self.batch_size:
                yield batch, score_batch(detector_set, batch, self.batch_size)
                batch = []
        if batch:
            yield batch, score_batch(detector_set, batch, self.batch_size)
