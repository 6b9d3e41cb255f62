"""``awfdrs kill-switch``: stop automation for a tenant or one workflow, and let it go again."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from awfdrs.cli.common import (
    console,
    databases,
    emit_json,
    parse_duration,
    resolve_tenant,
    resolve_workflow,
    run,
)
from awfdrs.config import Settings

kill_switch = typer.Typer(help="Emergency stops of automation.", no_args_is_help=True)
Tenant = Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id.")]
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
    tenant: Tenant,
    reason: Annotated[str, typer.Option(help="Why automation stops (required).")],
    by: Annotated[str, typer.Option("--by", help="Who stops it (required).")],
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

    async def command(settings: Settings) -> None:
        from awfdrs.client import AwfdrsClient

        tenant_id, workflow_id = await _scope(settings, tenant, workflow)
        client = await AwfdrsClient.connect(settings)
        request = await client.activate_kill_switch(
            tenant_id,
            reason=reason,
            activated_by=by,
            workflow_id=workflow_id,
            expires_at=expires_at,
            duration_seconds=parse_duration(duration) if duration else None,
        )
        scope = f"workflow {workflow}" if workflow else f"tenant {tenant}"
        console.print(f"kill switch on {scope} is in force: {request.message}")

    run(command)


@kill_switch.command("release")
def release(
    tenant: Tenant,
    by: Annotated[str, typer.Option("--by", help="Who lets automation go (required).")],
    workflow: Workflow = None,
    switch: Annotated[uuid.UUID | None, typer.Option(help="Release this switch only.")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Release the switches of a scope (the tenant-wide ones without --workflow); held
    incidents resume.

    Example: awfdrs kill-switch release --tenant acme --by alice --reason "vendor fixed"
    """

    async def command(settings: Settings) -> None:
        from awfdrs.client import AwfdrsClient

        tenant_id, workflow_id = await _scope(settings, tenant, workflow)
        client = await AwfdrsClient.connect(settings)
        request = await client.release_kill_switch(
            tenant_id, released_by=by, reason=reason, workflow_id=workflow_id, switch_id=switch
        )
        console.print(request.message)

    run(command)


@kill_switch.command("list")
def list_switches(
    tenant: Tenant,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Switches in force for a tenant, and how recent requests were handled.

    Example: awfdrs kill-switch list --tenant acme
    """

    async def command(settings: Settings) -> None:
        from awfdrs.client import AwfdrsClient
        from awfdrs.contracts import KillSwitchStatus

        tenant_id, _ = await _scope(settings, tenant, None)
        client = await AwfdrsClient.connect(settings)
        try:
            status = await client.kill_switches(tenant_id)
        except Exception:  # no switch was ever activated: the workflow does not exist yet
            status = KillSwitchStatus(tenant_id=tenant_id, active=[], requests=[])
        if as_json:
            emit_json(status)
            return
        table = Table("switch", "scope", "reason", "by", "since", "expires")
        for s in status.active:
            table.add_row(str(s.switch_id), str(s.workflow_id or "whole tenant"), s.reason,
                          s.activated_by, s.activated_at.isoformat()[:19],
                          s.expires_at.isoformat()[:19] if s.expires_at else "—")  # fmt: skip
        console.print(table)
        for r in status.requests[-5:]:
            console.print(f"  {r.kind} {r.outcome}: {r.message}")

    run(command)
