"""``awfdrs tenants``, ``workflows``: what comes before the first event (``vendors``: in
:mod:`awfdrs.cli.vendors`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from awfdrs.cli.common import databases, parse_assignments, run
from awfdrs.cli.output import console, emit_json
from awfdrs.cli.resolve import resolve_tenant, resolve_workflow
from awfdrs.config import Settings
from awfdrs.contracts import TenantSettings, WorkflowSettings
from awfdrs.contracts.settings import masked_settings

tenants = typer.Typer(help="Tenants and their settings.", no_args_is_help=True)
workflows = typer.Typer(help="A tenant's workflows.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SettingArgs = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="A setting as key=value; repeat for more."),
]


def _settings_table(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=True)
    table.add_column("setting")
    table.add_column("value")
    for key, value in values.items():
        table.add_row(key, "" if value is None else str(value))
    return table


def _tenant_json(tenant: Any) -> dict[str, Any]:
    return {
        "id": str(tenant.id),
        "name": tenant.name,
        "is_active": tenant.is_active,
        "settings": masked_settings(tenant.settings),
    }


@tenants.command("add")
def tenants_add(
    name: Annotated[str, typer.Argument(help="Unique tenant name.")],
    settings_: SettingArgs = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a tenant; settings not given keep their defaults (see `tenants show`).

    Example: awfdrs tenants add acme -s grouping_window_seconds=60
    -s escalation_webhook_url=https://events.pagerduty.com/v2/enqueue
    """

    async def command(settings: Settings) -> None:
        from awfdrs.admin import create_tenant

        values = TenantSettings.model_validate(parse_assignments(settings_ or []))
        async with databases(settings) as dbs:
            tenant = await create_tenant(dbs.admin, name, values)
        if as_json:
            emit_json(_tenant_json(tenant))
        else:
            console.print(f"tenant [bold]{tenant.name}[/] added: {tenant.id}")
            console.print(_settings_table("settings", masked_settings(tenant.settings)))

    run(command)


@tenants.command("list")
def tenants_list(as_json: JsonFlag = False) -> None:
    """Every tenant (needs the owner connection, AWFDRS_MIGRATION_DATABASE_URL).

    Example: awfdrs tenants list --json
    """

    async def command(settings: Settings) -> None:
        from awfdrs.admin import list_tenants

        async with databases(settings) as dbs:
            found = await list_tenants(dbs.owner)
        if as_json:
            emit_json([_tenant_json(t) for t in found])
            return
        table = Table("id", "name", "active", "mode", "webhook", "grouping s", "threshold")
        for t in found:
            s = t.settings
            table.add_row(
                str(t.id), t.name, "yes" if t.is_active else "no", s.remediation_mode.value,
                str(s.escalation_webhook_url or "—"), f"{s.grouping_window_seconds:g}",
                f"{s.confidence_threshold:g}",
            )  # fmt: skip
        console.print(table)

    run(command)


@tenants.command("show")
def tenants_show(
    tenant: Annotated[str, typer.Argument(help="Tenant name or id.")],
    as_json: JsonFlag = False,
) -> None:
    """A tenant's settings, defaults included.

    Example: awfdrs tenants show acme
    """

    async def command(settings: Settings) -> None:
        from awfdrs.db.repositories import TenantRepository
        from awfdrs.db.session import tenant_session

        async with databases(settings) as dbs:
            tenant_id = await resolve_tenant(dbs, tenant)
            async with tenant_session(dbs.app, tenant_id) as session:
                row = await TenantRepository(session, tenant_id=tenant_id).get_current()
                values = TenantSettings.model_validate(row.settings)
                name, active = row.name, row.is_active
        shown = masked_settings(values)
        if as_json:
            emit_json({"id": str(tenant_id), "name": name, "is_active": active, "settings": shown})
        else:
            console.print(_settings_table(f"{name} ({tenant_id})", shown))

    run(command)


@tenants.command("set")
def tenants_set(
    tenant: Annotated[str, typer.Argument(help="Tenant name or id.")],
    assignments: Annotated[list[str], typer.Argument(help="key=value settings to change.")],
) -> None:
    """Change settings; a bad value names the setting and changes nothing.

    Example: awfdrs tenants set acme remediation_mode=shadow budget_actions_per_hour=10
    """

    async def command(settings: Settings) -> None:
        from awfdrs.admin import update_tenant_settings

        changes = parse_assignments(assignments)
        async with databases(settings) as dbs:
            tenant_id = await resolve_tenant(dbs, tenant)
            updated = await update_tenant_settings(dbs.app, tenant_id, changes)
        console.print(f"updated {', '.join(changes)} of {updated.name}")

    run(command)


@workflows.command("add")
def workflows_add(
    name: Annotated[str, typer.Argument(help="Workflow name, unique per tenant.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id.")],
    description: Annotated[str, typer.Option(help="What the workflow does.")] = "",
    settings_: SettingArgs = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a workflow of a tenant; its id goes into each event's workflow_id.

    Example: awfdrs workflows add payments --tenant acme -s remediation_mode=shadow
    """

    async def command(settings: Settings) -> None:
        from awfdrs.admin import create_workflow

        own = WorkflowSettings.model_validate(parse_assignments(settings_ or []))
        async with databases(settings) as dbs:
            tenant_id = await resolve_tenant(dbs, tenant)
            flow = await create_workflow(dbs.app, tenant_id, name, description, own)
        if as_json:
            emit_json({"id": str(flow.id), "tenant_id": str(tenant_id), "name": flow.name,
                       "settings": flow.settings})  # fmt: skip
        else:
            console.print(f"workflow [bold]{flow.name}[/] added: {flow.id}")

    run(command)


@workflows.command("list")
def workflows_list(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id.")],
    as_json: JsonFlag = False,
) -> None:
    """A tenant's workflows.

    Example: awfdrs workflows list --tenant acme
    """

    async def command(settings: Settings) -> None:
        from awfdrs.admin import list_workflows

        async with databases(settings) as dbs:
            tenant_id = await resolve_tenant(dbs, tenant)
            found = await list_workflows(dbs.app, tenant_id)
        if as_json:
            emit_json([{"id": str(w.id), "name": w.name, "is_active": w.is_active,
                        "settings": w.settings} for w in found])  # fmt: skip
            return
        table = Table("id", "name", "active", "mode")
        for w in found:
            mode = WorkflowSettings.model_validate(w.settings).remediation_mode
            table.add_row(str(w.id), w.name, "yes" if w.is_active else "no",
                          mode.value if mode else "(tenant's)")  # fmt: skip
        console.print(table)

    run(command)


@workflows.command("set")
def workflows_set(
    workflow: Annotated[str, typer.Argument(help="Workflow name or id.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id.")],
    assignments: Annotated[list[str], typer.Argument(help="key=value settings to change.")],
) -> None:
    """Change a workflow's own settings (remediation_mode=live|shadow|off, or null to inherit).

    Example: awfdrs workflows set payments --tenant acme remediation_mode=shadow
    """

    async def command(settings: Settings) -> None:
        from awfdrs.admin import update_workflow_settings

        changes = parse_assignments(assignments)
        async with databases(settings) as dbs:
            tenant_id = await resolve_tenant(dbs, tenant)
            workflow_id = await resolve_workflow(dbs, tenant_id, workflow)
            await update_workflow_settings(dbs.app, tenant_id, workflow_id, changes)
        console.print(f"updated {', '.join(changes)} of workflow {workflow}")

    run(command)
