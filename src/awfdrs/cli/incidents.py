"""``awfdrs incidents``: list, show, and the operator's four answers.

Each goes through the operator API when ``AWFDRS_API_URL`` and ``AWFDRS_API_KEY`` are set
(:mod:`awfdrs.cli.remote`), else to PostgreSQL and Temporal directly. Both ways read the same
model (:mod:`awfdrs.queries`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from awfdrs.cli.common import Databases, databases, run
from awfdrs.cli.errors import fail
from awfdrs.cli.output import console, emit_json, format_time
from awfdrs.cli.remote import Remote, call, refuse_by, remote
from awfdrs.cli.resolve import as_uuid, id_prefix, one_match, resolve_incident, resolve_tenant
from awfdrs.config import Settings
from awfdrs.enums import IncidentStatus, Severity
from awfdrs.errors import ConfigError, NotFoundError

incidents = typer.Typer(
    help="Incidents: list, inspect, approve, reject, resolve, ignore.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
By = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="Who decides (recorded on the decision). Direct mode only: through the API "
        "(AWFDRS_API_URL + AWFDRS_API_KEY) the key's name is recorded and --by is refused.",
    ),
]
IncidentArg = Annotated[str, typer.Argument(help="Incident id, or a unique start of one.")]
PlanId = Annotated[
    str,
    typer.Option(
        "--plan",
        help="The plan you reviewed (incidents show prints it); refused if another plan waits.",
    ),
]


@incidents.command("list")
def incidents_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant name or id.")] = None,
    status: Annotated[
        IncidentStatus | None, typer.Option(case_sensitive=False, help="Only this status.")
    ] = None,
    severity: Annotated[
        Severity | None, typer.Option(case_sensitive=False, help="Only this severity.")
    ] = None,
    needs_a_human: Annotated[
        bool,
        typer.Option(
            "--needs-a-human",
            help="Only open incidents waiting for a person (approval, escalated, held).",
        ),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Newest incidents first. Without --tenant it lists all tenants (owner connection);
    through the API, the key's tenant.

    Example: awfdrs incidents list --tenant demo --status ACTIONED
    """
    target = remote()
    if target is not None and tenant is not None:
        raise typer.BadParameter(
            "not accepted through the API (AWFDRS_API_KEY is set): the tenant is the key's",
            param_hint="--tenant",
        )
    if target is not None:
        if severity is not None:
            raise typer.BadParameter("not available through the API", param_hint="--severity")
        page = call(target, "GET", "/v1/incidents", params={
            "status": status.value if status else None,
            "needs_a_human": "true" if needs_a_human else None,
            "limit": min(limit, 500),
        })  # fmt: skip
        _print_list(page["items"], as_json)
        return

    async def command(settings: Settings) -> None:
        from awfdrs.db.repositories import IncidentDirectory
        from awfdrs.queries import NEEDS_A_HUMAN, incident_row, list_incidents

        phases = NEEDS_A_HUMAN if needs_a_human else None
        async with databases(settings) as dbs:
            if tenant is None:
                async with dbs.owner() as session:
                    found = await IncidentDirectory(session).list_matching(
                        status=status, severity=severity, phases=phases, limit=limit
                    )
                    rows = [incident_row(i, name) for i, name in found]
            else:
                tenant_id = await resolve_tenant(dbs, tenant)
                rows = await list_incidents(
                    dbs.app, tenant_id, tenant_label=await _tenant_name(dbs, tenant_id),
                    status=status, severity=severity, phases=phases, limit=limit,
                )  # fmt: skip
        _print_list(rows, as_json)

    run(command)


def _print_list(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "tenant", "status", "severity", "events", "last seen", "title")
    for r in rows:
        table.add_row(r["id"], r["tenant"], r["status"], r["severity"], str(r["events"]),
                      format_time(r["last_seen_at"]), escape(r["title"]))  # fmt: skip
    console.print(table)


async def _details(settings: Settings, value: str) -> dict[str, Any]:
    from awfdrs.client import AwfdrsClient
    from awfdrs.db.repositories import IncidentDirectory
    from awfdrs.queries import incident_details

    async with databases(settings) as dbs:
        incident_id, tenant_id = await resolve_incident(dbs, value)
        client = await AwfdrsClient.connect(settings)
        snapshot = None
        try:
            snapshot = await client.snapshot(incident_id)
        except Exception:  # its workflow may be past retention; the database still knows
            snapshot = None
        tenant_id = snapshot.tenant_id if snapshot else tenant_id
        if tenant_id is None:
            async with dbs.owner() as session:
                tenant_id = await IncidentDirectory(session).find_tenant_of(incident_id)
        if tenant_id is None:
            raise NotFoundError("incident", incident_id)
        found = await incident_details(dbs.app, tenant_id, incident_id, snapshot)
        return {**found, "tenant": await _tenant_name(dbs, tenant_id)}


async def _tenant_name(dbs: Databases, tenant_id: uuid.UUID) -> str:
    """The tenant's name, as listings print it (``tenant_id`` beside it is the id)."""
    from awfdrs.db.repositories import TenantRepository
    from awfdrs.db.session import tenant_session

    async with tenant_session(dbs.app, tenant_id) as session:
        return (await TenantRepository(session, tenant_id=tenant_id).get_current()).name


def _remote_incident(target: Remote, value: str) -> str:
    """Through the API: a full id as given, a prefix matched among the key's newest
    incidents (the API takes full ids only)."""
    if as_uuid(value) is not None:
        return value.strip()
    try:
        prefix = id_prefix("incident", value)
    except ConfigError as error:
        fail(str(error))
    page = call(target, "GET", "/v1/incidents", params={"limit": 500})
    found = [uuid.UUID(r["id"]) for r in page["items"] if str(r["id"]).startswith(prefix)]
    try:
        return str(one_match("incident", value, found))
    except ConfigError as error:
        fail(f"{error} (among the 500 newest incidents of the key's tenant)")


@incidents.command("show")
def incidents_show(
    incident_id: Annotated[str, typer.Argument(help="Incident id, or a unique start of one.")],
    as_json: JsonFlag = False,
) -> None:
    """Timeline of an incident: its events, decisions (reasoning, confidence) and actions.

    Example: awfdrs incidents show 3a9e0127 (or the whole id)
    """

    target = remote()

    async def command(settings: Settings) -> None:
        found = await _details(settings, incident_id)
        _print_details(found, as_json)

    if target is not None:
        found = call(target, "GET", f"/v1/incidents/{_remote_incident(target, incident_id)}")
        _print_details(found, as_json)
    else:
        run(command)


def _print_details(found: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(found)
        return
    console.print(f"[bold]{escape(found['title'])}[/]  {found['id']}")
    console.print(
        f"{found['status']} · {found['severity']} · {found['events']} events · first "
        f"{format_time(found['first_seen_at'])} · last {format_time(found['last_seen_at'])}"
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
        timeline.add_row(format_time(at, precise=True), escape(what), escape(detail))
    console.print(timeline)


def _answer(
    verb: str, value: str, by: str | None, reason: str | None, plan: str | None = None
) -> None:
    target = remote()
    refuse_by(by, target)
    if verb in ("resolve", "ignore") and not (reason or "").strip():
        raise typer.BadParameter(f"{verb} needs a reason", param_hint="--reason")
    if target is not None:
        body: dict[str, Any] = {"reason": reason}
        if plan is not None:
            body["plan_id"] = plan
        incident = _remote_incident(target, value)
        answer = call(target, "POST", f"/v1/incidents/{incident}/{verb}", body=body)
        console.print(_answered(incident, answer["status"], answer["details"]))
        return

    async def command(settings: Settings) -> None:
        assert by is not None  # refuse_by: required without the API
        from awfdrs.client import AwfdrsClient

        incident_id, tenant_id = as_uuid(value), None
        if incident_id is None:  # a prefix: the database knows which (a full id needs no read)
            async with databases(settings) as dbs:
                incident_id, tenant_id = await resolve_incident(dbs, value)
        # A closed incident's workflow has completed: Temporal would answer "not found" (and
        # the client waits a few seconds for a workflow not started yet) or "already
        # completed"; the database says what happened, and when.
        if settings.database_url and (closed := await _closed(settings, incident_id, tenant_id)):
            raise ConfigError(closed)
        client = await AwfdrsClient.connect(settings)
        try:
            if verb in ("approve", "reject"):
                assert plan is not None
                decide = client.approve if verb == "approve" else client.reject
                snapshot = await decide(
                    incident_id, plan_id=plan, actor=by, reason=reason, tenant_id=tenant_id
                )
            else:
                assert reason is not None
                close = client.resolve if verb == "resolve" else client.ignore
                snapshot = await close(incident_id, actor=by, reason=reason, tenant_id=tenant_id)
        except Exception as error:
            closed = await _closed(settings, incident_id, tenant_id)
            if closed is None:
                raise
            raise ConfigError(closed) from error
        console.print(_answered(incident_id, snapshot.status.value, snapshot.details))

    run(command)


async def _closed(
    settings: Settings, incident_id: uuid.UUID, tenant_id: uuid.UUID | None
) -> str | None:
    """``incident … is already RESOLVED (at …)`` when the database says it is closed: what a
    refusal from its completed workflow means to the operator. None otherwise, or when the
    database cannot say."""
    from awfdrs.db.repositories import IncidentDirectory, IncidentRepository
    from awfdrs.db.session import tenant_session

    try:
        async with databases(settings) as dbs:
            if tenant_id is None:
                async with dbs.owner() as session:
                    tenant_id = await IncidentDirectory(session).find_tenant_of(incident_id)
            if tenant_id is None:
                return None
            async with tenant_session(dbs.app, tenant_id) as session:
                repository = IncidentRepository(session, tenant_id=tenant_id)
                incident = await repository.find(incident_id)
                if incident is None or incident.status.is_open:
                    return None
                status, at = incident.status.value, incident.resolved_at
                why = f": {incident.resolution}" if incident.resolution else ""
    except Exception:  # the refusal itself is then the better answer
        return None
    return f"incident {incident_id} is already {status} (at {format_time(at)}){why}"


@incidents.command("approve")
def approve(
    incident_id: IncidentArg,
    plan: PlanId,
    reason: Annotated[str | None, typer.Option()] = None,
    by: By = None,
) -> None:
    """Approve the plan an incident waits on; exactly its requests are sent.

    Example: awfdrs incidents approve <id> --plan plan-1a2b3c4d5e6f7a8b --by alice
    --reason "vendor confirmed recovery"
    """
    _answer("approve", incident_id, by, reason, plan)


@incidents.command("reject")
def reject(
    incident_id: IncidentArg,
    plan: PlanId,
    reason: Annotated[str | None, typer.Option()] = None,
    by: By = None,
) -> None:
    """Reject the plan an incident waits on; the incident is escalated instead.

    Example: awfdrs incidents reject <id> --plan plan-1a2b3c4d5e6f7a8b --by alice
    --reason "would double-charge"
    """
    _answer("reject", incident_id, by, reason, plan)


@incidents.command("resolve")
def resolve(
    incident_id: IncidentArg,
    reason: Annotated[str, typer.Option(help="Required: why it is resolved.")],
    by: By = None,
) -> None:
    """Close an open incident as RESOLVED.

    Example: awfdrs incidents resolve <id> --by alice --reason "replayed by hand"
    """
    _answer("resolve", incident_id, by, reason)


@incidents.command("ignore")
def ignore(
    incident_id: IncidentArg,
    reason: Annotated[str, typer.Option(help="Required: why it is ignored.")],
    by: By = None,
) -> None:
    """Close an open incident as IGNORED; later failures of its signature count on it.

    Example: awfdrs incidents ignore <id> --by alice --reason "test merchant"
    """
    _answer("ignore", incident_id, by, reason)


def _answered(incident: object, status: str, details: str) -> str:
    """``incident …: RESOLVED: resolved by alice: …``, the status said once (a close's details
    already begin with it; a decision's do not)."""
    said = details if details.startswith(f"{status}:") else f"{status} — {details}"
    return f"incident {incident}: {escape(said)}"
