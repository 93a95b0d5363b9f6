"""``scan_archive``: score a whole archive with every detector in one pass, exclude, and resume after a crash.

Each file is read and decoded once, in worker processes, which return only the small preprocessed input(s)
for each distinct ``InputSpec`` among the detectors plus metadata (``engine.py``). Batches are scored, turned
into rows by the exclusion rules (``rules.py``) and appended to the journal (``journal.py``) while the workers
decode ahead (bounded: at most a fixed window of results is in flight, whatever the archive size);
``resume=True`` skips journalled paths, and the final outputs are written atomically in walker order at the
end (``summary.py``). Every file name and column is the scan-folder contract's (``folder.py``).
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

from cleaner import __version__
from cleaner.io.folderlock import LOCK_FILE, FolderLock
from cleaner.io.metadata import AgeTable
from cleaner.io.parallel import default_workers
from cleaner.io.walker import WalkStats
from cleaner.scan import folder as so
from cleaner.scan.budget import FlagBudget
from cleaner.scan.config import ScanConfig, ScanError
from cleaner.scan.detector_set import DetectorSet, default_detector_dirs, load_scan_detectors, resolve_bundle_paths
from cleaner.scan.engine import LocalEngine
from cleaner.scan.journal import Journal
from cleaner.scan.rules import ExclusionRules, build_row
from cleaner.scan.summary import finalise, ordered_summary
from cleaner.scan.targets import ScanTarget, count_candidates

#: Test hook: seconds to sleep after each journalled batch (and, on the Ray engine, after each batch a worker
#: scores), so a test can kill a scan or one of its workers part-way.
DELAY_ENV = "CXCLEAN_SCAN_BATCH_DELAY"


def scan_archive(archive, out, detectors: Sequence = (), config: ScanConfig | None = None, *, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, **settings) -> dict:
    """Scan ``archive`` (folder, image or CSV list) into ``out``; returns the summary (also summary.json).

    ``detectors`` are bundle folders or loaded ``Detector`` objects; ``config`` (a ``ScanConfig``) holds every
    other setting, and keyword ``settings`` (its field names: ``detector_dirs``, ``min_age``, ``workers`` ...)
    replace its values. With no detectors at all, the bundled defaults are used (and the scan says so) unless
    ``default_detectors`` is False, which leaves an age-only scan. ``ScanError`` for anything that stops the
    scan before it starts.
    """
    paths = tuple(str(d) for d in detectors if isinstance(d, (str, os.PathLike)))
    loaded = [d for d in detectors if not isinstance(d, (str, os.PathLike))]
    if paths:
        settings["detectors"] = tuple(config.detectors if config else ()) + paths
    config = ScanConfig.from_kwargs(config, **settings)
    run = ScanRun(archive, out, config, loaded, progress)
    summary = run.execute(resume=resume, overwrite=overwrite)
    if config.review_page:
        summary = {**summary, **build_page(run, progress)}
    return summary


def build_page(run: "ScanRun", progress: bool) -> dict:
    """``config.review_page``: the review page of the scan just made, its overlays computed with the models the
    scan loaded. Returned with the summary (not in summary.json, which describes the scan alone)."""
    from cleaner.review.build import build_review

    models = [m.detector for m in run.detectors.members if getattr(m.detector, "model", None) is not None]
    page = build_review(run.out, workers=run.config.workers, progress=progress, loaded=models)
    return {"review_page": str(page.page), "review_page_seconds": round(page.seconds, 3)}


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def detectors_for(config: ScanConfig, loaded: Sequence = ()) -> DetectorSet:
    """The detectors ``config`` names (the bundled defaults when it names none), loaded with their thresholds;
    for an engine that scores elsewhere (ray) only their descriptions, and never objects that cannot travel."""
    if loaded and config.engine == "ray":
        raise ScanError("engine 'ray' loads the detectors from their bundle folders on every node, not from loaded "
                        f"Detector objects ({', '.join(d.name for d in loaded)}): pass the bundle folders instead")
    bundle_paths = resolve_bundle_paths(config.detector_dirs, config.detectors) \
        if (config.detector_dirs or config.detectors) else []
    if not bundle_paths and not loaded:
        defaults = default_detector_dirs() if config.default_detectors else []
        if defaults:
            bundle_paths = resolve_bundle_paths(defaults, ())
            print(f"No detectors given: using the bundled defaults ({', '.join(p.name for p in bundle_paths)}) "
                  f"from {defaults[0]}", file=sys.stderr)
        elif config.min_age is None:
            raise ScanError("no detectors given: pass --detectors DIR or --detector BUNDLE, and/or --min-age YEARS")
    return DetectorSet(load_scan_detectors(list(loaded) + list(bundle_paths), config.thresholds,
                                           models=config.engine == "local"))


def make_engine(config: ScanConfig, workers: int):
    """The executor ``config.engine`` names; Ray is imported only for ``ray`` (an optional extra)."""
    if config.engine == "ray":
        from cleaner.scan.ray_engine import RayEngine

        delay = float(os.environ.get(DELAY_ENV, "0") or 0)
        return RayEngine(config.batch_size, config.ray_address, config.ray_actors, worker_delay=delay)
    return LocalEngine(workers, config.batch_size, config.chunksize)


class ScanRun:
    """One run of a scan: its target, output folder, settings and detectors, and the state of the run."""

    def __init__(self, archive, out, config: ScanConfig, loaded: Sequence = (), progress: bool = True):
        self.t0, self.started = time.perf_counter(), _utc_now()
        self.target = ScanTarget.from_arg(archive)
        self.out = Path(out).expanduser().resolve()
        if self.target.kind == "folder" and _is_within(self.out, self.target.root):
            raise ScanError(f"{self.out}: --out is inside the archive {self.target.root}; the archive is never written to")
        self.config, self.progress = config, progress
        self.metadata = AgeTable.from_csv(config.metadata, id_column=config.id_column, age_column=config.age_column) \
            if config.metadata is not None else None
        self.detectors = detectors_for(config, loaded)
        self.columns = self.detectors.columns()
        thresholds = {d.name: d.threshold for d in self.detectors.members}
        self.rules = ExclusionRules(thresholds, config.min_age, config.unknown_age, self.detectors.gates)
        if config.engine == "ray":  # now, before --out is touched: without Ray the scan stops here
            from cleaner.scan.ray_engine import import_ray

            import_ray()
        self.stats = WalkStats()
        self.done: set[str] = set()
        self.sources: dict[str, Path] = {}  # files in flight, by scan path
        self.fresh_seen = self.needs_reorder = False
        self.done_seen = self.scanned = 0

    def record(self) -> dict:
        """What ``scan.config.json`` holds: the settings as given, what they resolved to, and the speed settings
        (which a resumed scan may change)."""
        settings = self.config.result_settings()
        return {
            "format": 3, "archive": str(self.target.target), "source_kind": self.target.kind, **settings,
            "metadata_table": self.metadata.describe() if self.metadata is not None else None,
            "detectors_used": [{k: r[k] for k in ("name", "version", "threshold", "threshold_source", "input_borders")}
                               for r in self.detectors.rows()],
            "turn_upright_by": self.detectors.rotation.name if self.detectors.rotation is not None else None,
            "speed": {k: getattr(self.config, k) for k in ScanConfig.SPEED_FIELDS},
        }

    def tasks(self):
        """(relative path, file, specs) for every candidate not yet journalled, noting whether the journalled
        ones still come first in walker order (if not, the final CSVs are re-sorted)."""
        specs = tuple(self.detectors.specs)
        for rel, path in self.target.iter_files(self.stats):
            if rel in self.done:
                self.done_seen += 1
                if self.fresh_seen:
                    self.needs_reorder = True
                continue
            self.fresh_seen = True
            self.sources[rel] = path  # the file itself: ``rel`` may spell a name that is not UTF-8 differently
            yield rel, str(path), specs

    def execute(self, resume: bool = False, overwrite: bool = False) -> dict:
        """Run the scan holding ``--out``'s lock: a second scan into the same folder stops at once, naming this one."""
        if self.out.exists() and not self.out.is_dir():
            raise ScanError(f"{self.out}: --out exists and is not a folder")
        with FolderLock(self.out, "scan"):
            return self._execute(resume, overwrite)

    def _execute(self, resume: bool, overwrite: bool) -> dict:
        journal = Journal(self.out, self.columns, self.record())
        resuming = _prepare_out(self.out, journal, resume, overwrite)
        self.done = journal.reopen() if resuming else (journal.start() or set())
        workers = default_workers() if self.config.workers is None else self.config.workers
        engine = self.engine = make_engine(self.config, workers)
        delay = float(os.environ.get(DELAY_ENV, "0") or 0)
        total = count_candidates(self.target) if self.progress else None
        from tqdm import tqdm

        bar = tqdm(total=total, initial=min(len(self.done), total or len(self.done)), unit="file", desc="scan",
                   disable=not self.progress, dynamic_ncols=True, smoothing=0.1)
        try:
            for decoded, scores in engine.batches(self.tasks(), self.detectors):
                rows = [build_row(self.columns, r["rel"], r, s, self.rules, self.metadata) for r, s in zip(decoded, scores)]
                self._copy_for_review(rows)
                journal.append(rows)  # after the copies: a journalled row always has its review copies
                self.scanned += len(rows)
                bar.update(len(rows))
                if delay:
                    time.sleep(delay)
        finally:
            bar.close()
            journal.close()
        if self.done_seen != len(self.done):
            self.needs_reorder = True  # journalled files that the walk no longer finds
        return self._finish(journal, resuming, workers)

    def _copy_for_review(self, rows: list[dict]) -> None:
        for row in rows:
            source = self.sources.pop(row["path"], self.target.root / row["path"])
            if self.config.review and row["excluded"] == "True":
                so.copy_for_review(source, self.out, row["path"], row["reasons"].split(";"),
                                   dicom=row["format"] == "DICOM")

    def _finish(self, journal: Journal, resuming: bool, workers: int) -> dict:
        det_rows = self.detectors.rows()
        budget = FlagBudget(self.detectors.members)
        summary = finalise(self.target, self.out, journal, self.columns, self.detectors.names, det_rows, self.stats,
                           self.needs_reorder, turn=self.detectors.rotation is not None, budget=budget)
        summary["flag_budget"] = budget.table(summary["ok"])
        seconds = time.perf_counter() - self.t0
        summary.update(archive=str(self.target.target), root=str(self.target.root), out=str(self.out),
                       cxclean_version=__version__, started=self.started, finished=_utc_now(), seconds=round(seconds, 3))
        summary["images_per_second"] = round(self.scanned / seconds, 2) if seconds > 0 else None
        summary.update(
            min_age=self.config.min_age, unknown_age=self.config.unknown_age, detectors=det_rows, resumed=resuming,
            files_this_run=self.scanned, engine=self.engine.name,
            workers=workers if self.engine.name == "local" else None, batch_size=self.config.batch_size,
            metadata=self.metadata.describe() if self.metadata is not None else None,
        )
        summary = ordered_summary(summary)
        so.write_summary(self.out / so.SUMMARY_FILE, summary)
        journal.remove()
        return summary


def _prepare_out(out: Path, journal: Journal, resume: bool, overwrite: bool) -> bool:
    """Make ``out`` ready; returns True when continuing a journal. Refuses to mix runs silently."""
    if resume and overwrite:
        raise ScanError("--resume and --overwrite contradict each other; pick one")
    existing = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE) if out.is_dir() else []
    if resume and journal.exists():
        journal.check_config()
        for tmp in so.stale_temporaries(out):  # a kill while the final files were written
            tmp.unlink()
        return True
    if resume and (out / so.SUMMARY_FILE).is_file():
        raise ScanError(f"{out}: this scan already finished (summary.json is there); nothing to resume. "
                        "Use --overwrite to scan again.")
    if existing and not overwrite and not resume:
        raise ScanError(
            f"{out}: output folder is not empty ({', '.join(existing[:5])}{', ...' if len(existing) > 5 else ''}). "
            "Use --resume to continue an interrupted scan, or --overwrite to replace its results."
        )
    if existing and resume:
        raise ScanError(f"{out}: no scan journal to resume here and the folder is not empty; use --overwrite")
    if overwrite:
        for target in [out / name for name in so.OWNED] + so.stale_temporaries(out):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return False
