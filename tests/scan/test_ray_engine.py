"""The Ray engine (``--engine ray``) on a local Ray with 2 CPUs: the same outputs as the local engine, an
undecodable file as a row, a worker killed mid-run, a driver killed and the scan resumed, resume across engines."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cleaner.scan import ScanError, scan_archive
from cleaner.scan import folder as so
from cleaner.scan.folder import CONFIG_FILE, JOURNAL_FILE
from cleaner.scan.runner import DELAY_ENV
from archive_builder import film, write_png
from scan_kill import journalled_rows, kill_when_journalled

REPO = Path(__file__).resolve().parents[2]
#: workers that load it die on a file named crash_me and hang on one named hang_me (tests/helpers/crash_site)
CRASH_SITE = REPO / "tests" / "helpers" / "crash_site"
MIN_AGE = 10


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray for the module (2 CPUs, no dashboard, a small object store); its address. Its workers import
    this checkout and ``crash_site`` (PYTHONPATH is read when Ray starts them). Skipped without Ray, except in CI, which installs it."""
    if os.environ.get("CXCLEAN_REQUIRE_RAY"):
        import ray
    else:
        ray = pytest.importorskip("ray", reason='the Ray engine needs the ray extra: pip install -e ".[ray]"')
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(CRASH_SITE), str(REPO), old) if p)
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
             log_to_driver=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def scan(archive, out, bundles, **kw):
    return scan_archive(archive.root, out, detector_dirs=[bundles], min_age=MIN_AGE, metadata=archive.metadata_csv,
                        progress=False, **kw)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def assert_same_results(out: Path, ref: Path) -> None:
    """The issue's bar: the same rows in the same order, every cell equal but scores, which agree within 1e-5."""
    for name in (so.SCORES_FILE, so.EXCLUSIONS_FILE, so.ERRORS_FILE):
        a, b = read_csv(out / name), read_csv(ref / name)
        assert [r["path"] for r in a] == [r["path"] for r in b], name
        for x, y in zip(a, b):
            assert list(x) == list(y)
            for col in x:
                if col.endswith("_score") and x[col]:
                    assert abs(float(x[col]) - float(y[col])) <= 1e-5, (name, x["path"], col)
                else:
                    assert x[col] == y[col], (name, x["path"], col)
    assert (out / so.DETECTORS_FILE).read_text() == (ref / so.DETECTORS_FILE).read_text()
    assert sorted(p.relative_to(out).as_posix() for p in (out / so.REVIEW_DIR).rglob("*")) == \
        sorted(p.relative_to(ref).as_posix() for p in (ref / so.REVIEW_DIR).rglob("*"))
    assert not (out / JOURNAL_FILE).exists()


def same_counts(summary: dict, reference: dict) -> None:
    for key in ("files", "ok", "errors", "excluded", "excluded_per_reason", "skipped", "unknown_age_count"):
        assert summary[key] == reference[key], key


def test_ray_gives_the_local_engines_outputs(built_archive, rule_bundles, ray_cluster, tmp_path):
    ref = tmp_path / "local"
    reference = scan(built_archive, ref, rule_bundles, workers=2, batch_size=4)
    out = tmp_path / "ray"
    summary = scan(built_archive, out, rule_bundles, engine="ray", batch_size=3)
    assert_same_results(out, ref)
    same_counts(summary, reference)
    assert summary["engine"] == "ray" and reference["engine"] == "local" and summary["workers"] is None
    listed = read_csv(out / so.SCORES_FILE)
    assert [r["path"] for r in listed] == list(built_archive.expected)  # walker order, every candidate once
    rows = {r["path"]: r for r in listed}
    # an undecodable file on a worker is a row with its error, scores empty, not excluded
    bad = rows["bad/truncated.png"]
    assert bad["status"] == "error" and "truncated" in bad["error"] and bad["rotation_score"] == ""
    assert bad["excluded"] == "False"
    assert rows["site1/2020/rot90.png"]["turn_upright_cw"] == "90"  # turned upright on the worker too


def test_a_file_that_kills_or_hangs_its_decoder_on_a_worker_is_an_error_row(built_archive, rule_bundles, ray_cluster,
                                                                              tmp_path, monkeypatch):
    """A Ray task decodes in a process of its own: a file that crashes its decoder (every retry would too) or
    hangs it (past the driver's CXCLEAN_FILE_TIMEOUT) is an error row, and the scan finishes with every other row."""
    ref = tmp_path / "local"
    scan(built_archive, ref, rule_bundles, workers=2, batch_size=4)
    write_png(built_archive.root / "site1" / "crash_me.png", film(50))
    write_png(built_archive.root / "site1" / "hang_me.png", film(51))
    # 10 s, not 3: in an isolated decoder a good film under a fully loaded CPU once took over 3 s (flaky in CI)
    monkeypatch.setenv("CXCLEAN_FILE_TIMEOUT", "10")
    out = tmp_path / "ray"
    summary = scan(built_archive, out, rule_bundles, engine="ray", batch_size=3)
    errors = {r["path"]: r["error"] for r in read_csv(out / so.ERRORS_FILE)}
    assert errors["site1/crash_me.png"] == "decoder crashed: worker killed by signal 9 (SIGKILL)"
    assert errors["site1/hang_me.png"] == "decoder crashed: hung (no result within 10 s; its worker was killed)"
    hostile = {"site1/crash_me.png", "site1/hang_me.png"}
    got = [r for r in read_csv(out / so.SCORES_FILE) if r["path"] not in hostile]
    want = read_csv(ref / so.SCORES_FILE)
    assert [r["path"] for r in got] == [r["path"] for r in want] and summary["errors"] == len(hostile) + sum(
        1 for r in want if r["status"] == "error")


def ray_workers(name: str) -> dict[int, str]:
    """Ray worker processes descended from this process whose title names ``name``: pid -> title."""
    parents, titles = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            parents[pid] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            titles[pid] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue

    def ours(pid):
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return {pid: title for pid, title in titles.items() if name in title and ours(pid)}


def test_a_worker_killed_mid_run_loses_and_repeats_no_row(built_archive, rule_bundles, ray_cluster, tmp_path,
                                                          monkeypatch):
    ref = tmp_path / "local"
    reference = scan(built_archive, ref, rule_bundles, workers=1, batch_size=2)
    out = tmp_path / "ray"
    monkeypatch.setenv(DELAY_ENV, "0.4")  # each batch takes 0.4 s on the worker: time to kill it mid-run
    seen = {"killed": None, "rows_then": None, "after": set()}
    done = threading.Event()

    def kill_the_scoring_worker():
        while not done.is_set():
            actors = set(ray_workers("ScoreFilms"))
            if seen["killed"] is None:
                rows = journalled_rows(out)
                if rows >= 2 and actors:
                    seen.update(killed=min(actors), rows_then=rows)
                    os.kill(seen["killed"], signal.SIGKILL)
            else:
                seen["after"] |= actors - {seen["killed"]}  # the worker Ray starts to finish the work
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_scoring_worker, daemon=True)
    killer.start()
    try:
        summary = scan(built_archive, out, rule_bundles, engine="ray", batch_size=2)
    finally:
        done.set()
        killer.join(timeout=30)
    assert seen["killed"] is not None, "no scoring worker was found to kill"
    assert 2 <= seen["rows_then"] <= len(built_archive.expected) - 6  # killed with batches still to score
    assert seen["after"], "Ray did not replace the killed worker"
    assert_same_results(out, ref)  # nothing lost, nothing twice
    same_counts(summary, reference)
    assert summary["files_this_run"] == len(built_archive.expected)


def test_driver_killed_then_resumed_on_its_own_local_ray(built_archive, rule_bundles, ray_cluster, tmp_path,
                                                         subprocess_env):
    arch = built_archive
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "cleaner", "scan", str(arch.root), "--out", str(out), "--detectors",
           str(rule_bundles), "--min-age", str(MIN_AGE), "--metadata", str(arch.metadata_csv), "--engine", "ray",
           "--batch-size", "2", "--quiet"]
    env = dict(subprocess_env, **{DELAY_ENV: "0.5", "RAY_ADDRESS": ray_cluster})  # joins the module's Ray
    status, journalled, stderr = kill_when_journalled(cmd, env, out, rows=4)
    assert status == -signal.SIGKILL, stderr[-2000:]
    assert 4 <= journalled < len(arch.expected)
    assert json.loads((out / CONFIG_FILE).read_text())["speed"]["engine"] == "ray"

    rayless_env = {k: v for k, v in subprocess_env.items() if k != "RAY_ADDRESS"}
    raylets_before = set(ray_processes("raylet"))
    resumed = subprocess.run(cmd + ["--resume"], env=rayless_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Scanned" in resumed.stdout
    deadline = time.monotonic() + 20
    while set(ray_processes("raylet")) - raylets_before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not set(ray_processes("raylet")) - raylets_before  # the Ray it started for the run is stopped

    ref = tmp_path / "uninterrupted"
    reference = scan(arch, ref, rule_bundles, workers=1, batch_size=5)
    assert_same_results(out, ref)
    summary = json.loads((out / so.SUMMARY_FILE).read_text())
    same_counts(summary, reference)
    assert summary["resumed"] is True and 0 < summary["files_this_run"] < len(arch.expected)


def ray_processes(name: str) -> list[int]:
    """Every process on this machine whose command line names ``name`` (a raylet: one per running Ray node)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if name in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue
    return pids


def test_a_local_engines_journal_resumes_on_ray(built_archive, rule_bundles, ray_cluster, tmp_path):
    from cleaner.scan.config import ScanConfig
    from cleaner.scan.journal import Journal
    from cleaner.scan.runner import ScanRun

    out = tmp_path / "out"
    scan(built_archive, out, rule_bundles, workers=1)
    rows = read_csv(out / so.SCORES_FILE)
    for name in (so.SCORES_FILE, so.SUMMARY_FILE):
        (out / name).unlink()
    # the local engine was killed after 5 rows, in the middle of the 6th
    config = ScanConfig(detector_dirs=[rule_bundles], min_age=MIN_AGE, metadata=built_archive.metadata_csv, workers=1)
    journal = Journal(out, list(rows[0]), ScanRun(built_archive.root, out, config, progress=False).record())
    journal.start()
    journal.append(rows[:6])
    journal.close()
    data = (out / JOURNAL_FILE).read_bytes()
    (out / JOURNAL_FILE).write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 25])
    ref = tmp_path / "ref"
    scan(built_archive, ref, rule_bundles, workers=1)
    summary = scan(built_archive, out, rule_bundles, engine="ray", ray_actors=1, resume=True)
    assert summary["resumed"] is True and summary["files_this_run"] == len(built_archive.expected) - 5
    assert_same_results(out, ref)


def test_a_bundle_a_worker_cannot_load_stops_the_scan_with_its_reason(built_archive, rule_bundles, ray_cluster,
                                                                      tmp_path):
    import shutil

    bundles = tmp_path / "bundles"
    shutil.copytree(rule_bundles, bundles)
    with open(bundles / "rotation" / "model.keras", "ab") as fh:  # the driver reads only detector.json
        fh.write(b"changed on the shared disk")
    with pytest.raises(ScanError, match="Ray engine stopped.*rotation/model.keras.*sha256.*--resume"):
        scan(built_archive, tmp_path / "out", bundles, engine="ray")


def test_ray_settings_are_refused_before_anything_is_written(built_archive, rule_bundles, tmp_path, monkeypatch):
    from detectors.bundle import load

    out = tmp_path / "out"
    with pytest.raises(ScanError, match="bundle folders.*rotation"):
        scan_archive(built_archive.root, out, [load(rule_bundles / "rotation")], engine="ray", progress=False)
    with pytest.raises(ScanError, match="--engine must be one of"):
        scan(built_archive, out, rule_bundles, engine="spark")
    with pytest.raises(ScanError, match="--ray-actors 0"):
        scan(built_archive, out, rule_bundles, engine="ray", ray_actors=0)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(ScanError, match=r'pip install "cxclean\[ray\]"'):
        scan(built_archive, out, rule_bundles, engine="ray")
    assert not out.exists()


def test_the_actor_pool_follows_the_cluster():
    from cleaner.scan.ray_engine import pool_options

    assert pool_options({"CPU": 64.0, "GPU": 4.0}, 2, None) == (4, {"num_cpus": 1, "num_gpus": 1.0})
    assert pool_options({"CPU": 16.0, "GPU": 1.0}, 1, 2) == (2, {"num_cpus": 1, "num_gpus": 0.5})
    assert pool_options({"CPU": 32.0}, 3, None) == (3, {"num_cpus": 0})  # one per node; decoders fill the cores
    assert pool_options({"CPU": 2.0}, 1, 2)[0] == 2
    for resources in ({"CPU": 2.0}, {"CPU": 16.0, "GPU": 1.0}):  # never a decode task's (Ray Data would fuse them)
        assert pool_options(resources, 1, None)[1] != {"num_cpus": 1}
