"""Scan throughput: images/s for decode alone, inference alone and the full scan (1 and 3 detectors),
peak memory at 1,000 vs >= 10,000 files, and the speed-up over a naive one-image-at-a-time loop.

    PYTHONPATH=$PWD python benchmarks/scan_throughput.py                 # ../shared/data + a 10k archive
    PYTHONPATH=$PWD python benchmarks/scan_throughput.py --big 0         # ../shared/data only (quick)

The detectors are small random-weight CNNs at 256 px (speed does not depend on trained weights),
three bundles with the same InputSpec, thresholds 0.99. The large archive is built outside the
repo from symbolic links to the real files (repeated until it holds >= --big files).
Every measurement runs in a fresh process so that its peak memory is its own: the summed
resident memory of the process and all its descendants (the decoding workers), sampled every
0.1 s. Rates exclude the one-off TensorFlow import; the full scan's time includes loading the
bundles, starting the workers and the counting walk. Targets (issue 4): full scan >= 85 % of
1 / (1/decode + 1/inference); three detectors cost one decode; peak memory at 10k within 10 %
of 1k; >= 5x faster than the naive loop.
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
SIZE = 256
NAMES = ("bench_a", "bench_b", "bench_c")


def shared_data() -> Path:
    env = os.environ.get("CXCLEAN_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


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


def make_bundles(out: Path) -> list[Path]:
    """Three small CNNs (4 strided convs + GAP + dense, random weights, seed 0) at 256 px."""
    import keras

    from cleaner.io.preprocess import InputSpec
    from detectors.bundle import save_bundle

    keras.utils.set_random_seed(0)
    paths = []
    for name in NAMES:
        inp = keras.Input((SIZE, SIZE, 1))
        x = inp
        for filters in (16, 32, 64, 64):
            x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        out_ = keras.layers.Dense(1, activation="sigmoid")(x)
        info = {"name": name, "kind": "benchmark", "input": InputSpec(size=SIZE).to_dict(), "threshold": 0.99,
                "backbone": "small CNN (random weights, benchmark only)"}
        paths.append(save_bundle(keras.Model(inp, out_), info, out / name))
    return paths


def build_big(src: Path, dest: Path, at_least: int) -> int:
    """``dest/rep_NN/<relative path>`` symlinks to every candidate in ``src``, repeated to >= at_least files."""
    from cleaner.io.walker import WalkStats, walk_archive

    files = list(walk_archive(src, WalkStats()))
    reps = -(-at_least // len(files))
    for rep in range(reps):
        for f in files:
            link = dest / f"rep_{rep:02d}" / f.relative_to(src)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f.resolve())
    return reps * len(files)


def build_subset(src: Path, dest: Path, n: int) -> int:
    from cleaner.io.walker import WalkStats, walk_archive

    count = 0
    for f in walk_archive(src, WalkStats()):
        if count >= n:
            break
        link = dest / f.relative_to(src)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f.resolve())
        count += 1
    return count


# ---------------------------------------------------------------- measurements (each in its own process)


def measure(kind: str, archive: Path, bundles: list[Path], ndet: int, work: Path, limit: int) -> dict:
    from cleaner.io.preprocess import InputSpec
    from cleaner.io.parallel import bounded_ordered_map, default_workers
    from cleaner.scan import scan_archive
    from cleaner.scan.engine import decode_for_scan
    from cleaner.scan.targets import ScanTarget
    from cleaner.io.walker import WalkStats

    workers = default_workers()
    if kind in ("inference", "scan", "naive"):
        import keras  # noqa: F401  the one-off TensorFlow import (~5 s) is not part of any rate

        import detectors.bundle  # noqa: F401
    mem = FamilyMemory()
    if kind == "decode":
        spec = (InputSpec(size=SIZE),)
        tasks = ((rel, str(p), spec) for rel, p in ScanTarget.from_arg(archive).iter_files(WalkStats()))
        t = time.perf_counter()
        n = sum(1 for _ in bounded_ordered_map(decode_for_scan, tasks, workers, 4, 128))
        secs = time.perf_counter() - t
    elif kind == "inference":
        import numpy as np

        from detectors.bundle import load

        dets = [load(b) for b in bundles[:ndet]]
        rng = np.random.default_rng(0)
        batch = rng.random((32, SIZE, SIZE, 1), dtype=np.float32)
        for d in dets:
            d.predict(batch)  # warm-up
        n = 0
        t = time.perf_counter()
        while n < limit:
            for d in dets:
                d.predict(batch, batch_size=32)
            n += len(batch)
        secs = time.perf_counter() - t
    elif kind == "scan":
        out = work / f"scan_out_{os.getpid()}"
        t = time.perf_counter()
        summary = scan_archive(archive, out, [str(b) for b in bundles[:ndet]], workers=workers, batch_size=32,
                               progress=False)
        secs = time.perf_counter() - t
        n = summary["files"]
        shutil.rmtree(out, ignore_errors=True)
    elif kind == "naive":
        import keras
        import numpy as np

        from cleaner.io.errors import ImageReadError
        from cleaner.io.images import read_image
        from cleaner.io.preprocess import preprocess

        model = keras.saving.load_model(bundles[0] / "model.keras", compile=False)
        spec = InputSpec(size=SIZE)
        paths = [p for _, p in ScanTarget.from_arg(archive).iter_files(WalkStats())][:limit]
        model.predict(np.zeros((1, SIZE, SIZE, 1), np.float32), verbose=0)
        n = 0
        t = time.perf_counter()
        for p in paths:
            try:
                x = preprocess(read_image(p).pixels, spec)
            except ImageReadError:
                continue
            model.predict(x[None], verbose=0)
            n += 1
        secs = time.perf_counter() - t
    else:
        raise SystemExit(f"unknown measurement {kind}")
    return {"kind": kind, "ndet": ndet, "files": n, "seconds": round(secs, 2), "ips": round(n / secs, 1),
            **mem.stop()}


def run_child(kind, archive, bundles_dir, ndet, work, limit=0) -> dict:
    cmd = [sys.executable, __file__, "--_measure", kind, "--_archive", str(archive), "--_bundles", str(bundles_dir),
           "--_ndet", str(ndet), "--_work", str(work), "--_limit", str(limit)]
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{res.stderr[-3000:]}")
    result = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"  {kind:<9} {ndet} det: {result['files']:>6} files {result['seconds']:>8.1f} s "
          f"{result['ips']:>8.1f} img/s  peak {result['peak_mb']:.0f} MB", flush=True)
    return result


def bench_archive(label, archive, bundles_dir, work, naive_limit) -> dict:
    """Decode and inference are measured before and after the scans and averaged: on a shared
    machine the load changes from minute to minute, and the bound should see the same load."""
    print(f"\n[{label}] {archive}", flush=True)
    r = {"decode": [run_child("decode", archive, bundles_dir, 1, work)]}
    n = r["decode"][0]["files"]
    for k in (1, 3):
        limit = min(max(n, 512), 2048)
        r[f"inf{k}"] = [run_child("inference", archive, bundles_dir, k, work, limit=limit)]
        r[f"scan{k}"] = run_child("scan", archive, bundles_dir, k, work)
        r[f"inf{k}"].append(run_child("inference", archive, bundles_dir, k, work, limit=limit))
    r["decode"].append(run_child("decode", archive, bundles_dir, 1, work))
    if naive_limit:
        r["naive"] = run_child("naive", archive, bundles_dir, 1, work, limit=naive_limit)
    return r


def mean_rate(runs: list[dict]) -> float:
    """Files over total seconds of the repeated runs."""
    return sum(x["files"] for x in runs) / sum(x["seconds"] for x in runs)


def report(label: str, r: dict) -> list[str]:
    lines = [f"{label}: {r['scan1']['files']} files"]
    d = mean_rate(r["decode"])
    each = " / ".join(f"{x['ips']:.1f}" for x in r["decode"])
    lines.append(f"  decode alone (workers, read+preprocess)      {d:8.1f} img/s  (runs {each})  "
                 f"peak {max(x['peak_mb'] for x in r['decode']):.0f} MB")
    for k in (1, 3):
        i, s = mean_rate(r[f"inf{k}"]), r[f"scan{k}"]["ips"]
        bound = 1 / (1 / d + 1 / i)
        each = " / ".join(f"{x['ips']:.1f}" for x in r[f"inf{k}"])
        lines.append(f"  inference alone, {k} detector(s)             {i:8.1f} img/s  (runs {each})")
        lines.append(f"  full scan, {k} detector(s)                   {s:8.1f} img/s  = {100 * s / bound:5.1f} % of "
                     f"back-to-back bound {bound:.1f}  peak {r[f'scan{k}']['peak_mb']:.0f} MB "
                     f"(main {r[f'scan{k}']['main_mb']:.0f})")
        if k == 3:
            lines.append(f"    (were each file decoded once per detector, the bound would be "
                         f"{1 / (3 / d + 1 / i):.1f} img/s)")
    if "naive" in r:
        nv = r["naive"]["ips"]
        lines.append(f"  naive loop (read + model.predict per image) {nv:8.1f} img/s  -> full scan (1 det) is "
                     f"{r['scan1']['ips'] / nv:.1f}x faster")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="archive to measure (default ../shared/data)")
    ap.add_argument("--big", type=int, default=10000, help="files in the large archive (0: skip it)")
    ap.add_argument("--small", type=int, default=1000, help="files in the memory-comparison archive")
    ap.add_argument("--naive", type=int, default=200, help="images for the naive loop")
    ap.add_argument("--_measure"), ap.add_argument("--_archive"), ap.add_argument("--_bundles")
    ap.add_argument("--_ndet", type=int, default=1), ap.add_argument("--_work"), ap.add_argument("--_limit", type=int)
    args = ap.parse_args()
    if args._measure:
        from detectors.bundle import find_bundles

        bundles = find_bundles(args._bundles)
        print(json.dumps(measure(args._measure, Path(args._archive), bundles, args._ndet, Path(args._work),
                                 args._limit or 0)))
        return
    data = args.data or shared_data()
    if not data.is_dir():
        raise SystemExit(f"{data}: no data to benchmark (set CXCLEAN_SHARED_DATA)")
    work = Path(tempfile.mkdtemp(prefix="cxclean_bench_"))
    try:
        import platform

        print(f"cxclean scan benchmark: {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}, "
              f"small CNN x3 at {SIZE} px (random weights), batch 32; work dir {work}", flush=True)
        make_bundles(work / "bundles")
        results = {"shared": bench_archive("shared/data (all sets)", data, work / "bundles", work, args.naive)}
        if args.big:
            small = work / "small"
            n_small = build_subset(data, small, args.small)
            big = work / "big"
            n_big = build_big(data, big, args.big)
            print(f"\nbuilt {small} ({n_small} files) and {big} ({n_big} files, symlinks)", flush=True)
            results["small"] = {"scan1": run_child("scan", small, work / "bundles", 1, work)}
            results["big"] = bench_archive(f"{n_big}-file archive", big, work / "bundles", work, 0)
        print("\n==== results ====")
        print("\n".join(report("shared/data (all sets)", results["shared"])))
        if args.big:
            print("\n".join(report("large archive", results["big"])))
            a, b = results["small"]["scan1"], results["big"]["scan1"]
            print(f"  peak memory, full scan 1 det: {a['files']} files {a['peak_mb']:.0f} MB (main {a['main_mb']:.0f}) "
                  f"vs {b['files']} files {b['peak_mb']:.0f} MB (main {b['main_mb']:.0f}): "
                  f"{100 * (b['peak_mb'] / a['peak_mb'] - 1):+.1f} %")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
