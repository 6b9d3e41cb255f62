"""The gate: the one place that decides whether a decided action may run now.

Checks run in this order and the first that holds wins: kill switch, remediation mode, fuse,
budget, confidence, reversibility. Each is a :class:`Check`; a new control is one class more.
The checks run inside the activity's transaction, so what they read and the Decision they lead
to are one consistent unit.

Every control stops automatic actions only: an escalation or hand-over to a human always goes
out (in shadow mode it is delivered and marked shadow). When a plan is decided the whole gate
runs; when each of its requests is claimed, :meth:`Gate.claim_check` runs again the controls an
operator's approval cannot lift (kill switch, mode, fuse, budget), so an approval waits on the
current state of the controls, not the one it was asked under.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.contracts import TenantSettings, WorkflowSettings
from awfdrs.db.repositories import (
    FuseEpisodeRepository,
    IncidentRepository,
    KillSwitchRepository,
    RequestRepository,
)
from awfdrs.enums import ActionType, GateControl, GateEffect, RemediationMode
from awfdrs.lifecycle import Verdict
from awfdrs.words import span

BUDGET_LOCK_CLASS = 0x4244  # "BD": serialises budget counting per tenant
_BUDGET_LOCK = text("SELECT pg_advisory_xact_lock(:cls, hashtext(:tenant))")


@dataclass(frozen=True)
class GateInput:
    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_name: str
    action_type: ActionType
    confidence: float
    is_reversible: bool
    settings: TenantSettings
    workflow_settings: WorkflowSettings = field(default_factory=WorkflowSettings)
    approved_by: str | None = None
    # The budget already counted this action (a request sent once is retried, not new).
    counted: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Hold:
    control: GateControl
    effect: GateEffect
    reason: str
    episode_id: uuid.UUID | None = None


class Check(Protocol):
    control: GateControl

    async def check(self, gate: GateInput, session: AsyncSession) -> Hold | None: ...


class KillSwitchCheck:
    """A kill switch over the tenant or the workflow holds every action until it is released
    or expires. Enforced again, under the lock, when the action moves to IN_PROGRESS."""

    control = GateControl.KILL_SWITCH

    async def check(self, gate: GateInput, session: AsyncSession) -> Hold | None:
        if not gate.action_type.is_automatic:
            return None  # a human is never silenced
        switch = await KillSwitchRepository(session, tenant_id=gate.tenant_id).find_covering(
            gate.workflow_id
        )
        if switch is None:
            return None
        return Hold(
            self.control,
            GateEffect.HOLD,
            describe_switch(
                switch.workflow_id,
                gate.workflow_name,
                switch.activated_by,
                switch.reason,
                switch.expires_at,
            ),
        )


def describe_switch(
    workflow_id: uuid.UUID | None,
    workflow_name: str,
    activated_by: str,
    reason: str,
    expires_at: datetime | None,
) -> str:
    scope = f"workflow {workflow_name}" if workflow_id else "the tenant"
    until = f" until {expires_at.isoformat()}" if expires_at else ""
    return f"held by kill switch on {scope}{until}, activated by {activated_by}: {reason}"


class ModeCheck:
    """``shadow`` records the action as not executed; ``off`` records the decision only."""

    control = GateControl.MODE

    async def check(self, gate: GateInput, session: AsyncSession) -> Hold | None:
        if not gate.action_type.is_automatic:
            return None  # escalations are delivered (and marked shadow) whatever the mode
        own = gate.workflow_settings.remediation_mode
        mode = own or gate.settings.remediation_mode
        where = f"workflow {gate.workflow_name}" if own else "the tenant"
        if mode is RemediationMode.SHADOW:
            return Hold(
                self.control,
                GateEffect.SHADOW,
                f"remediation mode of {where} is shadow: the {gate.action_type.value} is "
                "recorded as what would have run and is not executed",
            )
        if mode is RemediationMode.OFF:
            return Hold(
                self.control,
                GateEffect.RECORD,
                f"remediation mode of {where} is off: the decision is recorded, nothing runs",
            )
        return None


class FuseCheck:
    """Too many incidents opening at once is a systemic failure: automation stops for the
    tenant, a single escalation goes out for the episode, and it re-arms when the count falls."""

    control = GateControl.FUSE

    async def check(self, gate: GateInput, session: AsyncSession) -> Hold | None:
        if not gate.action_type.is_automatic:
            return None  # the episode's escalation does not silence the incident's own
        settings = gate.settings
        since = gate.now - timedelta(seconds=settings.fuse_window_seconds)
        count = await IncidentRepository(session, tenant_id=gate.tenant_id).count_open_since(since)
        episodes = FuseEpisodeRepository(session, tenant_id=gate.tenant_id)
        if count <= settings.fuse_max_open_incidents:
            current = await episodes.find_open()
            if current is not None:
                await episodes.close(current.id)  # re-armed
            return None
        episode, _ = await episodes.open(
            incident_count=count,
            threshold=settings.fuse_max_open_incidents,
            window_seconds=settings.fuse_window_seconds,
            now=gate.now,
        )
        window = timedelta(seconds=settings.fuse_window_seconds)
        return Hold(
            self.control,
            GateEffect.HOLD,
            f"systemic failure: {count} incidents opened within {span(window)} (more than "
            f"{settings.fuse_max_open_incidents}); automation is stopped for the tenant and one "
            "escalation covers the episode",
            # Every held incident tries to claim the episode's escalation; one wins, so the
            # episode is escalated exactly once even when a probe re-opens it.
            episode_id=episode.id,
        )


class BudgetCheck:
    """At most ``budget_actions_per_hour`` requests sent to vendors per window (each is an
    automatic action on a tenant's system); beyond, escalate instead."""

    control = GateControl.BUDGET

    async def check(self, gate: GateInput, session: AsyncSession) -> Hold | None:
        if not gate.action_type.is_automatic or gate.counted:
            return None
        # Two analyses of one tenant must not both take the last unit of budget.
        await session.execute(
            _BUDGET_LOCK, {"cls": BUDGET_LOCK_CLASS, "tenant": str(gate.tenant_id)}
        )
        settings = gate.settings
        since = gate.now - timedelta(seconds=settings.budget_window_seconds)
        used = await RequestRepository(session, tenant_id=gate.tenant_id).count_sent_since(since)
        if used < settings.budget_actions_per_hour:
            return None
        window = timedelta(seconds=settings.budget_window_seconds)
        return Hold(
            self.control,
            GateEffect.ESCALATE,
            f"remediation budget spent: {used} requests sent within {span(window)}, at most "
            f"{settings.budget_actions_per_hour}; escalating instead of acting",
        )


class ConfidenceCheck:
    """An automatic action below the tenant's confidence threshold waits for an operator."""

    control = GateControl.CONFIDENCE

    async def check(self, gate: GateInput, session: AsyncSession) -> Hold | None:
        if not gate.action_type.is_automatic or gate.approved_by:
            return None
        threshold = gate.settings.confidence_threshold
        if gate.confidence < threshold:
            return Hold(
                self.control,
                GateEffect.APPROVAL,
                f"confidence {gate.confidence:.2f} is below the tenant's threshold "
                f"{threshold:.2f}; waiting for an operator to approve or reject",
            )
        return None


class ReversibilityCheck:
    """An automatic action that cannot be undone waits for an operator."""

    control = GateControl.REVERSIBILITY

    async def check(self, gate: GateInput, session: AsyncSession) -> Hold | None:
        if not gate.action_type.is_automatic or gate.approved_by or gate.is_reversible:
            return None
        return Hold(
            self.control,
            GateEffect.APPROVAL,
            f"{gate.action_type.value} is not reversible; waiting for an operator to approve "
            "or reject",
        )


class Gate:
    def __init__(self, checks: Sequence[Check]) -> None:
        self._checks = tuple(checks)

    async def evaluate(self, gate: GateInput, session: AsyncSession) -> Verdict:
        """The first hold is the verdict; no hold means act."""
        for check in self._checks:
            hold = await check.check(gate, session)
            if hold is not None:
                return Verdict(
                    effect=hold.effect,
                    control=hold.control,
                    reason=hold.reason,
                    episode_id=hold.episode_id,
                )
        return Verdict()

    async def claim_check(self, gate: GateInput, session: AsyncSession) -> Hold | None:
        """The controls an approval cannot lift, checked again as one request is claimed; the
        caller holds the tenant's kill-switch lock (shared) for the rest of its transaction."""
        for check in self._checks:
            if check.control in CLAIM_CONTROLS:
                hold = await check.check(gate, session)
                if hold is not None:
                    return hold
        return None

    async def probe(
        self, control: GateControl, gate: GateInput, session: AsyncSession
    ) -> Hold | None:
        """Run one control alone: does it still hold?"""
        for check in self._checks:
            if check.control is control:
                return await check.check(gate, session)
        return None


CLAIM_CONTROLS = frozenset(
    {GateControl.KILL_SWITCH, GateControl.MODE, GateControl.FUSE, GateControl.BUDGET}
)


def default_gate() -> Gate:
    return Gate(
        [
            KillSwitchCheck(),
            ModeCheck(),
            FuseCheck(),
            BudgetCheck(),
            ConfidenceCheck(),
            ReversibilityCheck(),
        ]
    )
