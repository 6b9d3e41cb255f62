"""Names that other processes rely on: task queue, workflow ids, search attribute keys.

Changing any of these strands running workflows or breaks operators' saved UI filters.
"""

from __future__ import annotations

import uuid

from temporalio.common import SearchAttributeKey

TASK_QUEUE = "awfdrs"

INGEST_WORKFLOW = "IngestEvents"
INCIDENT_WORKFLOW = "IncidentWorkflow"
KILL_SWITCH_WORKFLOW = "KillSwitchWorkflow"

SA_TENANT = SearchAttributeKey.for_keyword("AwfdrsTenant")
SA_STATUS = SearchAttributeKey.for_keyword("AwfdrsStatus")
SA_SEVERITY = SearchAttributeKey.for_keyword("AwfdrsSeverity")
SA_SIGNATURE = SearchAttributeKey.for_keyword("AwfdrsSignature")
SA_WORKFLOW_NAME = SearchAttributeKey.for_keyword("AwfdrsWorkflowName")
SA_HELD_BY = SearchAttributeKey.for_keyword("AwfdrsHeldBy")
SA_PHASE = SearchAttributeKey.for_keyword("AwfdrsPhase")

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[str], ...] = (
    SA_TENANT,
    SA_STATUS,
    SA_SEVERITY,
    SA_SIGNATURE,
    SA_WORKFLOW_NAME,
    SA_HELD_BY,
    SA_PHASE,
)


def incident_workflow_id(incident_id: uuid.UUID) -> str:
    return f"incident-{incident_id}"


def kill_switch_workflow_id(tenant_id: uuid.UUID) -> str:
    return f"kill-switch-{tenant_id}"
