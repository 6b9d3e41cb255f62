"""The bundled demo: a tenant, a flaky vendor, an escalation receiver and a stream of events.

It shows the three paths an operator meets most: transient failures that retries fix (three
payments, three requests, each retried under its own Idempotency-Key), a permanent one that is
escalated, and a blip that recovers by itself inside the grouping window; with duplicates along
the way. What happens is printed as it happens, read from PostgreSQL, and the closing line is
computed from the same rows: it says what happened, not what was meant to.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.admin import (
    create_tenant,
    ensure_vendor,
    ensure_workflow,
    find_tenant_by_name,
    update_tenant_settings,
)
from awfdrs.api.keys import Role, create_key
from awfdrs.client import AwfdrsClient, IngestSummary
from awfdrs.contracts import EventResult, IncidentChange, Outcome, TenantSettings
from awfdrs.db.repositories import (
    ActionRepository,
    DecisionRepository,
    EventRepository,
    IncidentRepository,
    RequestRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor, Script
from awfdrs.enums import OPEN_INCIDENT_STATUSES, ActionStatus, IncidentStatus, RequestStatus
from awfdrs.remediation.credentials import CredentialCipher
from awfdrs.vendor_connections import connect

TENANT = "demo"
LEFTOVER_TIMEOUT = 3.0
VENDOR = "demo-gateway"
# Every event the demo sends has an idempotency key starting so (then the run id).
DEMO_KEYS = "demo-"
SETTINGS = {
    "grouping_window_seconds": 4,
    "verification_window_seconds": 6,
    "action_retry_initial_seconds": 1,
    "approval_timeout_seconds": 600,
}


def _event(
    tenant_id: uuid.UUID,
    workflow_id: uuid.UUID,
    key: str,
    event_type: str,
    payload: dict[str, Any],
    correlation_id: str,
) -> dict[str, Any]:
    return {
        "tenant_id": str(tenant_id),
        "workflow_id": str(workflow_id),
        "event_type": event_type,
        "idempotency_key": key,
        "occurred_at": datetime.now(UTC).isoformat(),
        # What the failure is about (an order, an invoice): a success proves a failure
        # recovered only when it names the same thing.
        "correlation_id": correlation_id,
        "payload": payload,
    }


class Demo:
    def __init__(
        self,
        client: AwfdrsClient,
        sessions: async_sessionmaker[AsyncSession],
        owner_sessions: async_sessionmaker[AsyncSession],
        ui_url: str | None,
        console: Console | None = None,
        api_url: str | None = None,
    ) -> None:
        self.client = client
        # With the API running, events go in over HTTP with an ingest key, as a tenant's
        # systems send them; without it (the workflow tests) through IngestEvents.
        self.api_url = api_url
        self.sessions = sessions
        self.owner_sessions = owner_sessions
        self.ui_url = ui_url
        self.console = console or Console(highlight=False, soft_wrap=True)
        # Each request's first attempt meets a 503, its second goes through.
        self.vendor = FlakyVendor(Script(per_key=[503]))
        self.receiver = EscalationReceiver()
        self.run_id = secrets.token_hex(3)
        self._seen: dict[str, object] = {}
        self._requests: dict[uuid.UUID, list[tuple[str, RequestStatus, int, str, Any]]] = {}
        self._key: str | None = None

    def say(self, text: str) -> None:
        self.console.print(text)

    async def _tenant(self) -> uuid.UUID:
        settings = {
            **SETTINGS,
            "escalation_webhook_url": f"{self.receiver.url}/v2/enqueue",
            "escalation_routing_key": "demo-routing-key",
        }
        existing = await find_tenant_by_name(self.owner_sessions, TENANT)
        if existing is None:
            created = await create_tenant(
                self.owner_sessions, TENANT, TenantSettings.model_validate(settings)
            )
            return created.id
        # The receiver's port is new on every run.
        await update_tenant_settings(self.sessions, existing.id, settings)
        return existing.id

    async def _close_earlier_runs(self, tenant_id: uuid.UUID) -> None:
        """Resolve what an earlier demo left open, so this run starts from a clean slate.

        Only the demo's own incidents (their latest event is one the demo sent): events a
        person sent to the demo tenant stay open for that person to answer.
        """
        async with tenant_session(self.sessions, tenant_id) as session:
            incidents = IncidentRepository(session, tenant_id=tenant_id)
            events = EventRepository(session, tenant_id=tenant_id)
            leftovers = []
            for status in OPEN_INCIDENT_STATUSES:
                for incident in await incidents.get_incidents_by_status(status):
                    latest = await events.find_latest_for_signature(incident.signature)
                    if latest is not None and latest.idempotency_key.startswith(DEMO_KEYS):
                        leftovers.append(incident.id)
        for incident_id in leftovers:
            try:
                # Bounded: an earlier run's workflow may be on a task queue no worker serves
                # any more (another stack on the same database), where an update waits forever.
                async with asyncio.timeout(LEFTOVER_TIMEOUT):
                    await self.client.resolve(
                        incident_id,
                        actor="demo",
                        reason="closing what an earlier demo run left open",
                    )
            except Exception:  # its workflow is gone with an earlier Temporal database
                async with tenant_session(self.sessions, tenant_id) as session:
                    await IncidentRepository(session, tenant_id=tenant_id).transition(
                        incident_id,
                        expected=OPEN_INCIDENT_STATUSES,
                        to=IncidentStatus.RESOLVED,
                        resolved_at=datetime.now(UTC),
                        resolution="closed by the demo: its workflow no longer exists",
                    )
        if leftovers:
            self.say(f"  resolved {len(leftovers)} incident(s) an earlier demo run left open")

    async def play(self) -> bool:
        """Run the scenario; True when every incident settled as expected."""
        self.vendor.start()
        self.receiver.start()
        tenant_id = await self._tenant()
        await self._close_earlier_runs(tenant_id)
        flows = {
            name: (await ensure_workflow(self.sessions, tenant_id, name)).id
            for name in ("payments", "invoicing", "inventory")
        }
        await ensure_vendor(self.owner_sessions, VENDOR, self.vendor.url)
        # The demo tenant's retries go to the vendor through its own connection (the vendor's
        # default base URL, no credentials: the local vendor asks for none).
        await connect(self.sessions, tenant_id, VENDOR, cipher=CredentialCipher(None))
        self.say(
            f"[bold]awfdrs demo[/] · tenant [cyan]{TENANT}[/] ({tenant_id}) · run {self.run_id}"
        )
        self.say(
            f"  vendor  {VENDOR} at {self.vendor.url} (answers each request 503 once, then 200)"
        )
        self.say(f"  webhook {self.receiver.url}/v2/enqueue (PagerDuty Events v2 shape)")
        if self.api_url:
            await self._console_key(tenant_id)

        key = f"{DEMO_KEYS}{self.run_id}"
        # Each run's charges are new requests (a header of the run says so): a later run
        # sending the very same requests would rightly be told they already succeeded.
        retry = {
            "method": "POST",
            "path": "/v1/charges/capture",
            "reversible": True,
            "headers": {"X-Demo-Run": self.run_id},
        }
        charges = [
            _event(tenant_id, flows["payments"], f"{key}-pay-{n}", "payment.failed", {
                "order_id": 1000 + n,
                "error": {"code": "gateway_timeout", "message": f"Gateway timeout after {28 + n}s",
                          "vendor": VENDOR},
                "retry": {**retry, "body": {"order_id": 1000 + n}},
            }, f"order-{1000 + n}-{self.run_id}")
            for n in range(3)
        ]  # fmt: skip
        invoices = [
            _event(tenant_id, flows["invoicing"], f"{key}-inv-{n}", "invoice.sync.failed", {
                "invoice": f"INV-{n}",
                "error": {"code": "invalid_vat_number",
                          "message": f"VAT number 'DE00{n}' is invalid"},
            }, f"INV-{n}-{self.run_id}")
            for n in range(2)
        ]  # fmt: skip
        stock = f"stock-sync-{self.run_id}"
        blip = _event(tenant_id, flows["inventory"], f"{key}-stock-1", "inventory.sync.timeout", {
            "error": {"code": "upstream_timeout", "message": "warehouse API timed out"},
        }, stock)  # fmt: skip
        events = [*charges, charges[0], *invoices, invoices[1], blip]
        self.say(f"→ sending {len(events)} events (2 of them redeliveries)")
        summary = await self._send(tenant_id, events)
        counts = ", ".join(f"{summary.count(o)} {o.value}" for o in Outcome)
        self.say(f"  ingest: {counts}")
        await asyncio.sleep(1.0)
        recovered = _event(
            tenant_id, flows["inventory"], f"{key}-stock-2", "inventory.sync.succeeded", {}, stock
        )
        self.say("→ the warehouse API answers again: sending inventory.sync.succeeded")
        await self._send(tenant_id, [recovered])
        incident_ids = {c.incident_id for c in summary.incidents}
        settled = await self._watch(tenant_id, incident_ids)
        if self.ui_url:
            query = urllib.parse.quote(f'AwfdrsTenant="{tenant_id}"')
            self.say(f"\nTemporal UI: {self.ui_url}/namespaces/default/workflows?query={query}")
        return settled

    async def _console_key(self, tenant_id: uuid.UUID) -> str:
        """An operator key of the demo tenant for the web console, printed with its URL (a new
        one each run: keys are stored only as hashes, so an earlier one cannot be shown)."""
        key, _ = await create_key(
            self.sessions, tenant_id, Role.OPERATOR, name=f"demo operator {self.run_id}"
        )
        self.say(f"  console [bold]{self.api_url}/console[/] · sign in with the operator key")
        self.say(f"          [bold]{key}[/]")
        return key

    async def _send(self, tenant_id: uuid.UUID, events: list[dict[str, Any]]) -> IngestSummary:
        if self.api_url is None:
            return await self.client.ingest(tenant_id, events)
        if self._key is None:
            self._key, info = await create_key(
                self.sessions, tenant_id, Role.INGEST, name=f"demo run {self.run_id}",
                expires_in=timedelta(hours=1),
            )  # fmt: skip
            self.say(f"  API {self.api_url} · ingest key {info.prefix}… (expires in an hour)")
        # The key names the tenant: the events leave tenant_id out.
        body = {"events": [{k: v for k, v in e.items() if k != "tenant_id"} for e in events]}
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                f"{self.api_url}/v1/events",
                json=body,
                headers={"Authorization": f"Bearer {self._key}"},
            )
        response.raise_for_status()
        answer = response.json()
        return IngestSummary(
            outcomes=[
                EventResult(
                    idempotency_key=o["idempotency_key"], outcome=o["outcome"], reason=o["reason"]
                )
                for o in answer["outcomes"]
            ],
            incidents=[IncidentChange.model_validate(c) for c in answer["incidents"]],
        )

    async def _watch(
        self, tenant_id: uuid.UUID, incident_ids: set[uuid.UUID], limit: float = 120
    ) -> bool:
        deadline = asyncio.get_running_loop().time() + limit
        while asyncio.get_running_loop().time() < deadline:
            done = await self._report(tenant_id, incident_ids)
            if done:
                self.say(f"[bold green]✔ every demo incident settled[/]: {self.story()}")
                return True
            await asyncio.sleep(0.5)
        self.say("[bold red]the demo did not settle within two minutes[/]; see the Temporal UI")
        return False

    def _once(self, key: str, value: object, text: str) -> None:
        if self._seen.get(key) != value:
            self._seen[key] = value
            self.say(text)

    async def _report(self, tenant_id: uuid.UUID, incident_ids: set[uuid.UUID]) -> bool:
        settled = 0
        async with tenant_session(self.sessions, tenant_id) as session:
            incidents = await IncidentRepository(session, tenant_id=tenant_id).list_by_ids(
                incident_ids
            )
            for incident in sorted(incidents, key=lambda i: i.created_at):
                short = str(incident.id)[:8]
                self._once(
                    f"open-{incident.id}",
                    True,
                    f"[yellow]●[/] incident {short} opened: {escape(incident.title)} "
                    f"({incident.event_count} events)",
                )
                for decision in await DecisionRepository(
                    session, tenant_id=tenant_id
                ).list_for_incident(incident.id):
                    held = f" · held by {decision.gate}" if decision.gate else ""
                    self._once(
                        f"decision-{decision.id}",
                        True,
                        f"[magenta]◆[/] decision {short}: {decision.decision_type.value}, "
                        f"confidence {decision.confidence_score:.2f}{held}\n"
                        f"    {escape(decision.reasoning)}",
                    )
                actions = await ActionRepository(session, tenant_id=tenant_id).list_for_incident(
                    incident.id
                )
                requests = await RequestRepository(session, tenant_id=tenant_id).list_for_incident(
                    incident.id
                )
                self._requests[incident.id] = [
                    (incident.operation, r.status, r.attempts, r.idempotency_key, r.body)
                    for r in requests
                ]
                for request in requests:
                    if request.status.is_final:
                        what = (
                            f"{request.method} {request.path} {json.dumps(request.body)}"
                            if request.replayable
                            else "(nothing to replay)"
                        )
                        self._once(
                            f"request-{request.id}",
                            request.status,
                            f"  request {short}: {escape(what)} {request.status.value} after "
                            f"{request.attempts} attempt(s), Idempotency-Key "
                            f"{request.idempotency_key}",
                        )
                for action in actions:
                    if action.status.is_final:
                        summary = escape(
                            str((action.result or {}).get("summary", action.error or ""))
                        )
                        mark = (
                            "[green]▲[/]"
                            if action.status is ActionStatus.SUCCEEDED
                            else "[red]▼[/]"
                        )
                        self._once(
                            f"action-{action.id}",
                            action.status,
                            f"{mark} action {short}: {action.action_type.value} "
                            f"{action.status.value} after {action.attempts} attempt(s) ({summary})",
                        )
                self._once(
                    f"status-{incident.id}",
                    incident.status,
                    f"[cyan]◌[/] incident {short} is {incident.status.value}"
                    + (f": {escape(incident.resolution)}" if incident.resolution else ""),
                )
                escalated = any(
                    a.status.is_final and a.action_type.value == "escalate" for a in actions
                )
                if (
                    incident.status in (IncidentStatus.RESOLVED, IncidentStatus.IGNORED)
                    or escalated
                ):
                    settled += 1
        for body in self.receiver.events():
            dedup = body.get("dedup_key", "")
            page = escape(body["payload"]["summary"])
            self._once(
                f"page-{dedup}",
                True,
                f"[red]✉[/] escalation received by the webhook: {page} (dedup_key {dedup[:8]})",
            )
        return settled == len(incident_ids) and bool(incident_ids)

    def story(self) -> str:
        """What happened, from the rows: the payments, the invoices, the blip."""
        parts = []
        for rows in self._requests.values():
            if not rows:
                continue
            operation = rows[0][0]
            statuses = [r[1] for r in rows]
            keys = {r[3] for r in rows}
            n = len(rows)
            if all(s is RequestStatus.SUCCEEDED for s in statuses):
                attempts = sum(r[2] for r in rows)
                parts.append(
                    f"{n} {operation} request(s) retried under {len(keys)} key(s), all "
                    f"succeeded ({attempts} attempts in all)"
                )
            elif all(s is RequestStatus.HANDED_OVER for s in statuses):
                parts.append(f"{n} {operation} failure(s) escalated to on-call")
            elif all(s is RequestStatus.RECOVERED for s in statuses):
                parts.append(f"the {operation} failure recovered by itself")
            else:
                counts = ", ".join(sorted({s.value for s in statuses}))
                parts.append(f"{n} {operation} request(s): {counts}")
        return "; ".join(parts)

    def close(self) -> None:
        self.vendor.stop()
        self.receiver.stop()
