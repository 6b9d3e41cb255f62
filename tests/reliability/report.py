"""Render docs/RELIABILITY.md from the figures the reliability tests recorded.

``make soak`` runs ``tests/reliability`` at soak sizes with ``AWFDRS_RELIABILITY_RESULTS`` set,
then ``python -m tests.reliability.report <results.json> docs/RELIABILITY.md``. A test records
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
    "bad input",
    "tenant isolation probes",
]
LOAD_COLUMNS = [
    ("events_in", "events in"),
    ("distinct", "distinct"),
    ("stored", "stored"),
    ("duplicated", "duplicated"),
    ("lost", "lost"),
    ("accepted_twice", "accepted twice"),
    ("actions_executed_twice", "actions executed twice"),
    ("event_count_mismatches", "event_count ≠ distinct events"),
]

INTRO = """\
Regenerate with `make soak` (about {minutes} minutes here). `bash .ci/run` runs the same tests
at bounded sizes on every change; `make soak` runs them larger and rewrites this file. A test
records its figures only after its checks pass.

After every fault test, with SQL and the local vendor's own request log:

- **no event lost**: every distinct idempotency key sent is stored;
- **none duplicated**: each key is stored once and was answered `accepted` exactly once;
- **every incident terminal or legitimately waiting**: RESOLVED, IGNORED, or ACTIONED waiting
  for an operator after an escalation (permanent failures escalate by design);
- **no action executed twice**: at most one non-replayed successful call per idempotency key
  at the vendor;
- **event_count equals the distinct events**: per signature, the incidents' counts add up to
  the stored failure events.

Clients resend a batch whose call failed (at-least-once delivery, as a well-behaved client
does); idempotent writes make that harmless, which is what the figures show.
"""


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
        "| test | " + " | ".join(label for _, label in LOAD_COLUMNS) + " | incidents |",
        "|---|" + "---|" * (len(LOAD_COLUMNS) + 1),
    ]
    faults = [e for e in ordered if "events_in" in e["figures"]]
    for entry in faults:
        figures = entry["figures"]
        statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(figures["statuses"].items()))
        cells = [_number(figures[key]) for key, _ in LOAD_COLUMNS]
        lines.append(f"| {entry['name']} | " + " | ".join(cells) + f" | {statuses} |")
    lines.append("")
    for entry in faults:
        lines += _described(entry)
    others = [e for e in ordered if "events_in" not in e["figures"]]
    if others:
        lines += ["## Hostile input and tenant isolation", ""]
    for entry in others:
        lines += [*_described(entry), "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_number(v)} |" for k, v in entry["figures"].items()]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print("usage: python -m tests.reliability.report RESULTS.json OUTPUT.md [SECONDS]")
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
