"""``IngestEvents``: one batch per workflow; one incident workflow per incident, never per event."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from awfdrs.activities.ingest import DispatchRequest, IngestActivities
    from awfdrs.constants import INGEST_WORKFLOW
    from awfdrs.contracts import IngestBatch, IngestResult
    from awfdrs.workflows.policies import DB_RETRY, DB_TIMEOUT

# Keeps each dispatch activity's input small whatever the number of signatures in a batch.
DISPATCH_CHUNK = 200


@workflow.defn(name=INGEST_WORKFLOW, failure_exception_types=[ValidationError])
class IngestEventsWorkflow:
    """Store a batch, then signal-with-start the incident workflows it concerns.

    Storing is a local activity: the batch is already in history as the workflow's input, and a
    local activity neither records it again nor costs a round trip through the task queue.
    Dispatching is a regular activity, scheduled in the workflow task that records the stored
    result, so what the first step committed is in history before any workflow is started; a
    replay after a crash re-runs the first step, which finds its own events as duplicates and
    still names their open incidents. A malformed batch (not an object, no events, too many)
    fails the workflow at once.
    """

    @workflow.run
    async def run(self, batch: IngestBatch) -> IngestResult:
        try:
            stored = await workflow.execute_local_activity_method(
                IngestActivities.ingest_batch,
                batch,
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
                summary=f"store {len(batch.events)} events",
            )
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from None
            raise
        starts = stored.dispatch
        for offset in range(0, len(starts), DISPATCH_CHUNK):
            chunk = starts[offset : offset + DISPATCH_CHUNK]
            await workflow.execute_activity_method(
                IngestActivities.dispatch_incidents,
                DispatchRequest(starts=chunk),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
                summary=f"signal-with-start {len(chunk)} incident workflows",
            )
        return stored.result
