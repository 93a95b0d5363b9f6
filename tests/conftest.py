"""Shared fixtures: a generated archive with known answers, rule-based detector bundles, real data."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
HELPERS = TESTS / "helpers"
if str(HELPERS) not in sys.path:
    sys.path.insert(0, str(HELPERS))  # so test modules can `import archive_builder`
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def shared_data_root() -> Path | None:
    """``/work/shared/data`` (``../shared/data`` from the repo) or ``$CXCLEAN_SHARED_DATA``; None when absent."""
    env = os.environ.get("CXCLEAN_SHARED_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    return root if root.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    root = shared_data_root()
    if root is None:
        pytest.skip("real data not available (../shared/data or $CXCLEAN_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def rule_bundles(tmp_path_factory) -> Path:
    """A folder holding the ``rotation`` and ``inversion`` rule-detector bundles (real Keras models)."""
    from archive_builder import build_detectors

    base = tmp_path_factory.mktemp("bundles")
    build_detectors(base)
    return base


@pytest.fixture
def built_archive(tmp_path):
    """A fresh generated archive (PNG/JPEG/DICOM, planted artefacts, corrupt files, a symlink loop)."""
    from archive_builder import build_archive

    return build_archive(tmp_path)


@pytest.fixture
def subprocess_env() -> dict:
    """Environment for running ``python -m cleaner`` in a child process from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env
