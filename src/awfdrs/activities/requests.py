"""Sending one affected request again: the last checks and the claim, one attempt, its record.

The claim transaction takes the tenant's kill-switch lock (shared) and runs again the controls
an approval cannot lift (kill switch, remediation mode, fuse, budget), then, under the lock of
the tenant's connection to the vendor (never the shared vendor row: tenants do not wait on each
other), asks the deployment-wide stop, the connection's circuit breaker and its rate limit, and
only then moves the request to SENT with a lease as long as the attempt may take. It commits
before the vendor is called, so the record shows the attempt even if the worker dies during the
call; the answer is written in a second transaction. No transaction is held open across the
network, and no second attempt of a request starts while an earlier one's lease runs: attempts
never overlap at the vendor. The call goes to the connection's base URL with its credentials;
a tenant without a connection to the vendor is never sent anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from awfdrs.activities.context import IncidentContext, incident_fields
from awfdrs.contracts import SendCommand
from awfdrs.contracts.events import retry_header_allowed
from awfdrs.db.models import RemediationRequest, VendorConnection
from awfdrs.db.repositories import (
    IncidentRepository,
    KillSwitchRepository,
    RequestRepository,
    VendorCallRepository,
    VendorConnectionRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import ActionType, GateControl, GateEffect, RequestStatus
from awfdrs.errors import ConfigError
from awfdrs.lifecycle import RequestOutcome
from awfdrs.metrics import Metrics
from awfdrs.remediation import breaker, rate_limit
from awfdrs.remediation.credentials import CredentialCipher
from awfdrs.remediation.executors import (
    Executed,
    Replay,
    RequestCannotBeSent,
    RetryExecutor,
    TransientActionError,
)
from awfdrs.remediation.gate import Gate, Hold
from awfdrs.words import span

log = activity.logger
HEARTBEAT_EVERY = 2.0


class Deferred(Exception):
    """Not now: the vendor's breaker or rate limit, or an earlier attempt's lease."""

    def __init__(self, delay: timedelta, reason: str) -> None:
        super().__init__(reason)
        self.delay = max(delay, timedelta(milliseconds=50))
        self.reason = reason


def http_timeout(attempt_timeout: float) -> float:
    """The vendor call must be over before the attempt's own timeout (and its lease) ends, so
    Temporal never starts the next attempt while this one may still reach the vendor."""
    return max(0.5, attempt_timeout - min(2.0, attempt_timeout * 0.2))


def outcome(request: RemediationRequest, **extra: object) -> RequestOutcome:
    return RequestOutcome.model_validate(
        {
            "request_id": request.id,
            "status": request.status,
            "attempts": request.attempts,
            "status_code": request.last_status_code,
            "error": request.last_error,
            **extra,
        }
    )


def with_credentials(headers: dict[str, str], credentials: dict[str, str]) -> dict[str, str]:
    """The request's own harmless headers with the connection's credentials over them; a name
    is one header whatever its case, and the connection's value wins.

    The request's headers pass the intake allow-list again: requests stored before it existed
    may still hold an ``Authorization`` from their event, which must never be sent.
    """
    overridden = {name.lower() for name in credentials}
    kept = {
        name: value
        for name, value in headers.items()
        if retry_header_allowed(name) and name.lower() not in overridden
    }
    return {**kept, **credentials}


class RequestActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        retry: RetryExecutor,
        gate: Gate,
        metrics: Metrics | None = None,
        credentials: CredentialCipher | None = None,
    ) -> None:
        self._sessions = sessions
        self._retry = retry
        self._gate = gate
        self._metrics = metrics or Metrics()
        self._credentials = credentials or CredentialCipher(None)

    @activity.defn(name="send_request")
    async def send(self, command: SendCommand) -> RequestOutcome:
        """One attempt at one request; a request already settled is reported, never resent.

        Held by a kill switch or the fuse, it stays PENDING and the outcome says so; stopped by
        the mode (shadow: recorded SHADOWED) or the budget likewise. Deferred by the breaker,
        the rate limit or an earlier attempt's lease, it is retried with the exact delay until
        the tenant's maximum deferral, then reported as given up. A transient failure is
        recorded and raised for Temporal to retry (with the vendor's Retry-After); after the
        last allowed attempt it is the request's final failure.
        """
        try:
            claimed = await self._claim(command)
        except Deferred as deferred:
            return await self._defer(command, deferred)
        if isinstance(claimed, RequestOutcome):
            return claimed
        request, replay, permit = claimed
        try:
            executed = await self._call(replay)
        except TransientActionError as exc:
            return await self._transient(command, request, permit, exc)
        except RequestCannotBeSent as exc:
            executed = Executed(False, str(exc), {}, error=str(exc))
            return await self._record(command, executed, permit, healthy=None)
        # A permanent 4xx is the request's fault: the vendor answered, so it counts as healthy.
        return await self._record(command, executed, permit, healthy=True)

    async def _claim(
        self, command: SendCommand
    ) -> (
        RequestOutcome | tuple[RemediationRequest, Replay, tuple[VendorConnection, breaker.Permit]]
    ):
        now = datetime.now(UTC)
        async with tenant_session(self._sessions, command.tenant_id) as session:
            requests = RequestRepository(session, tenant_id=command.tenant_id)
            request = await requests.get(command.request_id)
            if request.status.is_final:
                return outcome(request)
            lease = request.lease_until
            if request.status is RequestStatus.SENT and lease is not None and lease > now:
                raise Deferred(lease - now, "an earlier attempt may still be in flight")
            incident = await IncidentRepository(session, tenant_id=command.tenant_id).get(
                command.incident_id
            )
            if not incident.status.is_open:
                return outcome(request, reason=f"the incident is {incident.status.value}")
            if request.vendor_id is None:
                await requests.settle_unsent(
                    incident.id,
                    to=RequestStatus.FAILED,
                    ids=[request.id],
                    note=f"vendor {request.vendor_name or '(none given)'} is not registered: "
                    "nowhere to send it",
                )
                return outcome(await requests.get(request.id))
            connections = VendorConnectionRepository(session, tenant_id=command.tenant_id)
            if await connections.find_for_vendor(request.vendor_id) is None:
                # A tenant's retries go only where it has a connection (its base URL, its
                # credentials): never to a vendor merely named by an event.
                await requests.settle_unsent(
                    incident.id,
                    to=RequestStatus.FAILED,
                    ids=[request.id],
                    note=f"this tenant has no connection to vendor {request.vendor_name}: not "
                    f"sent; connect it (awfdrs vendors connect {request.vendor_name} --tenant "
                    "…) and send it again by hand",
                )
                return outcome(await requests.get(request.id))
            key = await requests.get_key_state(request)
            if key.succeeded_at is not None:
                done = key.succeeded_at.astimezone(UTC).isoformat(timespec="seconds")
                # Sent by another incident under the same key. Remediated if that success
                # answers this row's failures; a failure after it is new, never sent twice.
                moved = await requests.settle_unsent(
                    incident.id,
                    to=RequestStatus.SUCCEEDED,
                    ids=[request.id],
                    covered_by=(key.answered_until, key.succeeded_at),
                    note=f"sent once, by another incident, under the same key: it succeeded "
                    f"at {done}",
                )
                if not moved:
                    await requests.settle_unsent(
                        incident.id,
                        to=RequestStatus.FAILED,
                        ids=[request.id],
                        note=f"already succeeded under the same key ({done}) and failed "
                        "again: never sent twice, for a human to look at",
                    )
                return outcome(await requests.get(request.id))
            if key.busy_until is not None:
                raise Deferred(key.busy_until - now, "the same request is in flight elsewhere")
            context = await IncidentContext.load(session, command.tenant_id, incident)
            await KillSwitchRepository(session, tenant_id=command.tenant_id).lock_for_enforcement()
            gate = context.gate_input(ActionType.RETRY, 1.0, True)
            # A request already sent once is already counted by the budget: its retries are
            # not new actions on the tenant's systems.
            hold = await self._gate.claim_check(
                dataclasses.replace(gate, counted=request.sent_at is not None), session
            )
            if hold is not None:
                return await self._held(requests, request, hold)
            connection, permit, secrets = await self._vendor_permit(session, request, command)
            claimed = await requests.claim(
                request.id, action_id=command.action_id, lease_seconds=command.timeout_seconds
            )
            if claimed is None:
                if permit.probe:
                    breaker.release_probe(connection)
                current = await requests.get(request.id)
                if current.status.is_final:
                    return outcome(current)
                raise Deferred(timedelta(seconds=1), "claimed elsewhere; looking again")
            replay = Replay(
                idempotency_key=claimed.idempotency_key,
                method=claimed.method or "POST",
                path=claimed.path or "/",
                body=claimed.body,
                headers=with_credentials(claimed.headers or {}, secrets),
                vendor_base_url=connection.effective_base_url,
                timeout=http_timeout(command.timeout_seconds),
            )
            log.info(
                "sending %s %s (attempt %d, key %s)",
                replay.method,
                replay.path,
                claimed.attempts,
                claimed.idempotency_key,
                extra=incident_fields(incident, request_id=claimed.id),
            )
            return claimed, replay, (connection, permit)

    async def _held(
        self, requests: RequestRepository, request: RemediationRequest, hold: Hold
    ) -> RequestOutcome:
        control, effect, reason = hold.control, hold.effect, hold.reason
        if control in (GateControl.KILL_SWITCH, GateControl.FUSE):
            return outcome(request, held_by=control, reason=reason, episode_id=hold.episode_id)
        if effect is GateEffect.SHADOW:
            await requests.settle_unsent(
                request.incident_id,
                to=RequestStatus.SHADOWED,
                ids=[request.id],
                note=f"not sent: {reason}",
            )
            request = await requests.get(request.id)
        return outcome(request, stopped_by=control, reason=reason)

    async def _vendor_permit(
        self, session: AsyncSession, request: RemediationRequest, command: SendCommand
    ) -> tuple[VendorConnection, breaker.Permit, dict[str, str]]:
        """Ask the deployment-wide stop, then the tenant's connection's breaker and rate limit,
        under the connection's row lock; Deferred if not now. Returns the decrypted credential
        headers too, read under the same lock as the permit."""
        assert request.vendor_id is not None
        connections = VendorConnectionRepository(session, tenant_id=command.tenant_id)
        connection = await connections.get_for_vendor(request.vendor_id, lock=True)
        now = datetime.now(UTC)
        stopped = breaker.forced_globally(connection.vendor, now)
        if stopped is not None:
            raise Deferred(stopped.retry_after, stopped.reason)
        secrets: dict[str, str] = {}
        if connection.credentials is not None:
            try:
                secrets = self._credentials.decrypt(connection.credentials)
            except ConfigError as error:
                # Never sent without its credentials: it waits for a worker with the right key,
                # and after the maximum deferral is given up to a human with this reason.
                raise Deferred(breaker.FORCED_RECHECK, str(error)) from None
        lease = timedelta(seconds=command.timeout_seconds)
        permit = breaker.acquire(connection, now, lease=lease)
        if isinstance(permit, breaker.Blocked):
            raise Deferred(permit.retry_after, permit.reason)
        calls = VendorCallRepository(session, tenant_id=command.tenant_id)
        wait = await rate_limit.claim_slot(calls, connection, now)
        if wait is not None:
            if permit.probe:
                breaker.release_probe(connection)
            raise Deferred(
                wait,
                f"rate limit of this tenant's connection to {connection.name}: next free slot "
                f"in {wait.total_seconds():.2f}s",
            )
        return connection, permit, secrets

    async def _call(self, replay: Replay) -> Executed:
        """The vendor call, heartbeating while it runs. A cancellation (the incident was closed,
        the worker stops) does not cut a call that already left: it lands and is recorded."""
        call = asyncio.ensure_future(self._retry.send(replay))
        while True:
            try:
                done, _ = await asyncio.wait({call}, timeout=HEARTBEAT_EVERY)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.wait({call})
                if call.done() and not call.cancelled():
                    # The call landed: its answer is recorded like any other (a transient
                    # failure of a closed incident's request is then cancelled, not retried).
                    return call.result()
                raise
            if done:
                return call.result()
            with contextlib.suppress(RuntimeError):
                activity.heartbeat()

    async def _defer(self, command: SendCommand, deferred: Deferred) -> RequestOutcome:
        """Wait for the vendor (a retry with the exact delay) or, past the maximum, give up."""
        async with tenant_session(self._sessions, command.tenant_id) as session:
            since = await RequestRepository(session, tenant_id=command.tenant_id).note_deferral(
                command.request_id
            )
        waited = datetime.now(UTC) - since
        limit = timedelta(seconds=command.max_deferral_seconds)
        if waited + deferred.delay <= limit:
            raise ApplicationError(
                f"deferred: {deferred.reason}",
                type="RequestDeferred",
                next_retry_delay=deferred.delay,
            )
        return RequestOutcome(
            request_id=command.request_id,
            status=RequestStatus.PENDING,
            gave_up_waiting=True,
            reason=f"the vendor stayed unavailable for longer than {span(limit)}: "
            f"{deferred.reason}",
        )

    async def _transient(
        self,
        command: SendCommand,
        request: RemediationRequest,
        permit: tuple[VendorConnection, breaker.Permit],
        exc: TransientActionError,
    ) -> RequestOutcome:
        attempts = request.attempts
        if not await self._incident_open(command):
            # Closed while this attempt was in flight: it is not retried.
            async with tenant_session(self._sessions, command.tenant_id) as session:
                requests = RequestRepository(session, tenant_id=command.tenant_id)
                await requests.lock_key(command.request_id)
                await self._record_call(session, permit, exc.rate_limited, exc.retry_after)
                finished = await requests.finish(
                    command.request_id,
                    status=RequestStatus.CANCELLED,
                    status_code=exc.status_code,
                    response=exc.response,
                    error=f"attempt {attempts}: {exc}",
                    note="in flight when the incident was closed; it failed and was not retried",
                )
                row = finished or await requests.get(command.request_id)
            return outcome(row)
        if attempts >= command.max_attempts:
            failed = Executed(
                False,
                str(exc),
                {},
                error=f"gave up after {attempts} attempts: {exc}",
                status_code=exc.status_code,
                response=exc.response,
            )
            return await self._record(command, failed, permit, healthy=exc.rate_limited)
        async with tenant_session(self._sessions, command.tenant_id) as session:
            requests = RequestRepository(session, tenant_id=command.tenant_id)
            await requests.lock_key(command.request_id)
            # A 429 is the vendor pacing us, not failing: honoured, not held against it.
            await self._record_call(session, permit, exc.rate_limited, exc.retry_after)
            await requests.finish(
                command.request_id,
                status=RequestStatus.PENDING,
                status_code=exc.status_code,
                response=exc.response,
                error=f"attempt {attempts}: {exc}",
            )
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
        raise ApplicationError(str(exc), type="TransientActionError", next_retry_delay=delay)

    async def _incident_open(self, command: SendCommand) -> bool:
        async with tenant_session(self._sessions, command.tenant_id) as session:
            incident = await IncidentRepository(session, tenant_id=command.tenant_id).get(
                command.incident_id
            )
            return incident.status.is_open

    async def _record(
        self,
        command: SendCommand,
        executed: Executed,
        permit: tuple[VendorConnection, breaker.Permit],
        *,
        healthy: bool | None,
    ) -> RequestOutcome:
        async with tenant_session(self._sessions, command.tenant_id) as session:
            requests = RequestRepository(session, tenant_id=command.tenant_id)
            await requests.lock_key(command.request_id)
            await self._record_call(session, permit, healthy)
            finished = await requests.finish(
                command.request_id,
                status=RequestStatus.SUCCEEDED if executed.succeeded else RequestStatus.FAILED,
                status_code=executed.status_code,
                response=executed.response,
                error=executed.error,
            )
            request = finished or await requests.get(command.request_id)
        self._metrics.requests.add(1, {"outcome": request.status.value})
        return outcome(request)

    @staticmethod
    async def _record_call(
        session: AsyncSession,
        permit: tuple[VendorConnection, breaker.Permit],
        healthy: bool | None,
        retry_after: float | None = None,
    ) -> None:
        row, granted = permit
        connections = VendorConnectionRepository(session, tenant_id=row.tenant_id)
        locked = await connections.get_for_update(row.id)
        now = datetime.now(UTC)
        if healthy is None:
            if granted.probe:
                breaker.release_probe(locked)  # the call never reached the vendor
            return
        breaker.record(locked, now, healthy=healthy, probe=granted.probe)
        if retry_after is not None:
            rate_limit.note_retry_after(locked, now, retry_after)
