"""``awfdrs keys``: the per-tenant API keys senders and operators use on the HTTP edge."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from awfdrs.cli.common import databases, parse_duration, run
from awfdrs.cli.output import console, emit_json, format_time
from awfdrs.cli.resolve import as_uuid, resolve_key, resolve_tenant
from awfdrs.config import Settings
from awfdrs.errors import ConfigError, NotFoundError

keys = typer.Typer(help="API keys for the HTTP edge (awfdrs api).", no_args_is_help=True)
ROLES = ("ingest", "viewer", "operator", "admin")


@keys.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id.")],
    role: Annotated[
        str, typer.Option("--role", help="ingest (send events), viewer, operator or admin.")
    ],
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="Who or what uses it. For operator and admin keys this is the actor recorded "
            "on everything the key does (default key:<prefix>): name the person.",
        ),
    ] = "",
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime: 90s, 15m, 2h, 30d.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Create a key and print it once: only its hash is stored, it cannot be shown again.

    Example: awfdrs keys create --tenant acme --role ingest --name payments-service --expires 90d
    """
    role = role.strip().lower()
    if role not in ROLES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLES)}", param_hint="--role")
    lifetime = timedelta(seconds=parse_duration(expires)) if expires else None

    async def command(settings: Settings) -> None:
        from awfdrs.api.keys import Role, create_key

        async with databases(settings) as dbs:
            tenant_id = await resolve_tenant(dbs, tenant)
            key, info = await create_key(
                dbs.app, tenant_id, Role(role), name=name, expires_in=lifetime
            )
        if as_json:
            emit_json({"key": key, **info.as_json()})
            return
        console.print(f"key {info.id} ({info.role.value}) for tenant {tenant_id}:", markup=False)
        typer.echo(key)
        console.print("Store it now: it is not shown again.", markup=False)
        if info.expires_at:
            console.print(f"It expires at {format_time(info.expires_at)}.", markup=False)

    run(command)


@keys.command("list")
def keys_list(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A tenant's keys with their prefix, role, state and last use (never the secret).

    Example: awfdrs keys list --tenant acme
    """

    async def command(settings: Settings) -> None:
        from awfdrs.api.keys import list_keys

        async with databases(settings) as dbs:
            tenant_id = await resolve_tenant(dbs, tenant)
            found = await list_keys(dbs.app, tenant_id)
        if as_json:
            emit_json([k.as_json() for k in found])
            return
        table = Table("id", "prefix", "name", "role", "state", "expires", "last used")
        for k in found:
            table.add_row(
                str(k.id), k.prefix, k.name, k.role.value, k.state(),
                format_time(k.expires_at) if k.expires_at else "never", format_time(k.last_used_at),
            )  # fmt: skip
        console.print(table)

    run(command)


@keys.command("revoke")
def keys_revoke(
    key: Annotated[
        str,
        typer.Argument(
            help="The key's id, its public prefix, or (with --tenant) the start of its id."
        ),
    ],
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", "-t", help="Tenant name or id: to name the key by a start of its id."
        ),
    ] = None,
) -> None:
    """Revoke a key; the API refuses it within 5 seconds (its cache lives at most that long).

    Example: awfdrs keys revoke 3f2b8c1e-6d0a-4c7e-9a51-2b7f0e4d9c13 (or: 3f2b8c1e --tenant acme)
    """

    async def command(settings: Settings) -> None:
        from awfdrs.api.keys import revoke_key

        async with databases(settings) as dbs:
            target = key
            if tenant is not None:
                target = str(await resolve_key(dbs, await resolve_tenant(dbs, tenant), key))
            try:
                info = await revoke_key(dbs.app, target)
            except NotFoundError:
                if tenant is None and as_uuid(key) is None:
                    raise ConfigError(
                        f"no key has the id or public prefix {key!r}; to name a key by the start "
                        "of its id, add --tenant"
                    ) from None
                raise
        assert info.revoked_at is not None
        console.print(
            f"key {info.id} ({info.prefix}) of tenant {info.tenant_id} revoked at "
            f"{format_time(info.revoked_at)}",
            markup=False,
        )

    run(command)
