"""``IngestEvents``: one batch per workflow, for trusted internal Temporal clients."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from awfdrs.activities.ingest import IngestActivities
    from awfdrs.constants import INGEST_WORKFLOW
    from awfdrs.contracts import IngestResult
    from awfdrs.workflows.policies import DB_RETRY, DB_TIMEOUT


@workflow.defn(name=INGEST_WORKFLOW)
class IngestEventsWorkflow:
    """Store a batch through the ingest core; the incident workflows hear of it through the
    outbox, written in the same transaction, which the dispatcher delivers.

    The input stays raw JSON here: the workflow never decodes it, and the one local activity
    decodes each event on its own, so a hostile event cannot make the batch undecodable. A
    malformed batch (not an object, no tenant_id, no events, too many) fails the workflow at
    once with the reason.
    """

    @workflow.run
    async def run(self, batch: RawValue) -> IngestResult:
        try:
            return await workflow.execute_local_activity_method(
                IngestActivities.ingest_batch,
                batch,
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
                summary="store the batch",
            )
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from None
            raise
