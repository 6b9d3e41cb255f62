"""``awfdrs audit``: prove a tenant's audit chain intact, and export it for a SIEM."""

from __future__ import annotations

import json
import sys
from datetime import UTC
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from awfdrs.cli.common import databases, run
from awfdrs.cli.errors import fail
from awfdrs.cli.output import console, emit_json
from awfdrs.cli.resolve import resolve_tenant
from awfdrs.config import Settings
from awfdrs.db.models import AuditEntry

audit = typer.Typer(help="The tamper-evident audit of a tenant.", no_args_is_help=True)
EXPORT_PAGE = 1000


def export_row(entry: AuditEntry) -> dict[str, Any]:
    """One JSON Lines object: every column, times in ISO 8601 UTC."""
    return {
        "tenant_id": str(entry.tenant_id),
        "seq": entry.seq,
        "id": str(entry.id),
        "occurred_at": entry.occurred_at.astimezone(UTC).isoformat(),
        "actor": entry.actor,
        "kind": entry.kind,
        "subject_type": entry.subject_type,
        "subject_id": entry.subject_id,
        "body": entry.body,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


@audit.command("verify")
def audit_verify(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Recompute every hash of the tenant's chain; exit 1 naming the first broken row.

    Example: awfdrs audit verify --tenant acme
    """

    async def command(settings: Settings) -> bool:
        from awfdrs.db.repositories import AuditRepository
        from awfdrs.db.session import tenant_session

        async with databases(settings) as dbs:
            tenant_id = await resolve_tenant(dbs, tenant)
            async with tenant_session(dbs.app, tenant_id) as session:
                verdict = await AuditRepository(session, tenant_id=tenant_id).verify()
        if as_json:
            emit_json({"tenant_id": str(tenant_id), **verdict.as_json()})
        else:
            console.print(verdict.describe(), markup=False)
        return verdict.intact

    if not run(command):
        raise typer.Exit(1)


@audit.command("export")
def audit_export(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id.")],
    since: Annotated[
        int, typer.Option("--since", min=0, help="Only rows after this seq (the last exported).")
    ] = 0,
    output: Annotated[
        str, typer.Option("--output", "-o", help="File to write, or - for standard output.")
    ] = "-",
) -> None:
    """Write the tenant's audit rows as JSON Lines (one object per row, oldest first).

    Keep the last line's seq and hash: the next export starts with --since SEQ, and a later
    chain that no longer contains that hash at that seq was rewritten.

    Example: awfdrs audit export --tenant acme --since 1200 --output audit.jsonl
    """

    async def write(settings: Settings, out: IO[str]) -> tuple[int, int]:
        from awfdrs.db.repositories import AuditRepository
        from awfdrs.db.session import tenant_session

        written, last = 0, since
        async with databases(settings) as dbs:
            tenant_id = await resolve_tenant(dbs, tenant)
            async with tenant_session(dbs.app, tenant_id) as session:
                repository = AuditRepository(session, tenant_id=tenant_id)
                while page := await repository.list(after_seq=last, limit=EXPORT_PAGE):
                    for entry in page:
                        out.write(json.dumps(export_row(entry), ensure_ascii=False) + "\n")
                    written += len(page)
                    last = page[-1].seq
        return written, last

    if output == "-":
        run(lambda settings: write(settings, sys.stdout))
        return
    path = Path(output)
    try:
        out = path.open("w", encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror}")
    with out:
        written, last = run(lambda settings: write(settings, out))
    console.print(f"{written} rows written to {path} (last seq {last})", markup=False)
