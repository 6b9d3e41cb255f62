"""The bundled demo with its events sent over HTTP (what `make run` does): it settles the same."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.client import AwfdrsClient
from tests.support.console import Browserless
from tests.support.demo import play_demo


async def test_the_demo_over_http_settles_every_incident(
    demo_stack: tuple[AwfdrsClient, str],
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
) -> None:
    _, url = demo_stack
    demo, text = await play_demo(demo_stack, committed_sessions, owner_engine, None)
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
