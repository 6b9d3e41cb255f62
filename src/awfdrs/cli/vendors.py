"""``awfdrs vendors``: the deployment's vendor catalog and each tenant's connections to it.

Credential values are write-only here: ``--header`` takes them, and nothing prints them back
(``connections`` shows the header names with ``***``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from awfdrs.cli.common import databases, run
from awfdrs.cli.output import console, emit_json
from awfdrs.cli.resolve import check_vendor, resolve_tenant
from awfdrs.config import Settings

if TYPE_CHECKING:
    from awfdrs.remediation.credentials import CredentialCipher

vendors = typer.Typer(
    help="Vendors, and each tenant's connection to them (base URL, credentials, rate limit, "
    "circuit breaker).",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id or name.")]
OptionalTenant = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        help="Tenant id or name: act on that tenant's connection only. Without it, the "
        "deployment-wide stop of the vendor, for every tenant.",
    ),
]


def _cipher(settings: Settings) -> CredentialCipher:
    from awfdrs.remediation.credentials import CredentialCipher

    return CredentialCipher.from_settings(settings)


@vendors.command("add")
def vendors_add(
    name: Annotated[str, typer.Argument(help="The name events give in payload.error.vendor.")],
    base_url: Annotated[str, typer.Option(help="Default base URL of its connections.")],
    rate_limit: Annotated[int, typer.Option(help="Default calls per rate-limit window.")] = 60,
    rate_window: Annotated[float, typer.Option(help="Default window in seconds.")] = 60.0,
    failure_threshold: Annotated[int, typer.Option(help="Failures that open a breaker.")] = 5,
    open_seconds: Annotated[int, typer.Option(help="How long a breaker stays open.")] = 30,
    half_open_max_calls: Annotated[int, typer.Option(help="Probes while half-open.")] = 1,
) -> None:
    """Add a vendor to the catalog, or update one with the same name. The settings are the
    defaults a tenant's new connection starts from; no tenant calls it before it connects.

    Example: awfdrs vendors add stripe --base-url https://api.stripe.com --rate-limit 100
    """
    if not base_url.startswith(("http://", "https://")):
        raise typer.BadParameter("must start with http:// or https://", param_hint="--base-url")

    async def command(settings: Settings) -> None:
        from awfdrs.admin import ensure_vendor

        async with databases(settings) as dbs:
            await ensure_vendor(
                dbs.admin, name, base_url, rate_limit_per_minute=rate_limit,
                rate_limit_window_seconds=rate_window, failure_threshold=failure_threshold,
                open_seconds=open_seconds, half_open_max_calls=half_open_max_calls,
            )  # fmt: skip
        console.print(f"vendor [bold]{name}[/] at {base_url}")

    run(command)


@vendors.command("list")
def vendors_list(as_json: JsonFlag = False) -> None:
    """Every vendor with its tenants' connections counted by breaker state (across tenants).

    Example: awfdrs vendors list
    """

    async def command(settings: Settings) -> None:
        from awfdrs.vendor_connections import vendor_health

        async with databases(settings) as dbs:
            found = [v.as_json() for v in await vendor_health(dbs.app)]
        if as_json:
            emit_json(found)
            return
        table = Table("name", "default base_url", "stopped for everyone", "connections")
        for v in found:
            forced = f"by {v['forced_by']}: {v['forced_reason']}" if v["forced_open"] else "no"
            counts = ", ".join(f"{n} {state}" for state, n in v["connections"].items() if n)
            table.add_row(v["name"], v["base_url"], forced, counts or "none")
        console.print(table)

    run(command)


@vendors.command("connect")
def vendors_connect(
    name: Annotated[str, typer.Argument(help="Vendor name (from `awfdrs vendors add`).")],
    tenant: TenantOption,
    base_url: Annotated[
        str | None,
        typer.Option(help="Where this tenant's retries go; '' or unset: the vendor's default."),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            "-H",
            help="A credential header as 'Name: value' (repeat for more); replaces the stored "
            "ones, encrypted with the first AWFDRS_CREDENTIALS_KEYS key.",
        ),
    ] = None,
    clear_credentials: Annotated[
        bool, typer.Option(help="Remove the stored credential headers.")
    ] = False,
    rate_limit: Annotated[int | None, typer.Option(help="Calls per rate-limit window.")] = None,
    rate_window: Annotated[float | None, typer.Option(help="Window in seconds.")] = None,
    failure_threshold: Annotated[
        int | None, typer.Option(help="Consecutive failures that open the breaker.")
    ] = None,
    open_seconds: Annotated[int | None, typer.Option(help="How long it stays open.")] = None,
    half_open_max_calls: Annotated[int | None, typer.Option(help="Probes while half-open.")] = None,
    failure_rate: Annotated[
        float | None, typer.Option(help="Failure rate (0..1] that also opens it.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Connect a tenant to a vendor, or change its connection (only what is given changes).

    Example: awfdrs vendors connect stripe --tenant acme --header 'Authorization: Bearer sk_live_…'
    """

    async def command(settings: Settings) -> None:
        from awfdrs.vendor_connections import connect, parse_header

        credentials = dict(parse_header(h) for h in header) if header else None
        async with databases(settings) as dbs:
            tenant_id = await resolve_tenant(dbs, tenant)
            await check_vendor(dbs, name)
            info = await connect(
                dbs.app, tenant_id, name, cipher=_cipher(settings), base_url=base_url,
                credentials=credentials, clear_credentials=clear_credentials,
                rate_limit_per_minute=rate_limit, rate_limit_window_seconds=rate_window,
                failure_threshold=failure_threshold, open_seconds=open_seconds,
                half_open_max_calls=half_open_max_calls, failure_rate_threshold=failure_rate,
            )  # fmt: skip
        if as_json:
            emit_json(info.as_json())
            return
        names = ", ".join(info.credentials) or "no credentials"
        console.print(f"tenant connected to [bold]{name}[/] at {info.base_url} ({names})")

    run(command)


@vendors.command("connections")
def vendors_connections(tenant: TenantOption, as_json: JsonFlag = False) -> None:
    """A tenant's vendor connections: base URL, credential header names (values never shown),
    breaker and limits.

    Example: awfdrs vendors connections --tenant acme
    """

    async def command(settings: Settings) -> None:
        from awfdrs.vendor_connections import list_connections

        async with databases(settings) as dbs:
            tenant_id = await resolve_tenant(dbs, tenant)
            found = [c.as_json() for c in await list_connections(dbs.app, tenant_id)]
        if as_json:
            emit_json(found)
            return
        table = Table("vendor", "base_url", "credentials", "breaker", "forced open", "rate limit")
        for c in found:
            forced = f"by {c['forced_by']}: {c['forced_reason']}" if c["forced_open"] else "no"
            if c["vendor_forced_open"]:
                forced += " (vendor stopped for everyone)"
            creds = ", ".join(f"{k}: {v}" for k, v in c["credentials"].items()) or "-"
            limit = f"{c['rate_limit_per_minute']}/{c['rate_limit_window_seconds']:g}s"
            table.add_row(c["vendor"], c["base_url"], creds, c["breaker"], forced, limit)
        console.print(table)

    run(command)


@vendors.command("force-open")
def vendors_force_open(
    name: Annotated[str, typer.Argument(help="Vendor name.")],
    by: Annotated[str, typer.Option("--by", help="Who stops it.")],
    reason: Annotated[str, typer.Option("--reason", help="Why.")],
    tenant: OptionalTenant = None,
) -> None:
    """Stop calls to a vendor until released: one tenant's connection with --tenant, else the
    vendor for every tenant (a deployment admin's stop).

    Example: awfdrs vendors force-open stripe --tenant acme --by alice --reason "INC-42"
    """

    async def command(settings: Settings) -> None:
        from awfdrs.vendor_connections import force_connection_open, force_vendor_open

        async with databases(settings) as dbs:
            await check_vendor(dbs, name)
            if tenant is None:
                await force_vendor_open(dbs.admin, name, by=by, reason=reason)
                console.print(
                    f"vendor {name} forced OPEN for every tenant by {by}: nothing is sent to it "
                    "until released"
                )
                return
            tenant_id = await resolve_tenant(dbs, tenant)
            await check_vendor(dbs, name)
            await force_connection_open(
                dbs.app, tenant_id, name, by=by, reason=reason, audited=True
            )
        console.print(
            f"tenant {tenant}'s connection to {name} forced OPEN by {by}: nothing of this "
            "tenant is sent to it until released"
        )

    run(command)


@vendors.command("release")
def vendors_release(
    name: Annotated[str, typer.Argument(help="Vendor name.")],
    by: Annotated[str, typer.Option("--by", help="Who releases it (recorded).")],
    tenant: OptionalTenant = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded).")] = None,
) -> None:
    """End a forced stop: the tenant's connection with --tenant (its next call is a probe; who
    and why go to the tenant's audit), else the deployment-wide stop of the vendor.

    Example: awfdrs vendors release stripe --tenant acme --by alice --reason "INC-42 fixed"
    """
    if not by.strip():
        raise typer.BadParameter("must name who releases it", param_hint="--by")

    async def command(settings: Settings) -> None:
        from awfdrs.vendor_connections import release_connection, release_vendor

        why = f": {reason}" if reason else ""
        async with databases(settings) as dbs:
            await check_vendor(dbs, name)
            if tenant is None:
                await release_vendor(dbs.admin, name)
                console.print(f"vendor {name} released for every tenant by {by}{why}")
                return
            tenant_id = await resolve_tenant(dbs, tenant)
            await release_connection(dbs.app, tenant_id, name, by=by, reason=reason)
        console.print(
            f"tenant {tenant}'s connection to {name} released by {by}{why} "
            "(HALF_OPEN: the next call probes it)"
        )

    run(command)


@vendors.command("rotate-credentials")
def vendors_rotate_credentials() -> None:
    """Re-encrypt every connection's credentials with the first AWFDRS_CREDENTIALS_KEYS key.

    Rotation: put the new key first (keep the old one after it), run this, then remove the old
    key and restart the worker and the API. Needs AWFDRS_MIGRATION_DATABASE_URL (every tenant).

    Example: AWFDRS_CREDENTIALS_KEYS=new,old awfdrs vendors rotate-credentials
    """

    async def command(settings: Settings) -> None:
        from awfdrs.vendor_connections import rotate_credentials

        async with databases(settings) as dbs:
            rotated = await rotate_credentials(dbs.app, dbs.owner, _cipher(settings))
        console.print(f"re-encrypted the credentials of {rotated} connection(s) with the first key")

    run(command)
