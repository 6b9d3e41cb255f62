"""``awfdrs incidents``: list, show, and the operator's four answers."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from awfdrs.cli.common import console, databases, emit_json, resolve_tenant, run
from awfdrs.config import Settings
from awfdrs.enums import IncidentStatus, Severity
from awfdrs.errors import NotFoundError

incidents = typer.Typer(
    help="Incidents: list, inspect, approve, reject, resolve, ignore.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
By = Annotated[str, typer.Option("--by", help="Who decides (recorded on the decision).")]
PlanId = Annotated[
    str,
    typer.Option(
        "--plan",
        help="The plan you reviewed (incidents show prints it); refused if another plan waits.",
    ),
]


def _row(incident: Any, tenant: str) -> dict[str, Any]:
    return {
        "id": str(incident.id),
        "tenant": tenant,
        "status": incident.status.value,
        "severity": incident.severity.value,
        "title": incident.title,
        "events": incident.event_count,
        "first_seen_at": incident.first_seen_at.isoformat(),
        "last_seen_at": incident.last_seen_at.isoformat(),
        "regression_of": str(incident.regression_of) if incident.regression_of else None,
        "resolution": incident.resolution,
    }


@incidents.command("list")
def incidents_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant name or id.")] = None,
    status: Annotated[IncidentStatus | None, typer.Option(help="Only this status.")] = None,
    severity: Annotated[Severity | None, typer.Option(help="Only this severity.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Newest incidents first. Without --tenant it lists all tenants (owner connection).

    Example: awfdrs incidents list --tenant demo --status ACTIONED
    """

    async def command(settings: Settings) -> None:
        from awfdrs.db.repositories import IncidentDirectory, IncidentRepository
        from awfdrs.db.session import tenant_session

        async with databases(settings) as dbs:
            if tenant is None:
                async with dbs.owner() as session:
                    found = await IncidentDirectory(session).search(
                        status=status, severity=severity, limit=limit
                    )
                    rows = [_row(i, name) for i, name in found]
            else:
                tenant_id = await resolve_tenant(dbs, tenant)
                async with tenant_session(dbs.app, tenant_id) as session:
                    rows = [
                        _row(i, tenant)
                        for i in await IncidentRepository(session, tenant_id=tenant_id).search(
                            status=status, severity=severity, limit=limit
                        )
                    ]
        if as_json:
            emit_json(rows)
            return
        table = Table("id", "tenant", "status", "severity", "events", "last seen", "title")
        for r in rows:
            table.add_row(r["id"], r["tenant"], r["status"], r["severity"], str(r["events"]),
                          r["last_seen_at"][:19], escape(r["title"]))  # fmt: skip
        console.print(table)

    run(command)


async def _details(settings: Settings, incident_id: uuid.UUID) -> dict[str, Any]:
    from awfdrs.activities.context import request_details
    from awfdrs.client import AwfdrsClient
    from awfdrs.db.repositories import (
        ActionRepository,
        DecisionRepository,
        EventRepository,
        IncidentDirectory,
        IncidentRepository,
        RequestRepository,
    )
    from awfdrs.db.session import tenant_session

    client = await AwfdrsClient.connect(settings)
    snapshot = None
    try:
        snapshot = await client.snapshot(incident_id)
    except Exception:  # its workflow may be past retention; the database still knows
        snapshot = None
    async with databases(settings) as dbs:
        tenant_id = snapshot.tenant_id if snapshot else None
        if tenant_id is None:
            async with dbs.owner() as session:
                tenant_id = await IncidentDirectory(session).tenant_of(incident_id)
        if tenant_id is None:
            raise NotFoundError("incident", incident_id)
        async with tenant_session(dbs.app, tenant_id) as session:
            incident = await IncidentRepository(session, tenant_id=tenant_id).get(incident_id)
            until = incident.resolved_at if incident.status is IncidentStatus.RESOLVED else None
            events = await EventRepository(session, tenant_id=tenant_id).list_for_signature(
                incident.signature, since=incident.created_at, until=until, limit=50
            )
            decisions = await DecisionRepository(session, tenant_id=tenant_id).list_for_incident(
                incident_id
            )
            actions = await ActionRepository(session, tenant_id=tenant_id).list_for_incident(
                incident_id
            )
            requests = await RequestRepository(session, tenant_id=tenant_id).list_for_incident(
                incident_id
            )
            return {
                **_row(incident, str(tenant_id)),
                "signature": incident.signature,
                "phase": incident.phase.value,
                "phase_reason": incident.phase_reason,
                "details": snapshot.details if snapshot else None,
                "waiting_for": snapshot.waiting_for if snapshot else None,
                "plan": snapshot.plan.model_dump(mode="json")
                if snapshot and snapshot.plan
                else None,
                "requests": [request_details(r) for r in requests],
                "events_shown": [
                    {"at": e.occurred_at.isoformat(), "type": e.event_type,
                     "key": e.idempotency_key, "correlation_id": e.correlation_id,
                     "error": e.payload.get("error")}
                    for e in events
                ],
                "decisions": [
                    {"at": d.created_at.isoformat(), "type": d.decision_type.value,
                     "confidence": d.confidence_score, "model": d.ai_model,
                     "by": d.decided_by, "gate": d.gate.value if d.gate else None,
                     "gate_reason": d.gate_reason, "reasoning": d.reasoning}
                    for d in decisions
                ],
                "actions": [
                    {"at": a.created_at.isoformat(), "type": a.action_type.value,
                     "status": a.status.value, "attempts": a.attempts,
                     "started_at": a.started_at.isoformat() if a.started_at else None,
                     "finished_at": a.finished_at.isoformat() if a.finished_at else None,
                     "summary": (a.result or {}).get("summary"), "error": a.error}
                    for a in actions
                ],
            }  # fmt: skip


@incidents.command("show")
def incidents_show(
    incident_id: Annotated[uuid.UUID, typer.Argument(help="Incident id.")],
    as_json: JsonFlag = False,
) -> None:
    """Timeline of an incident: its events, decisions (reasoning, confidence) and actions.

    Example: awfdrs incidents show 3a9e0127-9b3d-4a1b-841d-2d25a72008be
    """

    async def command(settings: Settings) -> None:
        found = await _details(settings, incident_id)
        if as_json:
            emit_json(found)
            return
        console.print(f"[bold]{escape(found['title'])}[/]  {found['id']}")
        console.print(
            f"{found['status']} · {found['severity']} · {found['events']} events · first "
            f"{found['first_seen_at'][:19]} · last {found['last_seen_at'][:19]}"
        )
        if found["details"]:
            console.print(f"now: {escape(found['details'])}")
        plan = found["plan"]
        if plan and found["waiting_for"] and found["waiting_for"].startswith("approval"):
            console.print(
                f"plan awaiting approval: [bold]{plan['plan_id']}[/] "
                f"({plan['action_type']} {plan['request_count']} request(s)); approve with "
                f"--plan {plan['plan_id']}"
            )
        if found["requests"]:
            requests = Table("status", "request", "key", "attempts", "last answer",
                             title=f"requests ({len(found['requests'])})")  # fmt: skip
            for r in found["requests"]:
                what = (f"{r.get('method')} {r.get('path')}" if r["replayable"]
                        else "(nothing to replay)")  # fmt: skip
                answer = r.get("last_error") or (
                    f"HTTP {r['last_status_code']}" if r.get("last_status_code") else ""
                )
                last = escape(answer or r.get("note") or "")
                requests.add_row(
                    r["status"], escape(what), r["idempotency_key"], str(r["attempts"]), last
                )
            console.print(requests)
        if found["resolution"]:
            console.print(f"resolution: {escape(found['resolution'])}")
        entries: list[tuple[str, str, str]] = []
        for e in found["events_shown"]:
            error = e["error"] or {}
            what = error.get("code") or error.get("message") or ""
            entries.append((e["at"], f"event {e['type']}", f"{e['key']} {what}"))
        for d in found["decisions"]:
            who = f"by {d['by']}" if d["by"] else d["model"]
            held = f" · held by {d['gate']}: {d['gate_reason']}" if d["gate"] else ""
            title = f"decision {d['type']} ({d['confidence']:.2f}, {who})"
            entries.append((d["at"], title, d["reasoning"] + held))
        for a in found["actions"]:
            done = a["summary"] or a["error"] or ""
            title = f"action {a['type']} {a['status']}"
            entries.append((a["at"], title, f"{a['attempts']} attempt(s); {done}"))
        timeline = Table("time", "what", "detail", title="timeline")
        for at, what, detail in sorted(entries):
            timeline.add_row(at[:23], escape(what), escape(detail))
        console.print(timeline)

    run(command)


def _answer(
    verb: str, incident_id: uuid.UUID, by: str, reason: str | None, plan: str | None = None
) -> None:
    async def command(settings: Settings) -> None:
        from awfdrs.client import AwfdrsClient

        client = await AwfdrsClient.connect(settings)
        if verb in ("approve", "reject"):
            assert plan is not None
            call = client.approve if verb == "approve" else client.reject
            snapshot = await call(incident_id, plan_id=plan, actor=by, reason=reason)
        else:
            if not reason:
                raise typer.BadParameter(f"{verb} needs a reason", param_hint="--reason")
            close = client.resolve if verb == "resolve" else client.ignore
            snapshot = await close(incident_id, actor=by, reason=reason)
        console.print(
            f"incident {incident_id}: {snapshot.status.value} — {escape(snapshot.details)}"
        )

    run(command)


@incidents.command("approve")
def approve(
    incident_id: Annotated[uuid.UUID, typer.Argument()],
    plan: PlanId,
    by: By,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Approve the plan an incident waits on; exactly its requests are sent.

    Example: awfdrs incidents approve <id> --plan plan-1a2b3c4d5e6f7a8b --by alice
    --reason "vendor confirmed recovery"
    """
    _answer("approve", incident_id, by, reason, plan)


@incidents.command("reject")
def reject(
    incident_id: Annotated[uuid.UUID, typer.Argument()],
    plan: PlanId,
    by: By,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Reject the plan an incident waits on; the incident is escalated instead.

    Example: awfdrs incidents reject <id> --plan plan-1a2b3c4d5e6f7a8b --by alice
    --reason "would double-charge"
    """
    _answer("reject", incident_id, by, reason, plan)


@incidents.command("resolve")
def resolve(
    incident_id: Annotated[uuid.UUID, typer.Argument()],
    by: By,
    reason: Annotated[str, typer.Option(help="Required: why it is resolved.")],
) -> None:
    """Close an open incident as RESOLVED.

    Example: awfdrs incidents resolve <id> --by alice --reason "replayed by hand"
    """
    _answer("resolve", incident_id, by, reason)


@incidents.command("ignore")
def ignore(
    incident_id: Annotated[uuid.UUID, typer.Argument()],
    by: By,
    reason: Annotated[str, typer.Option(help="Required: why it is ignored.")],
) -> None:
    """Close an open incident as IGNORED; later failures of its signature count on it.

    Example: awfdrs incidents ignore <id> --by alice --reason "test merchant"
    """
    _answer("ignore", incident_id, by, reason)
