"""The few exceptions awfdrs raises on purpose.

Activities translate these into Temporal ``ApplicationError`` at their boundary; everything else
is treated as transient and left to Temporal's retry policy.
"""

from __future__ import annotations


class AwfdrsError(Exception):
    """Base class of every error awfdrs raises deliberately."""


class ConfigError(AwfdrsError):
    """A setting is missing or malformed; the message names the environment variable."""


class NotFoundError(AwfdrsError):
    """The row does not exist, or belongs to another tenant (the two are indistinguishable)."""

    def __init__(self, entity: str, key: object) -> None:
        super().__init__(f"{entity} {key} not found")
        self.entity = entity
        self.key = key


class ConflictError(AwfdrsError):
    """A database constraint refused the write; ``constraint`` is its deterministic name."""

    def __init__(self, constraint: str, detail: str = "") -> None:
        message = f"conflict on {constraint}"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.constraint = constraint
        self.detail = detail


class InvalidTransitionError(AwfdrsError):
    """A state change that the lifecycle does not allow from the current state."""


class InvalidInputError(AwfdrsError):
    """Input that can never succeed; the message names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
