"""The gate: the one place that decides whether an action may run now.

Checks run in order and the first that holds wins. Issue order of the full gate: kill switch,
remediation mode, budget and fuse, confidence, reversibility; each is a :class:`Check`, so a new
control is one class added to the list.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.contracts import GateVerdict, TenantSettings
from awfdrs.enums import ActionType


@dataclass(frozen=True)
class GateInput:
    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    workflow_id: uuid.UUID
    action_type: ActionType
    confidence: float
    is_reversible: bool
    settings: TenantSettings
    approved_by: str | None = None


@dataclass(frozen=True)
class Hold:
    control: str
    reason: str


class Check(Protocol):
    name: str

    async def check(self, gate: GateInput, session: AsyncSession) -> Hold | None: ...


class ConfidenceCheck:
    """An automatic action below the tenant's confidence threshold waits for an operator."""

    name = "confidence"

    async def check(self, gate: GateInput, session: AsyncSession) -> Hold | None:
        if not gate.action_type.is_automatic or gate.approved_by:
            return None
        threshold = gate.settings.confidence_threshold
        if gate.confidence < threshold:
            return Hold(
                self.name,
                f"confidence {gate.confidence:.2f} is below the tenant's threshold "
                f"{threshold:.2f}; waiting for an operator to approve or reject",
            )
        return None


class ReversibilityCheck:
    """An automatic action that cannot be undone waits for an operator."""

    name = "reversibility"

    async def check(self, gate: GateInput, session: AsyncSession) -> Hold | None:
        if not gate.action_type.is_automatic or gate.approved_by or gate.is_reversible:
            return None
        return Hold(
            self.name,
            f"{gate.action_type.value} is not reversible; waiting for an operator to approve "
            "or reject",
        )


class Gate:
    def __init__(self, checks: Sequence[Check]) -> None:
        self._checks = tuple(checks)

    async def evaluate(self, gate: GateInput, session: AsyncSession) -> GateVerdict:
        """Run the checks inside the caller's transaction; the first hold is the verdict."""
        for check in self._checks:
            hold = await check.check(gate, session)
            if hold is not None:
                return GateVerdict(act=False, control=hold.control, reason=hold.reason)
        return GateVerdict(act=True)


def default_gate() -> Gate:
    return Gate([ConfidenceCheck(), ReversibilityCheck()])
