"""Every endpoint and status code of the HTTP edge, against the API as a real process."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from awfdrs.admin import update_tenant_settings
from awfdrs.api.keys import Role, create_key
from tests.integration.api.conftest import Sender, count_events, make_sender
from tests.support.database import ScratchDatabase
from tests.support.processes import ApiProcess, api_env

Sessions = async_sessionmaker[AsyncSession]


def now() -> str:
    return datetime.now(UTC).isoformat()


def event(
    sender: Sender, key: str, event_type: str = "payment.failed", **more: Any
) -> dict[str, Any]:
    return {
        "workflow_id": str(sender.tenant.workflow_id),
        "event_type": event_type,
        "idempotency_key": key,
        "occurred_at": more.pop("occurred_at", None) or "2026-12-01T12:00:00Z",
        "payload": {"error": {"code": "gateway_timeout"}},
        **more,
    }


async def post_events(http: httpx.AsyncClient, sender: Sender, events: list[Any]) -> httpx.Response:
    return await http.post("/v1/events", json={"events": events}, headers=sender.auth)


# --- the document and the health check --------------------------------------------------------


async def test_openapi_document_lists_every_endpoint(http: httpx.AsyncClient) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/v1/events", "/v1/cloudevents", "/v1/alertmanager", "/v2/enqueue", "/healthz",
                 "/v1/incidents", "/v1/kill-switches", "/v1/vendors"):  # fmt: skip
        assert path in paths


async def test_an_unknown_route_answers_in_the_documented_error_shape(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/v1/incidents//approve", json={})
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "Not Found"}


async def test_health_says_both_answer(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["postgres"]["ok"]
    assert body["temporal"]["ok"]


# --- native -----------------------------------------------------------------------------------


async def test_native_events_land_once_with_outcomes_in_order(
    http: httpx.AsyncClient, sender: Sender, committed_sessions: Sessions
) -> None:
    events = [event(sender, "n-1"), event(sender, "n-2", "payment.succeeded"), {"nope": 1}]
    first = await post_events(http, sender, events)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["tenant_id"] == str(sender.tenant.id)
    assert [o["outcome"] for o in body["outcomes"]] == ["accepted", "accepted", "rejected"]
    assert [o["index"] for o in body["outcomes"]] == [0, 1, 2]
    assert "workflow_id" in body["outcomes"][2]["reason"]
    assert len(body["incidents"]) == 1
    assert body["incidents"][0]["opened"]
    again = await post_events(http, sender, events[:2])
    assert [o["outcome"] for o in again.json()["outcomes"]] == ["duplicate", "duplicate"]
    assert await count_events(committed_sessions, sender.tenant.id) == 2


async def test_an_event_naming_another_tenant_is_rejected_and_nothing_of_it_written(
    http: httpx.AsyncClient, sender: Sender, committed_sessions: Sessions
) -> None:
    other = await make_sender(committed_sessions)
    foreign = event(other, "x-1", tenant_id=str(other.tenant.id))
    response = await post_events(http, sender, [foreign, event(sender, "own-1")])
    outcomes = response.json()["outcomes"]
    assert outcomes[0]["outcome"] == "rejected"
    assert outcomes[0]["reason"].startswith("tenant_id:")
    assert outcomes[1]["outcome"] == "accepted"
    # The other tenant's workflow named with the sender's own tenant id: not its workflow.
    borrowed = event(other, "x-2")
    assert (await post_events(http, sender, [borrowed])).json()["outcomes"][0][
        "outcome"
    ] == "rejected"
    # A batch that names another tenant at the top is refused whole.
    whole = await http.post(
        "/v1/events",
        json={"tenant_id": str(other.tenant.id), "events": [event(sender, "own-2")]},
        headers=sender.auth,
    )
    assert whole.status_code == 403
    assert await count_events(committed_sessions, other.tenant.id) == 0
    assert await count_events(committed_sessions, sender.tenant.id) == 1


async def test_hostile_events_are_rejected_alone(
    http: httpx.AsyncClient, sender: Sender, committed_sessions: Sessions
) -> None:
    good = json.dumps(event(sender, "h-ok"))
    deep = "[" * 10_000 + "]" * 10_000
    huge = "1" + "0" * 5000
    nul = json.dumps(event(sender, "h-nul", payload={"note": "a\u0000b"}))
    surrogate = json.dumps(event(sender, "h-sur")).replace("h-sur", "h-\\ud800")
    body = f'{{"events": [{deep}, {huge}, {nul}, {surrogate}, {good}]}}'
    response = await http.post(
        "/v1/events",
        content=body.encode(),
        headers={**sender.auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    outcomes = response.json()["outcomes"]
    assert [o["outcome"] for o in outcomes] == ["rejected"] * 4 + ["accepted"]
    assert "nested deeper" in outcomes[0]["reason"]
    assert "digits" in outcomes[1]["reason"]
    assert "NUL" in outcomes[2]["reason"]
    assert outcomes[3]["reason"].startswith("idempotency_key:")
    assert await count_events(committed_sessions, sender.tenant.id) == 1


async def test_malformed_json_is_a_400_naming_the_position(
    http: httpx.AsyncClient, sender: Sender
) -> None:
    response = await http.post(
        "/v1/events",
        content=b'{"events": [{"a": 1}]\n  "x"}',
        headers={**sender.auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    message = response.json()["message"]
    assert "line 2, column 3" in message, message


async def test_unknown_content_type_is_a_415(http: httpx.AsyncClient, sender: Sender) -> None:
    response = await http.post(
        "/v1/events", content=b"events=1", headers={**sender.auth, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert "text/plain" in response.json()["message"]


async def test_a_body_over_one_mebibyte_is_a_413_naming_the_limit(
    http: httpx.AsyncClient, sender: Sender, committed_sessions: Sessions
) -> None:
    big = json.dumps({"events": [event(sender, "big", payload={"x": "y" * (1024 * 1024)})]})
    declared = await http.post(
        "/v1/events",
        content=big.encode(),
        headers={**sender.auth, "Content-Type": "application/json"},
    )
    assert declared.status_code == 413
    assert "1048576 bytes (1 MiB)" in declared.json()["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        data = big.encode()
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    streamed = await http.post(
        "/v1/events", content=chunks(), headers={**sender.auth, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await count_events(committed_sessions, sender.tenant.id) == 0


# --- keys -------------------------------------------------------------------------------------


async def test_requests_without_a_valid_key_are_401(
    http: httpx.AsyncClient, sender: Sender
) -> None:
    body = {"events": [event(sender, "k-1")]}
    missing = await http.post("/v1/events", json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    malformed = await http.post("/v1/events", json=body, headers={"Authorization": "Bearer nope"})
    assert malformed.status_code == 401
    assert "malformed" in malformed.json()["message"]
    forged = sender.key[:-4] + ("AAAA" if not sender.key.endswith("AAAA") else "BBBB")
    wrong = await http.post("/v1/events", json=body, headers={"Authorization": f"Bearer {forged}"})
    assert wrong.status_code == 401
    assert "not valid" in wrong.json()["message"]


async def test_a_viewer_key_cannot_send_events(
    http: httpx.AsyncClient, committed_sessions: Sessions
) -> None:
    viewer = await make_sender(committed_sessions, role=Role.VIEWER)
    response = await post_events(http, viewer, [event(viewer, "v-1")])
    assert response.status_code == 403
    assert await count_events(committed_sessions, viewer.tenant.id) == 0


async def test_a_revoked_key_is_refused_within_five_seconds(
    http: httpx.AsyncClient, sender: Sender, database: ScratchDatabase
) -> None:
    from awfdrs.api.keys import revoke_key
    from awfdrs.db.session import build_engine, make_sessionmaker

    assert (await post_events(http, sender, [event(sender, "r-1")])).status_code == 200
    engine = build_engine(database.app_url)
    try:
        await revoke_key(make_sessionmaker(engine), sender.key.split("_")[1])
    finally:
        await engine.dispose()
    revoked_at = asyncio.get_running_loop().time()
    while True:
        # Measured when the request is sent: one sent 5 s after the revocation must be refused.
        elapsed = asyncio.get_running_loop().time() - revoked_at
        response = await post_events(http, sender, [event(sender, "r-2")])
        if response.status_code == 401:
            assert "revoked" in response.json()["message"]
            break
        assert response.status_code == 200
        assert elapsed < 5.0, "the revoked key was still accepted after 5 s"
        await asyncio.sleep(0.2)
    assert elapsed < 5.0


async def test_an_expired_key_is_refused_and_rotation_overlaps(
    http: httpx.AsyncClient, sender: Sender, committed_sessions: Sessions
) -> None:
    short, _ = await create_key(
        committed_sessions, sender.tenant.id, Role.INGEST, expires_in=timedelta(seconds=4)
    )
    created = asyncio.get_running_loop().time()
    auth = {"Authorization": f"Bearer {short}"}
    body = {"events": [event(sender, "e-1")]}
    assert (await http.post("/v1/events", json=body, headers=auth)).status_code == 200
    await asyncio.sleep(max(0.0, created + 4.3 - asyncio.get_running_loop().time()))
    expired = await http.post("/v1/events", json=body, headers=auth)
    assert expired.status_code == 401
    assert "expired" in expired.json()["message"]
    # The tenant's other key still works: several keys are active at once.
    assert (await post_events(http, sender, [event(sender, "e-2")])).status_code == 200


# --- quota, database, in-flight ---------------------------------------------------------------


async def test_a_tenant_over_its_quota_gets_429_with_retry_after(
    http: httpx.AsyncClient, committed_sessions: Sessions
) -> None:
    slow = await make_sender(
        # A slow refill, so that the second request finds the bucket empty however late.
        committed_sessions,
        settings={"ingest_events_per_second": 0.05, "ingest_burst": 3},
    )
    first = await post_events(http, slow, [event(slow, f"q-{i}") for i in range(3)])
    assert first.status_code == 200
    second = await post_events(http, slow, [event(slow, "q-3")])
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1
    assert "quota" in second.json()["message"]
    assert await count_events(committed_sessions, slow.tenant.id) == 3
    # Alertmanager retries only 5xx: over quota is "not now" there.
    alerts = await http.post(
        "/v1/alertmanager?workflow=payments",
        json={"version": "4", "alerts": [firing("q-am")]},
        headers=slow.auth,
    )
    assert alerts.status_code == 503
    assert "retry-after" in alerts.headers
    # The quota is a setting, read again within seconds.
    await update_tenant_settings(committed_sessions, slow.tenant.id, {"ingest_burst": 1000})


@pytest.fixture
async def unreachable_api(temporal_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[str]:
    """An API whose PostgreSQL does not answer (nothing listens on its port)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = ApiProcess(
        api_env(
            f"postgresql://awfdrs_app@127.0.0.1:{port}/awfdrs",
            temporal_env.client.service_client.config.target_host,
            "unused",
        ),
        tmp_path / "api.log",
    )
    try:
        yield await process.start()
    finally:
        process.stop()


async def test_postgres_unreachable_is_503_with_retry_after(
    unreachable_api: str, sender: Sender
) -> None:
    async with httpx.AsyncClient(base_url=unreachable_api, timeout=30) as client:
        for path, body in (
            ("/v1/events", {"events": [event(sender, "d-1")]}),
            ("/v1/alertmanager?workflow=payments", {"version": "4", "alerts": [firing("d")]}),
        ):
            response = await client.post(path, json=body, headers=sender.auth)
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) >= 1
        health = await client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["postgres"]["ok"] is False


async def test_the_in_flight_limit_answers_503_at_once(
    database: ScratchDatabase,
    temporal_env: WorkflowEnvironment,
    sender: Sender,
    tmp_path: Path,
) -> None:
    process = ApiProcess(
        api_env(
            database.app_url,
            temporal_env.client.service_client.config.target_host,
            "unused",
            AWFDRS_API_MAX_IN_FLIGHT="1",
        ),
        tmp_path / "api.log",
    )
    url = await process.start()
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"events": ['
        await release.wait()
        yield b"]}"

    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            headers = {**sender.auth, "Content-Type": "application/json"}
            held = asyncio.create_task(
                client.post("/v1/events", content=slow_body(), headers=headers)
            )
            await asyncio.sleep(0.5)
            refused = await client.post(
                "/v1/events", json={"events": [event(sender, "f-1")]}, headers=sender.auth
            )
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert (await client.get("/healthz")).status_code == 200  # never refused
            release.set()
            assert (await held).status_code == 200
    finally:
        process.stop()


# --- CloudEvents ------------------------------------------------------------------------------


def cloudevent(sender: Sender, event_id: str, **more: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "//payments.acme/checkout",
        "type": "com.acme.payment.failed",
        "time": "2026-12-01T12:00:00Z",
        "workflow": "payments",
        "correlationid": f"order-{event_id}",
        "data": {"error": {"code": "card_declined"}},
        **more,
    }


CE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"


async def test_cloudevents_structured_batched_and_binary(
    http: httpx.AsyncClient, sender: Sender, committed_sessions: Sessions
) -> None:
    structured = await http.post(
        "/v1/cloudevents",
        content=json.dumps(cloudevent(sender, "ce-1")),
        headers={**sender.auth, "Content-Type": CE},
    )
    assert structured.status_code == 200, structured.text
    assert structured.json()["outcomes"][0]["outcome"] == "accepted"
    assert structured.json()["incidents"][0]["opened"]
    # (source, id) identifies the event: the same pair again is a duplicate.
    batch = [
        cloudevent(sender, "ce-1"),
        cloudevent(sender, "ce-2", workflow=str(sender.tenant.workflow_id)),
        cloudevent(sender, "ce-3", workflow="no-such-workflow"),
        {k: v for k, v in cloudevent(sender, "ce-4").items() if k != "source"},
    ]
    batched = await http.post(
        "/v1/cloudevents",
        content=json.dumps(batch),
        headers={**sender.auth, "Content-Type": CE_BATCH},
    )
    outcomes = batched.json()["outcomes"]
    assert [o["outcome"] for o in outcomes] == ["duplicate", "accepted", "rejected", "rejected"]
    assert "no-such-workflow" in outcomes[2]["reason"]
    assert "source" in outcomes[3]["reason"]
    binary = await http.post(
        "/v1/cloudevents",
        content=json.dumps({"error": {"code": "card_declined"}}),
        headers={
            **sender.auth,
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": "ce-5",
            "ce-source": "//payments.acme/checkout",
            "ce-type": "com.acme.payment.failed",
            "ce-time": now(),
            "ce-workflow": "payments",
        },
    )
    assert binary.status_code == 200, binary.text
    assert binary.json()["outcomes"][0]["outcome"] == "accepted"
    assert (
        await count_events(
            committed_sessions, sender.tenant.id, "event_type = 'com.acme.payment.failed'"
        )
        == 3
    )


@pytest.mark.parametrize("attribute", ["id", "source", "type", "specversion", "time", "workflow"])
async def test_a_cloudevent_missing_a_required_attribute_is_a_400_naming_it(
    http: httpx.AsyncClient, sender: Sender, attribute: str
) -> None:
    incomplete = {k: v for k, v in cloudevent(sender, "m-1").items() if k != attribute}
    response = await http.post(
        "/v1/cloudevents",
        content=json.dumps(incomplete),
        headers={**sender.auth, "Content-Type": CE},
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{attribute}:")
    headers = {
        f"ce-{k}": v
        for k, v in cloudevent(sender, "m-2").items()
        if k not in (attribute, "data") and isinstance(v, str)
    }
    binary = await http.post(
        "/v1/cloudevents",
        content=b"{}",
        headers={**sender.auth, "Content-Type": "application/json", **headers},
    )
    assert binary.status_code == 400
    assert f"ce-{attribute}" in binary.json()["message"]


# --- Alertmanager -----------------------------------------------------------------------------


def firing(fingerprint: str, **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "PaymentErrors", "severity": "critical", **labels},
        "annotations": {"summary": "payment errors above 5%"},
        "startsAt": "2026-12-01T12:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


async def test_alertmanager_firing_then_resolved(
    http: httpx.AsyncClient, sender: Sender, committed_sessions: Sessions
) -> None:
    alert = firing("fp1")
    payload = {"version": "4", "status": "firing", "receiver": "awfdrs", "alerts": [alert]}
    first = await http.post("/v1/alertmanager?workflow=payments", json=payload, headers=sender.auth)
    assert first.status_code == 200, first.text
    assert first.json()["outcomes"][0]["outcome"] == "accepted"
    assert first.json()["incidents"][0]["severity"] == "critical"
    # A resend (or the HA peer's copy) is a duplicate, even with a new endsAt and annotations
    # Prometheus templated again ({{ $value }} changed).
    retemplated = {**alert, "annotations": {"summary": "payment errors at 7.2%"}}
    resent = {**payload, "alerts": [{**retemplated, "endsAt": "2026-12-01T12:09:00Z"}]}
    again = await http.post("/v1/alertmanager?workflow=payments", json=resent, headers=sender.auth)
    assert again.json()["outcomes"][0]["outcome"] == "duplicate"
    resolved = {**alert, "status": "resolved", "endsAt": "2026-12-01T12:10:00Z"}
    done = await http.post(
        "/v1/alertmanager",
        json={
            **payload,
            "alerts": [{**resolved, "labels": {**alert["labels"], "workflow": "payments"}}],
        },
        headers=sender.auth,
    )
    assert done.json()["outcomes"][0]["outcome"] == "accepted"
    assert (
        await count_events(
            committed_sessions, sender.tenant.id, "event_type = 'alert.payment_errors.failed'"
        )
        == 1
    )
    assert (
        await count_events(
            committed_sessions, sender.tenant.id, "event_type = 'alert.payment_errors.recovered'"
        )
        == 1
    )
    nameless = await http.post("/v1/alertmanager", json=payload, headers=sender.auth)
    assert nameless.json()["outcomes"][0]["outcome"] == "rejected"
    assert "workflow" in nameless.json()["outcomes"][0]["reason"]


async def test_text_utf8_cannot_carry_is_a_client_error_never_a_500(
    http: httpx.AsyncClient, sender: Sender
) -> None:
    good = {
        "specversion": "1.0",
        "id": "ok-1",
        "source": "//shop",
        "type": "com.shop.payment.failed",
        "time": "2026-12-01T12:00:00Z",
        "workflow": "payments",
    }
    lone = '{"specversion":"1.0","id":"\\ud800","source":"s","type":"com.shop.payment.failed",'
    lone += '"time":"2026-12-01T12:00:00Z","workflow":"payments"}'
    batch = "[" + lone + "," + json.dumps(good) + "]"
    answer = await http.post(
        "/v1/cloudevents",
        content=batch.encode(),
        headers={**sender.auth, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert answer.status_code == 200, answer.text
    assert [o["outcome"] for o in answer.json()["outcomes"]][1] == "accepted"
    echoed = await http.post(
        "/v1/events",
        content=b'{"\\ud800": 1, "events": []}',
        headers={**sender.auth, "Content-Type": "application/json"},
    )
    assert echoed.status_code == 400, echoed.text
    trigger = (
        '{"routing_key": "' + sender.key + '", "event_action": "trigger", "payload": '
        '{"summary": "\\ud800", "source": "s", "severity": "error"}}'
    )
    paged = await http.post(
        "/v2/enqueue?workflow=payments",
        content=trigger.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert paged.status_code < 500, paged.text


async def test_health_tells_no_secrets_and_is_cached(http: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(http.get("/healthz") for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["postgres"]["detail"] for a in answers} == {"answers"}


# --- PagerDuty Events v2 ----------------------------------------------------------------------


async def test_pagerduty_trigger_and_resolve_meet_by_dedup_key(
    http: httpx.AsyncClient, sender: Sender, committed_sessions: Sessions
) -> None:
    trigger = {
        "routing_key": sender.key,
        "event_action": "trigger",
        "dedup_key": "checkout-42",
        "payload": {"summary": "checkout failing", "source": "shop-1", "severity": "error"},
    }
    answer = await http.post("/v2/enqueue?workflow=payments", json=trigger)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "success"
    assert body["message"] == "Event processed"
    assert body["dedup_key"] == "checkout-42"
    assert body["outcome"]["outcome"] == "accepted"
    again = await http.post("/v2/enqueue?workflow=payments", json=trigger)
    assert again.json()["outcome"]["outcome"] == "duplicate"
    resolve = {"routing_key": sender.key, "event_action": "resolve", "dedup_key": "checkout-42"}
    resolved = await http.post("/v2/enqueue?workflow=payments", json=resolve)
    assert resolved.status_code == 202
    assert resolved.json()["outcome"]["outcome"] == "accepted"
    assert (
        await count_events(committed_sessions, sender.tenant.id, "correlation_id = 'checkout-42'")
        == 2
    )
    # Without a dedup_key one is derived from the content: a resend is still a duplicate.
    anonymous = {k: v for k, v in trigger.items() if k != "dedup_key"}
    one = (await http.post("/v2/enqueue?workflow=payments", json=anonymous)).json()
    two = (await http.post("/v2/enqueue?workflow=payments", json=anonymous)).json()
    assert one["dedup_key"] == two["dedup_key"]
    assert two["outcome"]["outcome"] == "duplicate"


async def test_pagerduty_refusals(http: httpx.AsyncClient, sender: Sender) -> None:
    invalid = await http.post(
        "/v2/enqueue?workflow=payments",
        json={"routing_key": sender.key, "event_action": "trigger", "payload": {"summary": "x"}},
    )
    assert invalid.status_code == 400
    assert invalid.json()["status"] == "invalid event"
    assert any("payload.source" in e for e in invalid.json()["errors"])
    keyless = await http.post(
        "/v2/enqueue?workflow=payments", json={"event_action": "resolve", "dedup_key": "x"}
    )
    assert keyless.status_code == 400
    assert "routing_key" in keyless.json()["errors"][0]
    unknown = await http.post(
        "/v2/enqueue?workflow=payments",
        json={"routing_key": "R0UT1NG", "event_action": "resolve", "dedup_key": "x"},
    )
    assert unknown.status_code == 401
    no_workflow = await http.post(
        "/v2/enqueue", json={"routing_key": sender.key, "event_action": "resolve", "dedup_key": "x"}
    )
    assert no_workflow.status_code == 400
    assert "workflow" in no_workflow.json()["errors"][0]


async def test_keys_through_the_cli(
    database: ScratchDatabase, sender: Sender, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    from tests.integration.test_cli import awfdrs

    env = {
        "AWFDRS_DATABASE_URL": database.app_url,
        "AWFDRS_MIGRATION_DATABASE_URL": database.owner_url,
        "AWFDRS_STACK_FILE": str(tmp_path / "none.json"),
    }
    created = await asyncio.to_thread(
        awfdrs, env, "keys", "create", "--tenant", sender.tenant.name, "--role", "ingest",
        "--name", "cli", "--expires", "1h", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    made = json.loads(created.stdout)
    assert {"key", "id", "tenant_id", "role"} <= set(made)
    assert made["tenant_id"] == str(sender.tenant.id)
    assert made["role"] == "ingest"
    auth = {"Authorization": f"Bearer {made['key']}"}
    body = {"events": [event(sender, "cli-1")]}
    assert (await http.post("/v1/events", json=body, headers=auth)).status_code == 200
    listed = await asyncio.to_thread(
        awfdrs, env, "keys", "list", "--tenant", str(sender.tenant.id), "--json"
    )
    rows = json.loads(listed.stdout)
    assert made["id"] in {r["id"] for r in rows}
    assert all("key" not in r and "secret_hash" not in r for r in rows)
    revoked = await asyncio.to_thread(awfdrs, env, "keys", "revoke", made["id"])
    assert revoked.returncode == 0, revoked.stderr
    await asyncio.sleep(4.5)
    assert (await http.post("/v1/events", json=body, headers=auth)).status_code == 401
    missing = await asyncio.to_thread(awfdrs, env, "keys", "revoke", str(uuid.uuid4()))
    assert missing.returncode == 1
    assert "not found" in missing.stderr.lower()
    bad_role = await asyncio.to_thread(
        awfdrs, env, "keys", "create", "--tenant", sender.tenant.name, "--role", "root"
    )
    assert bad_role.returncode != 0
    assert "--role" in bad_role.stderr
