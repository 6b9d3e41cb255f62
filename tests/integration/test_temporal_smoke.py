from __future__ import annotations

import uuid

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from awfdrs.constants import SA_STATUS
from tests.support.smoke import Greeting, SmokeWorkflow, shout


async def test_a_workflow_and_an_activity_run_on_the_dev_server(
    temporal_client: Client, task_queue: str
) -> None:
    async with Worker(
        temporal_client, task_queue=task_queue, workflows=[SmokeWorkflow], activities=[shout]
    ):
        result = await temporal_client.execute_workflow(
            SmokeWorkflow.run,
            Greeting(name="awfdrs", times=2),
            id=f"smoke-{uuid.uuid4()}",
            task_queue=task_queue,
        )
    assert result == "HELLO AWFDRS HELLO AWFDRS"


async def test_the_dev_server_knows_the_search_attributes(temporal_client: Client) -> None:
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    response = await temporal_client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=temporal_client.namespace)
    )
    assert SA_STATUS.name in response.custom_attributes


async def test_the_time_skipping_server_runs_the_same_workflow(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = time_skipping_env.client
    async with Worker(client, task_queue=task_queue, workflows=[SmokeWorkflow], activities=[shout]):
        result = await client.execute_workflow(
            SmokeWorkflow.run,
            Greeting(name="skip"),
            id=f"smoke-{uuid.uuid4()}",
            task_queue=task_queue,
        )
    assert result == "HELLO SKIP"
