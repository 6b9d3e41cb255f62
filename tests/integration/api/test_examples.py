"""examples/: every sample event, sent by examples/send.sh to the real API, is accepted and opens
what it should; sent again, every one is a duplicate (the samples keep occurred_at fixed)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.admin import ensure_workflow
from tests.integration.api.conftest import Sender, count_events, make_sender

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

# Per file: how many events it carries, and how many of them are failures (each one opens or
# counts on an incident; the successes touch none).
EXPECTED = {
    "native.json": (3, 2),
    "cloudevents-structured.json": (1, 1),
    "cloudevents-batch.json": (2, 1),
    "cloudevents-binary.json": (1, 1),
    "alertmanager.json": (1, 1),
    "pagerduty.json": (1, 1),
}


async def send_all(
    api_url: str, sender: Sender, workflows: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Run examples/send.sh as a user would; its answers by file."""
    env = {
        **os.environ,
        "AWFDRS_API_URL": api_url,
        "AWFDRS_API_KEY": sender.key,
        **{f"AWFDRS_WORKFLOW_{name.upper()}": id_ for name, id_ in workflows.items()},
    }
    done = await asyncio.to_thread(
        subprocess.run,
        ["bash", str(EXAMPLES / "send.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    answers: dict[str, dict[str, Any]] = {}
    for line in done.stdout.splitlines():
        name, _, body = line.partition(" ")
        answers[name] = json.loads(body)
    return answers


def outcomes(answer: dict[str, Any]) -> list[str]:
    if "outcome" in answer:  # PagerDuty's answer, awfdrs's outcome beside it
        return [answer["outcome"]["outcome"]]
    return [o["outcome"] for o in answer["outcomes"]]


async def test_every_example_is_accepted_then_a_duplicate_when_resent(
    api_url: str, committed_sessions: async_sessionmaker[AsyncSession]
) -> None:
    sender = await make_sender(committed_sessions)
    workflows = {"payments": str(sender.tenant.workflow_id)}
    for name in ("invoicing", "inventory"):  # the demo tenant's workflows
        workflows[name] = str(
            (await ensure_workflow(committed_sessions, sender.tenant.id, name)).id
        )
    assert {p.name for p in EXAMPLES.glob("*.json")} == set(EXPECTED)

    first = await send_all(api_url, sender, workflows)
    assert set(first) == set(EXPECTED)
    for name, (events, failures) in EXPECTED.items():
        answer = first[name]
        assert outcomes(answer) == ["accepted"] * events, (name, json.dumps(answer))
        touched = answer["incidents"]
        assert sum(i["event_count"] for i in touched) == failures, (name, touched)
        assert all(i["opened"] for i in touched), (name, touched)
    assert await count_events(committed_sessions, sender.tenant.id) == sum(
        events for events, _ in EXPECTED.values()
    )
    assert first["pagerduty.json"]["dedup_key"] == "erp-invoice-export-2026-12-01"

    again = await send_all(api_url, sender, workflows)
    for name, (events, _) in EXPECTED.items():
        assert outcomes(again[name]) == ["duplicate"] * events, (name, again[name])
    assert await count_events(committed_sessions, sender.tenant.id) == sum(
        events for events, _ in EXPECTED.values()
    )


async def test_a_resend_with_another_time_is_a_conflict(
    api_url: str, committed_sessions: async_sessionmaker[AsyncSession]
) -> None:
    """What the README and examples/README tell senders: keep occurred_at fixed on resends."""
    sender = await make_sender(committed_sessions)
    sample = json.loads((EXAMPLES / "cloudevents-structured.json").read_text())
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:

        async def post(event: dict[str, Any]) -> str:
            response = await http.post(
                "/v1/cloudevents",
                content=json.dumps(event),
                headers={**sender.auth, "Content-Type": "application/cloudevents+json"},
            )
            assert response.status_code == 200, response.text
            [outcome] = response.json()["outcomes"]
            return str(outcome["outcome"])

        assert await post(sample) == "accepted"
        assert await post(sample) == "duplicate"
        assert await post({**sample, "time": "2026-12-01T09:21:31Z"}) == "conflict"


async def test_the_readmes_first_event_is_accepted_then_a_duplicate(
    api_url: str, committed_sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The CloudEvent the README's "Send your first event" posts, as written there."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme.split("## Send your first event", 1)[1].split("\n## ", 1)[0]
    [body] = re.findall(r"-d '(\{.*?\})'", section, re.DOTALL)
    [content_type] = re.findall(r"Content-Type: ([a-z/+.-]+)", section)
    [path] = re.findall(r'"\$API(/v1/[a-z]+)"', section)
    sender = await make_sender(committed_sessions)
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        answers = [
            await http.post(
                path, content=body, headers={**sender.auth, "Content-Type": content_type}
            )
            for _ in range(2)
        ]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert [a.json()["outcomes"][0]["outcome"] for a in answers] == ["accepted", "duplicate"]
    assert answers[0].json()["incidents"][0]["opened"] is True


async def test_the_binary_cloudevent_by_hand_is_accepted(
    api_url: str, committed_sessions: async_sessionmaker[AsyncSession]
) -> None:
    """examples/README.md's curl command for a binary CloudEvent, run as written there."""
    text = (EXAMPLES / "README.md").read_text()
    section = text.split("The binary CloudEvent by hand", 1)[1]
    [command] = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)[:1]
    sender = await make_sender(committed_sessions)
    await ensure_workflow(committed_sessions, sender.tenant.id, "inventory")
    done = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", command],
        cwd=EXAMPLES.parent,
        env={**os.environ, "API": api_url, "KEY": sender.key},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert [o["outcome"] for o in answer["outcomes"]] == ["accepted"], answer
    assert answer["incidents"][0]["opened"] is True
