"""One hostile event in a batch sent to ``IngestEvents`` is rejected alone; the rest lands.

The batch travels as raw JSON bytes: no decoder between the client and the activity sees it as
a whole, so nesting 10,000 deep, a 5,000-digit integer or a lone surrogate escape can only sink
the event that carries it.
"""

from __future__ import annotations

import json
import uuid

from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue

from awfdrs.contracts import IngestResult, Outcome
from tests.support.pipeline import Stack, event


async def test_hostile_events_are_rejected_alone_and_the_rest_lands(stack: Stack) -> None:
    tenant = await stack.tenant()
    good = [event(tenant, f"good-{n}", error={"code": "timeout"}) for n in range(3)]
    hostile = [
        '{"idempotency_key": "deep", "payload": ' + "[" * 10_000 + "]" * 10_000 + "}",
        '{"idempotency_key": "huge", "payload": {"n": ' + "9" * 5_000 + "}}",
        json.dumps(event(tenant, "surrogate", error={"code": "x", "message": "SURROGATE"})).replace(
            "SURROGATE", "\\ud800"
        ),
    ]
    body = (
        '{"tenant_id": "' + str(tenant.id) + '", "events": ['
        + ", ".join([json.dumps(good[0]), hostile[0], json.dumps(good[1]), hostile[1],
                     hostile[2], json.dumps(good[2])])
        + "]}"
    )  # fmt: skip
    raw = RawValue(Payload(metadata={"encoding": b"json/plain"}, data=body.encode()))
    result: IngestResult = await stack.client.temporal.execute_workflow(
        "IngestEvents",
        raw,
        id=f"hostile-{uuid.uuid4()}",
        task_queue=stack.client.task_queue,
        result_type=IngestResult,
    )
    outcomes = [o.outcome for o in result.outcomes]
    assert outcomes == [
        Outcome.ACCEPTED,
        Outcome.REJECTED,
        Outcome.ACCEPTED,
        Outcome.REJECTED,
        Outcome.REJECTED,
        Outcome.ACCEPTED,
    ]
    reasons = [o.reason or "" for o in result.outcomes]
    assert "nested deeper" in reasons[1]
    assert "5000 digits" in reasons[3]
    assert reasons[4] == "payload.error.message: contains invalid Unicode (a lone surrogate)"
    [incident] = result.incidents
    assert incident.event_count == 3
