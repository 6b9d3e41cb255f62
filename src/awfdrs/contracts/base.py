"""The base of every contract, and the helpers the others share."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
)

Text255 = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
MAX_NAME = 64
MAX_DESCRIPTION = 1000


def field_name(part: object) -> str:
    """A path element as a reason shows it: plain names as they are, any other name (the sender
    chose it: it may hold dots, quotes, line breaks, kilobytes) as a short JSON string."""
    text = str(part)
    if isinstance(part, int) or PLAIN_NAME.fullmatch(text):
        return text
    quoted = json.dumps(text)  # escapes quotes and control characters
    return quoted if len(quoted) <= MAX_NAME else f'{quoted[: MAX_NAME - 2]}…"'


def printable(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """``text`` with every non-printable character escaped, cut at ``limit``: reasons travel
    back to senders and into logs, where a raw line break could forge a line."""
    safe = "".join(
        c if c.isprintable() else json.dumps(c, ensure_ascii=True)[1:-1] for c in text[: limit + 1]
    )
    return safe if len(safe) <= limit else f"{safe[: limit - 1]}…"


def describe_validation_error(error: ValidationError, limit: int = 3) -> str:
    """``field.path: message`` for the first ``limit`` problems, for humans and logs."""
    parts = []
    for problem in error.errors()[:limit]:
        location = ".".join(field_name(p) for p in problem["loc"]) or "event"
        message = str(problem["msg"]).removeprefix("Value error, ")
        if message.startswith(location + ":") or message.startswith(f"{location}."):
            parts.append(message)
        elif message.startswith("."):
            # A validator naming a part of its field (a header of ``headers``).
            parts.append(location + message)
        else:
            parts.append(f"{location}: {message}")
    more = len(error.errors()) - limit
    return printable("; ".join(parts) + (f" (and {more} more)" if more > 0 else ""))


def _no_lone_surrogates(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains invalid Unicode (a lone surrogate)") from None
    return value


def _name_text(value: str) -> str:
    """Who acted: one line of printable text (it is shown in lists and audit lines)."""
    _no_lone_surrogates(value)
    if not value.isprintable():
        raise ValueError("must be printable: no control characters or line breaks")
    return value


def _prose_text(value: str) -> str:
    """Why: printable text, line breaks and tabs allowed; PostgreSQL cannot store a NUL."""
    _no_lone_surrogates(value)
    if not all(c.isprintable() or c in "\n\t" for c in value):
        raise ValueError("must not contain control characters other than line breaks and tabs")
    return value


# Operator text is validated like event text: a NUL or a lone surrogate refused at the door
# instead of wedging a transaction that can never commit.
Actor = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    AfterValidator(_name_text),
]
Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_prose_text),
]
OptionalReason = (
    Annotated[
        str,
        StringConstraints(strip_whitespace=True, max_length=2000),
        AfterValidator(_prose_text),
    ]
    | None
)
