"""Detection quality of the bundled defaults on sites they were not trained or calibrated on (issue 23).

Leave-one-site-out: for every site of the development archive, each detector's threshold is calibrated (the same
rule as ``cxclean calibrate``: ``detectors.calibration.threshold_at_fpr``, never below the bundle's validation
threshold) on real upright adult frontal films of the *other* sites only, and the ``non_frontal`` detector is
retrained without that site (``scripts/train_default_detectors.py --kinds non_frontal --leave-out SITE``). Nothing
is judged with a threshold chosen on the films it is reported on. Rotation, inversion and flip are trained on NIH
only, which is not in the development archive, so only their thresholds need the split.

    python benchmarks/build_dev_archive.py --out /tmp/cxdev/archive
    python benchmarks/loso_quality.py --archive /tmp/cxdev/archive --work /tmp/cxloso

Prints, per site and per detector: films, planted (or real) positives, recall and precision of the exclusion
reason (after the non_frontal gate), and the upright adult frontal films flagged by any detector, with the
false positives named; writes the same as JSON to WORK/loso.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from cleaner.reports.evaluate_archive import KIND_TARGETS  # noqa: E402
from cleaner.reports.truth import NAME_TARGETS  # noqa: E402
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: development-archive source folder -> the training site names it stands for (an ieee collection is one site)
SITE_GROUPS = {"hannover": ("hannover",), "ieee": ("ieee_frontal", "ieee_lateral", "ieee_ct"),
               "kermany": ("kermany",), "hands": ("hands",), "dicom": ("dicom",)}
SYNTHETIC = ("rotation", "inversion", "flip")
#: what each default exists to find: the truth labels evaluate-archive uses
TARGETS = {**{k: KIND_TARGETS[k] for k in SYNTHETIC}, "non_frontal": set(NAME_TARGETS["non_frontal"])}


def group_of(source: str) -> str | None:
    for group, sites in SITE_GROUPS.items():
        if source in sites:
            return group
    return None


def scan_archive_once(archive: Path, out: Path) -> pd.DataFrame:
    """The development archive scanned with the bundled defaults (reused when WORK already has it)."""
    if not (out / "scores.csv").is_file():
        subprocess.run([sys.executable, "-m", "cleaner", "scan", str(archive), "--out", str(out), "-q", "--workers", "2",
                        "--no-review", "--overwrite"], check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return pd.read_csv(out / "scores.csv", dtype={"path": str})


def nih_upright_scores(data: Path, work: Path) -> pd.DataFrame:
    """Each synthetic default's scores of the NIH films in its own validation split (adults): upright films
    from a site the development archive does not hold, part of every calibration pool."""
    import detectors
    from detectors.calibration import score_films
    from scripts.train_default_detectors import upright_list

    cache = work / "nih_uprights.csv"
    if cache.is_file():
        return pd.read_csv(cache)
    rows = []
    for name in SYNTHETIC:
        bundle = detectors.default_bundles_dir() / name
        films = pd.read_csv(upright_list(data, bundle, work / f"uprights_{name}.csv"))
        films = films[films.site.str.startswith("nih")]
        det = detectors.load(bundle)
        scores, kept, _ = score_films(det, list(films.path), workers=2)
        rows += [{"detector": name, "path": films.path.iloc[i], "site": "nih", "score": s} for i, s in zip(kept, scores)]
    table = pd.DataFrame(rows)
    table.to_csv(cache, index=False)
    return table


def loso_non_frontal(archive: Path, truth: pd.DataFrame, data: Path, work: Path,
                     seed: int = 0, members: int | None = None) -> tuple[pd.Series, pd.Series]:
    """non_frontal scores and flags of every development-archive film from a bundle trained and calibrated
    without that film's site, scored by a scan (with the rotation and inversion defaults, so that a film they flag
    is scored upright and un-inverted, as in any scan: decisions 0004, 0014)."""
    scores = pd.Series(np.nan, index=truth.path)
    flags = pd.Series(False, index=truth.path)
    for group, sites in SITE_GROUPS.items():
        bundle = work / "non_frontal_loso" / group / "non_frontal"
        train_non_frontal(bundle, data, ["--leave-out", *sites], seed, members)
        mine = truth[truth.source.map(group_of) == group]
        got_scores, got_flags = non_frontal_scores(bundle, archive, list(mine.path), work / f"scan_non_frontal_{group}")
        scores[got_scores.index], flags[got_flags.index] = got_scores, got_flags
    return scores, flags


def train_non_frontal(bundle: Path, data: Path, leave_out: list, seed: int = 0, members: int | None = None) -> None:
    """The non_frontal default retrained into ``bundle`` without ``leave_out``, seed ``seed`` and ``members``
    averaged models (None: the default's own number), reused when there."""
    if not (bundle / "detector.json").is_file():
        more = ["--members", str(members)] if members else []
        subprocess.run([sys.executable, str(REPO / "scripts" / "train_default_detectors.py"), "--kinds", "non_frontal",
                        "--out", str(bundle.parent), "--data", str(data), "--seed", str(seed), *more, *leave_out],
                       check=True)


def non_frontal_scores(bundle: Path, archive: Path, paths: list, out: Path) -> tuple[pd.Series, pd.Series]:
    """Scores and flags of ``bundle`` for the archive files ``paths``, through a scan with the rotation and
    inversion defaults."""
    import detectors
    from cleaner.scan import scan_archive

    full = {str((archive / p).resolve()): p for p in paths}  # a list of absolute paths keeps them as rows
    listed = out.parent / f"files_{out.name}.csv"
    pd.DataFrame({"path": list(full)}).to_csv(listed, index=False)
    defaults = [detectors.default_bundles_dir() / name for name in ("rotation", "inversion")]
    scan_archive(listed, out, [bundle, *defaults], workers=2, review=False,
                 overwrite=out.exists(), progress=False)
    got = pd.read_csv(out / "scores.csv", dtype={"path": str})
    got = got[got.status == "ok"]
    index = got.path.map(full).to_numpy()
    return (pd.Series(got.non_frontal_score.astype(float).to_numpy(), index=index),
            pd.Series(got.non_frontal_flag.astype(str).eq("True").to_numpy(), index=index))


def fold_patients(table: pd.DataFrame, data: Path, folds: int) -> tuple[pd.DataFrame, list[list[str]]]:
    """ieee's films with their patient ids, and the patients of each of ``folds`` folds (by a hash of the id)."""
    import hashlib

    from scripts.train_default_detectors import patient_ids

    ids = patient_ids(data)
    ieee = table[table.source.map(group_of) == "ieee"].copy()
    ieee["patient"] = ["ieee:" + ids.get(Path(o).name, Path(o).stem) for o in ieee.origin]
    order = sorted(ieee.patient.unique(), key=lambda k: hashlib.sha1(k.encode()).hexdigest())
    return ieee, [sorted(order[k::folds]) for k in range(folds)]


def lateral_folds(archive: Path, table: pd.DataFrame, data: Path, work: Path, folds: int, seed: int = 0,
                  members: int | None = None) -> dict:
    """Laterals flagged by non_frontal bundles that never saw the lateral's patient, with laterals in training.

    Leaving ieee out (above) removes every lateral from training: ieee is the only source of laterals here, so
    that figure is what a detector that never saw a lateral does. ieee is itself a collection of many hospitals'
    and papers' films; here its patients are split into ``folds`` folds (by a hash of the patient id), and each
    fold's films are scored by a bundle trained and calibrated without that fold's patients."""
    ieee, fold_lists = fold_patients(table, data, folds)
    result = {"folds": folds, "per_fold": []}
    for k, leave in enumerate(fold_lists):
        bundle = work / "non_frontal_lateral_folds" / f"fold{k}" / "non_frontal"
        train_non_frontal(bundle, data, ["--leave-out-patients", *leave], seed, members)
        mine = ieee[ieee.patient.isin(leave)]
        _, flags = non_frontal_scores(bundle, archive, list(mine.path), work / f"scan_lateral_fold{k}")
        flagged = mine.path.map(flags).fillna(False).astype(bool)
        lateral, upright = mine.truth.eq("lateral"), mine.truth.eq("upright") & mine.role.eq("frontal")
        result["per_fold"].append({"fold": k, "patients": len(leave), "laterals": int(lateral.sum()),
                                   "laterals_flagged": int((flagged & lateral).sum()),
                                   "upright_frontal": int(upright.sum()), "upright_flagged": int((flagged & upright).sum()),
                                   "missed": list(mine.path[lateral & ~flagged])})
    for key in ("laterals", "laterals_flagged", "upright_frontal", "upright_flagged"):
        result[key] = sum(f[key] for f in result["per_fold"])
    return result


def loso_threshold(name: str, group: str, pool: pd.DataFrame, validation_threshold: float, target_fpr: float) -> float:
    """The detector's threshold when site ``group`` is the one reported: calibrated on the other sites' uprights."""
    from detectors.calibration import threshold_at_fpr

    others = pool[(pool.detector == name) & (pool.group != group)]
    return threshold_at_fpr(others.score.to_numpy(), target_fpr, floor=validation_threshold)


def upright_pool(table: pd.DataFrame, nih: pd.DataFrame) -> pd.DataFrame:
    """Calibration films: the NIH validation uprights and the development archive's upright adult frontal films."""
    up = table[(table.truth == "upright") & (table.role == "frontal") & ~(table.age < 18) & (table.status == "ok")]
    rows = [nih.assign(group="nih")[["detector", "score", "group"]]]
    for name in SYNTHETIC:
        rows.append(pd.DataFrame({"detector": name, "score": up[f"{name}_score"].astype(float), "group": up.group}))
    return pd.concat(rows, ignore_index=True)


def flags_per_site(table: pd.DataFrame, pool: pd.DataFrame, target_fpr: float) -> pd.DataFrame:
    """Each synthetic detector's flags with the leave-one-site-out threshold of each film's site."""
    import detectors
    from detectors.bundle import load_info

    out = table.copy()
    for name in SYNTHETIC:
        info = load_info(detectors.default_bundles_dir() / name)  # the record only, no model
        validation = float(info.info["threshold_choice"].get("validation_threshold", info.threshold))
        thresholds = {g: loso_threshold(name, g, pool, validation, target_fpr) for g in out.group.dropna().unique()}
        out[f"{name}_t"] = out.group.map(thresholds)
        out[f"{name}_loso"] = out[f"{name}_score"].astype(float) >= out[f"{name}_t"]
    return out


def reasons(table: pd.DataFrame) -> pd.DataFrame:
    """The exclusion reasons with the gate: a film non_frontal flags is excluded for that alone."""
    from cleaner.scan.rules import ExclusionRules

    rules = ExclusionRules({n: 0.5 for n in (*SYNTHETIC, "non_frontal")}, gates=("non_frontal",))
    flag_cols = {n: f"{n}_loso" for n in (*SYNTHETIC, "non_frontal")}
    got = [rules.reasons({n: bool(r[c]) for n, c in flag_cols.items()}, None) for _, r in table.iterrows()]
    for n in flag_cols:
        table[f"{n}_reason"] = [n in g for g in got]
    return table


def site_table(table: pd.DataFrame) -> list[dict]:
    rows = []
    for group in [*SITE_GROUPS, "all"]:
        part = table if group == "all" else table[table.group == group]
        for name, targets in TARGETS.items():
            pos = part.truth.isin(targets)
            hit = part[f"{name}_reason"]
            tp, fp = int((hit & pos).sum()), int((hit & ~pos).sum())
            if not pos.sum() and not fp:
                continue
            rows.append(dict(site=group, detector=name, films=len(part), positives=int(pos.sum()), flagged=int(hit.sum()),
                             recall=tp / max(int(pos.sum()), 1), precision=tp / max(tp + fp, 1), false_pos=fp,
                             false_pos_examples=";".join(part.path[hit & ~pos].head(6))))
    return rows


def main(argv=None) -> int:
    default_data = Path(os.environ.get("CXCLEAN_SHARED_DATA") or REPO.parent / "shared" / "data")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", type=Path, default=Path("/tmp/cxdev/archive"))
    ap.add_argument("--truth", type=Path, default=None, help="default: ARCHIVE_truth.csv beside the archive")
    ap.add_argument("--data", type=Path, default=default_data)
    ap.add_argument("--work", type=Path, required=True, help="scans, LOSO bundles and results go here (reused)")
    ap.add_argument("--target-fpr", type=float, default=None, help="default: the defaults' (scripts/train_default_detectors.py)")
    ap.add_argument("--lateral-folds", type=int, default=3,
                    help="non_frontal on ieee's laterals by folds of patients (0: skip; 3 retrainings, ~10 min)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the non_frontal retrainings (the defaults' is 0); one work folder per seed")
    ap.add_argument("--members", type=int, default=None,
                    help="models averaged in each non_frontal retraining (default: the default's own); one work folder each")
    args = ap.parse_args(argv)
    from scripts.train_default_detectors import TARGET_FPR

    target_fpr = TARGET_FPR if args.target_fpr is None else args.target_fpr
    truth = pd.read_csv(args.truth or args.archive.parent / f"{args.archive.name}_truth.csv", dtype={"path": str})
    args.work.mkdir(parents=True, exist_ok=True)
    scores = scan_archive_once(args.archive, args.work / "scan")
    table = truth.merge(scores, on="path", how="left", suffixes=("", "_scan"))
    table["group"] = table.source.map(group_of)
    table["age"] = pd.to_numeric(table.age_years, errors="coerce")
    table = table[table.status == "ok"].copy()
    pool = upright_pool(table, nih_upright_scores(args.data, args.work))
    table = flags_per_site(table, pool, target_fpr)
    nf_scores, nf_flags = loso_non_frontal(args.archive, table, args.data, args.work, args.seed, args.members)
    table["non_frontal_loso_score"] = table.path.map(nf_scores)
    table["non_frontal_loso"] = table.path.map(nf_flags).fillna(False).astype(bool)
    table = reasons(table)
    result = {"target_fpr": target_fpr, "seed": args.seed, "members": args.members, "per_site": site_table(table)}
    adult_up = table[(table.truth == "upright") & (table.role == "frontal") & ~(table.age < 18)]
    any_flag = adult_up[[f"{n}_reason" for n in TARGETS]].any(axis=1)
    result["upright_adult_frontal"] = {"films": len(adult_up), "flagged": int(any_flag.sum()),
                                       "rate": float(any_flag.mean()), "flagged_paths": list(adult_up.path[any_flag])}
    non_frontal = table[table.truth.isin(TARGETS["non_frontal"])]
    result["non_frontal_by_truth"] = {  # the targets: >= 90 % of laterals, >= 95 % of other body parts
        f"{truth} ({source})": {"films": len(part), "flagged": int(part.non_frontal_loso.sum())}
        for (truth, source), part in non_frontal.groupby(["truth", "source"])}
    for truth, part in non_frontal.groupby("truth"):
        result["non_frontal_by_truth"][truth] = {"films": len(part), "flagged": int(part.non_frontal_loso.sum())}
    mono1 = table[table.photometric.astype(str).str.upper() == "MONOCHROME1"]
    # "called inverted": excluded as inverted (the reason a person sees); a flag under another detector's gate is not
    result["monochrome1"] = {"films": len(mono1), "called_inverted": int(mono1.inversion_reason.sum()),
                             "inversion_flag": int(mono1.inversion_loso.sum())}
    if args.lateral_folds:
        result["lateral_folds"] = lateral_folds(args.archive, table, args.data, args.work, args.lateral_folds, args.seed,
                                                 args.members)
    (args.work / "loso.json").write_text(json.dumps(result, indent=2))
    table.to_csv(args.work / "loso_table.csv", index=False)
    print(pd.DataFrame(result["per_site"]).drop(columns="false_pos_examples").to_string(index=False,
                                                                                      float_format=lambda v: f"{v:.3f}"))
    print("\nnon_frontal, leave-one-site-out, flagged per truth label: " + "; ".join(
        f"{k} {v['flagged']}/{v['films']}" for k, v in result["non_frontal_by_truth"].items()))
    up = result["upright_adult_frontal"]
    print(f"\nUpright adult frontal films flagged by any detector: {up['flagged']}/{up['films']} ({up['rate']:.2%}): "
          + "; ".join(up["flagged_paths"]))
    if args.lateral_folds:
        lf = result["lateral_folds"]
        print(f"non_frontal by {lf['folds']} folds of ieee patients (laterals in training, never the film's patient): "
              f"laterals {lf['laterals_flagged']}/{lf['laterals']}, upright frontal films {lf['upright_flagged']}/"
              f"{lf['upright_frontal']}; per fold " + "; ".join(
                  f"{f['laterals_flagged']}/{f['laterals']}" for f in lf["per_fold"]))
    mono = result["monochrome1"]
    print(f"MONOCHROME1 films called inverted: {mono['called_inverted']}/{mono['films']} (inversion flag, gated or not: "
          f"{mono['inversion_flag']})")
    print(f"target false-positive rate per detector {target_fpr}; full result {args.work / 'loso.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
