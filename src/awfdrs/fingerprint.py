"""Failure fingerprints: which events belong to the same incident.

``signature = sha256([version, workflow_id, operation, key])`` where ``operation`` is the event
type without its outcome suffix and ``key`` is the error code, else the error message with its
variable parts stripped, unless the payload's ``fingerprint`` list overrides both. Bump
:data:`FINGERPRINT_VERSION` whenever the result for some input changes: stored signatures keep
the version they were computed with.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence

from awfdrs.enums import EventOutcome

FINGERPRINT_VERSION = 1

FAILURE_SUFFIXES = frozenset(
    {"failed", "failure", "error", "errored", "timeout", "timed_out", "rejected", "declined"}
)
SUCCESS_SUFFIXES = frozenset(
    {"succeeded", "success", "completed", "ok", "recovered", "processed", "synced", "paid"}
)

# Order matters: UUIDs and hex ids before bare numbers, quoted values before anything inside.
_NORMALISERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`"), "<q>"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<uuid>",
    ),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<hex>"),
    (re.compile(r"\b[a-z]+_[A-Za-z0-9]{10,}\b"), "<id>"),  # prefixed ids: ch_3NxYz..., req_8f2...
    (re.compile(r"[-+]?\d+(?:[.,:]\d+)*"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def split_event_type(event_type: str) -> tuple[str, EventOutcome]:
    """``payment.failed`` → (``payment``, FAILURE); a type without a known suffix is neutral."""
    operation, _, suffix = event_type.rpartition(".")
    if operation:
        if suffix in FAILURE_SUFFIXES:
            return operation, EventOutcome.FAILURE
        if suffix in SUCCESS_SUFFIXES:
            return operation, EventOutcome.SUCCESS
    return event_type, EventOutcome.NEUTRAL


def normalise_message(message: str) -> str:
    """The message with numbers, UUIDs, hex ids and quoted values replaced by placeholders."""
    text = message.strip()
    for pattern, replacement in _NORMALISERS:
        text = pattern.sub(replacement, text)
    return text.strip().lower()


def grouping_key(
    *, code: str | None, message: str | None, fingerprint: Sequence[str] | None
) -> list[str]:
    """What distinguishes one failure of an operation from another."""
    if fingerprint:
        return ["fingerprint", *fingerprint]
    if code and code.strip():
        return ["code", code.strip().lower()]
    if message and message.strip():
        return ["message", normalise_message(message)]
    return ["none"]


def signature(
    *,
    workflow_id: uuid.UUID,
    operation: str,
    code: str | None = None,
    message: str | None = None,
    fingerprint: Sequence[str] | None = None,
    version: int = FINGERPRINT_VERSION,
) -> str:
    """The 64-hex-digit signature of a failure.

    A ``fingerprint`` list replaces the operation and error parts, so a tenant can group
    failures of several operations together; the workflow always stays part of it.
    """
    key = grouping_key(code=code, message=message, fingerprint=fingerprint)
    parts = [version, str(workflow_id), "" if fingerprint else operation, *key]
    encoded = json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()
