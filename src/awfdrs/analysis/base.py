"""The Analyzer protocol and what it is given and returns."""

from __future__ import annotations

import importlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from awfdrs.contracts import ErrorInfo, RetrySpec
from awfdrs.enums import ActionType, ErrorClass
from awfdrs.errors import ConfigError


@dataclass(frozen=True)
class IncidentFacts:
    """What is known about an incident when it is analysed; built inside the activity."""

    incident_id: uuid.UUID
    signature: str
    operation: str
    event_type: str
    event_count: int
    attempt: int
    error: ErrorInfo | None
    retry: RetrySpec | None
    vendor_name: str | None
    vendor_registered: bool
    prior_retry_successes: int
    prior_retry_failures: int
    regression_of: uuid.UUID | None = None
    request_count: int = 1  # affected requests not yet settled
    # The tenant has a connection to the vendor: its retries go nowhere else.
    vendor_connected: bool = True


@dataclass(frozen=True)
class Analysis:
    decision_type: ActionType
    classification: ErrorClass
    confidence: float
    reasoning: str
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Analyzer(Protocol):
    """Decides what to do about an incident. Must not write anything: the activity records.

    ``model`` is stored as the decision's ``ai_model``, so decisions stay attributable when the
    analyzer changes.
    """

    model: str

    async def analyze(self, facts: IncidentFacts) -> Analysis: ...


def load_analyzer(path: str) -> Analyzer:
    """Instantiate ``module:Class`` (the ``AWFDRS_ANALYZER`` setting)."""
    module_name, _, class_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"AWFDRS_ANALYZER: cannot load {path!r} ({exc})") from None
    analyzer = cls()
    if not isinstance(analyzer, Analyzer):
        raise ConfigError(f"AWFDRS_ANALYZER: {path!r} is not an Analyzer (model, analyze)")
    return analyzer
