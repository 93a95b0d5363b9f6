"""The scan's journal: every row as soon as it is scored (``scores.partial.jsonl``, flushed and fsynced per batch)
and the settings it was made with (``scan.config.json``), so that a killed scan resumes where it stopped
and a resumed scan never mixes rows made with other settings.

One JSON array per line (the first line: the column names). JSON escapes every newline inside a value, so a
line that ends in a newline is a whole row and anything else is a cut: a kill can never leave a row that reads
as another (as a cut inside a quoted CSV field with a newline could, and swallow the next row on resume).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from cleaner.scan import folder as so
from cleaner.scan.config import ScanError

#: settings a resumed scan may change: they decide how fast, not what
IGNORED = ("speed",)


def _line(values: list) -> bytes:
    # ensure_ascii: file names that are not valid UTF-8 (surrogate escapes) are stored too
    return (json.dumps(values, ensure_ascii=True) + "\n").encode("ascii")


def _cell(value) -> str:
    """A value as the csv module writes it (None as empty), so the final CSVs are what a CSV journal gave."""
    return "" if value is None else str(value)


class Journal:
    """Rows written so far (``scores.partial.jsonl``) and the settings they were made with."""

    def __init__(self, out: Path, columns: list[str], config: dict):
        self.out = Path(out)
        self.path = self.out / so.JOURNAL_FILE
        self.config_path = self.out / so.CONFIG_FILE
        self.columns = columns
        self.config = config
        self.fh = None

    def exists(self) -> bool:
        return self.config_path.is_file()

    def check_config(self) -> None:
        try:
            saved = json.loads(self.config_path.read_text())
        except (OSError, ValueError) as exc:
            raise ScanError(f"{self.config_path}: unreadable scan settings ({exc}); use --overwrite") from None
        current = json.loads(json.dumps(self.config, default=str))
        if saved.get("format") != current.get("format"):
            raise ScanError(f"{self.out}: this scan was started by another version of cxclean (journal format "
                            f"{saved.get('format')!r}, now {current.get('format')!r}); use --overwrite to start again")
        keys = sorted(k for k in set(saved) | set(current) if k not in IGNORED and saved.get(k) != current.get(k))
        if keys:
            diffs = "; ".join(f"{k}: journal has {saved.get(k)!r}, now {current.get(k)!r}" for k in keys)
            raise ScanError(
                f"{self.out}: cannot resume with different settings ({diffs}). "
                "Re-run with the original settings, or use --overwrite to start again."
            )

    def start(self) -> None:
        so.atomic_write_text(self.config_path, json.dumps(self.config, indent=2, default=str) + "\n")
        self.fh = open(self.path, "wb")
        self.fh.write(_line(self.columns))
        self._sync()

    def reopen(self) -> set[str]:
        """Keep the whole rows (a cut last line, or a damaged line and all after it, is dropped: those files
        are scanned again), return their paths, append from here."""
        if not self.path.is_file():
            self.start()
            return set()
        done, keep, header = set(), 0, None
        with open(self.path, "rb") as fh:
            for line in fh:
                values = self._parse(line, header is None)
                if values is None:
                    break
                if header is None:
                    header = values
                    if header != self.columns:
                        raise ScanError(f"{self.path}: journal columns differ from this scan's; use --overwrite")
                else:
                    done.add(values[0])
                keep += len(line)
        self.fh = open(self.path, "r+b")
        self.fh.truncate(keep)
        self.fh.seek(keep)
        if header is None:
            self.fh.write(_line(self.columns))
        self._sync()
        return done

    def _parse(self, line: bytes, header: bool) -> list | None:
        """A whole line's values, or None for a cut or damaged one."""
        if not line.endswith(b"\n"):
            return None
        try:
            values = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return None
        if not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
            return None
        return values if header or len(values) == len(self.columns) else None

    def append(self, rows: list[dict]) -> None:
        self.fh.write(b"".join(_line([_cell(row.get(c)) for c in self.columns]) for row in rows))
        self._sync()

    def _sync(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        if self.fh is not None and not self.fh.closed:
            self.fh.close()

    def iter_rows(self) -> Iterator[dict]:
        """The journalled rows as ``{column: text}``, in the order they were written."""
        with open(self.path, "rb") as fh:
            columns = json.loads(next(fh))
            for line in fh:
                yield dict(zip(columns, json.loads(line)))

    def remove(self) -> None:
        self.close()
        for p in (self.path, self.config_path):
            if p.exists():
                p.unlink()
