from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select, update

from awfdrs.db.models import Incident, RemediationRequest, RequestKey
from awfdrs.db.repositories.base import BaseRepository, fetch_raw
from awfdrs.enums import OPEN_INCIDENT_STATUSES, RequestStatus
from awfdrs.intake import Evidence, FailedRequest

# The first statement of a batch's requests: fix each request content's key for the tenant. In
# hash order, so two batches meeting the same hashes wait on each other instead of deadlocking;
# a batch that meets a hash another one is inserting waits for it, then finds its key.
KEYS_SQL = """
    INSERT INTO request_keys (tenant_id, request_hash, idempotency_key)
    SELECT CAST($1 AS uuid), k.request_hash, k.candidate_key
    FROM unnest(CAST($2 AS text[]), CAST($3 AS text[])) AS k(request_hash, candidate_key)
    ORDER BY k.request_hash
    ON CONFLICT (tenant_id, request_hash) DO NOTHING
    """

# New failed requests join their incident's remediation in one statement per batch, each under
# its content's key. Content that already SUCCEEDED (in any incident) is never sent again: a
# copy of the failure that success remediated (not later, on the sender's clock, than the
# failures it answered) is done; a failure after it is a new one, for a human.
UPSERT_SQL = """
    WITH batch AS (
        SELECT * FROM unnest(
            CAST($2 AS uuid[]), CAST($3 AS uuid[]), CAST($4 AS text[]),
            CAST($5 AS boolean[]), CAST($6 AS text[]), CAST($7 AS text[]), CAST($8 AS text[]),
            CAST($9 AS text[]), CAST($10 AS text[]), CAST($11 AS boolean[]),
            CAST($12 AS text[]), CAST($13 AS text[]), CAST($14 AS text[]),
            CAST($15 AS integer[]), CAST($16 AS timestamptz[]), CAST($17 AS timestamptz[]))
        AS b(incident_id, first_event_id, request_hash, replayable, vendor,
             method, path, body, headers, reversible, correlation_ids, error_code,
             error_message, event_count, first_failed_at, last_failed_at)
    ),
    -- Each batch row looks its key up (LATERAL, and OFFSET 0 so it is not flattened into a
    -- join the planner may turn around): with statistics that predate the tenant, the join
    -- read the tenant's keys with the batch inside, once per key (5 to 22 s a batch).
    judged AS (
        SELECT b.*, k.idempotency_key, k.succeeded_at,
               CASE WHEN k.succeeded_request_id IS NOT NULL THEN
                   (SELECT s.incident_id FROM remediation_requests s
                    WHERE s.id = k.succeeded_request_id) END AS done_in,
               CASE WHEN k.succeeded_at IS NULL OR NOT b.replayable THEN 'PENDING'
                    WHEN b.last_failed_at <= k.answered_until THEN 'SUCCEEDED'
                    ELSE 'FAILED' END AS status
        FROM batch b
        CROSS JOIN LATERAL (
            SELECT k.idempotency_key, k.succeeded_at, k.answered_until, k.succeeded_request_id
            FROM request_keys k
            WHERE k.tenant_id = CAST($1 AS uuid) AND k.request_hash = b.request_hash
            OFFSET 0
        ) k
    )
    INSERT INTO remediation_requests AS r (
        tenant_id, incident_id, first_event_id, request_hash, idempotency_key, replayable,
        vendor_name, vendor_id, method, path, body, headers, reversible, correlation_ids,
        error_code, error_message, event_count, first_failed_at, last_failed_at, status, note,
        finished_at)
    SELECT CAST($1 AS uuid), b.incident_id, b.first_event_id, b.request_hash,
           b.idempotency_key, b.replayable, b.vendor, v.id,
           b.method, b.path, CAST(b.body AS jsonb), CAST(b.headers AS jsonb), b.reversible,
           ARRAY(SELECT jsonb_array_elements_text(CAST(b.correlation_ids AS jsonb))),
           b.error_code, b.error_message, b.event_count, b.first_failed_at, b.last_failed_at,
           b.status,
           CASE b.status
                WHEN 'SUCCEEDED'
                THEN 'sent once, by incident ' || b.done_in || ', under the same key: it '
                     || 'succeeded at '
                     || to_char(b.succeeded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                WHEN 'FAILED'
                THEN 'already succeeded under the same key ('
                     || to_char(b.succeeded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                     || coalesce(', incident ' || b.done_in, '')
                     || ') and failed again: never sent twice, for a human to look at' END,
           CASE WHEN b.status = 'PENDING' THEN NULL ELSE clock_timestamp() END
    FROM judged b
    LEFT JOIN vendors v ON v.name = b.vendor
    ORDER BY b.incident_id, b.request_hash
    ON CONFLICT (tenant_id, incident_id, request_hash) DO UPDATE SET
        event_count = r.event_count + excluded.event_count,
        correlation_ids = ARRAY(
            SELECT DISTINCT c FROM unnest(r.correlation_ids || excluded.correlation_ids) AS c
            ORDER BY c),
        first_failed_at = least(r.first_failed_at, excluded.first_failed_at),
        last_failed_at = greatest(r.last_failed_at, excluded.last_failed_at),
        last_received_at = now()
    RETURNING r.incident_id, (r.xmax = 0) AS inserted
    """

# Run before the upsert: a request that had succeeded here (or that its sender reported
# recovered) failing again. "Again" is judged on the sender's own clock against itself (a
# failure that occurred after the last one known), received after our success: a sender whose
# clock runs behind ours cannot hide a new failure, and a late copy of the original failure is
# not mistaken for one. Its evidence no longer proves anything.
REFAIL_SQL = """
    UPDATE remediation_requests r
    SET status = 'FAILED',
        evidence_at = NULL,
        note = 'was ' || r.status || ', then failed again at '
               || to_char(b.last_failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
               || ': never sent twice, for a human to look at'
    FROM unnest(CAST($2 AS uuid[]), CAST($3 AS text[]), CAST($4 AS timestamptz[]))
         AS b(incident_id, request_hash, last_failed_at)
    WHERE r.tenant_id = CAST($1 AS uuid) AND r.incident_id = b.incident_id
      AND r.request_hash = b.request_hash
      AND ((r.status = 'SUCCEEDED' AND b.last_failed_at > r.last_failed_at
            AND clock_timestamp() > r.finished_at)
           OR (r.status = 'RECOVERED' AND b.last_failed_at > r.evidence_at))
    RETURNING r.incident_id
    """

# A success is evidence for the failed requests it concerns: same workflow and operation, not
# older than the request's last failure, and the same correlation id; a request whose failures
# carried none can only be proven by a success inside its incident's grouping window (a blip),
# which is time since the incident was created, not a phase that a late workflow has not left.
# The conditions on the request's own columns are repeated in the UPDATE's WHERE clause: when a
# concurrent ingest changed the row meanwhile, PostgreSQL re-checks them on the new version.
EVIDENCE_SQL = """
    WITH s AS (
        SELECT * FROM unnest(CAST($2 AS uuid[]), CAST($3 AS text[]), CAST($4 AS text[]),
                             CAST($5 AS timestamptz[]))
        AS s(workflow_id, operation, correlation_id, occurred_at)
    ),
    -- Only the latest success counts (it proves every failure before it). The successes are
    -- cut to one row per operation (one aggregate, joined to nothing), carrying its latest
    -- success (for a blip) and a map from correlation id to its latest success; each request
    -- then looks its ids up in the map. Nothing joins the requests to the batch, so no plan
    -- (statistics predate a tenant's burst) can read one once per row of the other.
    open AS MATERIALIZED (
        SELECT i.id, o.at AS latest, coalesce(o.ids, '{}') AS ids,
               i.status = 'NEW' AND now() <= i.created_at + make_interval(secs => $6) AS blip
        FROM (
            SELECT workflow_id, operation, max(at) AS at,
                   jsonb_object_agg(correlation_id, at)
                       FILTER (WHERE correlation_id IS NOT NULL) AS ids
            FROM (SELECT workflow_id, operation, correlation_id, max(occurred_at) AS at
                  FROM s GROUP BY workflow_id, operation, correlation_id) latest_by_id
            GROUP BY workflow_id, operation
        ) o
        JOIN incidents i
          ON i.tenant_id = CAST($1 AS uuid) AND i.workflow_id = o.workflow_id
         AND i.operation = o.operation AND i.status IN ('NEW', 'ANALYZING', 'ACTIONED')
    ),
    hit AS MATERIALIZED (
        SELECT r.id, p.at
        FROM open i
        CROSS JOIN LATERAL (
            -- OFFSET 0 keeps this a per-incident lookup (on the incident's unique index):
            -- pulled up into the join, the planner may scan the tenant's requests instead.
            SELECT r.id, r.last_failed_at, r.correlation_ids
            FROM remediation_requests r
            WHERE r.tenant_id = CAST($1 AS uuid) AND r.incident_id = i.id
              AND r.evidence_at IS NULL
            OFFSET 0
        ) r
        CROSS JOIN LATERAL (
            SELECT CASE WHEN cardinality(r.correlation_ids) = 0
                        THEN CASE WHEN i.blip THEN i.latest END
                        ELSE (SELECT max(CAST(i.ids ->> id AS timestamptz))
                              FROM unnest(r.correlation_ids) AS id) END AS at
        ) p
        WHERE p.at >= r.last_failed_at
    )
    UPDATE remediation_requests r
    SET evidence_at = hit.at,
        status = CASE WHEN r.status IN ('PENDING', 'FAILED', 'SHADOWED', 'HANDED_OVER')
                      THEN 'RECOVERED' ELSE r.status END,
        note = CASE WHEN r.status IN ('PENDING', 'FAILED', 'SHADOWED', 'HANDED_OVER')
                    THEN 'recovered: the sender reported success at '
                         || to_char(hit.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                    ELSE r.note END
    FROM hit
    WHERE r.id = hit.id AND r.evidence_at IS NULL AND hit.at >= r.last_failed_at
    RETURNING r.incident_id
    """


@dataclass(frozen=True, slots=True)
class KeyState:
    succeeded_at: datetime | None  # the same content succeeded, in some incident
    answered_until: datetime | None  # ... answering its failures up to then (sender's clock)
    busy_until: datetime | None  # another row's attempt of it may be in flight until then


def covered(answered_until: datetime | None, succeeded_at: datetime) -> ColumnElement[bool]:
    """A request is answered by the success of the same content elsewhere when every failure
    of it was received before that success (our clock), or none is later than the failures
    the successful attempt was sent for (the sender's clock): a late copy."""
    received_before = RemediationRequest.last_received_at <= succeeded_at
    if answered_until is None:
        return received_before
    return received_before | (RemediationRequest.last_failed_at <= answered_until)


class RequestRepository(BaseRepository[RemediationRequest]):
    """The affected requests of the tenant's incidents and their guarded state moves.

    Every move is an UPDATE guarded by the state it leaves, so two workers, a retried activity
    and an operator's close cannot both win: a request is claimed (PENDING → SENT) at most once
    per attempt, and nothing is claimed after a close cancelled it.
    """

    model = RemediationRequest

    def _of(self, incident_id: uuid.UUID) -> ColumnElement[bool]:
        return RemediationRequest.incident_id == incident_id

    async def upsert_failed(
        self, rows: Sequence[tuple[uuid.UUID, uuid.UUID, FailedRequest]]
    ) -> set[uuid.UUID]:
        """Add each (incident id, first event id, request) to its incident, or count it onto
        the row it already has. Returns the incidents that gained a request, or one of whose
        requests failed again after succeeding: the news their workflows must hear."""
        if not rows:
            return set()
        ordered = sorted(rows, key=lambda r: (str(r[0]), r[2].request_hash))
        keys: dict[str, str] = {}
        for _, _, request in sorted(rows, key=lambda r: (r[2].first_failed_at, r[2].event_key)):
            keys.setdefault(request.request_hash, request.candidate_key)
        await fetch_raw(
            self.session, KEYS_SQL, str(self.tenant_id), list(keys), list(keys.values())
        )
        refailed = await fetch_raw(
            self.session,
            REFAIL_SQL,
            str(self.tenant_id),
            [r[0] for r in ordered],
            [r[2].request_hash for r in ordered],
            [r[2].last_failed_at for r in ordered],
        )
        found = await fetch_raw(
            self.session,
            UPSERT_SQL,
            str(self.tenant_id),
            [r[0] for r in ordered],
            [r[1] for r in ordered],
            [r[2].request_hash for r in ordered],
            [r[2].replayable for r in ordered],
            [r[2].vendor for r in ordered],
            [r[2].method for r in ordered],
            [r[2].path for r in ordered],
            [r[2].body_json for r in ordered],
            [r[2].headers_json for r in ordered],
            [r[2].reversible for r in ordered],
            [json.dumps(list(r[2].correlation_ids)) for r in ordered],
            [r[2].error_code for r in ordered],
            [r[2].error_message for r in ordered],
            [r[2].event_count for r in ordered],
            [r[2].first_failed_at for r in ordered],
            [r[2].last_failed_at for r in ordered],
        )
        return {row[0] for row in refailed} | {row[0] for row in found if row[1]}

    async def apply_evidence(
        self, successes: Sequence[Evidence], *, grouping_window_seconds: float
    ) -> set[uuid.UUID]:
        """Mark the requests these successes prove recovered; the incidents concerned."""
        if not successes:
            return set()
        found = await fetch_raw(
            self.session,
            EVIDENCE_SQL,
            str(self.tenant_id),
            [s.workflow_id for s in successes],
            [s.operation for s in successes],
            [s.correlation_id for s in successes],
            [s.occurred_at for s in successes],
            float(grouping_window_seconds),
        )
        return {row[0] for row in found}

    async def list_for_incident(
        self,
        incident_id: uuid.UUID,
        *,
        statuses: Collection[RequestStatus] | None = None,
        replayable: bool | None = None,
        limit: int | None = None,
    ) -> Sequence[RemediationRequest]:
        """The incident's requests in the order they first failed."""
        stmt = self._select().where(self._of(incident_id))
        if statuses is not None:
            stmt = stmt.where(RemediationRequest.status.in_(list(statuses)))
        if replayable is not None:
            stmt = stmt.where(RemediationRequest.replayable.is_(replayable))
        stmt = stmt.order_by(RemediationRequest.first_failed_at, RemediationRequest.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return (await self.session.execute(stmt)).scalars().all()

    async def list_by_ids(self, ids: Collection[uuid.UUID]) -> Sequence[RemediationRequest]:
        if not ids:
            return []
        stmt = self._select().where(RemediationRequest.id.in_(list(ids)))
        stmt = stmt.order_by(RemediationRequest.first_failed_at, RemediationRequest.id)
        return (await self.session.execute(stmt)).scalars().all()

    async def count_failures_since(self, incident_id: uuid.UUID, since: datetime) -> int:
        """Failures that reached the incident after ``since``: requests that joined since, and
        requests that failed again after succeeding."""
        joined = RemediationRequest.created_at > since
        again = (RemediationRequest.status == RequestStatus.FAILED) & (
            RemediationRequest.last_received_at > since
        )
        stmt = self._scoped(func.count()).where(self._of(incident_id), joined | again)
        return int((await self.session.execute(stmt)).scalar_one())

    async def count_by_state(
        self, incident_id: uuid.UUID
    ) -> tuple[dict[RequestStatus, int], int, int]:
        """(requests by status, pending ones with nothing to replay, ones proven by evidence)."""
        pending = RemediationRequest.status == RequestStatus.PENDING
        stmt = (
            self._scoped(
                RemediationRequest.status,
                func.count(),
                func.count().filter(pending & RemediationRequest.replayable.is_(False)),
                # Proven: its own success came after its last failure.
                func.count().filter(
                    RemediationRequest.evidence_at >= RemediationRequest.last_failed_at
                ),
            )
            .where(self._of(incident_id))
            .group_by(RemediationRequest.status)
        )
        counts = dict.fromkeys(RequestStatus, 0)
        unreplayable = proven = 0
        for status, count, unsent, evidenced in (await self.session.execute(stmt)).all():
            counts[RequestStatus(status)] = int(count)
            unreplayable += int(unsent)
            proven += int(evidenced)
        return counts, unreplayable, proven

    async def count_sent_since(self, since: datetime) -> int:
        """Requests the tenant first sent since ``since``: what the budget counts."""
        stmt = self._scoped(func.count()).where(RemediationRequest.sent_at >= since)
        return int((await self.session.execute(stmt)).scalar_one())

    async def _move(
        self,
        condition: ColumnElement[bool],
        values: dict[str, Any],
    ) -> Sequence[RemediationRequest]:
        return await self._update_returning(condition, **values)

    async def claim(
        self, request_id: uuid.UUID, *, action_id: uuid.UUID, lease_seconds: float
    ) -> RemediationRequest | None:
        """PENDING → SENT for one attempt, counting it, while its incident is open and no
        earlier attempt's lease runs; None when it is not to be sent now (final, in flight or
        its incident closed)."""
        open_incident = (
            select(Incident.id)
            .where(
                Incident.id == RemediationRequest.incident_id,
                Incident.tenant_id == self.tenant_id,
                Incident.status.in_(OPEN_INCIDENT_STATUSES),
            )
            .exists()
        )
        lease_free = (RemediationRequest.lease_until.is_(None)) | (
            RemediationRequest.lease_until <= func.clock_timestamp()
        )
        # SENT with an expired lease: the attempt's worker died mid-call. The key is the same,
        # so sending again is what the vendor's idempotency is for.
        claimable = (RemediationRequest.status == RequestStatus.PENDING) | (
            RemediationRequest.status == RequestStatus.SENT
        )
        rows = await self._move(
            (RemediationRequest.id == request_id)
            & claimable
            & RemediationRequest.replayable.is_(True)
            & lease_free
            & open_incident,
            {
                "status": RequestStatus.SENT,
                "attempts": RemediationRequest.attempts + 1,
                "action_id": action_id,
                # The database's clock, at the moment of the claim: the lease cannot be shorter
                # than the call it covers, however long the claim waited for its locks.
                "lease_until": func.clock_timestamp()
                + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds),
                "sent_at": func.coalesce(RemediationRequest.sent_at, func.clock_timestamp()),
                "sent_for_failed_at": RemediationRequest.last_failed_at,
                "deferred_since": None,
            },
        )
        return rows[0] if rows else None

    async def finish(
        self,
        request_id: uuid.UUID,
        *,
        status: RequestStatus,
        status_code: int | None,
        response: str | None,
        error: str | None,
        note: str | None = None,
    ) -> RemediationRequest | None:
        """Record an attempt's answer: SENT → a final status, or back to PENDING after a
        transient failure (attempts stay counted). None when the attempt was not in flight."""
        final = status.is_final
        rows = await self._move(
            (RemediationRequest.id == request_id)
            & (RemediationRequest.status == RequestStatus.SENT),
            {
                "status": status,
                "last_status_code": status_code,
                "last_response": response,
                "last_error": error,
                "lease_until": None,
                "finished_at": func.clock_timestamp() if final else None,
                **({"note": note} if note is not None else {}),
            },
        )
        if rows and status is RequestStatus.SUCCEEDED:
            # Every incident that meets this request content from now on knows it succeeded.
            await self.session.execute(
                update(RequestKey)
                .where(
                    RequestKey.tenant_id == self.tenant_id,
                    RequestKey.request_hash == rows[0].request_hash,
                    RequestKey.succeeded_at.is_(None),
                )
                .values(
                    succeeded_at=func.clock_timestamp(),
                    succeeded_request_id=request_id,
                    answered_until=rows[0].sent_for_failed_at,
                )
            )
        return rows[0] if rows else None

    async def get_key_state(self, request: RemediationRequest) -> KeyState:
        """For a request about to be sent: whether and when the same content succeeded, in any
        incident, and until when another row of it holds a lease (an attempt in flight).
        Locks the content's key row until the caller's transaction ends, so two incidents
        sending the same content decide one after the other, the second seeing the first's
        lease."""
        row = (
            await self.session.execute(
                select(RequestKey.succeeded_at, RequestKey.answered_until)
                .where(
                    RequestKey.tenant_id == self.tenant_id,
                    RequestKey.request_hash == request.request_hash,
                )
                .with_for_update()
            )
        ).one_or_none()
        # Any row of the content under a running lease, whatever its status: a close or a
        # round's end may have settled a row whose call is still out.
        busy = (
            await self.session.execute(
                self._scoped(func.max(RemediationRequest.lease_until)).where(
                    RemediationRequest.request_hash == request.request_hash,
                    RemediationRequest.id != request.id,
                    RemediationRequest.lease_until > func.clock_timestamp(),
                )
            )
        ).scalar_one_or_none()
        succeeded_at, answered_until = row if row is not None else (None, None)
        return KeyState(succeeded_at=succeeded_at, answered_until=answered_until, busy_until=busy)

    async def lock_key(self, request_id: uuid.UUID) -> None:
        """Lock the key row of a request's content: taken first by every transaction that
        claims or records an attempt (then the vendor row, then the request row), so claim and
        record never wait on each other in a cycle."""
        of_request = (
            select(RemediationRequest.request_hash)
            .where(self._in_scope(), RemediationRequest.id == request_id)
            .scalar_subquery()
        )
        await self.session.execute(
            select(RequestKey.request_hash)
            .where(RequestKey.tenant_id == self.tenant_id, RequestKey.request_hash == of_request)
            .with_for_update()
        )

    async def cancel_pending(self, incident_id: uuid.UUID, note: str, *, limit: int) -> int:
        """Cancel up to ``limit`` unsent requests of a closed incident; how many it cancelled.
        Counted, not returned: a large incident is cancelled in batches, none of them slow."""
        chosen = (
            self._scoped(RemediationRequest.id)
            .where(self._of(incident_id), RemediationRequest.status == RequestStatus.PENDING)
            .limit(limit)
            .scalar_subquery()
        )
        result = await self.session.execute(
            update(RemediationRequest)
            # PENDING again outside the subquery: PostgreSQL re-checks only the outer WHERE on
            # a row a concurrent claim changed, and a row claimed meanwhile is in flight.
            .where(
                self._in_scope(),
                RemediationRequest.id.in_(chosen),
                RemediationRequest.status == RequestStatus.PENDING,
            )
            .values(
                status=RequestStatus.CANCELLED,
                note=note,
                finished_at=func.coalesce(RemediationRequest.finished_at, func.clock_timestamp()),
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def note_deferral(self, request_id: uuid.UUID) -> datetime:
        """When the request first had to wait for its vendor (set now if it had not)."""
        rows = await self._move(
            RemediationRequest.id == request_id,
            {
                "deferred_since": func.coalesce(
                    RemediationRequest.deferred_since, func.clock_timestamp()
                )
            },
        )
        since = rows[0].deferred_since if rows else None
        assert since is not None
        return since

    async def settle_unsent(
        self,
        incident_id: uuid.UUID,
        *,
        to: RequestStatus,
        note: str,
        action_id: uuid.UUID | None = None,
        ids: Collection[uuid.UUID] | None = None,
        from_statuses: Collection[RequestStatus] = (RequestStatus.PENDING,),
        covered_by: tuple[datetime | None, datetime] | None = None,
    ) -> Sequence[RemediationRequest]:
        """Move the incident's unsent requests (or those of ``ids``) in ``from_statuses`` to
        ``to``: CANCELLED by a close, HANDED_OVER by an escalation, SHADOWED in shadow mode,
        FAILED when they can never be sent. Requests in flight are left to finish."""
        condition = self._of(incident_id) & RemediationRequest.status.in_(list(from_statuses))
        if ids is not None:
            condition = condition & RemediationRequest.id.in_(list(ids))
        if covered_by is not None:
            # Only while the success still answers it (no later failure joined meanwhile).
            condition = condition & covered(*covered_by)
        # The earlier note (why it failed again, why it was shadowed) stays readable.
        earlier = func.coalesce(literal(" (before: ") + RemediationRequest.note + literal(")"), "")
        values: dict[str, Any] = {"status": to, "note": literal(note) + earlier}
        if to.is_final:
            values["finished_at"] = func.coalesce(
                RemediationRequest.finished_at, func.clock_timestamp()
            )
        if action_id is not None:
            values["action_id"] = action_id
        return await self._move(condition, values)
