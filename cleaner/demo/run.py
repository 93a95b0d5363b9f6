"""The whole job on the bundled demo sample: plant artefacts, scan with the default detectors,
build the review page, and judge the result against the planted truth."""
from __future__ import annotations

import shutil
from pathlib import Path

from cleaner.demo.archive import FilmFolder, build_archive, load_ages

def demo_data() -> Path:
    """The bundled demo films: ``demo/nih`` in the current folder (a clone), else beside the package source."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / "demo" / "nih").is_dir():
            return base / "demo" / "nih"
    return Path.cwd() / "demo" / "nih"


def run_demo(out: str | Path = "demo_out", data: str | Path | None = None, workers: int | None = None,
             min_age: float = 10, overwrite: bool = False, progress: bool = True) -> dict:
    """Returns paths of everything written plus the scan summary and the evaluation against truth."""
    from cleaner.reports.evaluate_archive import evaluate
    from cleaner.scan import ScanError, default_detector_dirs, scan_archive

    data = Path(data) if data else demo_data()
    if not data.is_dir():
        raise ScanError(f"{data}: demo images not found (run from a clone of the cxclean repository, or pass --data)")
    dirs = default_detector_dirs()
    if not dirs:
        raise ScanError("no bundled default detectors found in this installation")
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ScanError(f"{out}: not empty; use --overwrite to replace an earlier demo")
        shutil.rmtree(out)
    archive = out / "archive"
    truth = build_archive([FilmFolder(data, "nih", "frontal", ages=load_ages(data / "metadata.csv"))], archive, seed=0)
    truth_csv = out / "archive_truth.csv"
    scan_out = out / "scan"
    summary = scan_archive(archive, scan_out, detector_dirs=dirs, min_age=min_age, workers=workers,
                           metadata=data / "metadata.csv", progress=progress, review_page=True)
    evaluation = evaluate(scan_out, truth_csv)
    return dict(out=out, archive=archive, truth=truth_csv, scan=scan_out, page=Path(summary["review_page"]),
                summary=summary, evaluation=evaluation, planted=int((truth.truth != "upright").sum()))
