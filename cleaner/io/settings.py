"""Settings dataclasses (``ScanConfig``, ``TrainConfig``) built from a base and keyword overrides, one way."""
from __future__ import annotations

from dataclasses import asdict, fields


def with_settings(cls, config=None, what: str = "setting", **settings):
    """An instance of dataclass ``cls``: ``config``'s values (or the defaults) with ``settings`` replacing them;
    a name that is not a field is refused, so a misspelt keyword never passes silently."""
    base = asdict(config) if config is not None else {}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"unknown {what}(s) {unknown}; known: {sorted(known)}")
    base.update(settings)
    return cls(**base)
