"""The bundled demo with its events sent over HTTP (what `make run` does): it settles the same."""

from __future__ import annotations

import re

import httpx
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.client import AwfdrsClient
from awfdrs.db.session import make_sessionmaker
from awfdrs.devstack.demo import Demo
from tests.support.console import Browserless


async def test_the_demo_over_http_settles_every_incident(
    demo_stack: tuple[AwfdrsClient, str],
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
) -> None:
    client, url = demo_stack
    console = Console(record=True, width=400)
    demo = Demo(
        client, committed_sessions, make_sessionmaker(owner_engine), None, console, api_url=url
    )
    try:
        assert await demo.play()
    finally:
        demo.close()
    text = console.export_text()
    assert f"API {url}" in text
    assert "ingest key" in text
    assert "2 duplicate" in text
    executed = demo.vendor.executions()
    assert len(executed) == 3
    assert set(executed.values()) == {1}

    # `make run` prints the console and a key: signed in with it, the demo's incidents are there.
    found = re.search(rf"console {re.escape(url)}/console .*\n\s*(awfdrs_\S+)", text)
    assert found, text
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        console_session = Browserless(http)
        await console_session.sign_in(key=found.group(1))
        queue = await console_session.page("/console/queue")
    assert "demo operator" in queue
    assert queue.count("data-incident=") >= 3
