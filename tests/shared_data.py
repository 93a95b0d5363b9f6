"""Where the real radiographs live, and a marker that skips tests when they are absent."""
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("CXCLEAN_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")

needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "README.md").is_file(), reason=f"real radiographs not found at {SHARED_DATA}"
)
