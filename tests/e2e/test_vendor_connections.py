"""Vendor connections per tenant, checked from the outside with the vendor's own request log.

The promise: a tenant's retries go only to vendors it has a connection to, with that
connection's base URL and credentials (never credentials from events); one tenant's breaker
trips or rate limit never stop another tenant's retries; credentials are encrypted at rest and
can be rotated; a deployment admin can stop a vendor for everyone, an operator only their own
tenant's connection.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.db.models import VendorConnection
from awfdrs.db.repositories import VendorConnectionRepository, VendorRepository
from awfdrs.db.session import make_sessionmaker, tenant_session
from awfdrs.devstack.servers import FlakyVendor, Received
from awfdrs.enums import ActionType, CircuitState, IncidentStatus, Phase, RequestStatus
from awfdrs.errors import ConfigError
from awfdrs.remediation.credentials import CredentialCipher, new_key
from awfdrs.vendor_connections import (
    connect,
    force_connection_open,
    force_vendor_open,
    release_connection,
    release_vendor,
    rotate_credentials,
)
from tests.support.factories import TenantRef, admin_sessions
from tests.support.pipeline import Stack, eventually, retryable
from tests.support.processes import CREDENTIALS_KEY

PATIENT = {
    "grouping_window_seconds": 0.2,
    "verification_window_seconds": 0.3,
    "action_retry_initial_seconds": 0.2,
    "action_max_attempts": 30,
    "max_deferral_seconds": 120,
}
REFUSAL = "credential headers are not accepted in events; configure a vendor connection"


class AccountVendor(FlakyVendor):
    """A vendor down for some accounts (by the credential a call carries), up for the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.down_for: set[str] = set()

    def _respond(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if headers.get("authorization") in self.down_for:
            self._log(Received(0.0, method, path, headers, body, 503))
            return 503, {"ok": False}, {}
        return super()._respond(method, path, headers, body)


@pytest.fixture
def accounts() -> Iterator[AccountVendor]:
    with AccountVendor() as server:
        assert isinstance(server, AccountVendor)
        yield server


@pytest.fixture
def owner_sessions(owner_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The owner connection: rotation lists every tenant, as the CLI does."""
    return make_sessionmaker(owner_engine)


def calls_of(vendor: FlakyVendor, credential: str) -> list[Received]:
    return [r for r in vendor.requests if r.headers.get("authorization") == credential]


async def connection(stack: Stack, tenant: TenantRef, name: str) -> VendorConnection:
    async with tenant_session(stack.sessions, tenant.id) as session:
        vendor = await VendorRepository(session).find_by_name(name)
        assert vendor is not None
        repository = VendorConnectionRepository(session, tenant_id=tenant.id)
        return await repository.get_for_vendor(vendor.id)


async def two_tenants(
    stack: Stack, vendor_url: str, **vendor_settings: Any
) -> tuple[TenantRef, TenantRef, str]:
    """Tenants A and B on one vendor, each through its own connection and credential."""
    a = await stack.tenant(**PATIENT)
    b = await stack.tenant(**PATIENT)
    name = await stack.vendor(connect=False, **vendor_settings)
    for tenant, secret in ((a, "Bearer tenant-a"), (b, "Bearer tenant-b")):
        await stack.connect(
            tenant, name, base_url=vendor_url, credentials={"Authorization": secret}
        )
    return a, b, name


async def close_all(stack: Stack, tenant: TenantRef) -> None:
    for incident in await stack.incidents(tenant):
        if incident.status.is_open:
            await stack.client.resolve(incident.id, actor="test", reason="end of the test")


async def test_one_tenants_failures_open_its_breaker_only(
    stack: Stack, accounts: AccountVendor
) -> None:
    a, b, name = await two_tenants(stack, accounts.url, failure_threshold=2, open_seconds=600)
    accounts.down_for = {"Bearer tenant-a"}
    await stack.client.ingest(
        a.id, [retryable(a, f"a-{n}", name, f"gateway_timeout_{n}") for n in range(3)]
    )

    async def opened() -> VendorConnection | None:
        row = await connection(stack, a, name)
        return row if row.circuit_breaker_state is CircuitState.OPEN else None

    await eventually(opened, 30, "tenant A's breaker to open")
    failed_for_a = len(calls_of(accounts, "Bearer tenant-a"))
    assert failed_for_a in (2, 3)  # a third call may have been claimed before the second failed

    summary = await stack.client.ingest(b.id, [retryable(b, "b-1", name)])
    [incident_id] = {c.incident_id for c in summary.incidents}
    await stack.wait_status(b, incident_id, IncidentStatus.RESOLVED, within=30)
    [reached] = calls_of(accounts, "Bearer tenant-b")
    assert reached.status == 200
    assert (await connection(stack, b, name)).circuit_breaker_state is CircuitState.CLOSED
    # A's breaker is still open and A sent nothing more meanwhile: no retry of its failures.
    # Its third request may have been claimed before the breaker opened and reach the vendor
    # after we looked (a CI run: 2 calls when it opened, 3 at the end), never a fourth.
    assert (await connection(stack, a, name)).circuit_breaker_state is CircuitState.OPEN
    assert len(calls_of(accounts, "Bearer tenant-a")) <= 3
    await close_all(stack, a)


async def test_one_tenants_spent_rate_limit_does_not_delay_another(
    stack: Stack, accounts: AccountVendor
) -> None:
    a, b, name = await two_tenants(
        stack, accounts.url, rate_limit_per_minute=1, rate_limit_window_seconds=60
    )
    await stack.client.ingest(
        a.id, [retryable(a, f"a-{n}", name, f"gateway_timeout_{n}") for n in range(3)]
    )

    async def waiting() -> bool | None:
        requests = await stack.requests(a)
        deferred = [r for r in requests if r.deferred_since is not None]
        return True if len(requests) == 3 and len(deferred) == 2 else None

    await eventually(waiting, 30, "two of A's requests to wait for A's rate limit")
    assert len(calls_of(accounts, "Bearer tenant-a")) == 1

    summary = await stack.client.ingest(b.id, [retryable(b, "b-1", name)])
    [incident_id] = {c.incident_id for c in summary.incidents}
    await stack.wait_status(b, incident_id, IncidentStatus.RESOLVED, within=30)
    assert [r.status for r in calls_of(accounts, "Bearer tenant-b")] == [200]
    # A is still waiting for its own window: still one call of A at the vendor.
    assert len(calls_of(accounts, "Bearer tenant-a")) == 1
    assert sum(r.status is RequestStatus.PENDING for r in await stack.requests(a)) == 2
    await close_all(stack, a)


async def test_the_connections_base_url_and_credentials_reach_the_vendor_encrypted_at_rest(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(**PATIENT)
    name = await stack.vendor(connect=False)
    secret = f"sk_live_{uuid.uuid4().hex}"
    await stack.connect(
        tenant,
        name,
        base_url=f"{vendor.url}/acme",
        credentials={"Authorization": f"Bearer {secret}", "X-Api-Key": secret},
    )
    body = retryable(tenant, "k-1", name)
    body["payload"]["retry"]["headers"] = {"X-Order-Ref": "o-1", "Accept": "application/json"}
    summary = await stack.client.ingest(tenant.id, [body])
    [incident_id] = {c.incident_id for c in summary.incidents}
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=30)

    [call] = vendor.requests
    assert call.path == "/acme/v1/charges"
    assert call.headers["authorization"] == f"Bearer {secret}"
    assert call.headers["x-api-key"] == secret
    assert (call.headers["x-order-ref"], call.headers["accept"]) == ("o-1", "application/json")
    async with tenant_session(stack.sessions, tenant.id) as session:
        stored = (
            await session.execute(
                text("SELECT credentials, credential_names FROM vendor_connections")
            )
        ).one()
        events = await session.execute(
            text("SELECT count(*) FROM events WHERE payload::text LIKE :s"), {"s": f"%{secret}%"}
        )
        assert events.scalar_one() == 0
    token, names = stored
    assert names == ["Authorization", "X-Api-Key"]
    assert secret.encode() not in bytes(token)
    assert stack.credentials.decrypt(bytes(token))["X-Api-Key"] == secret


async def test_an_event_carrying_a_credential_is_refused_alone(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(**PATIENT)
    name = await stack.vendor()
    smuggler = retryable(tenant, "k-bad", name)
    smuggler["payload"]["retry"]["headers"] = {"Authorization": "Bearer sk_live_stolen"}
    summary = await stack.client.ingest(tenant.id, [smuggler, retryable(tenant, "k-ok", name)])
    rejected, accepted = summary.outcomes
    assert rejected.outcome.value == "rejected"
    assert rejected.reason == f"payload.retry.headers.Authorization: {REFUSAL}"
    assert accepted.outcome.value == "accepted"
    [incident_id] = {c.incident_id for c in summary.incidents}
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=30)
    [call] = vendor.requests
    assert "authorization" not in call.headers
    async with tenant_session(stack.sessions, tenant.id) as session:
        keys = await session.execute(text("SELECT idempotency_key FROM events"))
        assert [k for (k,) in keys] == ["k-ok"]


async def test_a_vendor_the_tenant_has_no_connection_to_is_never_called(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(**PATIENT)
    other = await stack.tenant(**PATIENT)
    name = await stack.vendor(connect=False)
    await stack.connect(other, name)  # someone else's connection is not this tenant's
    summary = await stack.client.ingest(tenant.id, [retryable(tenant, "k-1", name)])
    assert summary.outcomes[0].outcome.value == "accepted"

    [incident_id] = {c.incident_id for c in summary.incidents}
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    decisions = await stack.decisions(tenant, incident_id)
    assert decisions[-1].decision_type is ActionType.MANUAL
    assert f"no connection to vendor {name}" in decisions[-1].reasoning
    [request] = await stack.requests(tenant)
    assert (request.status, request.attempts) == (RequestStatus.HANDED_OVER, 0)
    assert vendor.requests == []


async def test_credentials_survive_a_key_rotation(
    stack: Stack,
    vendor: FlakyVendor,
    owner_sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = await stack.tenant(**PATIENT)
    name = await stack.vendor(connect=False)
    await stack.connect(tenant, name, credentials={"Authorization": "Bearer rotating"})
    before = (await connection(stack, tenant, name)).credentials
    assert before is not None
    newer = new_key()
    try:
        # 1. The new key goes first, the old one stays to decrypt; 2. rotate; 3. drop the old.
        stack.credentials.set_keys(f"{newer},{CREDENTIALS_KEY}")
        assert await rotate_credentials(stack.sessions, owner_sessions, stack.credentials) >= 1
        stack.credentials.set_keys(newer)
        after = (await connection(stack, tenant, name)).credentials
        assert after is not None
        assert after != before
        with pytest.raises(ConfigError, match="none of the configured keys"):
            CredentialCipher(CREDENTIALS_KEY).decrypt(after)
        summary = await stack.client.ingest(tenant.id, [retryable(tenant, "k-1", name)])
        [incident_id] = {c.incident_id for c in summary.incidents}
        await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=30)
        [call] = vendor.requests
        assert call.headers["authorization"] == "Bearer rotating"
    finally:
        # Back under the run's key, so other tests (and `awfdrs vendors rotate-credentials`
        # in test_cli) can read every connection of the shared database.
        stack.credentials.set_keys(f"{CREDENTIALS_KEY},{newer}")
        await rotate_credentials(stack.sessions, owner_sessions, stack.credentials)
        stack.credentials.set_keys(CREDENTIALS_KEY)


async def test_a_tenants_stop_is_its_own_and_a_deployment_stop_is_everyones(
    stack: Stack, accounts: AccountVendor
) -> None:
    a, b, name = await two_tenants(stack, accounts.url)
    forced = await force_connection_open(stack.sessions, a.id, name, by="alice", reason="INC-1")
    assert forced.forced_open
    first = await stack.client.ingest(a.id, [retryable(a, "a-1", name)])
    second = await stack.client.ingest(b.id, [retryable(b, "b-1", name)])
    [b_incident] = {c.incident_id for c in second.incidents}
    await stack.wait_status(b, b_incident, IncidentStatus.RESOLVED, within=30)
    await asyncio.sleep(1)
    assert calls_of(accounts, "Bearer tenant-a") == []
    [a_request] = await stack.requests(a)
    assert (a_request.status, a_request.attempts) == (RequestStatus.PENDING, 0)
    await release_connection(stack.sessions, a.id, name)
    [a_incident] = {c.incident_id for c in first.incidents}
    await stack.wait_status(a, a_incident, IncidentStatus.RESOLVED, within=30)
    assert len(calls_of(accounts, "Bearer tenant-a")) == 1

    await force_vendor_open(admin_sessions(), name, by="deploy-admin", reason="vendor outage")
    try:
        later = [
            await stack.client.ingest(t.id, [retryable(t, f"{t.name}-2", name, "timeout_2")])
            for t in (a, b)
        ]

        async def both_waiting() -> bool | None:
            for tenant in (a, b):
                if not any(r.deferred_since for r in await stack.requests(tenant)):
                    return None
            return True

        await eventually(both_waiting, 30, "both tenants' requests to wait for the vendor")
        await asyncio.sleep(1)
        assert len(accounts.requests) == 2  # the two calls from before the stop, no more
    finally:
        await release_vendor(admin_sessions(), name)
    for tenant, summary in zip((a, b), later, strict=True):
        [incident_id] = {c.incident_id for c in summary.incidents}
        await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=30)
    assert len(accounts.requests) == 4


async def test_credentials_do_not_follow_a_connection_to_another_address(stack: Stack) -> None:
    """Pointed at another host, a connection's credentials are dropped: they must be given
    again for the new address, never sent to whoever answers there."""
    tenant = await stack.tenant()
    name = await stack.vendor(connect=False)
    cipher = CredentialCipher(CREDENTIALS_KEY)
    await connect(stack.sessions, tenant.id, name, cipher=cipher,
                  credentials={"Authorization": "Bearer sk-keep-1"})  # fmt: skip
    kept = await connect(stack.sessions, tenant.id, name, cipher=cipher, rate_limit_per_minute=9)
    assert kept.credentials == {"Authorization": "***"}
    moved = await connect(
        stack.sessions, tenant.id, name, cipher=cipher, base_url="https://elsewhere.example"
    )
    assert moved.credentials == {}
    async with tenant_session(stack.sessions, tenant.id) as session:
        vendor = await VendorRepository(session).find_by_name(name)
        assert vendor is not None
        row = await VendorConnectionRepository(session, tenant_id=tenant.id).get_for_vendor(
            vendor.id
        )
        assert row.credentials is None
