"""A tenant's administration over HTTP: its keys and its settings (admin keys only).

An admin key manages its own tenant and nothing else: the keys it lists, creates and revokes
and the settings it reads and changes are its tenant's (row-level security and the key's
tenant, never an id in the body). Creating tenants, and vendors for everyone, is the
deployment administrator's, not a tenant's (docs/SECURITY.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from awfdrs.admin import update_tenant_settings
from awfdrs.api.audit import record_command
from awfdrs.api.auth import Principal, require_reader
from awfdrs.api.edge import authenticated, edge_of, respond, respond_list
from awfdrs.api.errors import ApiError
from awfdrs.api.keys import KeyInfo, Role, create_key, list_keys, revoke_key
from awfdrs.api.operator import _errors, _guarded
from awfdrs.contracts import TenantSettings
from awfdrs.contracts.settings import MASK, SECRET_SETTINGS
from awfdrs.contracts.settings import masked_settings as _masked
from awfdrs.db.repositories import TenantRepository
from awfdrs.db.session import tenant_session
from awfdrs.enums import RemediationMode

router = APIRouter(prefix="/v1", tags=["tenant administration"])
# Settings whose values are secrets of the tenant's paging: shown as set or not, never echoed.


async def tenant_admin(request: Request) -> Principal:
    principal = await authenticated(request)
    require_reader(principal)
    if principal.role is not Role.ADMIN:
        raise ApiError(
            403,
            "forbidden",
            f"a {principal.role.value} key cannot manage keys or settings; that needs an admin "
            "key of this tenant",
        )
    return principal


TenantAdmin = Annotated[Principal, Depends(tenant_admin)]
ADMIN_ERRORS = _errors(400, 401, 403, 404, 503)


class KeyView(BaseModel):
    """A key as listed: never its secret."""

    id: uuid.UUID
    name: str
    role: Role
    prefix: str
    state: Literal["active", "revoked", "expired"]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, info: KeyInfo) -> KeyView:
        return cls.model_validate({**info.as_json(), "role": info.role})


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    name: str = Field("", max_length=255, description="Who holds it: the actor it records")
    expires_in_seconds: float | None = Field(None, gt=0, le=5 * 366 * 86_400)


class CreatedKey(KeyView):
    key: str = Field(description="The key itself: shown this once, stored only as a hash")


@router.get(
    "/keys",
    response_model=list[KeyView],
    responses=ADMIN_ERRORS,
    summary="The tenant's keys (never their secrets)",
)
async def get_keys(request: Request, principal: TenantAdmin) -> Response:
    async def found() -> list[KeyView]:
        keys = await list_keys(edge_of(request).sessions, principal.tenant_id)
        return [KeyView.of(k) for k in keys]

    return respond_list(await _guarded(found()))


@router.post(
    "/keys",
    response_model=CreatedKey,
    responses=ADMIN_ERRORS,
    summary="Create a key for the tenant; the key is in this answer only",
)
async def post_key(request: Request, principal: TenantAdmin, body: NewKey) -> Response:
    async def made() -> CreatedKey:
        expires = timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds else None
        key, info = await create_key(
            edge_of(request).sessions,
            principal.tenant_id,
            body.role,
            name=body.name,
            expires_in=expires,
        )
        await record_command(request, principal, "key.create", ("api_key", info.id), body)
        return CreatedKey.model_validate({**KeyView.of(info).model_dump(), "key": key})

    return respond(await _guarded(made()), 201)


@router.post(
    "/keys/{key_id}/revoke",
    response_model=KeyView,
    responses=ADMIN_ERRORS,
    summary="Revoke one of the tenant's keys; refused everywhere within seconds",
)
async def revoke(request: Request, principal: TenantAdmin, key_id: uuid.UUID) -> Response:
    async def revoked() -> KeyView:
        sessions = edge_of(request).sessions
        mine = {k.id for k in await list_keys(sessions, principal.tenant_id)}
        if key_id not in mine:  # another tenant's key is as unknown as a missing one
            raise ApiError(404, "not_found", f"key {key_id} not found")
        revoked = KeyView.of(await revoke_key(sessions, str(key_id)))
        await record_command(request, principal, "key.revoke", ("api_key", key_id), None)
        return revoked

    return respond(await _guarded(revoked()))


@router.get(
    "/settings",
    responses=ADMIN_ERRORS,
    summary="The tenant's settings (secrets masked)",
)
async def get_settings(request: Request, principal: TenantAdmin) -> Response:
    async def current() -> dict[str, Any]:
        async with tenant_session(edge_of(request).sessions, principal.tenant_id) as session:
            tenant = await TenantRepository(session, tenant_id=principal.tenant_id).get_current()
            return _masked(TenantSettings.model_validate(tenant.settings))

    return JSONResponse(await _guarded(current()))


@router.patch(
    "/settings",
    responses=ADMIN_ERRORS,
    summary="Change some of the tenant's settings; an invalid value changes nothing",
)
async def patch_settings(
    request: Request,
    principal: TenantAdmin,
    changes: Annotated[dict[str, Any], Body(description="Setting name → new value")],
) -> Response:
    return JSONResponse(await change_settings(request, principal, changes))


async def change_settings(
    request: Request, principal: Principal, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change the principal's tenant's settings and record it in the audit (API and console;
    the caller has checked the admin role). An invalid value is a 400 and changes nothing."""
    unknown = sorted(set(changes) - set(TenantSettings.model_fields))
    if unknown:
        raise ApiError(400, "invalid", f"{unknown[0]}: not a tenant setting")

    async def changed() -> dict[str, Any]:
        info = await update_tenant_settings(edge_of(request).sessions, principal.tenant_id, changes)
        recorded = {k: MASK if k in SECRET_SETTINGS else v for k, v in changes.items()}
        await record_command(
            request, principal, "settings.change", ("tenant", principal.tenant_id), recorded
        )
        return _masked(info.settings)

    return await _guarded(changed())


class WorkflowSettingsBody(BaseModel):
    """A workflow's own settings; ``null`` makes it follow the tenant's again."""

    model_config = ConfigDict(extra="forbid")

    remediation_mode: RemediationMode | None


class WorkflowSettingsView(BaseModel):
    workflow_id: uuid.UUID
    name: str
    settings: dict[str, Any]


@router.patch(
    "/workflows/{workflow}/settings",
    response_model=WorkflowSettingsView,
    responses=ADMIN_ERRORS,
    summary="Change a workflow's own settings (its remediation mode; null: the tenant's)",
)
async def patch_workflow_settings(
    request: Request,
    principal: TenantAdmin,
    workflow: Annotated[str, Path(min_length=1, max_length=255, description="Workflow name or id")],
    body: WorkflowSettingsBody,
) -> Response:
    return respond(await change_workflow_settings(request, principal, workflow, body))


async def change_workflow_settings(
    request: Request, principal: Principal, workflow: str, body: WorkflowSettingsBody
) -> WorkflowSettingsView:
    """Change one of the principal's tenant's workflows (by name or id) and record it in the
    audit (API and console; the caller has checked the admin role). Another tenant's workflow
    is a 400 naming the field, like a missing one."""
    from awfdrs.admin import update_workflow_settings
    from awfdrs.api.operator import _workflow_id

    async def changed() -> WorkflowSettingsView:
        workflow_id = await _workflow_id(request, principal, workflow, "workflow")
        changes = body.model_dump(mode="json")
        info = await update_workflow_settings(
            edge_of(request).sessions, principal.tenant_id, workflow_id, changes
        )
        await record_command(
            request, principal, "workflow.settings.change", ("workflow", workflow_id), changes
        )
        return WorkflowSettingsView(
            workflow_id=workflow_id, name=info.name, settings=dict(info.settings)
        )

    return await _guarded(changed())
