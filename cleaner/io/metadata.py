"""Patient ages from a metadata CSV (``--metadata``), joined to archive files by relative path or name.

Archives of PNG/JPEG exports carry no age in the file; datasets ship it in a table instead
(ChestX-ray14: ``Image Index`` / ``Patient Age``). The join tries the relative path first, then
the bare file name; a file name listed twice with different ages is ambiguous and never joined
by name, so no image gets another patient's age.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cleaner.io.ages import parse_age_value
from cleaner.io.errors import CxcleanError

#: Tried in order when ``--id-column`` / ``--age-column`` are not given.
ID_COLUMN_CANDIDATES = ("path", "Image Index", "image", "file", "filename", "file_name", "image_id")
AGE_COLUMN_CANDIDATES = ("age_years", "Patient Age", "age", "PatientAge", "patient_age")


class MetadataError(CxcleanError, ValueError):
    """A metadata CSV that cannot be used; the message names the file and what is wrong."""


def _norm_key(value: str) -> str:
    text = str(value).strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text


def _pick(columns, wanted: str | None, candidates, what: str, path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise MetadataError(f"{path}: no column {wanted!r} for the {what}; columns are {list(columns)}")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise MetadataError(
        f"{path}: cannot tell which column holds the {what}; pass --{what.replace(' ', '-')}-column "
        f"(columns are {list(columns)})"
    )


@dataclass
class AgeTable:
    """Ages by relative path and by file name, from one metadata CSV."""

    source: Path
    id_column: str
    age_column: str
    sha256: str
    by_path: dict[str, float | None] = field(default_factory=dict)
    by_name: dict[str, float | None] = field(default_factory=dict)
    ambiguous_names: set[str] = field(default_factory=set)
    rows: int = 0
    unparsable: int = 0

    @classmethod
    def from_csv(cls, path, id_column: str | None = None, age_column: str | None = None) -> "AgeTable":
        import pandas as pd

        from cleaner.io.manifests import file_sha256

        path = Path(path)
        if not path.is_file():
            raise MetadataError(f"{path}: metadata CSV not found")
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception as exc:  # pandas raises many types for bad CSVs
            raise MetadataError(f"{path}: cannot read as CSV: {exc}") from None
        id_col = _pick(frame.columns, id_column, ID_COLUMN_CANDIDATES, "id", path)
        age_col = _pick(frame.columns, age_column, AGE_COLUMN_CANDIDATES, "age", path)
        table = cls(source=path.resolve(), id_column=id_col, age_column=age_col, sha256=file_sha256(path))
        names_seen: dict[str, float | None] = {}
        for key, raw in zip(frame[id_col], frame[age_col]):
            key = _norm_key(key)
            if not key:
                continue
            age = parse_age_value(raw)
            table.rows += 1
            if age is None and str(raw).strip():
                table.unparsable += 1
            table.by_path[key] = age
            name = PurePosixPath(key).name
            if name in names_seen and names_seen[name] != age:
                table.ambiguous_names.add(name)
            names_seen[name] = age
        table.by_name = {n: a for n, a in names_seen.items() if n not in table.ambiguous_names}
        return table

    def age_for(self, rel_path: str) -> float | None:
        """Age for the archive file at ``rel_path`` ('/' separators), or None when the table has none."""
        key = _norm_key(rel_path)
        if key in self.by_path:
            return self.by_path[key]
        return self.by_name.get(PurePosixPath(key).name)

    def describe(self) -> dict:
        return {
            "path": str(self.source), "sha256": self.sha256, "id_column": self.id_column,
            "age_column": self.age_column,
        }
