"""The console's controls (kill switches, remediation modes, vendor connections) and the
audit trail. Acts go through the operator and tenant administration API's functions with the
session's principal (:mod:`awfdrs.console.web`), so they are checked and recorded as there.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from awfdrs.api import operator, tenant_admin, vendors
from awfdrs.api.auth import Principal
from awfdrs.api.edge import edge_of
from awfdrs.api.errors import ApiError
from awfdrs.api.keys import Role
from awfdrs.api.operator_schemas import ActivateSwitch, ForceOpen, ReleaseSwitch
from awfdrs.console.session import PATH
from awfdrs.console.web import (
    BadInput,
    ConsoleRoute,
    Refused,
    SignedOut,
    acting,
    back,
    error_page,
    in_words,
    page,
    posted,
    principal_for,
    query,
    refused,
    sequence,
    tenant_param,
    viewing,
)
from awfdrs.enums import RemediationMode

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)
AUDIT_PAGE = 100
MAX_VENDOR = 255  # as the API's VendorName


@router.get("/controls")
async def controls(request: Request) -> Response:
    from awfdrs.admin import list_workflows
    from awfdrs.db.repositories import TenantRepository
    from awfdrs.db.session import tenant_session

    viewer = await viewing(request)
    if isinstance(viewer, Response):
        return viewer
    try:
        tenant_id = tenant_param(viewer, request.query_params.get("tenant"))
        principal = await principal_for(request, viewer, tenant_id)
        switches = await operator.kill_switch_status(request, principal)
        sessions = edge_of(request).sessions
        workflows = await list_workflows(sessions, tenant_id)
        connections = await vendors.connections_of(request, principal)
        async with tenant_session(sessions, tenant_id) as db:
            tenant = await TenantRepository(db, tenant_id=tenant_id).get_current()
            tenant_name, mode = tenant.name, tenant.settings.get("remediation_mode", "live")
    except ApiError as error:
        return error_page(request, viewer, error.status, error.message)
    names = {str(w.id): w.name for w in workflows}
    return page(
        request,
        "controls.html",
        viewer=viewer,
        tenant_id=str(tenant_id),
        tenant_name=tenant_name,
        switches=switches.model_dump(mode="json"),
        names=names,
        workflows=workflows,
        vendors=connections,
        mode=mode,
        modes=[m.value for m in RemediationMode],
    )


def _controls_url(tenant_id: uuid.UUID) -> str:
    return f"{PATH}/controls?tenant={tenant_id}"


@router.post("/controls/{what}")
async def control(request: Request, what: str) -> Response:
    try:
        viewer, form = await posted(request)
    except (Refused, SignedOut) as error:
        return refused(request, str(error) or "not signed in: sign in again")
    try:
        principal = await acting(request, form, viewer, form.get("tenant"))
    except ApiError as error:
        return error_page(request, viewer, error.status, error.message)
    to = _controls_url(principal.tenant_id)
    try:
        message = await _control(request, principal, what, form)
    except ApiError as error:
        return back(request, to, f"Not done: {error.message}", ok=False)
    except ValueError as error:
        return back(request, to, f"Not done: {in_words(error)}", ok=False)
    return back(request, to, message)


def _switch_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadInput("switch", "is not a kill switch's id") from None


def _mode(value: str) -> RemediationMode:
    try:
        return RemediationMode(value)
    except ValueError:
        modes = ", ".join(m.value for m in RemediationMode)
        raise BadInput("mode", f"must be one of {modes}") from None


def _admin(principal: Principal) -> None:
    if principal.role is not Role.ADMIN:
        raise ApiError(403, "forbidden", "changing a remediation mode needs an admin")


async def _control(request: Request, principal: Principal, what: str, form: dict[str, str]) -> str:

    workflow = form.get("workflow", "").strip() or None
    reason = form.get("reason", "").strip() or None
    if what == "activate":
        minutes = form.get("minutes", "").strip()
        body = ActivateSwitch(
            reason=reason or "",
            workflow=workflow,
            duration_seconds=float(minutes) * 60 if minutes else None,
        )
        done = await operator.activate_switch(request, principal, body)
        return f"Kill switch activated by {principal.actor} ({len(done.switch_ids)} in force)."
    if what == "release":
        switch = form.get("switch_id", "").strip()
        await operator.release_switch(
            request,
            principal,
            ReleaseSwitch(
                reason=reason, workflow=workflow, switch_id=_switch_id(switch) if switch else None
            ),
        )
        return f"Kill switch released by {principal.actor}."
    if what == "tenant-mode":
        _admin(principal)
        mode = _mode(form.get("mode", ""))
        await tenant_admin.change_settings(request, principal, {"remediation_mode": mode.value})
        return f"The tenant's remediation mode is now {mode.value}."
    if what == "workflow-mode":
        _admin(principal)
        value = form.get("mode", "")
        body_mode = _mode(value) if value else None
        await tenant_admin.change_workflow_settings(
            request,
            principal,
            workflow or "",
            tenant_admin.WorkflowSettingsBody(remediation_mode=body_mode),
        )
        return f"Workflow {workflow}: remediation mode {value or 'as the tenant'}."
    vendor = form.get("vendor", "").strip()
    if what in ("vendor-stop", "vendor-release") and not 1 <= len(vendor) <= MAX_VENDOR:
        raise BadInput("vendor", f"a vendor's name is 1 to {MAX_VENDOR} characters")
    if what == "vendor-stop":
        await vendors.stop_connection(request, principal, vendor, ForceOpen(reason=reason or ""))
        return f"Calls to {vendor} stopped for this tenant."
    if what == "vendor-release":
        await vendors.release_stopped_connection(request, principal, vendor)
        return f"Calls to {vendor} released: the next one probes the vendor."
    raise ApiError(404, "not_found", f"no control {what!r}")


# --- audit --------------------------------------------------------------------------------------


@router.get("/audit")
async def audit(request: Request) -> Response:
    from awfdrs.api.audit import AuditRow
    from awfdrs.db.repositories import AuditRepository
    from awfdrs.db.session import tenant_session

    viewer = await viewing(request)
    if isinstance(viewer, Response):
        return viewer
    q = request.query_params
    kind, actor = query(request, "kind").strip(), query(request, "actor").strip()
    try:
        before = sequence("before", query(request, "before").strip())
    except BadInput as error:
        return error_page(request, viewer, 400, str(error))
    try:
        tenant_id = tenant_param(viewer, q.get("tenant"))
        await principal_for(request, viewer, tenant_id)
        async with tenant_session(edge_of(request).sessions, tenant_id) as db:
            repository = AuditRepository(db, tenant_id=tenant_id)
            verdict = await repository.verify()
            entries = await repository.list_matching(
                kind=kind or None, actor=actor or None, before_seq=before, limit=AUDIT_PAGE + 1
            )
    except ApiError as error:
        return error_page(request, viewer, error.status, error.message)
    rows = [AuditRow.of(e) for e in entries[:AUDIT_PAGE]]
    more = rows[-1].seq if len(entries) > AUDIT_PAGE else None
    return page(
        request,
        "audit.html",
        viewer=viewer,
        tenant_id=str(tenant_id),
        rows=rows,
        more=more,
        verdict={"intact": verdict.intact, "rows": verdict.rows, "summary": verdict.describe()},
        filters={"kind": kind, "actor": actor},
    )
