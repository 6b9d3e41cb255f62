"""Persisting kill switches, and waking the incidents they held when they let go."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from awfdrs.activities.principals import REFUSED, redeem, use_key
from awfdrs.constants import incident_workflow_id
from awfdrs.contracts import (
    ActivateCommand,
    CredentialCheck,
    GateChange,
    KillSwitchInfo,
    ReleaseCommand,
    SwitchesChanged,
    TenantRef,
    TenantSettings,
)
from awfdrs.db.models import KillSwitch
from awfdrs.db.repositories import (
    IncidentRepository,
    KillSwitchRepository,
    SpentCredentialRepository,
    TenantRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import GateControl
from awfdrs.signing import (
    ACTIVATE,
    RELEASE,
    CommandRefused,
    CommandSigner,
    Scope,
    kill_switch_subject,
)
from awfdrs.words import same_principal

log = logging.getLogger("awfdrs.activities.kill_switches")


def info(switch: KillSwitch) -> KillSwitchInfo:
    return KillSwitchInfo(
        switch_id=switch.id,
        tenant_id=switch.tenant_id,
        workflow_id=switch.workflow_id,
        reason=switch.reason,
        activated_by=switch.activated_by,
        activated_at=switch.created_at,
        expires_at=switch.expires_at,
    )


class KillSwitchActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: Client,
        signer: CommandSigner | None = None,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._signer = signer

    async def _activator(self, session: AsyncSession, command: ActivateCommand) -> str:
        """Who activates: the verified principal, or the name given at the Temporal door.

        Anyone who can signal the workflow may stop automation, so a stop is never refused over
        its credential: without one, or with one that does not verify or was already spent
        (expired while the worker was down, copied from the history), the name is only what
        was typed: it is recorded as ``temporal:<name>``, nobody's principal for the
        two-person rule. A valid credential is spent on this request, in its transaction.
        """
        activation = command.activation
        typed = f"temporal:{activation.activated_by}"[:255]
        if activation.credential is None or self._signer is None:
            return typed
        subject = kill_switch_subject(None, activation.workflow_id)
        try:
            verified = self._signer.verify(
                activation.credential, Scope(command.tenant_id, ACTIVATE, subject)
            )
        except CommandRefused as error:
            log.warning("kill switch activation: credential not accepted (%s)", error)
            return typed
        spent = await SpentCredentialRepository(session, tenant_id=command.tenant_id).spend(
            jti=verified.jti,
            use_key=use_key(),
            command=ACTIVATE,
            principal=verified.principal,
            expires_at=verified.expires_at,
        )
        return verified.principal if spent else typed

    @activity.defn(name="activate_kill_switch")
    async def activate(self, command: ActivateCommand) -> SwitchesChanged:
        """Insert the switch under the tenant's exclusive kill-switch lock (idempotent by id).

        From its commit on, no action in its scope moves to IN_PROGRESS. A workflow id that is
        not this tenant's is refused (non-retryable) and nothing is written.
        """
        activation = command.activation
        async with tenant_session(self._sessions, command.tenant_id) as session:
            if activation.workflow_id is not None:
                workflow = await WorkflowRepository(session, tenant_id=command.tenant_id).find(
                    activation.workflow_id
                )
                if workflow is None:
                    raise ApplicationError(
                        f"workflow_id: {activation.workflow_id} is not a workflow of tenant "
                        f"{command.tenant_id}",
                        type="KillSwitchRefused",
                        non_retryable=True,
                    )
            switches = KillSwitchRepository(session, tenant_id=command.tenant_id)
            switch = await switches.activate(
                switch_id=command.switch_id,
                workflow_id=activation.workflow_id,
                reason=activation.reason,
                activated_by=await self._activator(session, command),
                expires_at=command.expires_at,
            )
            active = [info(s) for s in await switches.list_active()]
            return SwitchesChanged(changed=[switch.id], active=active)

    @activity.defn(name="release_kill_switch")
    async def release(self, command: ReleaseCommand) -> SwitchesChanged:
        """Release by id or scope, then wake the incidents that were held in that scope.

        Releasing resumes automation: refused unless the credential verifies, and (the
        two-person rule, on unless the tenant turned it off) by a principal other than the one
        who activated any of the switches it would release.
        """
        release = command.release
        check = CredentialCheck(
            tenant_id=command.tenant_id,
            command=RELEASE,
            subject=kill_switch_subject(release.switch_id, release.workflow_id),
            credential=release.credential,
        )
        # Spent before it is judged: a release the two-person rule refuses has used its
        # credential up, so a copy cannot release a later switch.
        actor = (await redeem(self._sessions, self._signer, check, use_key())).principal
        async with tenant_session(self._sessions, command.tenant_id) as session:
            switches = KillSwitchRepository(session, tenant_id=command.tenant_id)
            # Serialise with activations, so the switches checked are the switches released.
            await switches.lock_for_activation()
            tenant = await TenantRepository(session, tenant_id=command.tenant_id).get_current()
            rules = TenantSettings.model_validate(tenant.settings)
            if rules.two_person_rule:
                own = [
                    s
                    for s in await switches.list_releasable(
                        switch_id=release.switch_id, workflow_id=release.workflow_id
                    )
                    if same_principal(s.activated_by, actor)
                ]
                if own:
                    raise ApplicationError(
                        f"{actor} activated kill switch {own[0].id}: the two-person rule needs "
                        f"another operator or admin of this tenant (anyone but {actor}) to "
                        "release it",
                        type=REFUSED,
                        non_retryable=True,
                    )
            released = await switches.release(
                released_by=actor,
                reason=release.reason,
                switch_id=release.switch_id,
                workflow_id=release.workflow_id,
            )
            active = [info(s) for s in await switches.list_active()]
        notified = await self._wake(command.tenant_id, released)
        return SwitchesChanged(changed=[s.id for s in released], active=active, notified=notified)

    @activity.defn(name="expire_kill_switches")
    async def expire(self, tenant: TenantRef) -> SwitchesChanged:
        """Mark switches past their expiry as inactive and wake what they held."""
        async with tenant_session(self._sessions, tenant.tenant_id) as session:
            switches = KillSwitchRepository(session, tenant_id=tenant.tenant_id)
            expired = await switches.expire_due()
            active = [info(s) for s in await switches.list_active()]
        notified = await self._wake(tenant.tenant_id, expired)
        return SwitchesChanged(changed=[s.id for s in expired], active=active, notified=notified)

    @activity.defn(name="list_kill_switches")
    async def list_active(self, tenant: TenantRef) -> SwitchesChanged:
        async with tenant_session(self._sessions, tenant.tenant_id) as session:
            active = await KillSwitchRepository(session, tenant_id=tenant.tenant_id).list_active()
            return SwitchesChanged(changed=[], active=[info(s) for s in active])

    async def _wake(self, tenant_id: uuid.UUID, switches: Sequence[KillSwitch]) -> int:
        """Signal ``gate_changed`` to the incidents the released switches may have held.

        Held incidents also re-check on a timer, so a signal lost here delays, never strands.
        """
        if not switches:
            return 0
        async with tenant_session(self._sessions, tenant_id) as session:
            incidents = IncidentRepository(session, tenant_id=tenant_id)
            scopes = {s.workflow_id for s in switches}
            held: set[uuid.UUID] = set()
            for scope in scopes:
                # Every held incident in the scope re-checks; the one control that held each
                # decides whether it goes on (a fuse hold stays held).
                held.update(await incidents.list_held(scope))

        async def signal(incident_id: uuid.UUID) -> bool:
            handle = self._client.get_workflow_handle(incident_workflow_id(incident_id))
            try:
                await handle.signal("gate_changed", GateChange(control=GateControl.KILL_SWITCH))
            except RPCError:
                return False  # closed meanwhile
            return True

        return sum(await asyncio.gather(*(signal(i) for i in held)))
