"""The scan's journal: every row as soon as it is scored (``scores.partial.csv``, flushed and fsynced per batch)
and the settings it was made with (``scan.config.json``), so that a killed scan resumes where it stopped
and a resumed scan never mixes rows made with other settings."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterator

from cleaner.scan import folder as so
from cleaner.scan.config import ScanError

#: settings a resumed scan may change: they decide how fast, not what
IGNORED = ("speed",)


class Journal:
    """Rows written so far (``scores.partial.csv``) and the settings they were made with."""

    def __init__(self, out: Path, columns: list[str], config: dict):
        self.out = Path(out)
        self.path = self.out / so.JOURNAL_FILE
        self.config_path = self.out / so.CONFIG_FILE
        self.columns = columns
        self.config = config
        self.fh = None
        self.writer = None

    def exists(self) -> bool:
        return self.config_path.is_file()

    def check_config(self) -> None:
        try:
            saved = json.loads(self.config_path.read_text())
        except (OSError, ValueError) as exc:
            raise ScanError(f"{self.config_path}: unreadable scan settings ({exc}); use --overwrite") from None
        current = json.loads(json.dumps(self.config, default=str))
        keys = sorted(k for k in set(saved) | set(current) if k not in IGNORED and saved.get(k) != current.get(k))
        if keys:
            diffs = "; ".join(f"{k}: journal has {saved.get(k)!r}, now {current.get(k)!r}" for k in keys)
            raise ScanError(
                f"{self.out}: cannot resume with different settings ({diffs}). "
                "Re-run with the original settings, or use --overwrite to start again."
            )

    def start(self) -> None:
        so.atomic_write_text(self.config_path, json.dumps(self.config, indent=2, default=str) + "\n")
        self.fh = open(self.path, "w", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.fh, fieldnames=self.columns, extrasaction="ignore")
        self.writer.writeheader()
        self._sync()

    def reopen(self) -> set[str]:
        """Drop a half-written last line (a kill mid-write), return the journalled paths, append from here."""
        if not self.path.is_file():
            self.start()
            return set()
        with open(self.path, "rb+") as fh:
            data_end = fh.seek(0, os.SEEK_END)
            if data_end:
                fh.seek(max(0, data_end - 1))
                if fh.read(1) != b"\n":
                    fh.seek(0)
                    content = fh.read()
                    fh.truncate(content.rfind(b"\n") + 1)
        done = set()
        with open(self.path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is not None and header != self.columns:
                raise ScanError(f"{self.path}: journal columns differ from this scan's; use --overwrite")
            for row in reader:
                if row:
                    done.add(row[0])
        self.fh = open(self.path, "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.fh, fieldnames=self.columns, extrasaction="ignore")
        if header is None:
            self.writer.writeheader()
            self._sync()
        return done

    def append(self, rows: list[dict]) -> None:
        self.writer.writerows(rows)
        self._sync()

    def _sync(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        if self.fh is not None and not self.fh.closed:
            self.fh.close()

    def iter_rows(self) -> Iterator[dict]:
        with open(self.path, newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)

    def remove(self) -> None:
        self.close()
        for p in (self.path, self.config_path):
            if p.exists():
                p.unlink()
