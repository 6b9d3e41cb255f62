"""What every reliability test shares: a load, how it is sent, the record of its figures.

The invariants checked after each run are in :mod:`tests.e2e.reliability.invariants`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue

from awfdrs.client import AwfdrsClient
from awfdrs.contracts import EventResult, IngestBatch, canonical_json
from tests.support.factories import TenantRef

SOAK = bool(os.environ.get("AWFDRS_SOAK"))


class Recordable(Protocol):
    """Figures that can be written to the record (``invariants.Figures``)."""

    def as_dict(self) -> dict[str, Any]: ...


# What a request is, as the vendor sees it: method, path, canonical JSON body.
Content = tuple[str, str, str]


def size(ci: int, soak: int) -> int:
    """Bounded in CI, larger under `make soak`."""
    return soak if SOAK else ci


def content(method: str | None, path: str | None, body: Any) -> Content:
    return ((method or "").upper(), path or "", canonical_json(body))


@dataclass
class Load:
    """Events to send; ``deliveries`` is every delivery, ``results`` every outcome received,
    ``closed`` the incidents an operator (the test) resolved or ignored, with the time
    (``time.time()``) the close was acknowledged to the operator."""

    tenant: TenantRef
    unique: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    results: list[EventResult] = field(default_factory=list)
    closed: dict[uuid.UUID, float] = field(default_factory=dict)

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
    repeat_share: float = 0.2,
    bodies_per_signature: int | None = None,
    seed: int = 11,
) -> Load:
    """Failures over ``signatures`` and successes of another operation, ``redelivery_share``
    of deliveries repeated, shuffled.

    A transient failure carries a request to replay through ``vendor``: its own (a new body, so
    an incident groups many requests) or, with ``repeat_share``, one an earlier failure of its
    signature carried (the same request failing again: one row, two events). With
    ``bodies_per_signature`` the bodies come from a pool that small instead. A permanent failure
    has nothing to replay: one row per correlation id, for a human.
    """
    rng = random.Random(seed)
    now = datetime.now(UTC).isoformat()
    unique = []
    bodies: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for n in range(events):
        if rng.random() < failure_share:
            k = rng.randrange(signatures)
            if rng.random() < permanent_share:
                payload: dict[str, Any] = {"error": {"code": f"card_declined_{k}"}}
            else:
                pool = bodies[k]
                full = bodies_per_signature is not None and len(pool) >= bodies_per_signature
                if full or (pool and rng.random() < repeat_share):
                    body = rng.choice(pool)
                else:
                    body = {"order": f"ord-{seed}-{n}", "amount_cents": 100 + n}
                    pool.append(body)
                payload = {
                    "error": {"code": f"gateway_timeout_{k}", "vendor": vendor},
                    "retry": {"method": "POST", "path": f"/v1/charges/{k}/capture",
                              "body": body, "reversible": True},
                }  # fmt: skip
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


def raw_batch(tenant_id: uuid.UUID, events: Sequence[Any]) -> RawValue:
    """A batch as ``IngestEvents`` and its activity receive it: raw JSON bytes. An element
    given as ``bytes`` goes in verbatim (it need not be JSON at all)."""
    elements = [e if isinstance(e, bytes) else json.dumps(e).encode() for e in events]
    data = b'{"tenant_id": "%s", "events": [%s]}' % (str(tenant_id).encode(), b",".join(elements))
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=data))


def record(name: str, load: str, injected: str, found: Recordable | dict[str, Any]) -> None:
    """Keep this run's figures for docs/RELIABILITY.md (`make soak` sets the file)."""
    target = os.environ.get("AWFDRS_RELIABILITY_RESULTS")
    if not target:
        return
    path = Path(target)
    entries = json.loads(path.read_text()) if path.exists() else []
    entries = [e for e in entries if e["name"] != name]
    figures = found if isinstance(found, dict) else found.as_dict()
    entries.append(
        {"name": name, "load": load, "injected": injected, "figures": figures, "soak": SOAK}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2))


def now() -> float:
    """The clock the vendor's log and the recorded closes use."""
    return time.time()


__all__ = [
    "SOAK",
    "Content",
    "Load",
    "content",
    "make_load",
    "now",
    "raw_batch",
    "record",
    "send",
    "size",
]
