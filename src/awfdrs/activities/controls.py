"""The gate seen from a held incident (does the control still hold?) and the fuse episode's
single escalation."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from awfdrs.activities.context import IncidentContext, tally
from awfdrs.contracts import EpisodeEscalation, GateProbe, TenantSettings
from awfdrs.db.repositories import (
    FuseEpisodeRepository,
    IncidentRepository,
    KillSwitchRepository,
    TenantRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import ActionType, GateControl
from awfdrs.lifecycle import EpisodeResult, ProbeResult
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
    async def probe(self, probe: GateProbe) -> ProbeResult:
        """Run the one control that held the incident, for an automatic action; a fuse that
        re-armed closes its episode. Also reads the requests, in case they recovered."""
        async with tenant_session(self._sessions, probe.tenant_id) as session:
            incident = await IncidentRepository(session, tenant_id=probe.tenant_id).get(
                probe.incident_id
            )
            counts = await tally(session, probe.tenant_id, incident.id)
            if not incident.status.is_open:
                return ProbeResult(
                    holds=False, still_open=False, status=incident.status, tally=counts
                )
            context = await IncidentContext.load(session, probe.tenant_id, incident)
            hold = await self._gate.probe(
                probe.control, context.gate_input(ActionType.RETRY, 1.0, True), session
            )
            recheck = None
            if hold is not None and probe.control is GateControl.KILL_SWITCH:
                recheck = await KillSwitchRepository(
                    session, tenant_id=probe.tenant_id
                ).find_next_expiry()
            return ProbeResult(
                holds=hold is not None,
                reason=hold.reason if hold else None,
                recheck_at=recheck,
                status=incident.status,
                tally=counts,
            )

    @activity.defn(name="escalate_episode")
    async def escalate_episode(self, command: EpisodeEscalation) -> EpisodeResult:
        """Send the systemic-failure episode's single escalation if this incident claims it.

        The claim is one guarded UPDATE: the first incident to claim the episode owns its
        escalation, every other one learns it is taken. ``dedup_key`` is the episode, so a
        retry after a lost acknowledgement updates the same alert.
        """
        async with tenant_session(self._sessions, command.tenant_id) as session:
            episodes = FuseEpisodeRepository(session, tenant_id=command.tenant_id)
            episode = await episodes.claim_escalation(command.episode_id, command.incident_id)
            if episode is None:
                return EpisodeResult(claimed=False)
            if episode.escalated_at is not None:
                return EpisodeResult(claimed=True, delivered=True, summary="already sent")
            tenant = await TenantRepository(session, tenant_id=command.tenant_id).get_current()
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
        async with tenant_session(self._sessions, command.tenant_id) as session:
            episodes = FuseEpisodeRepository(session, tenant_id=command.tenant_id)
            if sent.succeeded:
                await episodes.mark_escalated(command.episode_id)
            else:
                await episodes.note_escalation_error(command.episode_id, sent.error or "")
        return EpisodeResult(
            claimed=True, delivered=sent.succeeded, summary=sent.error or sent.summary
        )
