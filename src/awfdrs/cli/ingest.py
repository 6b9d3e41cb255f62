"""``awfdrs ingest``: JSON Lines events, in batches, through ``IngestEvents``."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from awfdrs.cli.common import run
from awfdrs.cli.output import console, emit_json, errors
from awfdrs.config import Settings
from awfdrs.contracts import EventResult, IncidentChange, IngestBatch, Outcome

SHOWN_REJECTIONS = 10


def _rejected(key: object, reason: str) -> EventResult:
    return EventResult(
        idempotency_key=key if isinstance(key, str) else None,
        outcome=Outcome.REJECTED,
        reason=reason,
    )


def read_events(source: str) -> tuple[dict[uuid.UUID, list[dict[str, Any]]], list[EventResult]]:
    """Events grouped by tenant; a line that is not a JSON object is rejected here, by number."""
    handle = sys.stdin if source == "-" else Path(source).open(encoding="utf-8")  # noqa: SIM115
    by_tenant: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    rejected: list[EventResult] = []
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as error:
                rejected.append(_rejected(None, f"line {number}: not JSON ({error})"))
                continue
            if not isinstance(event, dict):
                rejected.append(_rejected(None, f"line {number}: not a JSON object"))
                continue
            key = event.get("idempotency_key")
            try:
                tenant = uuid.UUID(str(event["tenant_id"]))
            except (KeyError, ValueError):
                reason = f"line {number}: tenant_id: missing or not a UUID"
                rejected.append(_rejected(key, reason))
                continue
            by_tenant[tenant].append(event)
    return by_tenant, rejected


def ingest(
    source: Annotated[str, typer.Argument(help="A JSON Lines file, or - for standard input.")],
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Batches in flight.")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Send events, one JSON object per line, in batches; print what became of them.

    Example: awfdrs ingest events.jsonl
    """

    async def command(settings: Settings) -> None:
        from awfdrs.client import AwfdrsClient, batches

        by_tenant, local = read_events(source)
        client = await AwfdrsClient.connect(settings)
        work = [
            (tenant, chunk) for tenant, events in by_tenant.items() for chunk in batches(events)
        ]
        total = sum(len(chunk) for _, chunk in work)
        outcomes: list[EventResult] = list(local)
        opened = 0
        touched: dict[uuid.UUID, IncidentChange] = {}
        limit = asyncio.Semaphore(concurrency)
        show = total > 1000 and not as_json
        with Progress(
            TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=errors, disable=not show, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task("events", total=total)

            async def send(tenant: uuid.UUID, chunk: list[dict[str, Any]]) -> None:
                nonlocal opened
                async with limit:
                    result = await client.ingest_batch(IngestBatch(tenant_id=tenant, events=chunk))
                outcomes.extend(result.outcomes)
                opened += sum(1 for change in result.incidents if change.opened)
                for change in result.incidents:  # the latest count of each incident wins
                    touched[change.incident_id] = change
                progress.advance(task, len(chunk))

            await asyncio.gather(*(send(tenant, chunk) for tenant, chunk in work))
        counts = Counter(o.outcome for o in outcomes)
        refused = [o for o in outcomes if o.outcome in (Outcome.REJECTED, Outcome.CONFLICT)]
        if as_json:
            emit_json({
                "counts": {o.value: counts.get(o, 0) for o in Outcome},
                "incidents_opened": opened,
                "incidents": [
                    {"id": str(c.incident_id), "opened": c.opened, "status": c.status.value,
                     "severity": c.severity.value, "events": c.event_count}
                    for c in touched.values()
                ],
                "rejections": [o.model_dump(mode="json") for o in refused],
            })  # fmt: skip
            return
        summary = ", ".join(f"{counts.get(o, 0)} {o.value}" for o in Outcome)
        console.print(f"{len(outcomes)} events: {summary}; {opened} incident(s) opened")
        changes = list(touched.values())
        for change in changes[:SHOWN_REJECTIONS]:
            verb = "opened" if change.opened else "counted on"
            console.print(f"  incident {change.incident_id} {verb} ({change.event_count} events)")
        if len(changes) > SHOWN_REJECTIONS:
            more = len(changes) - SHOWN_REJECTIONS
            console.print(f"  … and {more} more incident(s) (use --json for all)")
        for item in refused[:SHOWN_REJECTIONS]:
            key = item.idempotency_key or "(no key)"
            console.print(f"  {item.outcome.value} {escape(key)}: "
                          f"{escape(item.reason or '')}")  # fmt: skip
        if len(refused) > SHOWN_REJECTIONS:
            console.print(f"  … and {len(refused) - SHOWN_REJECTIONS} more (use --json for all)")

    run(command)
