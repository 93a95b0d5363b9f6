"""The scan journal survives a cut at any byte: a resumed scan never loses, merges or mangles a row, whatever the
file names hold (newlines, quotes, commas, carriage returns)."""
from __future__ import annotations

import json

import pytest

from cleaner.scan import ScanError
from cleaner.scan.folder import CONFIG_FILE, JOURNAL_FILE
from cleaner.scan.journal import Journal

COLUMNS = ["path", "status", "error", "excluded", "reasons"]
HOSTILE_NAMES = ["plain.png", 'we\nird "quoted", name.png', "cr\rname.png", "tail\n", "ü,nicode\r\n.png", "last.png"]


def rows_for(names):
    return [{"path": n, "status": "ok", "error": "", "excluded": "True" if i % 2 else "False",
             "reasons": "rotation" if i % 2 else ""} for i, n in enumerate(names)]


def test_a_cut_at_any_byte_of_the_journal_loses_no_row(tmp_path):
    rows = rows_for(HOSTILE_NAMES)
    config = {"format": "test"}
    whole = tmp_path / "whole"
    whole.mkdir()
    journal = Journal(whole, COLUMNS, config)
    journal.start()
    header_end = (whole / JOURNAL_FILE).stat().st_size
    for row in rows:
        journal.append([row])
    journal.close()
    data = (whole / JOURNAL_FILE).read_bytes()
    for cut in range(header_end, len(data) + 1):  # killed after any byte of any row
        out = tmp_path / f"cut{cut}"
        out.mkdir()
        (out / JOURNAL_FILE).write_bytes(data[:cut])
        (out / CONFIG_FILE).write_text(json.dumps(config))
        resumed = Journal(out, COLUMNS, config)
        done = resumed.reopen()
        assert done <= set(HOSTILE_NAMES), (cut, done)
        resumed.append([r for r in rows if r["path"] not in done])  # what the resumed scan scores again
        resumed.close()
        got = list(resumed.iter_rows())
        assert sorted(got, key=lambda r: r["path"]) == sorted(rows, key=lambda r: r["path"]), cut


def test_a_damaged_line_inside_the_journal_is_dropped_with_what_follows(tmp_path):
    """Power loss can leave garbage, not only a short last line: those rows are scanned again, never misread."""
    rows = rows_for(HOSTILE_NAMES)
    journal = Journal(tmp_path, COLUMNS, {})
    journal.start()
    journal.append(rows)
    journal.close()
    lines = (tmp_path / JOURNAL_FILE).read_bytes().split(b"\n")
    lines[3] = b"\0\0\0\0"
    (tmp_path / JOURNAL_FILE).write_bytes(b"\n".join(lines))
    assert Journal(tmp_path, COLUMNS, {}).reopen() == set(HOSTILE_NAMES[:2])


def test_a_journal_of_other_columns_is_refused(tmp_path):
    Journal(tmp_path, COLUMNS, {}).start()
    with pytest.raises(ScanError, match="journal columns differ"):
        Journal(tmp_path, COLUMNS + ["extra"], {}).reopen()
