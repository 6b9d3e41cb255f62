"""The audit chain of the key's tenant over HTTP: page through it, and verify it.

Readers only (viewer, operator, admin), like the operator API's reads; the tenant is the key's
and row-level security applies. A broken chain is an answer (``intact: false`` naming the row),
not an error: the request itself succeeded.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from awfdrs.api.auth import Principal, require_reader
from awfdrs.api.edge import authenticated, edge_of, respond
from awfdrs.api.errors import ErrorBody, db_guarded
from awfdrs.db.models import AuditEntry
from awfdrs.db.repositories import AuditRepository
from awfdrs.db.session import tenant_session

MAX_PAGE = 1000
log = logging.getLogger("awfdrs.api.audit")
router = APIRouter(prefix="/v1/audit", tags=["audit"])
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing, malformed, unknown, revoked or expired key"},
    403: {"model": ErrorBody, "description": "Not a viewer, operator or admin key"},
    503: {"model": ErrorBody, "description": "PostgreSQL cannot be reached now"},
}


async def reader(request: Request) -> Principal:
    principal = await authenticated(request)
    require_reader(principal)
    return principal


Reader = Annotated[Principal, Depends(reader)]


async def record_command(
    request: Request,
    principal: Principal,
    command: str,
    subject: tuple[str, Any] | None,
    body: BaseModel | dict[str, Any] | None,
) -> None:
    """Append ``operator.command`` (actor: the key's name) once a command has succeeded.

    A failure to record is logged, not raised: the command has already taken effect, and an
    error would make the operator send it again. What the command changed (a decision, a
    closure, a kill switch) is still recorded by the database's own triggers.
    """
    try:
        async with tenant_session(edge_of(request).sessions, principal.tenant_id) as session:
            await AuditRepository(session, tenant_id=principal.tenant_id).record_command(
                principal.actor,
                command,
                subject,
                body.model_dump(mode="json") if isinstance(body, BaseModel) else body,
            )
    except Exception:
        log.exception("operator command %s by %s not recorded in the audit", command,
                      principal.actor)  # fmt: skip


class AuditRow(BaseModel):
    """One row, every column (what ``awfdrs audit export`` writes per line)."""

    tenant_id: str
    seq: int
    id: str
    occurred_at: datetime
    actor: str
    kind: str
    subject_type: str | None
    subject_id: str | None
    body: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditRow:
        return cls(
            tenant_id=str(entry.tenant_id),
            seq=entry.seq,
            id=str(entry.id),
            occurred_at=entry.occurred_at,
            actor=entry.actor,
            kind=entry.kind,
            subject_type=entry.subject_type,
            subject_id=entry.subject_id,
            body=entry.body,
            prev_hash=entry.prev_hash,
            hash=entry.hash,
        )


class AuditPage(BaseModel):
    items: list[AuditRow]
    # Pass as ``after`` for the next page; None when this page is the end of the chain so far.
    next_after: int | None


class BrokenRow(BaseModel):
    seq: int
    id: str | None
    reason: str
    detail: str


class AuditVerdict(BaseModel):
    intact: bool
    rows: int
    head: str
    broken: BrokenRow | None
    summary: str


@router.get(
    "",
    response_model=AuditPage,
    responses=READ_ERRORS,
    summary="The key's tenant's audit chain, oldest first, from a seq on",
)
async def get_audit(
    request: Request,
    principal: Reader,
    after: Annotated[int, Query(ge=0, description="Only rows with a seq above this")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Response:
    async def page() -> AuditPage:
        async with tenant_session(edge_of(request).sessions, principal.tenant_id) as session:
            rows = await AuditRepository(session, tenant_id=principal.tenant_id).list(
                after_seq=after, limit=limit + 1
            )
        items = [AuditRow.of(r) for r in rows[:limit]]
        return AuditPage(items=items, next_after=items[-1].seq if len(rows) > limit else None)

    return respond(await db_guarded(page()))


@router.get(
    "/verify",
    response_model=AuditVerdict,
    responses=READ_ERRORS,
    summary="Recompute the key's tenant's chain: intact, or the first broken row and why",
)
async def verify_audit(request: Request, principal: Reader) -> Response:
    async def verdict() -> AuditVerdict:
        async with tenant_session(edge_of(request).sessions, principal.tenant_id) as session:
            found = await AuditRepository(session, tenant_id=principal.tenant_id).verify()
        broken = found.broken
        return AuditVerdict(
            intact=found.intact,
            rows=found.rows,
            head=found.head,
            broken=None
            if broken is None
            else BrokenRow(
                seq=broken.seq,
                id=str(broken.id) if broken.id else None,
                reason=broken.reason.value,
                detail=broken.detail,
            ),
            summary=found.describe(),
        )

    return respond(await db_guarded(verdict()))
