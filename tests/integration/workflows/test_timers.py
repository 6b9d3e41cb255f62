"""Hour-long timers on the time-skipping test server."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from awfdrs.contracts import IncidentSnapshot
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from awfdrs.enums import ActionType, Phase
from tests.support.pipeline import event, running_stack


async def test_no_answer_within_the_approval_timeout_escalates(
    time_skipping_env: WorkflowEnvironment,
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
) -> None:
    async with running_stack(
        time_skipping_env.client, committed_sessions, task_queue, vendor, receiver
    ) as stack:
        tenant = await stack.tenant(
            confidence_threshold=0.99, approval_timeout_seconds=3600, grouping_window_seconds=60
        )
        name = await stack.vendor()
        summary = await stack.client.ingest(
            tenant.id,
            [
                event(
                    tenant,
                    "k-1",
                    error={"code": "gateway_timeout", "vendor": name},
                    retry={"path": "/v1/charges", "reversible": True},
                )
            ],
        )
        [incident_id] = {c.incident_id for c in summary.incidents}
        # The dispatcher starts the workflow from the outbox: skip time only once it runs.
        await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.GROUPING)
        await time_skipping_env.sleep(61)
        held = await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_APPROVAL)
        assert held.decisions[-1].gate == "confidence"
        await time_skipping_env.sleep(3601)

        def escalated(snapshot: IncidentSnapshot) -> bool:
            return snapshot.phase is Phase.AWAITING_OPERATOR

        done = await stack.wait_snapshot(incident_id, escalated)
    last = done.decisions[-1]
    assert last.decision_type is ActionType.ESCALATE
    assert last.ai_model == "awfdrs-policy/1"
    assert "within 1h" in last.reasoning
    assert [a.action_type for a in done.actions] == [ActionType.ESCALATE]
    assert len(receiver.events()) == 1
    assert vendor.requests == []
