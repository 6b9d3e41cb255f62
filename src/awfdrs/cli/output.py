"""What commands print: the two consoles, JSON, and times with their zone (durations:
:func:`awfdrs.words.span`)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console

# Piped output is read by people and greps alike: no 80-column truncation of ids.
_WIDTH = None if sys.stdout.isatty() else 220
console = Console(highlight=False, soft_wrap=True, width=_WIDTH)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        text = value.model_dump_json(indent=2)
    else:
        text = json.dumps(value, indent=2, default=str)
    typer.echo(text)


def format_time(value: datetime | str | None, *, precise: bool = False) -> str:
    """A time in UTC with its zone, ``2026-12-03 12:00:05 UTC`` (milliseconds when precise);
    an ISO string (as the read model and the API give) is parsed first; None is ``—``."""
    if value is None:
        return "—"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:  # the database gives aware times; a naive one is taken as UTC
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    shown = when.strftime("%Y-%m-%d %H:%M:%S")
    if precise:
        shown += f".{when.microsecond // 1000:03d}"
    return f"{shown} UTC"
