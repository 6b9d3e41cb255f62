"""The Temporal UI as the incident console: the queries it runs, and the page itself."""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from awfdrs.constants import SEARCH_ATTRIBUTES
from awfdrs.devstack.binaries import temporal_cli
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from awfdrs.enums import IncidentStatus
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.factories import TenantRef
from tests.support.pipeline import Stack, event, eventually, retryable, running_stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
async def ui_env() -> AsyncIterator[tuple[WorkflowEnvironment, int]]:
    """A dev server with its web UI, like the one `make run` starts."""
    ui_port = _free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
        ui=True,
        ui_port=ui_port,
    )
    try:
        yield env, ui_port
    finally:
        await env.shutdown()


@pytest.fixture
async def console_stack(
    ui_env: tuple[WorkflowEnvironment, int],
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
) -> AsyncIterator[tuple[Stack, TenantRef, dict[str, IncidentStatus], int]]:
    env, ui_port = ui_env
    async with running_stack(env.client, committed_sessions, task_queue, vendor, receiver) as stack:
        tenant = await stack.tenant(grouping_window_seconds=0.2, verification_window_seconds=0.3)
        name = await stack.vendor()
        await stack.client.ingest(
            tenant.id,
            [
                retryable(tenant, "k-1", name),
                event(tenant, "k-2", error={"code": "card_declined", "message": "Do not honour"}),
                event(tenant, "k-3", error={"code": "invalid_iban"}),
            ],
        )
        expected: dict[str, IncidentStatus] = {}
        for incident in await stack.incidents(tenant):
            permanent = "gateway" not in incident.title
            if permanent:
                await stack.wait_snapshot(incident.id, lambda s: s.phase == "awaiting_operator")
            else:
                await stack.wait_status(tenant, incident.id, IncidentStatus.RESOLVED)
            expected[f"incident-{incident.id}"] = (
                IncidentStatus.ACTIONED if permanent else IncidentStatus.RESOLVED
            )
        yield stack, tenant, expected, ui_port


async def _ui_query(ui_port: int, query: str) -> list[dict[str, Any]]:
    """Exactly what the UI's workflow list asks its server for."""
    url = f"http://127.0.0.1:{ui_port}/api/v1/namespaces/default/workflows"
    async with httpx.AsyncClient() as http:
        response = await http.get(url, params={"query": query}, timeout=10)
    response.raise_for_status()
    executions: list[dict[str, Any]] = response.json().get("executions", [])
    return executions


async def test_the_uis_visibility_queries_read_as_an_incident_list(
    console_stack: tuple[Stack, TenantRef, dict[str, IncidentStatus], int],
) -> None:
    stack, tenant, expected, ui_port = console_stack
    actioned = {k for k, v in expected.items() if v is IncidentStatus.ACTIONED}
    resolved = {k for k, v in expected.items() if v is IncidentStatus.RESOLVED}
    query = f'AwfdrsStatus = "ACTIONED" AND AwfdrsTenant = "{tenant.id}"'

    async def listed() -> set[str] | None:
        found = {w.id async for w in stack.client.temporal.list_workflows(query)}
        return found if found == actioned else None

    assert await eventually(listed, 15, "the ACTIONED incidents") == actioned
    through_ui = await _ui_query(ui_port, query)
    assert {e["execution"]["workflowId"] for e in through_ui} == actioned
    resolved_query = f'AwfdrsStatus = "RESOLVED" AND AwfdrsTenant = "{tenant.id}"'
    assert {
        e["execution"]["workflowId"] for e in await _ui_query(ui_port, resolved_query)
    } == resolved
    by_name = f'AwfdrsWorkflowName = "payments" AND AwfdrsTenant = "{tenant.id}"'
    assert {e["execution"]["workflowId"] for e in await _ui_query(ui_port, by_name)} == set(
        expected
    )
    described = await stack.client.temporal.get_workflow_handle(sorted(actioned)[0]).describe()
    summary = await described.static_summary()
    assert summary is not None
    assert summary.startswith("payments: payment failed: ")


async def test_a_browser_finds_the_incidents_in_the_ui(
    console_stack: tuple[Stack, TenantRef, dict[str, IncidentStatus], int], tmp_path: Path
) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed on this machine (CI installs it)")
    from playwright.async_api import async_playwright

    _, tenant, expected, ui_port = console_stack
    actioned = sorted(k for k, v in expected.items() if v is IncidentStatus.ACTIONED)
    query = urllib.parse.quote(f'AwfdrsStatus = "ACTIONED" AND AwfdrsTenant = "{tenant.id}"')
    url = f"http://127.0.0.1:{ui_port}/namespaces/default/workflows?query={query}"
    screenshot = Path(os.environ.get("AWFDRS_SCREENSHOT", tmp_path / "ui-incidents.png"))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1800, "height": 700})
            await page.goto(url, wait_until="domcontentloaded", timeout=30_000)
            for workflow_id in actioned:
                await page.get_by_text(workflow_id).first.wait_for(timeout=30_000)
            text = await page.inner_text("body")
            await page.screenshot(path=str(screenshot), full_page=False)
        finally:
            await browser.close()
    for workflow_id in actioned:
        assert workflow_id in text
    resolved = [k for k, v in expected.items() if v is IncidentStatus.RESOLVED]
    assert all(workflow_id not in text for workflow_id in resolved)
    assert (await asyncio.to_thread(screenshot.stat)).st_size > 10_000
