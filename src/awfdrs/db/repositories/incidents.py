from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, String, Uuid, and_, any_, bindparam, case, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.db.models import Incident, Tenant
from awfdrs.db.repositories.base import (
    BaseRepository,
    MutableMixin,
    fetch_raw,
    id_starts_with,
)
from awfdrs.enums import (
    OPEN_INCIDENT_STATUSES,
    SEVERITY_ORDER,
    GateControl,
    IncidentStatus,
    Phase,
    Severity,
)
from awfdrs.errors import ConflictError, NotFoundError
from awfdrs.intake import FailureGroup


@dataclass(frozen=True, slots=True)
class IncidentTouch:
    """What an upsert did to one incident; ``prior_severity`` is None for a new incident."""

    id: uuid.UUID
    signature: str
    status: IncidentStatus
    severity: Severity
    prior_severity: Severity | None
    opened: bool
    event_count: int
    regression_of: uuid.UUID | None


# created_at is the transaction's now(), like the received_at of the events that open it, so an
# incident's events are exactly those of its signature received from its creation on.
# All CTEs read one snapshot, the state before this statement. ``latest`` decides between
# counting on an IGNORED incident, updating the open one (the ON CONFLICT arbiter is the partial
# unique index) and opening a new one that links a RESOLVED predecessor; it also gives the prior
# severity, since an open incident is always its signature's latest. It is MATERIALIZED and
# joined by id: an inlined join of incidents to the batch under each upserted row went quadratic
# (45 s for a 1,000-signature batch) when the planner, without statistics, guessed one row.
# Rows are taken in signature order so concurrent batches lock in the same order.
UPSERT_ROUNDS = 3
UPSERT_SQL = """
    WITH batch AS (
        SELECT * FROM unnest(CAST($2 AS text[]), CAST($3 AS uuid[]),
                             CAST($4 AS text[]), CAST($5 AS text[]),
                             CAST($6 AS integer[]), CAST($7 AS timestamptz[]),
                             CAST($8 AS timestamptz[]), CAST($9 AS text[]),
                             CAST($10 AS text[]))
            AS b(signature, workflow_id, operation, title, n, first_seen_at, last_seen_at,
                 severity, correlation_id)
    ),
    latest AS MATERIALIZED (
        SELECT DISTINCT ON (i.signature) i.id, i.signature, i.status, i.severity
        FROM incidents i JOIN batch b ON b.signature = i.signature
        WHERE i.tenant_id = CAST($1 AS uuid)
        ORDER BY i.signature, i.created_at DESC, i.id DESC
    ),
    ignored AS (
        UPDATE incidents i
        SET event_count = i.event_count + b.n,
            last_seen_at = greatest(i.last_seen_at, b.last_seen_at)
        FROM batch b JOIN latest l ON l.signature = b.signature AND l.status = 'IGNORED'
        WHERE i.id = l.id
        RETURNING i.id, i.signature, i.status, i.severity, i.event_count, i.regression_of,
                  false AS opened
    ),
    upserted AS (
        INSERT INTO incidents AS i (tenant_id, workflow_id, signature, operation, title, status,
                                    severity, event_count, first_seen_at, last_seen_at,
                                    regression_of, correlation_id, created_at)
        SELECT CAST($1 AS uuid), b.workflow_id, b.signature, b.operation, b.title, 'NEW',
               b.severity, b.n, b.first_seen_at, b.last_seen_at,
               CASE WHEN l.status = 'RESOLVED' THEN l.id END, b.correlation_id, now()
        FROM batch b LEFT JOIN latest l ON l.signature = b.signature
        WHERE l.status IS DISTINCT FROM 'IGNORED'
        ORDER BY b.signature
        ON CONFLICT (tenant_id, signature) WHERE status IN ('NEW', 'ANALYZING', 'ACTIONED')
        DO UPDATE SET
            event_count = i.event_count + excluded.event_count,
            first_seen_at = least(i.first_seen_at, excluded.first_seen_at),
            last_seen_at = greatest(i.last_seen_at, excluded.last_seen_at),
            severity = CASE
                WHEN array_position(CAST($11 AS text[]), excluded.severity)
                   > array_position(CAST($11 AS text[]), i.severity)
                THEN excluded.severity ELSE i.severity END
        -- A close that committed while this statement waited for the row leaves it RESOLVED
        -- or IGNORED: never count onto it (nor attach requests to it); the caller runs the
        -- statement again for that signature, which then opens a regression incident.
        WHERE i.status IN ('NEW', 'ANALYZING', 'ACTIONED')
        RETURNING i.id, i.signature, i.status, i.severity, i.event_count, i.regression_of,
                  (i.xmax = 0) AS opened
    )
    SELECT u.id, u.signature, u.status, u.severity, p.severity AS prior_severity, u.opened,
           u.event_count, u.regression_of
    FROM upserted u
    LEFT JOIN latest p ON p.id = u.id AND p.status IN ('NEW', 'ANALYZING', 'ACTIONED')
    UNION ALL
    SELECT g.id, g.signature, g.status, g.severity, g.severity, g.opened, g.event_count,
           g.regression_of
    FROM ignored g
    """

# A select of incidents (alone or with their tenant's name), filtered and returned as it came.
Filtered = TypeVar("Filtered", bound="Select[*tuple[Any, ...]]")


def _matching(
    stmt: Filtered,
    *,
    status: IncidentStatus | None = None,
    severity: Severity | None = None,
    workflow_id: uuid.UUID | None = None,
    phases: Collection[Phase] | None = None,
) -> Filtered:
    """The incident filters a tenant's listing and the operators' every-tenant one share:
    ``phases`` are those of open incidents (the "needs a human" filter)."""
    if status is not None:
        stmt = stmt.where(Incident.status == status)
    if severity is not None:
        stmt = stmt.where(Incident.severity == severity)
    if workflow_id is not None:
        stmt = stmt.where(Incident.workflow_id == workflow_id)
    if phases is not None:
        stmt = stmt.where(
            Incident.status.in_(OPEN_INCIDENT_STATUSES), Incident.phase.in_(list(phases))
        )
    return stmt


class IncidentRepository(MutableMixin[Incident], BaseRepository[Incident]):
    """Incidents of the tenant, and the set-based upsert ingest runs them through."""

    model = Incident

    async def upsert_failures(self, groups: Sequence[FailureGroup]) -> list[IncidentTouch]:
        """Count ``groups`` onto incidents in one statement; return what happened to each.

        Per signature: the open incident gains the count (severity only ever rises); else, when
        the latest incident is IGNORED, it gains the count and nothing opens; else a NEW incident
        opens, with ``regression_of`` set when the latest one was RESOLVED. Signatures must be
        unique within ``groups``; the caller passes only events that were really inserted.
        """
        touched: list[IncidentTouch] = []
        pending = list(groups)
        # At most a few rounds: a signature is missed only when its open incident closed
        # concurrently, and the next round sees that close and opens a new incident.
        for _ in range(UPSERT_ROUNDS):
            if not pending:
                return touched
            done = await self._upsert_round(pending)
            touched.extend(done)
            seen = {t.signature for t in done}
            pending = [g for g in pending if g.signature not in seen]
        if pending:
            raise ConflictError(
                "incident_upsert", f"incidents of {len(pending)} signature(s) kept closing"
            )
        return touched

    async def _upsert_round(self, groups: Sequence[FailureGroup]) -> list[IncidentTouch]:
        ordered = sorted(groups, key=lambda g: g.signature)
        result = await fetch_raw(
            self.session,
            UPSERT_SQL,
            str(self.tenant_id),
            [g.signature for g in ordered],
            [g.workflow_id for g in ordered],
            [g.operation for g in ordered],
            [g.title for g in ordered],
            [g.count for g in ordered],
            [g.first_seen_at for g in ordered],
            [g.last_seen_at for g in ordered],
            [g.severity.value for g in ordered],
            [g.correlation_id for g in ordered],
            [s.value for s in SEVERITY_ORDER],
        )
        return [
            IncidentTouch(
                id=row["id"],
                signature=row["signature"],
                status=IncidentStatus(row["status"]),
                severity=Severity(row["severity"]),
                prior_severity=Severity(row["prior_severity"]) if row["prior_severity"] else None,
                opened=bool(row["opened"]),
                event_count=row["event_count"],
                regression_of=row["regression_of"],
            )
            for row in result
        ]

    async def list_matching(
        self,
        *,
        status: IncidentStatus | None = None,
        severity: Severity | None = None,
        workflow_id: uuid.UUID | None = None,
        phases: Collection[Phase] | None = None,
        seen_since: datetime | None = None,
        first: Collection[Phase] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Sequence[Incident]:
        """Newest first, optionally of one status, severity, workflow, and open in one of
        ``phases`` (the operator's "needs a human" filter); ``offset`` pages through them.
        ``seen_since``: only those seen (last event) since then; ``first``: open incidents in
        one of these phases come before all others (the console's queue)."""
        stmt = self._select()
        if seen_since is not None:
            stmt = stmt.where(Incident.last_seen_at >= seen_since)
        if first:
            stmt = stmt.order_by(
                case(
                    (
                        and_(
                            Incident.status.in_(OPEN_INCIDENT_STATUSES),
                            Incident.phase.in_(list(first)),
                        ),
                        0,
                    ),
                    else_=1,
                )
            )
        stmt = _matching(
            stmt, status=status, severity=severity, workflow_id=workflow_id, phases=phases
        )
        stmt = stmt.order_by(Incident.created_at.desc(), Incident.id.desc())
        stmt = stmt.limit(limit).offset(offset)
        return (await self.session.execute(stmt)).scalars().all()

    async def list_by_id_prefix(self, prefix: str, limit: int = 11) -> Sequence[Incident]:
        """This tenant's incidents whose id, as text (lowercase, with hyphens), starts with
        ``prefix``: one row is a match, several an ambiguity (at most ``limit``, by id)."""
        stmt = self._select().where(id_starts_with(Incident.id, prefix)).order_by(Incident.id)
        return (await self.session.execute(stmt.limit(limit))).scalars().all()

    async def list_by_ids(self, ids: Collection[uuid.UUID]) -> Sequence[Incident]:
        """The incidents among ``ids`` that exist for this tenant."""
        if not ids:
            return []
        wanted = bindparam("ids", list(ids), type_=ARRAY(Uuid))
        stmt = self._select().where(Incident.id == any_(wanted))
        return (await self.session.execute(stmt)).scalars().all()

    async def find_open_by_signatures(self, signatures: Collection[str]) -> Sequence[Incident]:
        """The open incident of each of ``signatures`` that has one."""
        if not signatures:
            return []
        wanted = bindparam("signatures", list(signatures), type_=ARRAY(String))
        stmt = self._select().where(
            Incident.signature == any_(wanted), Incident.status.in_(OPEN_INCIDENT_STATUSES)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def count_open_since(self, since: datetime) -> int:
        """Incidents opened at or after ``since`` that are still open: the fuse's measure."""
        stmt = self._scoped(func.count()).where(
            Incident.created_at >= since, Incident.status.in_(OPEN_INCIDENT_STATUSES)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def list_held(self, workflow_id: uuid.UUID | None = None) -> Sequence[uuid.UUID]:
        """Open incidents (of ``workflow_id`` if given) whose workflow waits held by a control."""
        stmt = self._scoped(Incident.id).where(
            Incident.status.in_(OPEN_INCIDENT_STATUSES), Incident.phase == Phase.HELD
        )
        if workflow_id is not None:
            stmt = stmt.where(Incident.workflow_id == workflow_id)
        ids: Sequence[uuid.UUID] = (await self.session.execute(stmt)).scalars().all()
        return ids

    async def note_phase(
        self,
        incident_id: uuid.UUID,
        phase: Phase,
        reason: str | None,
        held_by: GateControl | None = None,
    ) -> bool:
        """Record the phase an open incident's workflow waits in; False when it is closed."""
        scoped = self._where_id(incident_id).whereclause
        assert scoped is not None
        result = await self.session.execute(
            update(Incident)
            .where(scoped, Incident.status.in_(OPEN_INCIDENT_STATUSES))
            .values(phase=phase, phase_reason=reason, held_by=held_by)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def find_open_by_signature(self, signature: str) -> Incident | None:
        stmt = self._select().where(
            Incident.signature == signature, Incident.status.in_(OPEN_INCIDENT_STATUSES)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def find_latest_for_signature(self, signature: str) -> Incident | None:
        stmt = (
            self._select()
            .where(Incident.signature == signature)
            .order_by(Incident.created_at.desc(), Incident.id.desc())
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_incidents_paginated(
        self, page: int = 1, page_size: int = 20, *, status: IncidentStatus | None = None
    ) -> Sequence[Incident]:
        """One page, newest first; ``page`` counts from 1."""
        if page < 1 or page_size < 1:
            raise ValueError("page and page_size start at 1")
        stmt = self._select()
        if status is not None:
            stmt = stmt.where(Incident.status == status)
        stmt = stmt.order_by(Incident.created_at.desc(), Incident.id.desc())
        stmt = stmt.offset((page - 1) * page_size).limit(page_size)
        return (await self.session.execute(stmt)).scalars().all()

    async def get_incidents_by_status(
        self, status: IncidentStatus, *, limit: int = 100
    ) -> Sequence[Incident]:
        stmt = (
            self._select()
            .where(Incident.status == status)
            .order_by(Incident.created_at.desc(), Incident.id.desc())
            .limit(limit)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def count_by_status(self) -> dict[IncidentStatus, int]:
        stmt = self._scoped(Incident.status, func.count()).group_by(Incident.status)
        counts = dict.fromkeys(IncidentStatus, 0)
        for status, count in (await self.session.execute(stmt)).all():
            counts[IncidentStatus(status)] = int(count)
        return counts

    async def transition(
        self,
        incident_id: uuid.UUID,
        *,
        expected: Collection[IncidentStatus],
        to: IncidentStatus,
        **values: Any,
    ) -> Incident | None:
        """Move to ``to`` only from one of ``expected``; None when the incident was elsewhere.

        The guard is in the UPDATE's WHERE clause, so two racing transitions cannot both win.
        :class:`NotFoundError` when the incident does not exist for this tenant.
        """
        moved = await self._update_returning(
            Incident.id == incident_id, Incident.status.in_(list(expected)), status=to, **values
        )
        if not moved and await self.find(incident_id) is None:
            raise NotFoundError("Incident", incident_id)
        return moved[0] if moved else None


class IncidentDirectory:
    """Incidents of every tenant, for operators on the owner connection (the CLI's listings)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_matching(
        self,
        *,
        status: IncidentStatus | None = None,
        severity: Severity | None = None,
        phases: Collection[Phase] | None = None,
        limit: int = 50,
    ) -> Sequence[tuple[Incident, str]]:
        """(incident, tenant name), newest first; ``phases`` as in the tenant's ``search``."""
        stmt = select(Incident, Tenant.name).join(Tenant, Tenant.id == Incident.tenant_id)
        stmt = _matching(stmt, status=status, severity=severity, phases=phases)
        stmt = stmt.order_by(Incident.created_at.desc(), Incident.id.desc()).limit(limit)
        return [(incident, name) for incident, name in (await self.session.execute(stmt)).all()]

    async def list_by_id_prefix(
        self, prefix: str, limit: int = 11
    ) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(incident id, tenant id) of every tenant's incidents whose id starts with
        ``prefix``, as :meth:`IncidentRepository.list_by_id_prefix` (at most ``limit``)."""
        stmt = (
            select(Incident.id, Incident.tenant_id)
            .where(id_starts_with(Incident.id, prefix))
            .order_by(Incident.id)
            .limit(limit)
        )
        return [(i, t) for i, t in (await self.session.execute(stmt)).all()]

    async def find_tenant_of(self, incident_id: uuid.UUID) -> uuid.UUID | None:
        stmt = select(Incident.tenant_id).where(Incident.id == incident_id)
        found: uuid.UUID | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found
