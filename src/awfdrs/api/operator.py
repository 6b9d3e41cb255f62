"""The operator API: read incidents and kill switches; answer incidents; stop and release
automation (vendor connections: :mod:`awfdrs.api.vendors`). Every route is scoped to the key's
tenant and checks its role.

- The actor recorded for every command is :attr:`Principal.actor`, the key's name: bodies have
  no actor field (and refuse one), so a caller cannot act in someone else's name.
- An incident is looked up in the key's tenant (row-level security) *before* anything is sent
  to Temporal: an incident of another tenant is a 404 exactly like a missing one, and nothing
  is sent for it. The workflow id alone (``incident-<uuid>``) would not say whose it is.
- Commands go to the same workflow updates and signals as the CLI's (:class:`AwfdrsClient`);
  what the workflow refuses (a plan that is not the one waiting, a closed incident) is a 409
  carrying the workflow's own reason.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from awfdrs.api.auth import Principal, require_actor, require_reader
from awfdrs.api.edge import authenticated, edge_of, respond, temporal_of, workflow_names
from awfdrs.api.errors import ApiError, ErrorBody, database_unavailable, unavailable
from awfdrs.api.operator_schemas import (
    ActivateSwitch,
    CloseAnswer,
    IncidentDetail,
    IncidentPage,
    IncidentSummary,
    PlanAnswer,
    ReleaseSwitch,
)
from awfdrs.client import AwfdrsClient, KillSwitchRefused
from awfdrs.contracts import (
    IncidentSnapshot,
    KillSwitchRequest,
    KillSwitchStatus,
    describe_validation_error,
)
from awfdrs.db.repositories import IncidentRepository
from awfdrs.db.session import tenant_session
from awfdrs.enums import IncidentStatus
from awfdrs.errors import InvalidInputError, NotFoundError
from awfdrs.queries import NEEDS_A_HUMAN, incident_details, list_incidents
from awfdrs.signing import signer_or_none

log = logging.getLogger("awfdrs.api.operator")
T = TypeVar("T")
MAX_PAGE = 500

DESCRIPTIONS = {
    400: "A filter or body field names something this tenant does not have (the field is named)",
    401: "Missing, malformed, unknown, revoked or expired key",
    403: "The key's role may not do this (ingest keys: nothing here; viewer: reads only)",
    404: "No such incident (or vendor connection) for the key's tenant",
    409: "The workflow refused the command; the message is its reason",
    503: "PostgreSQL or Temporal cannot be reached now; nothing was changed",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorBody, "description": DESCRIPTIONS[c]} for c in codes}


READ_ERRORS = _errors(401, 403, 503)
ACT_ERRORS = _errors(400, 401, 403, 404, 409, 503)


async def reader(request: Request) -> Principal:
    principal = await authenticated(request)
    require_reader(principal)
    return principal


async def actor(request: Request) -> Principal:
    principal = await authenticated(request)
    require_actor(principal)
    return principal


Reader = Annotated[Principal, Depends(reader)]
Actor = Annotated[Principal, Depends(actor)]


async def _guarded(call: Awaitable[T]) -> T:
    """Database and Temporal outages as 503; the workflow's refusals as 409 with its reason."""
    try:
        return await call
    except ApiError:
        raise
    except NotFoundError as error:
        raise ApiError(404, "not_found", str(error)) from None
    except InvalidInputError as error:
        raise ApiError(400, "invalid", str(error)) from None
    except ValidationError as error:
        # A command the contracts refuse after the body validated: the key's name as an
        # actor (a control character in it), an expiry already past; the field is named.
        raise ApiError(400, "invalid", describe_validation_error(error)) from None
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        reason = str(getattr(cause, "message", None) or cause or error)
        raise ApiError(409, "refused", reason) from None
    except KillSwitchRefused as error:
        raise ApiError(409, "refused", str(error)) from None
    except TimeoutError as error:
        if "kill switch" not in str(error):
            raise unavailable() from error
        # Sent, but its workflow did not confirm it in time (no worker polling?): it may
        # still apply; the caller can see it in GET /v1/kill-switches.
        raise ApiError(503, "not_confirmed", f"{error}; see GET /v1/kill-switches") from None
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            # The incident's workflow has completed (or is past retention): nothing to answer.
            raise ApiError(
                409, "refused", f"the incident's workflow is not running: {error.message}"
            ) from None
        log.warning("Temporal refused or is unreachable: %s", error)
        raise ApiError(
            503,
            "temporal_unavailable",
            "Temporal cannot be reached now; nothing was changed. Send it again later.",
            retry_after=5,
        ) from error
    except RuntimeError as error:
        if "connect" in str(error).lower():
            raise ApiError(
                503,
                "temporal_unavailable",
                "Temporal cannot be reached now; nothing was changed. Send it again later.",
                retry_after=5,
            ) from error
        raise
    except Exception as error:
        if database_unavailable(error):
            raise unavailable() from error
        raise


async def _second_principal(request: Request, principal: Principal, call: Awaitable[T]) -> T:
    """A two-person refusal names the keys that may act instead (active operator and admin
    keys of the tenant, other than the caller's name)."""
    try:
        return await _guarded(call)
    except ApiError as error:
        if error.status != 409 or "two-person rule" not in str(error):
            raise
        from awfdrs.api.keys import Role, list_keys
        from awfdrs.words import same_principal

        keys = await list_keys(edge_of(request).sessions, principal.tenant_id)
        others = sorted(
            f"{k.name} ({k.role.value})"
            for k in keys
            if k.state() == "active"
            and k.role in (Role.OPERATOR, Role.ADMIN)
            and not same_principal(k.name, principal.actor)
        )
        who = (
            f"keys of this tenant that may: {', '.join(others)}"
            if others
            else "this tenant has no other operator or admin key: an admin must create one"
        )
        raise ApiError(409, "refused", f"{error}; {who}") from None


async def _client(request: Request) -> AwfdrsClient:
    edge = edge_of(request)
    # Signs approve / release for the authenticated principal, which the worker verifies.
    signer = signer_or_none(edge.settings.command_signing_key)
    return AwfdrsClient(await temporal_of(edge), edge.settings.task_queue, signer=signer)


async def _own_incident(
    request: Request, principal: Principal, incident_id: uuid.UUID, *, open_only: bool = False
) -> None:
    """404 unless the key's tenant has this incident; checked before anything is sent.
    ``open_only``: 409 saying how and when it closed, when it has (its workflow has completed,
    so Temporal could only say "not found" or "already completed")."""
    async with tenant_session(edge_of(request).sessions, principal.tenant_id) as session:
        found = await IncidentRepository(session, tenant_id=principal.tenant_id).find(incident_id)
    if found is None:
        raise ApiError(404, "not_found", f"incident {incident_id} not found")
    if open_only and not found.status.is_open:
        at = found.resolved_at.isoformat() if found.resolved_at else "an unknown time"
        raise ApiError(
            409, "refused", f"incident {incident_id} is already {found.status.value} (at {at})"
        )


async def _workflow_id(request: Request, principal: Principal, value: str, field: str) -> uuid.UUID:
    """A workflow of the key's tenant by name or id; 400 naming ``field`` when it has none."""
    names = await workflow_names(edge_of(request), principal.tenant_id, {value})
    if value in names:
        return names[value]
    try:
        wanted = uuid.UUID(value)
    except ValueError:
        wanted = None
    if wanted is not None and wanted in names.values():
        return wanted
    raise ApiError(400, "unknown_workflow", f"{field}: this tenant has no workflow {value!r}")


router = APIRouter(prefix="/v1", tags=["operator"])


# --- read ---------------------------------------------------------------------------------------


@router.get(
    "/incidents",
    response_model=IncidentPage,
    responses=_errors(400, 401, 403, 503),
    summary="The key's tenant's incidents, newest first",
)
async def get_incidents(
    request: Request,
    principal: Reader,
    status: Annotated[IncidentStatus | None, Query(description="Only this status")] = None,
    workflow: Annotated[
        str | None, Query(min_length=1, max_length=255, description="Workflow name or id")
    ] = None,
    needs_a_human: Annotated[
        bool,
        Query(
            description="Only open incidents waiting for a person: a plan awaiting approval, "
            "escalated and waiting for an operator, or held by a control"
        ),
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    async def page() -> IncidentPage:
        workflow_id = (
            await _workflow_id(request, principal, workflow, "workflow") if workflow else None
        )
        # One more than asked, to know whether there is a next page without counting.
        rows = await list_incidents(
            edge_of(request).sessions,
            principal.tenant_id,
            status=status,
            workflow_id=workflow_id,
            phases=NEEDS_A_HUMAN if needs_a_human else None,
            limit=limit + 1,
            offset=offset,
        )
        more = len(rows) > limit
        return IncidentPage(
            items=[IncidentSummary.model_validate(r) for r in rows[:limit]],
            next_offset=offset + limit if more else None,
        )

    return respond(await _guarded(page()))


@router.get(
    "/incidents/{incident_id}",
    response_model=IncidentDetail,
    responses=_errors(401, 403, 404, 503),
    summary="One incident: decisions, actions, requests and their states, the plan waiting",
)
async def get_incident(request: Request, principal: Reader, incident_id: uuid.UUID) -> Response:
    return respond(await incident_detail(request, principal, incident_id))


async def incident_detail(
    request: Request, principal: Principal, incident_id: uuid.UUID
) -> IncidentDetail:
    """One incident of the principal's tenant with its workflow's snapshot when Temporal has
    it (the API's and the console's read); :class:`ApiError` 404 for another tenant's."""

    async def detail() -> IncidentDetail:
        await _own_incident(request, principal, incident_id)
        snapshot = None
        try:
            client = await _client(request)
            snapshot = await client.snapshot(incident_id)
        except Exception:  # past retention, or Temporal down: the database still knows
            log.debug("no snapshot for incident %s", incident_id, exc_info=True)
        found = await incident_details(
            edge_of(request).sessions, principal.tenant_id, incident_id, snapshot
        )
        return IncidentDetail.model_validate(found)

    return await _guarded(detail())


@router.get(
    "/kill-switches",
    response_model=KillSwitchStatus,
    responses=READ_ERRORS,
    summary="The kill switches in force for the key's tenant, and recent requests",
)
async def get_kill_switches(request: Request, principal: Reader) -> Response:
    return respond(await kill_switch_status(request, principal))


async def kill_switch_status(request: Request, principal: Principal) -> KillSwitchStatus:
    """The principal's tenant's switches in force and recent requests (API and console)."""

    async def status() -> KillSwitchStatus:
        client = await _client(request)
        try:
            return await client.kill_switches(principal.tenant_id)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            # No switch was ever activated for this tenant: its workflow does not exist yet.
            return KillSwitchStatus(tenant_id=principal.tenant_id, active=[], requests=[])

    return await _guarded(status())


# --- act ----------------------------------------------------------------------------------------


def _incident_command(
    name: str,
) -> Callable[[AwfdrsClient, uuid.UUID, Principal, Any], Awaitable[IncidentSnapshot]]:
    async def send(
        client: AwfdrsClient, incident_id: uuid.UUID, principal: Principal, body: Any
    ) -> IncidentSnapshot:
        who, tenant = principal.actor, principal.tenant_id
        if name in ("approve", "reject"):
            call = client.approve if name == "approve" else client.reject
            return await call(
                incident_id, plan_id=body.plan_id, actor=who, reason=body.reason, tenant_id=tenant
            )
        close = client.resolve if name == "resolve" else client.ignore
        return await close(incident_id, actor=who, reason=body.reason, tenant_id=tenant)

    return send


async def _answer(
    request: Request, principal: Principal, incident_id: uuid.UUID, name: str, body: Any
) -> Response:
    return respond(await answer_incident(request, principal, incident_id, name, body))


async def answer_incident(
    request: Request, principal: Principal, incident_id: uuid.UUID, name: str, body: Any
) -> IncidentSnapshot:
    """approve / reject (``body.plan_id``: the plan the operator saw) / resolve / ignore, for
    the principal (API and console). The caller has checked the role. :class:`ApiError` 404
    for another tenant's incident, 409 with the workflow's reason when it refuses."""

    async def act() -> IncidentSnapshot:
        await _own_incident(request, principal, incident_id, open_only=True)
        client = await _client(request)
        # Recorded in the audit chain by the worker, with the principal its credential names,
        # when it verifies and spends the credential (whatever door the command came through).
        return await _incident_command(name)(client, incident_id, principal, body)

    return await _second_principal(request, principal, act())


@router.post(
    "/incidents/{incident_id}/approve",
    response_model=IncidentSnapshot,
    responses=ACT_ERRORS,
    summary="Approve the plan the incident waits on; refused (409) if another plan waits",
)
async def approve(
    request: Request, principal: Actor, incident_id: uuid.UUID, body: PlanAnswer
) -> Response:
    return await _answer(request, principal, incident_id, "approve", body)


@router.post(
    "/incidents/{incident_id}/reject",
    response_model=IncidentSnapshot,
    responses=ACT_ERRORS,
    summary="Reject the plan the incident waits on; the incident is escalated instead",
)
async def reject(
    request: Request, principal: Actor, incident_id: uuid.UUID, body: PlanAnswer
) -> Response:
    return await _answer(request, principal, incident_id, "reject", body)


@router.post(
    "/incidents/{incident_id}/resolve",
    response_model=IncidentSnapshot,
    responses=ACT_ERRORS,
    summary="Close an open incident as RESOLVED",
)
async def resolve(
    request: Request, principal: Actor, incident_id: uuid.UUID, body: CloseAnswer
) -> Response:
    return await _answer(request, principal, incident_id, "resolve", body)


@router.post(
    "/incidents/{incident_id}/ignore",
    response_model=IncidentSnapshot,
    responses=ACT_ERRORS,
    summary="Close an open incident as IGNORED",
)
async def ignore(
    request: Request, principal: Actor, incident_id: uuid.UUID, body: CloseAnswer
) -> Response:
    return await _answer(request, principal, incident_id, "ignore", body)


@router.post(
    "/kill-switches",
    response_model=KillSwitchRequest,
    responses=ACT_ERRORS,
    summary="Stop automation for the key's tenant (or one workflow); in force once answered",
)
async def activate_kill_switch(
    request: Request, principal: Actor, body: ActivateSwitch
) -> Response:
    return respond(await activate_switch(request, principal, body))


async def activate_switch(
    request: Request, principal: Principal, body: ActivateSwitch
) -> KillSwitchRequest:
    """Stop automation for the principal's tenant or one of its workflows (API and console);
    the caller has checked the role."""

    async def act() -> KillSwitchRequest:
        workflow_id = (
            await _workflow_id(request, principal, body.workflow, "workflow")
            if body.workflow
            else None
        )
        client = await _client(request)
        return await client.activate_kill_switch(
            principal.tenant_id,
            reason=body.reason,
            activated_by=principal.actor,
            workflow_id=workflow_id,
            expires_at=body.expires_at,
            duration_seconds=body.duration_seconds,
        )

    return await _guarded(act())


@router.post(
    "/kill-switches/release",
    response_model=KillSwitchRequest,
    responses=ACT_ERRORS,
    summary="Release one switch, or those of a scope; held incidents resume",
)
async def release_kill_switch(request: Request, principal: Actor, body: ReleaseSwitch) -> Response:
    return respond(await release_switch(request, principal, body))


async def release_switch(
    request: Request, principal: Principal, body: ReleaseSwitch
) -> KillSwitchRequest:
    """Release a switch (or a scope's) for the principal (API and console); the worker applies
    the two-person rule, and its refusal names the keys that may release instead."""

    async def act() -> KillSwitchRequest:
        workflow_id = (
            await _workflow_id(request, principal, body.workflow, "workflow")
            if body.workflow
            else None
        )
        client = await _client(request)
        return await client.release_kill_switch(
            principal.tenant_id,
            released_by=principal.actor,
            reason=body.reason,
            workflow_id=workflow_id,
            switch_id=body.switch_id,
        )

    return await _second_principal(request, principal, act())
