"""The gate seen from a held incident: does the control still hold? and the fuse's escalation."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from awfdrs.activities.context import IncidentContext
from awfdrs.contracts import EpisodeEscalation, GateProbe, GateProbeResult, TenantSettings
from awfdrs.db.repositories import (
    DecisionRepository,
    FuseEpisodeRepository,
    IncidentRepository,
    KillSwitchRepository,
    TenantRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import ActionType, GateControl
from awfdrs.remediation.executors import EscalateExecutor, TransientActionError
from awfdrs.remediation.gate import Gate


class ControlActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        gate: Gate,
        escalations: EscalateExecutor,
    ) -> None:
        self._sessions = sessions
        self._gate = gate
        self._escalations = escalations

    @activity.defn(name="probe_gate")
    async def probe(self, probe: GateProbe) -> GateProbeResult:
        """Run the one control that held the incident; a fuse that re-armed closes its episode."""
        async with tenant_session(self._sessions, probe.tenant_id) as session:
            incident = await IncidentRepository(session, tenant_id=probe.tenant_id).get(
                probe.incident_id
            )
            context = await IncidentContext.load(session, probe.tenant_id, incident)
            decisions = await DecisionRepository(
                session, tenant_id=probe.tenant_id
            ).list_for_incident(incident.id)
            last = decisions[-1] if decisions else None
            action_type = last.decision_type if last else ActionType.ESCALATE
            confidence = last.confidence_score if last else 1.0
            hold = await self._gate.probe(
                probe.control, context.gate_input(action_type, confidence, True), session
            )
            recheck = None
            if hold is not None and probe.control is GateControl.KILL_SWITCH:
                switches = KillSwitchRepository(session, tenant_id=probe.tenant_id)
                recheck = await switches.next_expiry()
            return GateProbeResult(
                holds=hold is not None,
                reason=hold.reason if hold else None,
                recheck_at=recheck,
            )

    @activity.defn(name="escalate_episode")
    async def escalate_episode(self, command: EpisodeEscalation) -> bool:
        """Send the systemic-failure episode's single escalation; True when this call sent it.

        ``dedup_key`` is the episode, so a retry after a lost acknowledgement updates the same
        alert; the episode row records that it was escalated, so no second incident sends it.
        """
        async with tenant_session(self._sessions, command.tenant_id) as session:
            episode = await FuseEpisodeRepository(session, tenant_id=command.tenant_id).get(
                command.episode_id
            )
            if episode.escalated_at is not None:
                return False
            tenant = await TenantRepository(session, tenant_id=command.tenant_id).current()
            settings = TenantSettings.model_validate(tenant.settings)
            name, count = tenant.name, episode.incident_count
            threshold, window = episode.threshold, episode.window_seconds
        try:
            sent = await self._escalations.post(
                settings,
                self._escalations.episode_body(
                    settings,
                    tenant_name=name,
                    tenant_id=command.tenant_id,
                    episode_id=command.episode_id,
                    incident_count=count,
                    threshold=threshold,
                    window_seconds=window,
                    first_incident=command.incident_id,
                ),
            )
        except TransientActionError as exc:
            raise ApplicationError(str(exc), type="TransientActionError") from exc
        if not sent.succeeded:
            raise ApplicationError(
                f"episode escalation refused: {sent.error}",
                type="EscalationRefused",
                non_retryable=True,
            )
        async with tenant_session(self._sessions, command.tenant_id) as session:
            return await FuseEpisodeRepository(session, tenant_id=command.tenant_id).mark_escalated(
                command.episode_id
            )
