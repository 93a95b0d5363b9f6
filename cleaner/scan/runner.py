"""``cxclean scan``: score a whole archive with every detector in one pass, exclude, and resume after a crash.

Each file is read and decoded once, in worker processes, which return only the small
preprocessed input(s) for each distinct ``InputSpec`` among the detectors plus metadata. The main
process batches those and runs every detector on them, while the workers decode ahead (bounded:
at most a fixed window of results is in flight, whatever the archive size). Rows are appended to
a journal (``scores.partial.csv``, flushed and fsynced per batch); ``resume=True`` skips journalled
paths, and the final outputs are written atomically in walker order at the end.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from cleaner import __version__
from cleaner.scan import orientation
from cleaner.scan import folder as so
from cleaner.io.errors import ImageReadError
from cleaner.io.images import read_image
from cleaner.io.metadata import AgeTable
from cleaner.io.parallel import bounded_ordered_map, default_workers
from cleaner.io.preprocess import InputSpec, preprocess_all
from cleaner.io.walker import WalkStats, walk_archive

JOURNAL_FILE = "scores.partial.csv"
CONFIG_FILE = "scan.config.json"
#: Test hook: seconds to sleep after each journalled batch, so a test can kill a scan part-way.
DELAY_ENV = "CXCLEAN_SCAN_BATCH_DELAY"
UNKNOWN_AGE_CHOICES = ("keep", "exclude")
LIST_SUFFIXES = (".csv",)


class ScanError(Exception):
    """A scan that cannot start or continue; the message says why and what to do."""


DEFAULT_BUNDLES = Path(__file__).resolve().parents[2] / "detectors" / "default_bundles"


def default_detector_dirs() -> list[Path]:
    """The detectors shipped inside the package, used when the user names none."""
    return [DEFAULT_BUNDLES] if any(DEFAULT_BUNDLES.glob("*/detector.json")) else []


# --------------------------------------------------------------------------- inputs


@dataclass
class Source:
    """What to scan: a folder (walked), a single image, or a CSV listing paths."""

    root: Path  # relative paths in the outputs are relative to this
    kind: str  # folder, file, list
    target: Path

    @classmethod
    def from_arg(cls, archive) -> "Source":
        target = Path(archive).expanduser()
        if not target.exists():
            raise ScanError(f"{target}: archive not found")
        target = target.resolve()
        if target.is_dir():
            return cls(root=target, kind="folder", target=target)
        if target.suffix.lower() in LIST_SUFFIXES:
            return cls(root=target.parent, kind="list", target=target)
        return cls(root=target.parent, kind="file", target=target)

    def iter_files(self, stats: WalkStats) -> Iterator[tuple[str, Path]]:
        """(relative path with '/' separators, absolute path) for every candidate, in a fixed order."""
        if self.kind == "folder":
            for path in walk_archive(self.target, stats):
                yield path.relative_to(self.target).as_posix(), path
        elif self.kind == "file":
            stats.candidates += 1
            yield self.target.name, self.target
        else:
            for rel in _read_path_list(self.target):
                stats.candidates += 1
                p = Path(rel)
                yield rel, (p if p.is_absolute() else self.root / p)


def _read_path_list(csv_path: Path) -> Iterator[str]:
    """Paths from a CSV list: its ``path`` column, else its first column; relative to the CSV's folder."""
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return
        col = header.index("path") if "path" in header else 0
        for row in reader:
            if len(row) > col and row[col].strip():
                yield row[col].strip().replace("\\", "/")


def count_candidates(source: Source) -> int:
    """A first cheap pass (names only, nothing opened) so the progress bar can show an ETA."""
    return sum(1 for _ in source.iter_files(WalkStats()))


# --------------------------------------------------------------------------- detectors


@dataclass
class ScanDetector:
    detector: object  # detectors.bundle.Detector
    threshold: float
    threshold_source: str  # bundle | override

    @property
    def name(self) -> str:
        return self.detector.name

    def row(self) -> dict:
        d = self.detector
        return {
            "name": d.name, "kind": d.kind, "version": d.version, "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "bundle_path": str(Path(d.path).resolve()) if d.path is not None else "",
            "input_size": d.input_spec.size,
        }


def resolve_bundle_paths(detector_dirs: Iterable = (), detector_paths: Iterable = ()) -> list[Path]:
    """Bundle folders from ``--detectors DIR`` (all below DIR) and ``--detector BUNDLE``, without repeats."""
    from detectors.bundle import INFO_FILE, find_bundles

    found: list[Path] = []
    for folder in detector_dirs:
        folder = Path(folder)
        if not folder.is_dir():
            raise ScanError(f"{folder}: --detectors folder not found")
        bundles = find_bundles(folder)
        if not bundles:
            raise ScanError(f"{folder}: no detector bundles (no {INFO_FILE}) at or below this folder")
        found += bundles
    for bundle in detector_paths:
        bundle = Path(bundle)
        folder = bundle.parent if bundle.name == INFO_FILE else bundle
        if not (folder / INFO_FILE).is_file():
            raise ScanError(f"{bundle}: not a detector bundle (no {INFO_FILE})")
        found.append(folder)
    unique, seen = [], set()
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(key)
    return unique


def parse_threshold_overrides(items: Iterable[str]) -> dict[str, float]:
    """``["rotation=0.7", ...]`` to ``{"rotation": 0.7}``; values must lie in [0, 1]."""
    out = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not name or number is None or not 0.0 <= number <= 1.0:
            raise ScanError(f"--threshold {item!r}: expected NAME=VALUE with VALUE between 0 and 1")
        out[name] = number
    return out


def load_scan_detectors(detectors: Sequence, thresholds: dict[str, float] | None = None) -> list[ScanDetector]:
    """Load bundles (paths or already loaded Detectors), check names are unique, apply overrides; name order."""
    from detectors.bundle import Detector, load

    loaded = []
    for item in detectors:
        if isinstance(item, Detector):
            loaded.append(item)
            continue
        try:
            loaded.append(load(item))
        except (FileNotFoundError, ValueError) as exc:
            raise ScanError(f"cannot load detector: {exc}") from None
    names = Counter(d.name for d in loaded)
    dupes = sorted(n for n, c in names.items() if c > 1)
    if dupes:
        where = {n: [str(d.path) for d in loaded if d.name == n] for n in dupes}
        raise ScanError(f"two or more detectors share a name (their columns would collide): {where}")
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(names))
    if unknown:
        raise ScanError(f"--threshold for unknown detector(s) {unknown}; detectors are {sorted(names)}")
    out = []
    for d in sorted(loaded, key=lambda d: d.name):
        if d.name in thresholds:
            out.append(ScanDetector(d, thresholds[d.name], "override"))
        else:
            out.append(ScanDetector(d, d.threshold, "bundle"))
    return out


# --------------------------------------------------------------------------- workers


def decode_for_scan(task: tuple) -> dict:
    """Worker: read one file once and preprocess it once per spec; never raises (errors are values).

    Returns only metadata and the small model inputs, never the full-size image.
    """
    rel, path, specs = task
    try:
        loaded = read_image(path)
    except ImageReadError as exc:
        return {"rel": rel, "error": exc.reason}
    except Exception as exc:  # a reader bug must not end a run over a whole archive
        return {"rel": rel, "error": f"unexpected {type(exc).__name__}: {exc}"}
    meta = loaded.meta
    result = {"rel": rel, "error": "", "meta": {k: getattr(meta, k) for k in _META_FIELDS}}
    try:
        result["inputs"] = preprocess_all(loaded.pixels, specs)
    except Exception as exc:
        result["error"] = f"cannot preprocess: {type(exc).__name__}: {exc}"
    return result


_META_FIELDS = ("format", "photometric", "width", "height", "age_years", "sex", "view_position", "body_part",
                "modality", "patient_id", "study_uid")


# --------------------------------------------------------------------------- journal


class Journal:
    """Rows written so far (``scores.partial.csv``) and the settings they were made with."""

    def __init__(self, out: Path, columns: list[str], config: dict):
        self.out = Path(out)
        self.path = self.out / JOURNAL_FILE
        self.config_path = self.out / CONFIG_FILE
        self.columns = columns
        self.config = config
        self.fh = None
        self.writer = None

    def exists(self) -> bool:
        return self.config_path.is_file()

    def check_config(self) -> None:
        try:
            saved = json.loads(self.config_path.read_text())
        except (OSError, ValueError) as exc:
            raise ScanError(f"{self.config_path}: unreadable scan settings ({exc}); use --overwrite") from None
        current = json.loads(json.dumps(self.config, default=str))
        if saved != current:
            keys = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
            diffs = "; ".join(f"{k}: journal has {saved.get(k)!r}, now {current.get(k)!r}" for k in keys)
            raise ScanError(
                f"{self.out}: cannot resume with different settings ({diffs}). "
                "Re-run with the original settings, or use --overwrite to start again."
            )

    def start(self) -> None:
        so.atomic_write_text(self.config_path, json.dumps(self.config, indent=2, default=str) + "\n")
        self.fh = open(self.path, "w", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.fh, fieldnames=self.columns, extrasaction="ignore")
        self.writer.writeheader()
        self._sync()

    def reopen(self) -> set[str]:
        """Drop a half-written last line (a kill mid-write), return the journalled paths, append from here."""
        if not self.path.is_file():
            self.start()
            return set()
        with open(self.path, "rb+") as fh:
            data_end = fh.seek(0, os.SEEK_END)
            if data_end:
                fh.seek(max(0, data_end - 1))
                if fh.read(1) != b"\n":
                    fh.seek(0)
                    content = fh.read()
                    fh.truncate(content.rfind(b"\n") + 1)
        done = set()
        with open(self.path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is not None and header != self.columns:
                raise ScanError(f"{self.path}: journal columns differ from this scan's; use --overwrite")
            for row in reader:
                if row:
                    done.add(row[0])
        self.fh = open(self.path, "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.fh, fieldnames=self.columns, extrasaction="ignore")
        if header is None:
            self.writer.writeheader()
            self._sync()
        return done

    def append(self, rows: list[dict]) -> None:
        self.writer.writerows(rows)
        self._sync()

    def _sync(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        if self.fh is not None and not self.fh.closed:
            self.fh.close()

    def iter_rows(self) -> Iterator[dict]:
        with open(self.path, newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)

    def remove(self) -> None:
        self.close()
        for p in (self.path, self.config_path):
            if p.exists():
                p.unlink()


# --------------------------------------------------------------------------- the scan


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def _prepare_out(out: Path, journal: Journal, resume: bool, overwrite: bool) -> bool:
    """Make ``out`` ready; returns True when continuing a journal. Refuses to mix runs silently."""
    if resume and overwrite:
        raise ScanError("--resume and --overwrite contradict each other; pick one")
    if out.exists() and not out.is_dir():
        raise ScanError(f"{out}: --out exists and is not a folder")
    existing = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if resume and journal.exists():
        journal.check_config()
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
        import shutil

        for name in so.OWNED + (JOURNAL_FILE, CONFIG_FILE):
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return False


def scan_archive(
    archive,
    out,
    detectors: Sequence = (),
    *,
    detector_dirs: Sequence = (),
    thresholds: dict[str, float] | None = None,
    min_age: float | None = None,
    unknown_age: str = "keep",
    metadata: AgeTable | str | os.PathLike | None = None,
    id_column: str | None = None,
    age_column: str | None = None,
    workers: int | None = None,
    batch_size: int = 32,
    chunksize: int = 4,
    resume: bool = False,
    overwrite: bool = False,
    review: bool = True,
    progress: bool = True,
    default_detectors: bool = True,
) -> dict:
    """Scan ``archive`` (folder, image or CSV list) into ``out``; returns the summary (also summary.json).

    ``detectors`` are bundle folders or loaded ``Detector`` objects; ``detector_dirs`` adds every
    bundle below each folder. With none of either, the bundled default detectors are used (and the
    scan says so) unless ``default_detectors`` is False, which leaves an age-only scan. Raises ``ScanError`` for anything that stops the scan before it starts.
    """
    t0 = time.perf_counter()
    started = _utc_now()
    source = Source.from_arg(archive)
    out = Path(out).expanduser().resolve()
    if source.kind == "folder" and _is_within(out, source.root):
        raise ScanError(f"{out}: --out is inside the archive {source.root}; the archive is never written to")
    if unknown_age not in UNKNOWN_AGE_CHOICES:
        raise ScanError(f"--unknown-age must be one of {UNKNOWN_AGE_CHOICES}, not {unknown_age!r}")
    if unknown_age == "exclude" and min_age is None:
        raise ScanError("--unknown-age exclude needs --min-age (there is no age filter to apply it to)")
    if min_age is not None and not 0 < float(min_age) < 150:
        raise ScanError(f"--min-age {min_age}: expected years between 0 and 150")
    if metadata is not None and not isinstance(metadata, AgeTable):
        metadata = AgeTable.from_csv(metadata, id_column=id_column, age_column=age_column)

    bundle_paths = [d for d in detectors if isinstance(d, (str, os.PathLike))]
    loaded = [d for d in detectors if not isinstance(d, (str, os.PathLike))]
    if detector_dirs or bundle_paths:
        bundle_paths = resolve_bundle_paths(detector_dirs, bundle_paths)
    if not bundle_paths and not loaded:
        defaults = default_detector_dirs() if default_detectors else []
        if defaults:
            bundle_paths = resolve_bundle_paths(defaults, ())
            print(f"No detectors given: using the bundled defaults ({', '.join(p.name for p in bundle_paths)}) "
                  f"from {defaults[0]}", file=sys.stderr)
        elif min_age is None:
            raise ScanError("no detectors given: pass --detectors DIR or --detector BUNDLE, and/or --min-age YEARS")
    dets = load_scan_detectors(list(loaded) + list(bundle_paths), thresholds)
    names = [d.name for d in dets]
    specs: list[InputSpec] = []
    for d in dets:
        if d.detector.input_spec not in specs:
            specs.append(d.detector.input_spec)
    spec_index = {d.name: specs.index(d.detector.input_spec) for d in dets}
    # the first rotation detector turns the films it flags upright before the others score them
    rotation = next((d for d in dets if d.detector.kind == "rotation"), None)
    columns = so.score_columns(names, turn=rotation is not None)
    det_rows = [d.row() for d in dets]

    config = {
        "format": 1,
        "archive": str(source.target),
        "source_kind": source.kind,
        "detectors": [{k: r[k] for k in ("name", "version", "threshold", "threshold_source")} for r in det_rows],
        "min_age": min_age,
        "unknown_age": unknown_age,
        "metadata": metadata.describe() if metadata is not None else None,
        "review": bool(review),
        "turn_upright_by": rotation.name if rotation is not None else None,
    }
    journal = Journal(out, columns, config)
    resuming = _prepare_out(out, journal, resume, overwrite)
    done = journal.reopen() if resuming else (journal.start() or set())

    workers = default_workers() if workers is None else max(1, int(workers))
    batch_size = max(1, int(batch_size))
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    age_reason = so.age_reason(float(min_age)) if min_age is not None else None

    total = count_candidates(source) if progress else None
    from tqdm import tqdm

    bar = tqdm(total=total, initial=min(len(done), total or len(done)), unit="file", desc="scan",
               disable=not progress, dynamic_ncols=True, smoothing=0.1)

    stats = WalkStats()
    order = {"fresh_seen": False, "needs_reorder": False, "done_seen": 0}

    def tasks():
        spec_tuple = tuple(specs)
        for rel, path in source.iter_files(stats):
            if rel in done:
                order["done_seen"] += 1
                if order["fresh_seen"]:
                    order["needs_reorder"] = True
                continue
            order["fresh_seen"] = True
            yield rel, str(path), spec_tuple

    def make_row(rel: str, result: dict, scores: dict[str, float]) -> dict:
        row = dict.fromkeys(columns, "")
        row["path"] = rel
        ok = not result["error"]
        row["status"] = "ok" if ok else "error"
        row["error"] = " ".join(str(result["error"]).split())  # one line per record, always
        meta = result.get("meta") or {}
        for key in _META_FIELDS:
            value = meta.get(key)
            if key != "age_years" and value is not None:
                row[key] = value
        age, source_kind = meta.get("age_years"), "dicom"
        if age is None and metadata is not None:
            age, source_kind = metadata.age_for(rel), "metadata"
        if age is not None:
            row["age_years"], row["age_source"] = so.format_age(age), source_kind
        if not ok:
            row["excluded"] = "False"
            return row
        reasons = []
        for d in dets:
            score = scores[d.name]
            flag = bool(score >= d.threshold)
            row[f"{d.name}_score"] = so.format_score(score)
            row[f"{d.name}_flag"] = str(flag)
            if flag:
                reasons.append(d.name)
        if age_reason is not None:
            if age is not None and age < float(min_age):
                reasons.append(age_reason)
            elif age is None and unknown_age == "exclude":
                reasons.append(so.UNKNOWN_AGE_REASON)
        if rotation is not None and scores.get(orientation.TURN_COLUMN):
            row[orientation.TURN_COLUMN] = str(orientation.clockwise_degrees(scores[orientation.TURN_COLUMN]))
        row["excluded"] = str(bool(reasons))
        row["reasons"] = ";".join(reasons)
        return row

    def flush(batch: list[dict]) -> None:
        ok_idx = [i for i, r in enumerate(batch) if not r["error"]]
        scores: list[dict] = [{} for _ in batch]
        if ok_idx and dets:
            stacks = [np.stack([batch[i]["inputs"][k] for i in ok_idx]) for k in range(len(specs))]
            turned = stacks
            if rotation is not None:
                own = stacks[spec_index[rotation.name]]
                values = rotation.detector.predict(own, batch_size=batch_size)
                turns = orientation.upright_turns(rotation.detector, own, values >= rotation.threshold, batch_size)
                turned = [orientation.apply_turns(stack, turns) for stack in stacks]
                for i, v, t in zip(ok_idx, values, turns):
                    scores[i][rotation.name] = float(v)
                    scores[i][orientation.TURN_COLUMN] = int(t)
            for d in dets:
                if d is rotation:
                    continue
                values = d.detector.predict(turned[spec_index[d.name]], batch_size=batch_size)
                for i, v in zip(ok_idx, values):
                    scores[i][d.name] = float(v)
        rows = [make_row(r["rel"], r, s) for r, s in zip(batch, scores)]
        if review:
            for row in rows:
                if row["excluded"] == "True":
                    so.copy_for_review(source.root / row["path"], out, row["path"], row["reasons"].split(";"),
                                       dicom=row["format"] == "DICOM")
        journal.append(rows)  # after the copies: a journalled row always has its review copies
        bar.update(len(rows))
        if delay:
            time.sleep(delay)

    scanned = 0
    ahead = max(4 * batch_size, 4 * workers * chunksize)
    try:
        batch: list[dict] = []
        for result in bounded_ordered_map(decode_for_scan, tasks(), workers, chunksize, ahead):
            batch.append(result)
            if len(batch) >= batch_size:
                flush(batch)
                scanned += len(batch)
                batch = []
        if batch:
            flush(batch)
            scanned += len(batch)
    finally:
        bar.close()
        journal.close()
    if order["done_seen"] != len(done):
        order["needs_reorder"] = True  # journalled files that the walk no longer finds

    summary = _finalise(source, out, journal, columns, names, det_rows, stats, order["needs_reorder"],
                        turn=rotation is not None)
    seconds = time.perf_counter() - t0
    summary.update(
        archive=str(source.target), out=str(out), cxclean_version=__version__, started=started,
        finished=_utc_now(), seconds=round(seconds, 3),
    )
    summary["images_per_second"] = round(scanned / seconds, 2) if seconds > 0 else None
    summary.update(
        min_age=min_age, unknown_age=unknown_age, detectors=det_rows, resumed=resuming, files_this_run=scanned,
        workers=workers, batch_size=batch_size,
        metadata=metadata.describe() if metadata is not None else None,
    )
    ordered = {k: summary[k] for k in _SUMMARY_ORDER if k in summary}
    ordered.update({k: v for k, v in summary.items() if k not in ordered})
    so.write_summary(out / so.SUMMARY_FILE, ordered)
    journal.remove()
    return ordered


_SUMMARY_ORDER = (
    "archive", "out", "cxclean_version", "started", "finished", "seconds", "files", "ok", "errors", "excluded",
    "excluded_per_reason", "skipped", "images_per_second", "min_age", "unknown_age", "unknown_age_count",
    "detectors",
)


def _journal_rows_in_walk_order(source: Source, journal: Journal) -> Iterator[dict]:
    """Fallback when the archive changed between runs: the journal's rows in the current walk's order."""
    import pandas as pd

    frame = pd.read_csv(journal.path, dtype=str, keep_default_na=False).drop_duplicates("path")
    frame = frame.set_index("path", drop=False)
    for rel, _ in source.iter_files(WalkStats()):
        if rel in frame.index:
            yield frame.loc[rel].to_dict()


def _finalise(source, out, journal, columns, names, det_rows, stats: WalkStats, needs_reorder: bool,
              turn: bool = False) -> dict:
    """Stream the journal into the final CSVs (atomic, walker order, no duplicates) and count."""
    rows = _journal_rows_in_walk_order(source, journal) if needs_reorder else journal.iter_rows()
    scores = so.AtomicCsv(out / so.SCORES_FILE, columns)
    exclusions = so.AtomicCsv(out / so.EXCLUSIONS_FILE, so.exclusion_columns(names, turn))
    errors = so.AtomicCsv(out / so.ERRORS_FILE, so.ERROR_COLUMNS)
    counts = Counter()
    per_reason = Counter()
    seen = set()
    try:
        for row in rows:
            if row["path"] in seen:
                continue
            seen.add(row["path"])
            scores.write(row)
            counts["files"] += 1
            if row["status"] == "ok":
                counts["ok"] += 1
                if not row["age_years"]:
                    counts["unknown_age"] += 1
            else:
                counts["errors"] += 1
                errors.write(row)
            if row["excluded"] == "True":
                counts["excluded"] += 1
                per_reason.update(row["reasons"].split(";"))
                exclusions.write(row)
        for folder, reason in stats.folder_errors:
            try:
                shown = Path(folder).relative_to(source.root).as_posix()
            except ValueError:
                shown = folder
            errors.write({"path": shown, "error": reason})
    except BaseException:
        for f in (scores, exclusions, errors):
            f.abort()
        raise
    for f in (scores, exclusions, errors):
        f.commit()
    so.write_csv(out / so.DETECTORS_FILE, so.DETECTOR_COLUMNS, det_rows)
    return {
        "files": counts["files"], "ok": counts["ok"], "errors": counts["errors"], "excluded": counts["excluded"],
        "excluded_per_reason": dict(sorted(per_reason.items())), "skipped": dict(sorted(stats.skipped.items())),
        "unknown_age_count": counts["unknown_age"], "folder_errors": len(stats.folder_errors),
    }


def plan(archive) -> tuple[Iterator[str], WalkStats]:
    """What a scan of ``archive`` would read (relative paths, lazily) and the walk statistics (for --dry-run)."""
    source = Source.from_arg(archive)
    stats = WalkStats()
    return (rel for rel, _ in source.iter_files(stats)), stats


def format_summary(summary: dict) -> str:
    """The summary a person reads at the end of a scan."""
    lines = [
        f"Scanned {summary['files']} file(s) in {summary['seconds']:.1f} s "
        f"({summary.get('images_per_second') or 0:.1f} images/s this run): "
        f"{summary['ok']} ok, {summary['errors']} unreadable, {summary['excluded']} excluded.",
    ]
    for reason, n in summary["excluded_per_reason"].items():
        lines.append(f"  excluded for {reason}: {n}")
    if summary.get("min_age") is not None:
        lines.append(f"  unknown age: {summary['unknown_age_count']} ({summary['unknown_age']})")
    if summary.get("folder_errors"):
        lines.append(f"  folders that could not be read: {summary['folder_errors']} (see errors.csv)")
    if summary["skipped"]:
        lines.append("  not candidates: " + ", ".join(f"{n} {why}" for why, n in summary["skipped"].items()))
    lines.append(f"Results in {summary['out']}")
    return "\n".join(lines)
