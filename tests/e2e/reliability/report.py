"""Render docs/RELIABILITY.md from the figures the reliability tests recorded.

``make soak`` runs ``tests/e2e/reliability`` at soak sizes with ``AWFDRS_RELIABILITY_RESULTS`` set,
then ``python -m tests.e2e.reliability.report <results.json> docs/RELIABILITY.md``. A test records
its figures only after its checks passed, so every row here is a passing run.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ORDER = [
    "duplicate storm",
    "worker killed repeatedly",
    "Temporal restarted",
    "database unreachable",
    "operators close mid-send",
    "bad input",
    "tenant isolation probes",
    "HTTP edge: API killed repeatedly",
    "HTTP edge: Temporal unavailable",
]
# The HTTP edge's fault tests check their own invariants (stored once, dispatched in time).
EDGE_PREFIX = "HTTP edge: "
EVENT_COLUMNS = [
    ("events_in", "events in"),
    ("distinct", "distinct"),
    ("stored", "stored"),
    ("duplicated", "duplicated"),
    ("lost", "lost"),
    ("accepted_twice", "accepted twice"),
    ("event_count_mismatches", "event_count ≠ distinct events"),
]
REQUEST_COLUMNS = [
    ("requests", "requests"),
    ("requests_per_incident", "per incident"),
    ("requests_settled", "settled"),
    ("vendor_calls", "vendor calls"),
    ("sent_under_two_keys", "sent under two keys"),
    ("overlapping_attempts", "overlapping attempts"),
    ("executed_twice", "executed twice"),
    ("sent_after_close", "sent after close"),
    ("cancelled", "cancelled by a close"),
    ("workflows_failed", "workflows failed"),
]

INTRO = """\
Regenerate with `make soak` (about {minutes} minutes here). `bash .ci/run` runs the same tests
at bounded sizes on every change; `make soak` runs them larger and rewrites this file. A test
records its figures only after its checks pass.

Remediation is per request: every distinct failed request an incident groups (the failed
event's retry spec; a failure with nothing to replay is one too) is a row with its own state,
attempts and Idempotency-Key. After every fault test, from SQL, the local vendor's own request
log and Temporal's visibility store:

- **every affected request settled**: in an incident RESOLVED by verification, each request
  SUCCEEDED or RECOVERED (its sender reported success); in one an operator resolved or
  ignored, SUCCEEDED, RECOVERED, HANDED_OVER or CANCELLED by that close; an incident still open
  must be *legitimately waiting*: ACTIONED, waiting for an operator after a delivered
  escalation, its requests HANDED_OVER to that human or worked. Nothing PENDING, in flight or
  FAILED is left, and no incident is open in any other phase;
- **no request sent under two keys**: no method + path + body reached the vendor under two
  Idempotency-Keys, and every call's key is a stored request's, with that request's content;
- **no overlapping attempts**: no two calls with one key were in flight at the vendor at once
  (the vendor's arrival and hang-up times);
- **none executed twice**: at most one non-replayed success per request content at the vendor,
  and no vendor call that was not a recorded attempt;
- **none sent after close**: after an operator's resolve or ignore was acknowledged, only the
  attempt already claimed (in flight) may reach the vendor; a request the close CANCELLED has no
  call after its cancellation;
- **no workflow failed**: no incident workflow run FAILED, TERMINATED, TIMED_OUT or CANCELED,
  and every incident has its workflow (the outbox was delivered);
- **no event lost, none duplicated**: every distinct key sent is stored once and was answered
  `accepted` exactly once; per signature the incidents' `event_count` adds up to the stored
  failure events, and per incident its requests account for its events.

Clients resend a batch whose call failed (at-least-once delivery, as a well-behaved client
does); idempotent writes make that harmless, which is what the figures show.
"""


_HEADS = {"request_statuses": "requests by status", "statuses": "incidents"}


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _described(entry: dict[str, Any]) -> list[str]:
    return [
        f"### {entry['name']}",
        "",
        f"- load: {entry['load']}",
        f"- injected: {entry['injected']}",
        "",
    ]


def render(entries: list[dict[str, Any]], seconds: float | None) -> str:
    by_name = {e["name"]: e for e in entries}
    ordered = [by_name[n] for n in ORDER if n in by_name] + [
        e for e in entries if e["name"] not in ORDER
    ]
    soak = all(e.get("soak") for e in ordered)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M UTC")
    cpus = os.cpu_count()
    lines = [
        f"# Reliability ({'soak' if soak else 'bounded'} run, {stamp})",
        "",
        f"Machine: {cpus} CPUs, Python {platform.python_version()}; PostgreSQL, the Temporal "
        "dev server, the worker processes and the load all on it.",
        "",
        INTRO.format(minutes=round(seconds / 60) if seconds else "?"),
        "## Fault injection",
        "",
    ]
    faults = [e for e in ordered if "events_in" in e["figures"]]
    for title, columns, extra in (
        ("### Requests", REQUEST_COLUMNS, "request_statuses"),
        ("### Events", EVENT_COLUMNS, "statuses"),
    ):
        lines += [
            title,
            "",
            "| test | " + " | ".join(label for _, label in columns) + f" | {_HEADS[extra]} |",
            "|---|" + "---|" * (len(columns) + 1),
        ]
        for entry in faults:
            figures = entry["figures"]
            counts = ", ".join(f"{k} {v:,}" for k, v in sorted(figures.get(extra, {}).items()))
            cells = [_number(figures.get(key, "-")) for key, _ in columns]
            lines.append(f"| {entry['name']} | " + " | ".join(cells) + f" | {counts} |")
        lines.append("")
    for entry in faults:
        lines += _described(entry)
    edge = [e for e in ordered if e["name"].startswith(EDGE_PREFIX)]
    others = [
        e
        for e in ordered
        if "events_in" not in e["figures"] and not e["name"].startswith(EDGE_PREFIX)
    ]
    if others:
        lines += ["## Hostile input and tenant isolation", ""]
    for entry in others:
        lines += [*_described(entry), "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_number(v)} |" for k, v in entry["figures"].items()]
        lines.append("")
    if edge:
        lines += [
            "## The HTTP edge",
            "",
            "The API as its own process (`awfdrs api`), 8 clients each resending a request until "
            "it gets a 2xx. Checked: every event that got a 2xx is stored exactly once, every "
            "incident's `event_count` equals its stored failures, every incident has its "
            "workflow (within 10 s of the load's end after the API kills; once Temporal is back "
            "after the outage).",
            "",
        ]
    for entry in edge:
        lines += [*_described(entry), "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_number(v)} |" for k, v in entry["figures"].items()]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print("usage: python -m tests.e2e.reliability.report RESULTS.json OUTPUT.md [SECONDS]")
        return 2
    results, output = Path(argv[1]), Path(argv[2])
    entries = json.loads(results.read_text())
    missing = [n for n in ORDER if n not in {e["name"] for e in entries}]
    if missing:
        print(f"no figures recorded for: {', '.join(missing)}; did every test pass?")
        return 1
    seconds = float(argv[3]) if len(argv) == 4 else None
    output.write_text(render(entries, seconds))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
