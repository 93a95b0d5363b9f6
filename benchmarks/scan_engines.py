"""The local engine against the Ray engine on the same archive: time, images/s, the ratio, whether their
scores.csv agree, and how each scales from 1 to 2 workers; plus the per-core decode rate behind the estimate
for a larger node (BENCHMARKS.md, "Scaling beyond one machine").

    PYTHONPATH=$PWD python benchmarks/scan_engines.py --archive /tmp/cxdev/archive          # the figures
    PYTHONPATH=$PWD python benchmarks/scan_engines.py --archive /tmp/cxdev/archive --runs main,kill  # acceptance
    PYTHONPATH=$PWD python benchmarks/scan_engines.py --archive /tmp/cxdev/archive --limit 60 --runs main  # smoke

Every scan runs in a fresh process and is timed from before anything is imported or started to its end:
the local engine's time includes loading TensorFlow and the detectors; the Ray engine's includes starting a
local Ray (``ray.init(num_cpus=N)``: N worker slots for decoding), the actor loading TensorFlow and the
detectors, and stopping Ray. "N workers" is ``--workers N`` for the local engine and N CPUs for Ray (its
decode tasks; the scoring actor reserves none, as the local engine scores beside its workers). ``main`` is
the comparison of the issue (both engines, 2 workers, outputs compared); ``scaling`` adds 1 worker each;
``kill`` scans with Ray again while SIGKILLing a decode worker and then its scoring actor part-way, and checks
that scores.csv still holds every film once and agrees with the local engine's;
``decode`` times ``decode_for_scan`` alone in one process (films per second per core) and the scanning
machine's own work per film (the ceiling of a whole cluster).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def child(engine: str, workers: int, archive: str, out: str, detectors: list[str], batch_size: int) -> dict:
    """One timed scan (in this fresh process)."""
    t0 = time.perf_counter()
    from cleaner.scan import scan_archive

    settings = dict(detector_dirs=detectors, progress=False, review=False, batch_size=batch_size, engine=engine)
    if engine == "ray":
        import ray

        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
        try:
            summary = scan_archive(archive, out, **settings)
        finally:
            ray.shutdown()
    else:
        summary = scan_archive(archive, out, workers=workers, **settings)
    seconds = time.perf_counter() - t0
    return {"engine": engine, "workers": workers, "files": summary["files"], "seconds": round(seconds, 2),
            "scan_seconds": summary["seconds"], "ips": round(summary["files"] / seconds, 2)}


def decode_rate(archive: str, detectors: list[str], limit: int) -> dict:
    """``decode_for_scan`` over ``limit`` candidates spread over the walk, in this one process: films/s on one core."""
    from cleaner.io.walker import WalkStats
    from cleaner.scan.detector_set import DetectorSet, load_scan_detectors, resolve_bundle_paths
    from cleaner.scan.engine import decode_for_scan
    from cleaner.scan.targets import ScanTarget

    dirs = [Path(d) for d in detectors]
    specs = tuple(DetectorSet(load_scan_detectors(resolve_bundle_paths(dirs, ()), models=False)).specs)
    files = [p for _, p in ScanTarget.from_arg(archive).iter_files(WalkStats())]
    files = files[::max(1, len(files) // limit)][:limit]
    t = time.perf_counter()
    for i, path in enumerate(files):
        decode_for_scan((str(i), str(path), specs))
    seconds = time.perf_counter() - t
    return {"files": len(files), "seconds": round(seconds, 2), "ips": round(len(files) / seconds, 2)}


def driver_rate(n: int = 20000, batch: int = 32) -> dict:
    """What the scanning machine does per film whatever the cluster's size (unpickle a worker's result, make the
    row, journal it, fsync per batch), on made-up results of three detectors: the ceiling of a whole cluster."""
    import pickle
    import tempfile

    from cleaner.scan.journal import Journal
    from cleaner.scan.folder import score_columns
    from cleaner.scan.rules import ExclusionRules, META_FIELDS, build_row

    names = ["flip", "inversion", "rotation"]
    columns, rules = score_columns(names, turn=True), ExclusionRules({k: 0.5 for k in names})
    meta = dict.fromkeys(META_FIELDS, None) | {"format": "PNG", "photometric": "L", "width": 2048, "height": 2500}
    blobs = [pickle.dumps(({"rel": f"site/{i:07d}.png", "error": "", "meta": meta},
                           {"flip": 0.1, "inversion": 0.2, "rotation": 0.7, "turn_upright_cw": 1})) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp), columns, {})
        journal.start()
        t = time.perf_counter()
        for start in range(0, n, batch):
            pairs = [pickle.loads(b) for b in blobs[start:start + batch]]
            journal.append([build_row(columns, f["rel"], f, s, rules) for f, s in pairs])
        seconds = time.perf_counter() - t
        journal.close()
    return {"files": n, "seconds": round(seconds, 2), "ips": round(n / seconds, 1)}


def run(kind: str, args, *extra) -> dict:
    cmd = [sys.executable, __file__, "--_child", kind, "--archive", str(args.archive), "--work", str(args.work),
           "--batch-size", str(args.batch_size), *sum((["--detectors", d] for d in args.detectors), []), *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    if res.returncode != 0:
        raise SystemExit(f"{kind} {extra} failed:\n{res.stderr[-3000:]}")
    result = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"  {kind:<7} {' '.join(extra):<14} {json.dumps(result)}", flush=True)
    return result


def ray_descendants(pid: int, name: str) -> list[int]:
    """Processes below ``pid`` whose title names ``name`` (Ray titles a worker by what it runs)."""
    parents, titles = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            titles[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue

    def below(p):
        while p > 1:
            p = parents.get(p, 0)
            if p == pid:
                return True
        return False

    return sorted(p for p, title in titles.items() if name in title and below(p))


def kill_run(args, total: int) -> dict:
    """The Ray engine (2 CPUs) while a decode worker (the first seen) and then its scoring actor (at 10 % of the
    rows) are SIGKILLed: Ray must redo their work so that every film is in scores.csv once."""
    out = args.work / "ray_2_killed"
    cmd = [sys.executable, __file__, "--_child", "scan", "--_engine", "ray", "--_workers", "2", "--_tag", "killed",
           "--archive", str(args.archive), "--work", str(args.work), "--batch-size", str(args.batch_size),
           *sum((["--detectors", d] for d in args.detectors), [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    targets, kills = [("decode_block", 0), ("ScoreFilms", total // 10)], []
    while proc.poll() is None:
        journal = out / "scores.partial.csv"
        rows = max(0, len(journal.read_text().splitlines()) - 1) if journal.is_file() else 0
        if targets and rows >= targets[0][1]:
            pids = ray_descendants(proc.pid, targets[0][0])
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                kills.append(f"{targets[0][0]} pid {pids[0]} at row {rows}")
                targets.pop(0)
            elif rows >= 0.9 * total:
                kills.append(f"no {targets.pop(0)[0]} process running to kill")
        time.sleep(0.1)
    kills += [f"no {name} killed (none running before the scan ended)" for name, _ in targets]
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"the killed run failed:\n{stderr[-3000:]}")
    paths = [r["path"] for r in read_rows(out / "scores.csv")]
    return {"kills": kills, "rows": len(paths), "distinct": len(set(paths)), **json.loads(stdout.splitlines()[-1])}


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def compare(local: Path, ray: Path) -> str:
    """Whether two scores.csv agree as the issue asks: rows, order, flags, reasons exactly; scores within 1e-5."""
    a, b = read_rows(local / "scores.csv"), read_rows(ray / "scores.csv")
    if [r["path"] for r in a] != [r["path"] for r in b]:
        return f"DIFFERENT rows or order ({len(a)} vs {len(b)} rows)"
    worst, bad = 0.0, []
    for x, y in zip(a, b):
        for col in x:
            if col.endswith("_score") and x[col] and y[col]:
                worst = max(worst, abs(float(x[col]) - float(y[col])))
            elif x[col] != y[col]:
                bad.append((x["path"], col, x[col], y[col]))
    verdict = "SAME" if not bad and worst <= 1e-5 else "DIFFERENT"
    return f"{verdict}: {len(a)} rows in the same order, {len(bad)} other cells differ {bad[:3]}, " \
           f"largest score difference {worst:.2g}"


def sample_list(archive: Path, n: int, dest: Path) -> Path:
    """A CSV list of ``n`` candidates spread evenly over the walk (absolute paths), for a quick smoke run."""
    from cleaner.io.walker import WalkStats
    from cleaner.scan.targets import ScanTarget

    files = [p for _, p in ScanTarget.from_arg(archive).iter_files(WalkStats())]
    step = max(1, len(files) // n)
    dest.write_text("path\n" + "".join(f"{Path(p).resolve()}\n" for p in files[::step][:n]))
    return dest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", type=Path, default=Path("/tmp/cxdev/archive"))
    ap.add_argument("--detectors", action="append", default=None,
                    help="bundle folder(s) [default: the bundled defaults]")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ray-bench"), help="scan outputs go here (replaced)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0, help="scan only this many files, spread over the archive")
    ap.add_argument("--runs", default="main,scaling,decode", help="which of main, scaling, kill, decode")
    ap.add_argument("--_child"), ap.add_argument("--_engine"), ap.add_argument("--_workers", type=int)
    ap.add_argument("--_tag")
    args = ap.parse_args()
    if args.detectors is None:
        from cleaner.scan.detector_set import default_detector_dirs

        args.detectors = [str(d) for d in default_detector_dirs()]
    if args._child == "scan":
        out = args.work / "_".join([args._engine, str(args._workers)] + ([args._tag] if args._tag else []))
        print(json.dumps(child(args._engine, args._workers, str(args.archive), str(out), args.detectors,
                               args.batch_size)))
        return
    if args._child == "decode":
        print(json.dumps(decode_rate(str(args.archive), args.detectors, args.limit or 200)))
        return
    if args._child == "driver":
        print(json.dumps(driver_rate()))
        return
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    if args.limit:
        args.archive = sample_list(args.archive, args.limit, args.work / "sample.csv")
    runs = set(args.runs.split(","))
    print(f"scan engines: {os.cpu_count()} CPU(s), archive {args.archive}, detectors {args.detectors}, "
          f"batch {args.batch_size}", flush=True)
    r = {}
    for workers in ([2, 1] if "scaling" in runs else [2]) if runs & {"main", "scaling", "kill"} else []:
        for engine in ("local", "ray"):
            r[engine, workers] = run("scan", args, "--_engine", engine, "--_workers", str(workers))
    if "kill" in runs:
        r["kill"] = kill_run(args, r["local", 2]["files"])
        print(f"  kill    {json.dumps(r['kill'])}", flush=True)
    if "decode" in runs:
        r["decode"] = run("decode", args)
        r["driver"] = run("driver", args)
    print("\n==== results ====")
    if ("ray", 2) in r:
        loc, ray = r["local", 2], r["ray", 2]
        print(f"local engine, 2 workers: {loc['files']} files {loc['seconds']:.1f} s {loc['ips']:.2f} img/s")
        print(f"ray engine,   2 CPUs:    {ray['files']} files {ray['seconds']:.1f} s {ray['ips']:.2f} img/s")
        print(f"ray / local time: {ray['seconds'] / loc['seconds']:.2f}x (target <= 1.5x)")
        print(f"scores.csv: {compare(args.work / 'local_2', args.work / 'ray_2')}")
    if ("ray", 1) in r:
        for engine in ("local", "ray"):
            one, two = r[engine, 1], r[engine, 2]
            print(f"{engine} engine 1 -> 2 workers: {one['ips']:.2f} -> {two['ips']:.2f} img/s "
                  f"({two['ips'] / one['ips']:.2f}x)")
    if "kill" in r:
        k = r["kill"]
        print(f"ray engine with workers SIGKILLed ({'; '.join(k['kills'])}): {k['rows']} rows, {k['distinct']} distinct, "
              f"{k['seconds']:.1f} s; scores.csv vs local: {compare(args.work / 'local_2', args.work / 'ray_2_killed')}")
    if "decode" in r:
        d = r["decode"]
        print(f"decode alone, one process: {d['ips']:.2f} films/s per core ({d['files']} files); a 16-core node "
              f"decoding on 15 cores beside one GPU actor: about {15 * d['ips']:.0f} films/s if its GPU scores faster")
        print(f"the scanning machine's own work (unpickle, row, journal): {r['driver']['ips']:.0f} films/s, the "
              f"ceiling of a whole cluster ({r['driver']['ips'] / (15 * d['ips']):.1f} such nodes)")


if __name__ == "__main__":
    main()
