"""A real Prometheus Alertmanager (Debian's prometheus-alertmanager) delivering to the API."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.api.conftest import Sender, count_events

BINARY = "prometheus-alertmanager"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def alertmanager(api_url: str, sender: Sender, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which(BINARY)
    assert binary, f"{BINARY} is not installed (.ci/run installs Debian's package)"
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        f"""
route:
  receiver: awfdrs
  group_by: [alertname, instance]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: awfdrs
    webhook_configs:
      - url: "{api_url}/v1/alertmanager?workflow=payments"
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: "{sender.key}"
"""
    )
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # a single instance: no gossip port
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def wait_for(predicate: object, seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"not within {seconds}s: {what}")


async def test_alertmanager_delivers_firing_and_resolved_alerts(
    alertmanager: str, sender: Sender, committed_sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with httpx.AsyncClient(base_url=alertmanager, timeout=10) as client:

        async def ready() -> bool:
            try:
                return (await client.get("/-/ready")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(ready, 30, "Alertmanager ready")
        started = datetime.now(UTC) - timedelta(seconds=5)
        alert = {
            "labels": {"alertname": "PaymentErrors", "severity": "critical", "instance": "shop-1"},
            "annotations": {"summary": "payment errors above 5%"},
            "startsAt": started.isoformat(),
        }
        assert (await client.post("/api/v2/alerts", json=[alert])).status_code == 200

        async def failed() -> bool:
            where = "event_type = 'alert.payment_errors.failed' AND severity = 'critical'"
            return await count_events(committed_sessions, sender.tenant.id, where) == 1

        await wait_for(failed, 30, "the firing alert stored as a failure")
        ended = {**alert, "endsAt": datetime.now(UTC).isoformat()}
        assert (await client.post("/api/v2/alerts", json=[ended])).status_code == 200

        async def recovered() -> bool:
            where = "event_type = 'alert.payment_errors.recovered'"
            return await count_events(committed_sessions, sender.tenant.id, where) == 1

        await wait_for(recovered, 30, "the resolved notification stored as the matching success")
        # Resends (repeat and group intervals) were duplicates: still one of each.
        assert await count_events(committed_sessions, sender.tenant.id) == 2
