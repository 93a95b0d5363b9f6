"""What a ``detector.json`` must hold before anything in it is trusted.

A bundle may come from anyone (a colleague's share, a download). A threshold of NaN or 5 would flag nothing
without a word, an input size of 100 000 pixels would exhaust memory, and a ``model_file`` of
``../../x/model.keras`` would load a model from outside the bundle; each is refused here with the field and the
reason. Only the fields a scan relies on are checked; the rest (metrics, history) is provenance, read by people.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from cleaner.io.preprocess import BORDERS, NORMALISATIONS

#: the ``format_version`` this cxclean writes and reads
FORMAT_VERSION = 1
#: model inputs beyond this side are refused: a batch of them would not fit in memory
MAX_INPUT_SIZE = 2048
MIN_INPUT_SIZE = 16
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _name_ok(value) -> bool:
    # the same rule as ``TrainConfig``'s --name: it becomes the <name>_score column and a reason (";"-joined)
    return isinstance(value, str) and value.replace("_", "").isalnum()


def plain_file_name(value) -> bool:
    """A file name with no folder part (no ``/``, ``\\``, ``..``, not absolute): it can only name a file
    directly inside the bundle folder."""
    return (isinstance(value, str) and value not in ("", ".", "..") and "/" not in value and "\\" not in value
            and "\0" not in value)


def _input_problems(spec) -> list[str]:
    if not isinstance(spec, dict):
        return [f"input: must be an object (size, normalisation, low_pct, high_pct), not {spec!r}"]
    problems = []
    size = spec.get("size")
    if not (isinstance(size, int) and not isinstance(size, bool) and MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE):
        problems.append(f"input.size: must be a whole number between {MIN_INPUT_SIZE} and {MAX_INPUT_SIZE} "
                        f"(pixels), not {size!r}")
    if spec.get("normalisation", "percentile") not in NORMALISATIONS:
        problems.append(f"input.normalisation: must be one of {', '.join(NORMALISATIONS)}, "
                        f"not {spec.get('normalisation')!r}")
    if spec.get("borders", "keep") not in BORDERS:
        problems.append(f"input.borders: must be one of {', '.join(BORDERS)}, not {spec.get('borders')!r}")
    low, high = spec.get("low_pct", 0.5), spec.get("high_pct", 99.5)
    if not (_is_number(low) and _is_number(high) and 0 <= low < high <= 100):
        problems.append(f"input: percentiles must be numbers with 0 <= low_pct < high_pct <= 100, not {low!r}, {high!r}")
    return problems


def info_problems(info, folder: Path) -> list[str]:
    """Every way ``info`` (a parsed ``detector.json`` of the bundle ``folder``) breaks the schema; [] when none.

    ``folder`` is where the model file must be: directly inside it, also after following links."""
    if not isinstance(info, dict):
        return ["expected a JSON object"]
    problems = []
    for key in ("name", "kind", "threshold", "input", "model_file", "model_sha256"):
        if key not in info:
            problems.append(f"{key}: missing")
    if "name" in info and not _name_ok(info["name"]):
        problems.append(f"name: must be letters, digits and underscores (it names scan columns), not {info['name']!r}")
    if "kind" in info and not (isinstance(info["kind"], str) and info["kind"].strip()):
        problems.append(f"kind: must be a non-empty text, not {info['kind']!r}")
    t = info.get("threshold")
    if "threshold" in info and not (_is_number(t) and math.isfinite(t) and 0.0 <= t <= 1.0):
        problems.append(f"threshold: must be a finite number between 0 and 1, not {t!r}")
    if "input" in info:
        problems += _input_problems(info["input"])
    sha = info.get("model_sha256")
    if "model_sha256" in info and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        problems.append(f"model_sha256: must be 64 hexadecimal digits (the model file's sha256), not {sha!r}")
    version = info.get("format_version", FORMAT_VERSION)
    if not (isinstance(version, int) and not isinstance(version, bool) and 1 <= version):
        problems.append(f"format_version: must be a whole number from 1, not {version!r}")
    elif version > FORMAT_VERSION:
        problems.append(f"format_version: {version} was written by a newer cxclean (this one reads {FORMAT_VERSION})")
    if "model_file" in info:
        problems += _model_file_problems(info["model_file"], Path(folder))
    return problems


def _model_file_problems(name, folder: Path) -> list[str]:
    if not plain_file_name(name):
        return [f"model_file: must be a plain file name inside the bundle folder, not {name!r}"]
    path = folder / name
    if not path.is_file():
        return [f"model_file: {path} not found"]
    if path.resolve().parent != folder.resolve():
        return [f"model_file: {path} is a link to {path.resolve()}, outside the bundle folder; not loaded"]
    return []
