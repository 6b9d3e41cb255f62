"""What every reliability test shares: a load, the invariants checked after it, the record.

After each run, with SQL and the vendor's own request log:

- no event lost: every distinct key sent is stored;
- none duplicated: each key is stored once, and was reported ``accepted`` exactly once;
- every incident terminal (RESOLVED, IGNORED) or legitimately waiting: ACTIONED with its
  escalation delivered, waiting for an operator (permanent failures, and transient ones still
  failing after ``max_attempts`` retries, end there by design);
- no action executed twice: at most one non-replayed success per action at the vendor;
- ``event_count`` of the incidents of a signature equals its distinct failure events.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.client import AwfdrsClient
from awfdrs.contracts import EventResult, IngestBatch, Outcome
from awfdrs.db.models import Action, Event, Incident
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import FlakyVendor
from awfdrs.enums import ActionStatus, ActionType, IncidentStatus
from tests.support.factories import TenantRef

SOAK = bool(os.environ.get("AWFDRS_SOAK"))


def size(ci: int, soak: int) -> int:
    """Bounded in CI, larger under `make soak`."""
    return soak if SOAK else ci


@dataclass
class Load:
    """Events to send; ``sent`` records every delivery, ``results`` every outcome received."""

    tenant: TenantRef
    unique: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    results: list[EventResult] = field(default_factory=list)

    @property
    def keys(self) -> set[str]:
        return {e["idempotency_key"] for e in self.unique}


def make_load(
    tenant: TenantRef,
    events: int,
    *,
    vendor: str,
    signatures: int,
    failure_share: float = 0.5,
    redelivery_share: float = 0.0,
    permanent_share: float = 0.2,
    seed: int = 11,
) -> Load:
    """Failures (transient ones replayable through ``vendor``, some permanent) and successes
    of other operations, with ``redelivery_share`` of deliveries repeated, shuffled."""
    rng = random.Random(seed)
    now = datetime.now(UTC).isoformat()
    unique = []
    for n in range(events):
        if rng.random() < failure_share:
            k = rng.randrange(signatures)
            if rng.random() < permanent_share:
                payload: dict[str, Any] = {"error": {"code": f"card_declined_{k}"}}
            else:
                payload = {
                    "error": {"code": f"gateway_timeout_{k}", "vendor": vendor},
                    "retry": {"method": "POST", "path": f"/v1/charges/{k}", "reversible": True},
                }
            event_type = "payment.failed"
        else:
            payload, event_type = {"order": n}, "order.created"
        unique.append({
            "tenant_id": str(tenant.id), "workflow_id": str(tenant.workflow_id),
            "event_type": event_type, "idempotency_key": f"rel-{seed}-{n}", "occurred_at": now,
            "correlation_id": f"trace-{n}", "payload": payload,
        })  # fmt: skip
    repeats = [dict(rng.choice(unique)) for _ in range(int(events * redelivery_share))]
    deliveries = unique + repeats
    rng.shuffle(deliveries)
    return Load(tenant, unique, deliveries)


async def send(
    client: AwfdrsClient, load: Load, deliveries: list[dict[str, Any]], *, batch: int = 200
) -> None:
    """At-least-once: a batch whose call fails (server restarting, worker gone) is sent again
    until it succeeds, as a well-behaved client does; outcomes land in ``load.results``."""
    for start in range(0, len(deliveries), batch):
        chunk = deliveries[start : start + batch]
        for attempt in range(600):
            try:
                result = await client.ingest_batch(
                    IngestBatch(tenant_id=load.tenant.id, events=chunk)
                )
            except Exception:
                await asyncio.sleep(min(2.0, 0.1 * (attempt + 1)))
                continue
            load.results.extend(result.outcomes)
            break
        else:
            raise AssertionError("a batch never got through")


@dataclass
class Figures:
    events_in: int
    distinct: int
    stored: int
    duplicated: int
    lost: int
    accepted_twice: int
    incidents: int
    statuses: dict[str, int]
    actions_executed_twice: int
    event_count_mismatches: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


WAITING = "ACTIONED, escalated: waiting for an operator"
TERMINAL = {IncidentStatus.RESOLVED.value, IncidentStatus.IGNORED.value}


async def incident_states(
    sessions: async_sessionmaker[AsyncSession], tenant: uuid.UUID
) -> list[tuple[Incident, str]]:
    """Each incident with its state: its status, or ``WAITING`` for an escalated one."""
    latest = (
        select(Action.action_type, Action.status)
        .where(Action.incident_id == Incident.id, Action.tenant_id == Incident.tenant_id)
        .order_by(Action.created_at.desc(), Action.id.desc())
        .limit(1)
        .lateral()
    )
    async with tenant_session(sessions, tenant) as session:
        rows = (
            await session.execute(
                select(Incident, latest.c.action_type, latest.c.status).outerjoin(latest, true())
            )
        ).all()
    states = []
    for incident, action_type, action_status in rows:
        escalated = action_type in (ActionType.ESCALATE, ActionType.MANUAL) and (
            action_status is ActionStatus.SUCCEEDED
        )
        waiting = incident.status is IncidentStatus.ACTIONED and escalated
        states.append((incident, WAITING if waiting else incident.status.value))
    return states


async def figures(
    sessions: async_sessionmaker[AsyncSession], load: Load, vendor: FlakyVendor
) -> Figures:
    tenant = load.tenant.id
    async with tenant_session(sessions, tenant) as session:
        keys = (await session.execute(select(Event.idempotency_key))).scalars().all()
        rows = await session.execute(
            select(Event.signature, func.count())
            .where(Event.signature.is_not(None))
            .group_by(Event.signature)
        )
        by_signature: dict[str, int] = {str(sig): int(n) for sig, n in rows.all()}
    states = await incident_states(sessions, tenant)
    counted: Counter[str] = Counter()
    for incident, _ in states:
        counted[incident.signature] += incident.event_count
    stored = Counter(keys)
    accepted = Counter(r.idempotency_key for r in load.results if r.outcome is Outcome.ACCEPTED)
    executions = vendor.executions()
    return Figures(
        events_in=len(load.deliveries),
        distinct=len(load.keys),
        stored=len(stored),
        duplicated=sum(n - 1 for n in stored.values() if n > 1),
        lost=len(load.keys - set(stored)),
        accepted_twice=sum(1 for n in accepted.values() if n > 1),
        incidents=len(states),
        statuses=dict(Counter(state for _, state in states)),
        actions_executed_twice=sum(1 for n in executions.values() if n > 1),
        event_count_mismatches=sum(
            1 for signature, n in by_signature.items() if counted[signature] != n
        ),
    )


def assert_invariants(found: Figures) -> None:
    assert found.lost == 0, found
    assert found.duplicated == 0, found
    assert found.stored == found.distinct, found
    assert found.accepted_twice == 0, found
    assert found.actions_executed_twice == 0, found
    assert found.event_count_mismatches == 0, found
    assert set(found.statuses) <= TERMINAL | {WAITING}, found


async def settle(
    sessions: async_sessionmaker[AsyncSession], load: Load, *, within: float = 120
) -> None:
    """Wait until every incident of the load is terminal or waiting for an operator, and
    stays so: an ACTIONED incident still verifying may yet go back to ANALYZING."""
    deadline = asyncio.get_running_loop().time() + within
    quiet = 0
    while quiet < 2:
        states = await incident_states(sessions, load.tenant.id)
        pending = [s for _, s in states if s not in TERMINAL | {WAITING}]
        quiet = quiet + 1 if not pending else 0
        if pending and asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"{len(pending)} incidents did not settle within {within}s: {Counter(pending)}"
            )
        await asyncio.sleep(1.0 if not pending else 0.5)


def record(name: str, load: str, injected: str, found: Figures | dict[str, Any]) -> None:
    """Keep this run's figures for docs/RELIABILITY.md (`make soak` sets the file)."""
    target = os.environ.get("AWFDRS_RELIABILITY_RESULTS")
    if not target:
        return
    path = Path(target)
    entries = json.loads(path.read_text()) if path.exists() else []
    entries = [e for e in entries if e["name"] != name]
    figures = found.as_dict() if isinstance(found, Figures) else found
    entries.append(
        {"name": name, "load": load, "injected": injected, "figures": figures, "soak": SOAK}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2))


__all__ = [
    "Figures",
    "Load",
    "assert_invariants",
    "figures",
    "make_load",
    "record",
    "send",
    "settle",
    "size",
]
