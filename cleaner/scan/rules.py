"""Which films a scan excludes and why: the exclusion rules as a pure function, and the scores.csv row they fill.

A film is excluded for each detector whose score reaches its threshold (the reason is the detector's name)
and, with an age filter, for being younger than ``min_age`` (``age<10``) or of unknown age when asked
(``age_unknown``). Reasons keep that order: detectors by name, then age. A *gate* detector (a bundle trained
with ``gate``, such as ``non_frontal``) overrides the others: on a film it flags, the other detectors' flags
are not reasons (a lateral is not "rotated"), so the film lands in the one review folder that is true; their
scores and flags stay in scores.csv. A *blank* film (every pixel the same value) is excluded as ``blank`` alone:
what the detectors say of it means nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from cleaner.scan import folder as so
from cleaner.scan.orientation import TURN_COLUMN, clockwise_degrees

#: the decoded-film metadata a scores.csv row carries (``age_years`` is written by the age rule)
META_FIELDS = ("format", "photometric", "width", "height", "age_years", "sex", "view_position", "body_part",
               "modality", "patient_id", "study_uid", "notes", "blank")


@dataclass(frozen=True)
class ExclusionRules:
    """The thresholds and the age filter a scan applies."""

    thresholds: dict  # detector name -> threshold, in the order reasons are listed
    min_age: float | None = None
    unknown_age: str = "keep"
    gates: tuple = ()  # names of gate detectors

    def flags(self, scores: dict) -> dict[str, bool]:
        """Detector name -> whether its score reaches its threshold."""
        return {name: bool(scores[name] >= t) for name, t in self.thresholds.items()}

    def reasons(self, flags: dict[str, bool], age: float | None, blank: bool = False) -> list[str]:
        """The exclusion reasons of a readable film with these detector flags and this age (None: unknown);
        a blank film is excluded as ``blank`` whatever the detectors said of it."""
        reasons = [name for name in self.thresholds if flags.get(name)]
        gated = [name for name in reasons if name in self.gates]
        if blank:
            reasons = [so.BLANK_REASON]
        elif gated:
            reasons = gated
        if self.min_age is not None:
            if age is not None and age < float(self.min_age):
                reasons.append(so.age_reason(float(self.min_age)))
            elif age is None and self.unknown_age == "exclude":
                reasons.append(so.UNKNOWN_AGE_REASON)
        return reasons


def film_age(rel: str, meta: dict, metadata) -> tuple[float | None, str]:
    """(age in years, where it came from): the file's own (DICOM), else the ``--metadata`` table's, else None."""
    age = meta.get("age_years")
    if age is not None:
        return age, "dicom"
    if metadata is not None:
        age = metadata.age_for(rel)
        if age is not None:
            return age, "metadata"
    return None, ""


def build_row(columns: list[str], rel: str, decoded: dict, scores: dict, rules: ExclusionRules, metadata=None) -> dict:
    """The scores.csv row of one film: metadata, each detector's score and flag, the turn upright, the reasons.
    ``decoded`` is the decode step's result (``error`` empty when the film was read)."""
    row = dict.fromkeys(columns, "")
    row["path"] = rel
    ok = not decoded["error"]
    row["status"] = "ok" if ok else "error"
    row["error"] = " ".join(str(decoded["error"]).split())  # one line per record, always
    meta = decoded.get("meta") or {}
    for key in META_FIELDS:
        value = meta.get(key)
        if key not in ("age_years", "blank") and value is not None:
            row[key] = value
    age, age_source = film_age(rel, meta, metadata)
    if age is not None:
        row["age_years"], row["age_source"] = so.format_age(age), age_source
    if not ok:
        row["excluded"] = "False"
        return row
    flags = rules.flags(scores)
    for name, flag in flags.items():
        row[f"{name}_score"] = so.format_score(scores[name])
        row[f"{name}_flag"] = str(flag)
    if TURN_COLUMN in columns and scores.get(TURN_COLUMN):
        row[TURN_COLUMN] = str(clockwise_degrees(scores[TURN_COLUMN]))
    reasons = rules.reasons(flags, age, blank=bool(meta.get("blank")))
    row["excluded"] = str(bool(reasons))
    row["reasons"] = ";".join(reasons)
    return row
