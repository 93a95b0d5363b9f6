"""Patient age in years from DICOM's Age String or from birth and study dates."""
from __future__ import annotations

import datetime as _dt
import re

_AGE_UNITS = {"Y": 1.0, "M": 1.0 / 12.0, "W": 7.0 / 365.25, "D": 1.0 / 365.25}
_AGE_RE = re.compile(r"^\s*(\d{1,3})\s*([YMWD])\s*$", re.IGNORECASE)


def parse_age_string(value) -> float | None:
    """DICOM AS ('045Y', '006M', '003W', '010D') to years; None when absent or malformed."""
    if value is None:
        return None
    match = _AGE_RE.match(str(value))
    if not match:
        return None
    return round(int(match.group(1)) * _AGE_UNITS[match.group(2).upper()], 4)


def _parse_da(value) -> _dt.date | None:
    text = str(value or "").strip().replace(".", "")  # ACR-NEMA style 1990.01.31
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def age_from_dates(birth, study) -> float | None:
    """Age in years at the study date; None unless both dates are valid and in order."""
    born, seen = _parse_da(birth), _parse_da(study)
    if born is None or seen is None or seen < born:
        return None
    return round((seen - born).days / 365.25, 4)


def parse_age_value(value) -> float | None:
    """A metadata-CSV age: plain years ('61', '61.5') or a DICOM age string ('061Y')."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.lower() in {"nan", "none", "unknown"}:
        return None
    try:
        years = float(text)
    except ValueError:
        return parse_age_string(text)
    return years if 0 <= years < 150 else None
