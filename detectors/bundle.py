"""Detector bundles: a folder holding a Keras model and ``detector.json``, reusable on any archive.

``detector.json`` records everything needed to trust and reproduce a detector: kind, backbone,
input spec (the preprocessing), threshold and how it was chosen, metrics, training-set hash,
library versions and seed. The model is loaded in Keras safe mode (no arbitrary code).
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from cleaner.io.errors import CxcleanError
from cleaner.io.manifests import file_sha256
from cleaner.io.preprocess import InputSpec, preprocess

from .bundle_schema import FORMAT_VERSION, info_problems

MODEL_FILE = "model.keras"
INFO_FILE = "detector.json"
#: the folder, inside this package, of the bundled default detectors
DEFAULT_BUNDLES = "default_bundles"


class BundleError(CxcleanError, ValueError):
    """A detector bundle that cannot be used: not a bundle, changed, or malformed; the message names the file."""


def default_bundles_dir() -> Path | None:
    """The bundled default detectors (``detectors/default_bundles``, found through the installed package), or
    None when this installation has none."""
    from importlib import resources

    root = Path(str(resources.files("detectors").joinpath(DEFAULT_BUNDLES)))
    return root if any(root.glob(f"*/{INFO_FILE}")) else None


def library_versions() -> dict:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for dist in ("cxclean", "keras", "tensorflow", "tensorflow-cpu", "torch", "jax", "numpy", "pillow", "pydicom"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return versions


@dataclass
class Detector:
    """A loaded detector: scores batches of preprocessed images, and knows its own provenance."""

    model: object  # keras.Model: input (N, size, size, 1) float32 in [0, 1], output (N, 1) probability
    info: dict
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def kind(self) -> str:
        return self.info["kind"]

    @property
    def version(self) -> str:
        return self.info.get("version", "unversioned")

    @property
    def threshold(self) -> float:
        return float(self.info["threshold"])

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec.from_dict(self.info["input"])

    def predict(self, batch: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Scores in [0, 1] (higher = artefact present) for a batch already run through ``preprocess``, through
        the model's compiled scorer (``detectors.inference``, the one scoring step)."""
        from .inference import predict

        return predict(self.model, batch, batch_size)

    def score(self, images: Iterable, batch_size: int = 64) -> np.ndarray:
        """Scores for images given as paths or decoded [0, 1] arrays of any size (read and preprocessed here)."""
        from cleaner.io.images import read_image

        spec = self.input_spec
        arrays = []
        for image in images:
            if isinstance(image, (str, os.PathLike)):
                image = read_image(image).pixels
            arrays.append(preprocess(np.asarray(image, dtype=np.float32), spec))
        if not arrays:
            return np.zeros((0,), dtype=np.float32)
        return self.predict(np.stack(arrays), batch_size=batch_size)

    def flags(self, scores: Sequence[float], threshold: float | None = None) -> np.ndarray:
        t = self.threshold if threshold is None else threshold
        return np.asarray(scores) >= t


def save_bundle(model, info: dict, out: str | os.PathLike) -> Path:
    """Write ``model`` and ``info`` to the bundle folder ``out``; fills in the version (model sha256)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for key in ("name", "kind", "input", "threshold"):
        if key not in info:
            raise ValueError(f"detector info lacks {key!r}")
    model_path = out / MODEL_FILE
    inference_copy(model).save(model_path)
    info = dict(info)
    info.setdefault("format_version", FORMAT_VERSION)
    info["model_file"] = MODEL_FILE
    info["model_sha256"] = file_sha256(model_path)
    info["version"] = f"{info['name']}-{info['model_sha256'][:12]}"
    info.setdefault("libraries", library_versions())
    write_info(out, info)
    return out


def write_info(folder: str | os.PathLike, info: dict) -> None:
    """Write a bundle's ``detector.json`` (a new threshold from calibration, say: the model and version stay)."""
    (Path(folder) / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True, default=_json_default) + "\n")


def inference_copy(model):
    """The same architecture and weights without the optimizer: a bundle only predicts, and Adam's
    two moment tensors per weight would triple the file."""
    if getattr(model, "optimizer", None) is None:
        return model
    # from_config, not clone_model or model_from_json: those compile the copy again, optimizer and all
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def load_info(path: str | os.PathLike) -> Detector:
    """A bundle's ``Detector`` without its model (``model`` is None): name, kind, version, threshold and input spec
    for a process that only directs scoring done elsewhere (the Ray engine's driver). The description passes the
    same schema as ``load``'s; it never starts TensorFlow, which on a GPU node would take the memory the scoring
    actors need; the process that scores calls ``load``."""
    path = Path(path)
    folder = path.parent if path.name == INFO_FILE else path
    return Detector(model=None, info=read_info(folder), path=folder)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in detector.json")


def read_info(folder: str | os.PathLike) -> dict:
    """The bundle ``folder``'s ``detector.json``, checked against the schema (``bundle_schema``); a
    ``BundleError`` names the file and every field that is wrong."""
    info_path = Path(folder) / INFO_FILE
    if not info_path.is_file():
        raise BundleError(f"{folder}: not a detector bundle (no {INFO_FILE})")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{info_path}: not valid JSON ({exc})") from None
    problems = info_problems(info, Path(folder))
    if problems:
        raise BundleError(f"{info_path}: " + "; ".join(problems))
    return info


def load(path: str | os.PathLike) -> Detector:
    """Load a bundle folder (or its ``detector.json``): the JSON must pass the schema (``bundle_schema``), the
    model file must sit inside the folder and match its recorded sha256, and Keras loads it in safe mode."""
    path = Path(path)
    folder = path.parent if path.name == INFO_FILE else path
    info = read_info(folder)
    model_path = folder / info["model_file"]
    if file_sha256(model_path) != info["model_sha256"].lower():
        raise BundleError(f"{model_path}: model file does not match the sha256 in {INFO_FILE} (changed or corrupt)")
    import keras

    from . import layers  # noqa: F401  registers cxclean's serialisable layers before loading

    model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    return Detector(model=model, info=info, path=folder)


def find_bundles(root: str | os.PathLike) -> list[Path]:
    """Every bundle folder at or below ``root``, sorted; folders reached through symbolic links are searched too
    (as the archive walker does), each real folder once, so a link loop ends."""
    root = Path(root)
    if (root / INFO_FILE).is_file():
        return [root]
    found, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        try:
            st = os.stat(folder)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        if INFO_FILE in files:
            found.append(Path(folder))
    return sorted(found)
