"""``awfdrs kill-switch``: stop automation for a tenant or one workflow, and let it go again.

Through the operator API when ``AWFDRS_API_URL`` and ``AWFDRS_API_KEY`` are set: then the
tenant is the key's and the actor recorded is the key's name (``--tenant``/``--by`` refused).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from awfdrs.cli.common import databases, parse_duration, run
from awfdrs.cli.output import console, emit_json, format_time
from awfdrs.cli.remote import call, refuse_by, refuse_tenant, remote
from awfdrs.cli.resolve import resolve_switch, resolve_tenant, resolve_workflow
from awfdrs.config import Settings

kill_switch = typer.Typer(help="Emergency stops of automation.", no_args_is_help=True)
OptionalTenant = Annotated[
    str | None,
    typer.Option("--tenant", "-t", help="Tenant name or id (direct mode; the API uses the key's)."),
]
By = Annotated[
    str | None,
    typer.Option("--by", help="Who (direct mode, required; through the API the key's name)."),
]
Workflow = Annotated[
    str | None, typer.Option("--workflow", "-w", help="One workflow only (name or id).")
]


async def _scope(
    settings: Settings, tenant: str, workflow: str | None
) -> tuple[uuid.UUID, uuid.UUID | None]:
    async with databases(settings) as dbs:
        tenant_id = await resolve_tenant(dbs, tenant)
        workflow_id = await resolve_workflow(dbs, tenant_id, workflow) if workflow else None
    return tenant_id, workflow_id


@kill_switch.command("activate")
def activate(
    reason: Annotated[str, typer.Option(help="Why automation stops (required).")],
    tenant: OptionalTenant = None,
    by: By = None,
    workflow: Workflow = None,
    duration: Annotated[str | None, typer.Option(help="Expire after, e.g. 30m or 2h.")] = None,
    expires_at: Annotated[
        datetime | None, typer.Option(help="Expire at this time (ISO 8601, with zone).")
    ] = None,
) -> None:
    """Stop automation now: no action in scope starts once this returns; running ones finish.

    Example: awfdrs kill-switch activate --tenant acme --by alice --duration 1h
    --reason "vendor double-charging"
    """

    target = remote()
    refuse_tenant(tenant, target)
    refuse_by(by, target)
    seconds = parse_duration(duration) if duration else None
    if target is not None:
        body = {"reason": reason, "workflow": workflow, "duration_seconds": seconds,
                "expires_at": expires_at.isoformat() if expires_at else None}  # fmt: skip
        answer = call(target, "POST", "/v1/kill-switches", body=body)
        scope = f"workflow {workflow}" if workflow else "the key's tenant"
        console.print(f"kill switch on {scope} is in force: {answer['message']}")
        return

    async def command(settings: Settings) -> None:
        from awfdrs.client import AwfdrsClient

        assert tenant is not None  # refused above without the API
        assert by is not None
        tenant_id, workflow_id = await _scope(settings, tenant, workflow)
        client = await AwfdrsClient.connect(settings)
        request = await client.activate_kill_switch(
            tenant_id,
            reason=reason,
            activated_by=by,
            workflow_id=workflow_id,
            expires_at=expires_at,
            duration_seconds=seconds,
        )
        scope = f"workflow {workflow}" if workflow else f"tenant {tenant}"
        console.print(f"kill switch on {scope} is in force: {request.message}")

    run(command)


@kill_switch.command("release")
def release(
    tenant: OptionalTenant = None,
    by: By = None,
    workflow: Workflow = None,
    switch: Annotated[
        str | None,
        typer.Option(help="Release this switch only: its id, or a unique start of it."),
    ] = None,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Release the switches of a scope (the tenant-wide ones without --workflow); held
    incidents resume.

    Example: awfdrs kill-switch release --tenant acme --by alice --reason "vendor fixed"
    """

    target = remote()
    refuse_tenant(tenant, target)
    refuse_by(by, target)
    if target is not None:
        body = {"reason": reason, "workflow": workflow, "switch_id": switch}
        console.print(call(target, "POST", "/v1/kill-switches/release", body=body)["message"])
        return

    async def command(settings: Settings) -> None:
        from awfdrs.client import AwfdrsClient

        assert tenant is not None  # refused above without the API
        assert by is not None
        tenant_id, workflow_id = await _scope(settings, tenant, workflow)
        switch_id = None
        if switch is not None:
            async with databases(settings) as dbs:
                switch_id = await resolve_switch(dbs, tenant_id, switch)
        client = await AwfdrsClient.connect(settings)
        request = await client.release_kill_switch(
            tenant_id, released_by=by, reason=reason, workflow_id=workflow_id, switch_id=switch_id
        )
        console.print(request.message)

    run(command)


@kill_switch.command("list")
def list_switches(
    tenant: OptionalTenant = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Switches in force for a tenant, and how recent requests were handled.

    Example: awfdrs kill-switch list --tenant acme
    """
    from awfdrs.contracts import KillSwitchStatus

    target = remote()
    refuse_tenant(tenant, target)

    async def command(settings: Settings) -> None:
        from awfdrs.client import AwfdrsClient

        assert tenant is not None  # refused above without the API
        tenant_id, _ = await _scope(settings, tenant, None)
        client = await AwfdrsClient.connect(settings)
        try:
            status = await client.kill_switches(tenant_id)
        except Exception:  # no switch was ever activated: the workflow does not exist yet
            status = KillSwitchStatus(tenant_id=tenant_id, active=[], requests=[])
        _print_status(status, as_json)

    if target is not None:
        found = call(target, "GET", "/v1/kill-switches")
        _print_status(KillSwitchStatus.model_validate(found), as_json)
    else:
        run(command)


def _print_status(status: Any, as_json: bool) -> None:
    if as_json:
        emit_json(status)
        return
    table = Table("switch", "scope", "reason", "by", "since", "expires")
    for s in status.active:
        scope = str(s.workflow_id or "whole tenant")
        since, expires = format_time(s.activated_at), format_time(s.expires_at)
        table.add_row(str(s.switch_id), scope, s.reason, s.activated_by, since, expires)
    console.print(table)
    for r in status.requests[-5:]:
        console.print(f"  {r.kind} {r.outcome}: {r.message}")
