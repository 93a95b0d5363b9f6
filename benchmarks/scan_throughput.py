"""Scan throughput of the shipped default detectors on the development archive, in one run: decoding alone, each
bundle's inference alone (eager Keras vs the compiled scorer), the full scan (the four defaults, and rotation +
inversion alone), an eager full scan for comparison, and peak memory of a 10,000-file scan vs a 1,000-file one.

    PYTHONPATH=$PWD python benchmarks/scan_throughput.py                       # the acceptance run (issue 20)
    PYTHONPATH=$PWD python benchmarks/scan_throughput.py --big 2000 --small 500 --memory-set pair --no-eager-scan

The archive is ``--archive`` (default /tmp/cxdev/archive, built by ``benchmarks/build_dev_archive.py`` from
../shared/data if missing). The memory archives are symbolic links to its files, built in a temporary folder outside
the repo (the big one repeats the archive). Every measurement runs in a fresh process, so that its peak memory is
its own: the summed resident memory of the process and all its descendants (the decoding workers), sampled every
0.1 s. Rates exclude the one-off TensorFlow import; a scan's time includes loading the bundles, tracing the
compiled models, starting the workers and the counting walk. With ``--repeat N`` each figure is the best of N.
"Decode alone" is what a scan's workers do for each file (read, then every input size and stretch the detectors
need), through the same bounded pool, with nothing scoring: the rate a scan could reach if inference were free.
Targets (issue 20): full scan >= 50 % of decode alone and >= 5x the 11.4 films/s measured before it; peak memory of
10,000 files within 10 % of 1,000.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
DEFAULT_ARCHIVE = Path("/tmp/cxdev/archive")
#: the scan rate issue 20 started from: `cxclean scan` of the development archive, 2 workers, eager inference
BEFORE = 11.4
SETS = {"defaults": ("flip", "inversion", "non_frontal", "rotation"), "pair": ("inversion", "rotation")}
BATCH = 32


class FamilyMemory:
    """Samples, every 0.1 s, the summed resident memory of this process and all its descendants
    (decoding workers are grandchildren via the forkserver, which ``RUSAGE_CHILDREN`` misses); keeps the peak."""

    def __init__(self, interval: float = 0.1):
        import threading

        self.interval = interval
        self.peak_total = self.peak_main = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _procs() -> list[tuple[int, int, float]]:
        out = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
                out.append((int(fields["Pid"]), int(fields["PPid"]), int(fields.get("VmRSS", "0 kB").split()[0]) / 1024))
            except (OSError, ValueError, KeyError):
                continue
        return out

    def sample(self) -> None:
        me = os.getpid()
        procs = self._procs()
        family, grew = {me}, True
        while grew:
            more = {p for p, pp, _ in procs if pp in family} - family
            grew = bool(more)
            family |= more
        total = sum(rss for p, _, rss in procs if p in family)
        main = sum(rss for p, _, rss in procs if p == me)
        self.peak_total, self.peak_main = max(self.peak_total, total), max(self.peak_main, main)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self.sample()  # (not ru_maxrss: Linux carries it over exec from the parent that started us)
        return {"main_mb": round(self.peak_main, 1), "peak_mb": round(self.peak_total, 1)}


def bundle_paths(names) -> list[Path]:
    from detectors.bundle import default_bundles_dir

    root = default_bundles_dir()
    if root is None:
        raise SystemExit("no default bundles in this checkout")
    return [root / name for name in names]


def link_archive(src: Path, dest: Path, at_least: int, at_most: int | None = None) -> int:
    """``dest/rep_NN/<relative path>`` symlinks to the candidates in ``src``: repeated until there are ``at_least``,
    or the first ``at_most``."""
    from cleaner.io.walker import WalkStats, walk_archive

    files = list(walk_archive(src, WalkStats()))
    count = 0
    for rep in range(-(-at_least // len(files))):
        for f in files:
            if at_most is not None and count >= at_most:
                return count
            link = dest / f"rep_{rep:02d}" / f.relative_to(src)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f.resolve())
            count += 1
    return count


# ---------------------------------------------------------------- measurements (each in its own process)


def measure_decode(archive: Path, names, workers: int) -> tuple[int, float]:
    from cleaner.io.parallel import bounded_ordered_map
    from cleaner.io.preprocess import InputSpec
    from cleaner.io.walker import WalkStats
    from cleaner.scan.engine import decode_for_scan
    from cleaner.scan.targets import ScanTarget

    specs = []
    for path in bundle_paths(names):  # the distinct specs a scan with these bundles prepares, read from the bundles
        spec = InputSpec.from_dict(json.loads((path / "detector.json").read_text())["input"])
        specs += [spec] if spec not in specs else []
    tasks = ((rel, str(p), tuple(specs)) for rel, p in ScanTarget.from_arg(archive).iter_files(WalkStats()))
    t = time.perf_counter()
    n = sum(1 for _ in bounded_ordered_map(decode_for_scan, tasks, workers, 4, 4 * BATCH))
    return n, time.perf_counter() - t


def measure_inference(archive: Path, name: str, films: int, rounds: int) -> dict:
    """Films/s of one bundle on real inputs (the archive's first films, preprocessed for it), eager ``model(x)``
    and the compiled scorer in turn, so that both see the same load; the best round of each."""
    import numpy as np

    from cleaner.io.images import read_or_error
    from cleaner.io.preprocess import preprocess
    from cleaner.io.walker import WalkStats
    from cleaner.scan.targets import ScanTarget
    from detectors.bundle import load

    detector = load(bundle_paths([name])[0])
    inputs = []
    for _, path in ScanTarget.from_arg(archive).iter_files(WalkStats()):
        loaded, _ = read_or_error(path)
        if loaded is not None:
            inputs.append(preprocess(loaded.pixels, detector.input_spec))
        if len(inputs) == BATCH:
            break
    x = np.stack(inputs)
    ways = {"eager": lambda: [np.asarray(detector.model(x, training=False)) for _ in range(films // BATCH)],
            "compiled": lambda: detector.predict(np.concatenate([x] * (films // BATCH)), batch_size=BATCH)}
    for run in ways.values():  # warm up; the compiled way traces here (a scan pays that once, in its time)
        run()
    best = dict.fromkeys(ways, 0.0)
    for _ in range(rounds):
        for way, run in ways.items():
            t = time.perf_counter()
            run()
            best[way] = max(best[way], films // BATCH * BATCH / (time.perf_counter() - t))
    return {way: round(rate, 1) for way, rate in best.items()}


def measure_scan(archive: Path, names, workers: int, work: Path, eager: bool) -> tuple[int, float]:
    from cleaner.scan import scan_archive

    if eager:  # the scan as it was before issue 20: every batch through model(x), op by op
        from detectors import inference

        inference.Scorer._fn = lambda self, shape: (lambda x: self.model(x, training=False))
    out = work / f"scan_out_{os.getpid()}"
    t = time.perf_counter()
    summary = scan_archive(archive, out, [str(p) for p in bundle_paths(names)], workers=workers, batch_size=BATCH,
                           review=False, progress=False)
    secs = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    return summary["files"], secs


def measure(args) -> dict:
    names = SETS[args.set]
    if args.what != "decode":
        import keras  # noqa: F401  the one-off TensorFlow import (~5 s) is not part of any rate

        import detectors.bundle  # noqa: F401
    mem = FamilyMemory()
    if args.what == "inference":
        return {"rates": measure_inference(args.archive, args.bundle, args.films, args.rounds), **mem.stop()}
    if args.what == "decode":
        n, secs = measure_decode(args.archive, names, args.workers)
    else:
        n, secs = measure_scan(args.archive, names, args.workers, args.work, args.what == "eager-scan")
    return {"files": n, "seconds": round(secs, 2), "rate": round(n / secs, 1), **mem.stop()}


def run_child(what: str, archive: Path, opts, repeat: int, **extra) -> dict:
    """The best (fastest) of ``repeat`` runs of one measurement, each in a fresh process; the highest peak memory."""
    cmd = [sys.executable, __file__, "--_measure", what, "--archive", str(archive), "--workers", str(opts.workers),
           "--_work", str(opts.work), "--films", str(opts.films), "--repeat", str(opts.repeat)]
    for key, value in extra.items():
        cmd += [f"--_{key}", str(value)]
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    runs = []
    for _ in range(repeat):
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise SystemExit(f"{what} failed:\n{res.stderr[-3000:]}")
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    best = max(runs, key=lambda r: r.get("rate", 0))
    best["peak_mb"] = max(r["peak_mb"] for r in runs)
    label = f"{what} {extra.get('set', extra.get('bundle', ''))}"
    shown = best["rates"] if "rates" in best else f"{best['files']} files {best['seconds']:.1f} s {best['rate']:.1f} films/s"
    print(f"  {label:<22} {shown}  peak {best['peak_mb']:.0f} MB", flush=True)
    return best


def report(r: dict, opts) -> list[str]:
    lines = [f"==== {r['files']} files, {opts.workers} decode workers, batch {BATCH} ===="]
    for name in SETS["defaults"]:
        e, c = r[f"inf_{name}"]["rates"]["eager"], r[f"inf_{name}"]["rates"]["compiled"]
        lines.append(f"inference alone, {name:<10} eager {e:7.1f} films/s   compiled {c:7.1f} films/s  ({c / e:4.1f}x)")
    for key, title in (("defaults", "the four defaults"), ("pair", "rotation + inversion")):
        d, s = r[f"decode_{key}"], r[f"scan_{key}"]
        lines.append(f"decode alone for {title:<21} {d['rate']:7.1f} films/s  peak {d['peak_mb']:5.0f} MB")
        lines.append(f"full scan, {title:<27} {s['rate']:7.1f} films/s  peak {s['peak_mb']:5.0f} MB   full scan / decode "
                     f"alone {100 * s['rate'] / d['rate']:5.1f} %   {s['rate'] / BEFORE:4.1f}x the {BEFORE} films/s before")
    if "eager_defaults" in r:
        e = r["eager_defaults"]
        lines.append(f"full scan, four defaults, eager inference {e['rate']:7.1f} films/s (this run's baseline): compiled "
                     f"is {r['scan_defaults']['rate'] / e['rate']:.1f}x")
    if "mem_small" in r:
        a, b = r["mem_small"], r["mem_big"]
        lines.append(f"peak memory, full scan ({opts.memory_set}): {a['files']} files {a['peak_mb']:.0f} MB (main "
                     f"{a['main_mb']:.0f}) vs {b['files']} files {b['peak_mb']:.0f} MB (main {b['main_mb']:.0f}): "
                     f"{100 * (b['peak_mb'] / a['peak_mb'] - 1):+.1f} %")
    return lines


def ensure_archive(archive: Path) -> None:
    if archive.is_dir():
        return
    print(f"building the development archive {archive} from ../shared/data", flush=True)
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "build_dev_archive.py"), "--out", str(archive)], check=True)


def main():
    from cleaner.io.parallel import default_workers

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--repeat", type=int, default=1, help="runs of each measurement; each figure is the best")
    ap.add_argument("--films", type=int, default=128, help="films per inference-alone round")
    ap.add_argument("--big", type=int, default=10000, help="files in the large memory archive (0: no memory check)")
    ap.add_argument("--small", type=int, default=1000, help="files in the small memory archive")
    ap.add_argument("--memory-set", choices=sorted(SETS), default="defaults", help="detectors of the memory scans")
    ap.add_argument("--no-eager-scan", action="store_true", help="skip the eager full scan (the slowest step)")
    for hidden in ("_measure", "_bundle", "_set", "_work"):
        ap.add_argument(f"--{hidden}", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._measure:
        ns = argparse.Namespace(what=args._measure, archive=args.archive, workers=args.workers, films=args.films,
                                rounds=args.repeat, bundle=args._bundle, set=args._set or "defaults", work=Path(args._work))
        print(json.dumps(measure(ns)))
        return
    ensure_archive(args.archive)
    args.work = Path(tempfile.mkdtemp(prefix="cxclean_bench_"))
    try:
        import platform

        print(f"cxclean scan benchmark: {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}, "
              f"archive {args.archive}, work dir {args.work}", flush=True)
        r = {}
        for key in SETS:
            r[f"decode_{key}"] = run_child("decode", args.archive, args, args.repeat, set=key)
        r["files"] = r["decode_defaults"]["files"]
        for name in SETS["defaults"]:
            r[f"inf_{name}"] = run_child("inference", args.archive, args, 1, bundle=name)  # rounds inside
        for key in SETS:
            r[f"scan_{key}"] = run_child("scan", args.archive, args, args.repeat, set=key)
        if not args.no_eager_scan:
            r["eager_defaults"] = run_child("eager-scan", args.archive, args, 1, set="defaults")
        if args.big:
            small, big = args.work / "small", args.work / "big"
            n_small = link_archive(args.archive, small, args.small, at_most=args.small)
            n_big = link_archive(args.archive, big, args.big)
            print(f"memory archives: {small} ({n_small} files), {big} ({n_big} files)", flush=True)
            r["mem_small"] = run_child("scan", small, args, 1, set=args.memory_set)
            r["mem_big"] = run_child("scan", big, args, 1, set=args.memory_set)
        print("\n".join(["", *report(r, args)]))
    finally:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
