"""The Ray engine: the scan's two steps (``decode_for_scan``, ``score_batch``) spread over a Ray cluster.

The driver (where ``cxclean scan`` runs) walks the archive as always; the candidates become a Ray Dataset of
paths; decoding runs as CPU tasks wherever Ray places them, and scoring in a pool of actors that each load the
bundles once (a GPU each when the cluster has GPUs). Ray Data streams the results back in walker order
(``preserve_order``) with back-pressure, and redoes the work of a worker that dies (tasks are retried, actors
restarted); the driver then journals, copies and finalises exactly as with the local engine (``runner.py``).
Films and bundles must be readable at the same paths on every node (shared storage). Ray is an optional
extra: this module is imported only for ``engine="ray"``, and Ray itself only when a scan starts.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import time
from contextlib import contextmanager
from typing import Iterable, Iterator

from cleaner import __version__
from cleaner.io.parallel import bounded_ordered_map, item_timeout
from cleaner.scan.config import ScanError
from cleaner.scan.detector_set import DetectorSet, load_scan_detectors
from cleaner.scan.engine import crashed, decode_for_scan, score_batch

RAY_MISSING = 'the Ray engine needs Ray, an optional extra: pip install "cxclean[ray]"'


def import_ray():
    """``ray`` with Ray Data, or a ``ScanError`` that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ScanError(f"{RAY_MISSING} ({exc})") from None
    return ray


def decode_block(block, specs: tuple, timeout: float | None = None):
    """CPU task: ``decode_for_scan`` for each film of a block of paths, in one worker process of the task's own
    (``isolate``), so that a file which crashes or hangs its decoder (``timeout`` seconds, the driver's limit) is
    an error row, as with the local engine, instead of a task Ray retries until the scan fails. A result
    (metadata, the model inputs or the error) travels pickled: it is the local engine's dict, whatever its shapes."""
    import pyarrow as pa

    tasks = [(rel, path, specs) for rel, path in zip(block["rel"].to_pylist(), block["path"].to_pylist())]
    results = bounded_ordered_map(decode_for_scan, tasks, 1, chunksize=4, ahead=max(8, len(tasks)), on_crash=crashed,
                                  timeout=timeout, isolate=True)
    films = [pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL) for result in results]
    return pa.table({"seq": block["seq"], "film": pa.array(films, type=pa.large_binary())})


class ScoreFilms:
    """A scoring actor: loads the bundles once (the same versions the driver recorded), then scores batches."""

    def __init__(self, bundles: list[str], thresholds: dict, expected: dict, batch_size: int, delay: float = 0.0):
        # before TensorFlow starts: take GPU memory as needed, so that actors sharing a GPU all fit on it
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        found = {"cxclean": __version__}
        members = load_scan_detectors(bundles, thresholds)
        found.update((d.name, d.detector.version) for d in members)
        if found != expected:
            raise ScanError(f"a Ray worker on {os.uname().nodename} found other versions than the driver: {found} "
                            f"vs {expected}; install the same cxclean and bundles on every node")
        self.detector_set, self.batch_size, self.delay = DetectorSet(members), batch_size, delay

    def __call__(self, block):
        import pyarrow as pa

        films = [pickle.loads(b) for b in block["film"].to_pylist()]
        scores = score_batch(self.detector_set, films, self.batch_size)
        results = [pickle.dumps(({k: v for k, v in film.items() if k != "inputs"}, s)) for film, s in zip(films, scores)]
        if self.delay:
            time.sleep(self.delay)  # test hook (runner.DELAY_ENV): a test can kill this worker part-way
        return pa.table({"seq": block["seq"], "result": pa.array(results, type=pa.large_binary())})


def path_blocks(tasks: Iterable[tuple], block_films: int) -> tuple[list, int]:
    """The scan's tasks as Arrow tables of (seq, rel, path), ``block_films`` rows each: the Dataset's blocks.
    The driver keeps only these paths (about 100 bytes a film), never a film."""
    import pyarrow as pa

    tables, rels, paths, n = [], [], [], 0

    def flush():
        start = n - len(rels)
        tables.append(pa.table({"seq": pa.array(range(start, n), pa.int64()), "rel": rels, "path": paths}))

    for rel, path, _specs in tasks:
        rels.append(rel)
        paths.append(path)
        n += 1
        if len(rels) == block_films:
            flush()
            rels, paths = [], []
    if rels:
        flush()
    return tables, n


@contextmanager
def connected(ray, address: str | None):
    """Ray, connected and quiet (the scan shows its own progress): the caller's connection if it made one; else
    the cluster at ``address`` or $RAY_ADDRESS (left running); else a local cluster started for this scan and
    stopped after it."""
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(logging.WARNING)
    ours = False
    try:
        if not ray.is_initialized():
            _init(ray, address or os.environ.get("RAY_ADDRESS") or None)
            ours = True
        yield
    finally:
        if ours:
            ray.shutdown()
        data_log.setLevel(level)


def _init(ray, address: str | None) -> None:
    options = dict(log_to_driver=False, logging_level="WARNING",
                   runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}})
    try:
        if address:
            ray.init(address=address, **options)
        else:  # "local": never a cluster that merely happens to run here (--ray-address auto joins that one)
            ray.init(address="local", include_dashboard=False, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ScanError(f"cannot start or join Ray (address {address or 'local'}): {exc}") from None


def pool_options(resources: dict, nodes: int, actors: int | None) -> tuple[int, dict]:
    """(actors, each one's Ray resources). With GPUs: one actor per GPU holding it (a share of one when asked for
    more actors than GPUs) and a CPU to feed it. Without: one per node, reserving no CPU, so that decode
    tasks fill every core as the local engine's workers do while TensorFlow's threads score beside them. Never
    the decode tasks' resources: Ray Data would fuse decoding into the actors, which would then take turns."""
    gpus = int(resources.get("GPU", 0))
    if gpus:
        size = actors or gpus
        return size, {"num_cpus": 1, "num_gpus": min(1.0, gpus / size)}
    return actors or max(1, nodes), {"num_cpus": 0}  # Ray Data spreads actors over the nodes


class RayEngine:
    """Decoding in Ray tasks and scoring in a Ray actor pool; same ``batches`` as ``engine.LocalEngine``."""

    name = "ray"

    def __init__(self, batch_size: int, address: str | None = None, actors: int | None = None,
                 worker_delay: float = 0.0):
        self.batch_size, self.address, self.actors, self.worker_delay = batch_size, address, actors, worker_delay
        self.ray = import_ray()

    def batches(self, tasks: Iterable[tuple], detector_set: DetectorSet) -> Iterator[tuple[list[dict], list[dict]]]:
        """(decoded films without their inputs, their scores) a batch at a time, in the order of ``tasks``."""
        ray = self.ray
        # a decode task per inference batch: each batch's results reach the driver as soon as it is scored
        tables, total = path_blocks(tasks, self.batch_size)
        if not total:
            return
        with connected(ray, self.address):
            results = self._dataset(ray, tables, detector_set).iter_batches(batch_size=self.batch_size,
                                                                              batch_format="pyarrow")
            done = 0
            for out in _ray_errors(ray, results):
                seq = out["seq"].to_pylist()
                if seq != list(range(done, done + len(seq))):  # never a lost or a repeated row, whatever Ray did
                    raise ScanError(f"the Ray engine returned films {seq[:3]}... where {done} was next (a bug)")
                done += len(seq)
                pairs = [pickle.loads(b) for b in out["result"].to_pylist()]
                yield [film for film, _ in pairs], [scores for _, scores in pairs]
        if done != total:
            raise ScanError(f"the Ray engine returned {done} of {total} films (a bug)")

    def _dataset(self, ray, tables: list, detector_set: DetectorSet):
        members = detector_set.members
        expected = {"cxclean": __version__, **{d.name: d.detector.version for d in members}}
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        size, actor_resources = pool_options(ray.cluster_resources(), nodes, self.actors)
        ds = ray.data.from_arrow(tables)
        ds = ds.map_batches(decode_block, batch_size=None, batch_format="pyarrow",
                            fn_kwargs={"specs": tuple(detector_set.specs), "timeout": item_timeout()}, num_cpus=1)
        ds = ds.map_batches(
            ScoreFilms, batch_size=self.batch_size, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=size),
            fn_constructor_kwargs=dict(bundles=[str(d.detector.path) for d in members],
                                       thresholds={d.name: d.threshold for d in members}, expected=expected,
                                       batch_size=self.batch_size, delay=self.worker_delay),
            **actor_resources)
        ctx = ds.context
        ctx.execution_options.preserve_order = True  # walker order, without a reorder buffer on the driver
        ctx.enable_progress_bars = False  # the scan has its own
        ctx.print_on_execution_start = False
        return ds


def _ray_errors(ray, batches: Iterator) -> Iterator:
    """``batches``, with a failure of the cluster or of a worker's own code as a ``ScanError`` (the journal keeps
    every row written so far, so the scan resumes); a worker that merely dies is Ray's to retry, not ours."""
    batches = iter(batches)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except ray.exceptions.RayError as exc:
            raise ScanError(f"the Ray engine stopped: {root_cause(exc)}. Rows scored so far are journalled: fix the "
                            "cause and run the same command with --resume") from None
        yield batch


def root_cause(exc: BaseException) -> str:
    """The first cause of a Ray error, raised on a worker: the last ``Type: message`` line of its traceback text
    (e.g. a bundle a node cannot read), else the error's own first line."""
    found = [line.strip() for line in str(exc).splitlines()
             if re.match(r"[\w.]*(Error|Exception|Exit|Interrupt)\b[^:]*: \S", line.strip())]
    return found[-1] if found else f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
