"""Small helpers that put values into words the same way everywhere (CLI, UI, escalations)."""

from __future__ import annotations

import unicodedata
from datetime import timedelta


def span(delta: timedelta | float) -> str:
    """``1h 2m 3s``: durations as people read them, never ``1:02:03``."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return " ".join(parts) or "0s"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def same_principal(a: str, b: str) -> bool:
    """Whether two names are one principal for the two-person rule: ``Alice`` and ``alice``,
    or a fullwidth or compatibility form of it, are the same person, not a second one."""
    return principal_key(a) == principal_key(b)


def principal_key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold().strip()
