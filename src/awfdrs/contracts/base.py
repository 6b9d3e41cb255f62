"""The base of every contract, and the helpers the others share."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import (
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


def describe_validation_error(error: ValidationError, limit: int = 3) -> str:
    """``field.path: message`` for the first ``limit`` problems, for humans and logs."""
    parts = []
    for problem in error.errors()[:limit]:
        location = ".".join(str(p) for p in problem["loc"]) or "event"
        message = str(problem["msg"]).removeprefix("Value error, ")
        if message.startswith(location + ":") or message.startswith(f"{location}."):
            parts.append(message)
        else:
            parts.append(f"{location}: {message}")
    more = len(error.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


Actor = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
