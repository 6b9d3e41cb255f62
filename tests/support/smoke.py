"""A one-activity workflow proving the dev server, the worker and the converter work together."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow


class Greeting(BaseModel):
    name: str
    times: int = 1


@activity.defn
async def shout(greeting: Greeting) -> str:
    return " ".join([f"hello {greeting.name}"] * greeting.times).upper()


@workflow.defn
class SmokeWorkflow:
    @workflow.run
    async def run(self, greeting: Greeting) -> str:
        return await workflow.execute_activity(
            shout, greeting, start_to_close_timeout=timedelta(seconds=10)
        )
