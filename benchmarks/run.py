"""Run the benchmark suite and write docs/BENCHMARKS.json and docs/BENCHMARKS.md.

python -m benchmarks.run            # the full run, for the docs (about ten minutes here)
python -m benchmarks.run --quick    # small sizes, under two minutes: CI's smoke test
python -m benchmarks.run --only lifecycle   # some of them, printed, nothing written
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks import http, ingest, latency, lifecycle, scale
from benchmarks.harness import bench_stack

FULL = {
    "ingest": {"events": 200_000, "tenants": 50, "naive_events": 10_000, "concurrency": 4},
    "latency": {"rate": 1000, "seconds": 30, "tenants": 10},
    "lifecycle": {"incidents": 2000, "workers": 2},
    "scale": {"events": 5_000_000, "incidents": 200_000, "tenants": 50, "probe_events": 50_000,
              "runs": 500},
    "http": {"events": 200_000, "tenants": 50, "concurrency": 4, "rate": 1000, "seconds": 30},
}  # fmt: skip
QUICK = {
    "ingest": {"events": 5_000, "tenants": 10, "naive_events": 300, "concurrency": 4},
    "latency": {"rate": 200, "seconds": 3, "tenants": 4},
    "lifecycle": {"incidents": 24, "workers": 2},
    "scale": {"events": 100_000, "incidents": 5_000, "tenants": 10, "probe_events": 5_000,
              "runs": 50},
    "http": {"events": 5_000, "tenants": 10, "concurrency": 4, "rate": 500, "seconds": 3},
}  # fmt: skip
TARGETS = {
    "ingest ≥ 0.5 x floor": ("ingest", "ratio_to_floor", 0.5, ">="),
    "ingest ≥ 10 x naive": ("ingest", "ratio_to_naive", 10.0, ">="),
    "detection p99 ≤ 1 s (after the call returns)": ("latency", "after_return_p99_s", 1.0, "<="),
    "lifecycle ≥ 20 incidents/s (1 request, one worker)": (
        "lifecycle",
        "one_worker_incidents_per_s",
        20.0,
        ">=",
    ),
    "ingest at scale ≥ 0.8 x empty": ("scale", "ingest_ratio_loaded_to_empty", 0.8, ">="),
    "HTTP ingest ≥ 0.5 x floor": ("http", "ratio_to_floor", 0.5, ">="),
}
# Targets on the HTTP edge's steady load (nested figures).
STEADY_TARGETS = {
    "HTTP request p99 ≤ 50 ms at 1,000 events/s": ("request_p99_s", 0.05),
    "HTTP detection p99 ≤ 1 s (2xx → workflow running)": ("detection_p99_s", 1.0),
}


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
    }


BENCHMARKS = {
    "ingest": ingest,
    "latency": latency,
    "lifecycle": lifecycle,
    "scale": scale,
    "http": http,
}


async def run(quick: bool, work_dir: Path, only: list[str] | None = None) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    results: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "started": datetime.now(UTC).isoformat(),
        "machine": machine(),
    }
    async with bench_stack(work_dir) as bench:
        await bench.start_worker()
        for name, module in BENCHMARKS.items():
            if only and name not in only:
                continue
            print(f"== {name}: {json.dumps(sizes[name])}", flush=True)
            started = time.perf_counter()
            results[name] = await module.benchmark(bench, **sizes[name])
            results[name]["wall_seconds"] = time.perf_counter() - started
            print(json.dumps({k: v for k, v in results[name].items() if k != "queries"},
                             default=str), flush=True)  # fmt: skip
    if only:
        return results
    results["targets"] = {
        label: _verdict(results[section][key], bound, op)
        for label, (section, key, bound, op) in TARGETS.items()
    }
    results["targets"].update({
        label: _verdict(results["http"]["steady"][key], bound, "<=")
        for label, (key, bound) in STEADY_TARGETS.items()
    })  # fmt: skip
    results["targets"].update({
        f"{name} p99 ≤ 10 ms": _verdict(query["p99_ms"], 10.0, "<=")
        for name, query in results["scale"]["queries"].items()
    })  # fmt: skip
    return results


def _verdict(value: float, bound: float, op: str) -> dict[str, Any]:
    met = value >= bound if op == ">=" else value <= bound
    return {"value": value, "target": f"{op} {bound:g}", "met": met}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def markdown(results: dict[str, Any]) -> str:
    ing, lat, life, sc = (results[k] for k in ("ingest", "latency", "lifecycle", "scale"))
    box = results["machine"]
    out = [
        f"# Benchmarks ({results['mode']} run, {results['started'][:19]} UTC)",
        "",
        "Regenerate with `make bench` (this file and `BENCHMARKS.json`). Machine: "
        f"{box['cpus']} CPUs, {box['memory_gb']} GB, Python {box['python']}. PostgreSQL, the "
        "Temporal dev server (in memory), one worker process and the load generator all share "
        "it: compare ratios measured in the same run, not absolute figures across runs.",
        "",
        "## Targets",
        "",
    ]
    out += _table(
        ["target", "measured", "met"],
        [
            [label, f"{v['value']:.3g}", "yes" if v["met"] else "**no**"]
            for label, v in results["targets"].items()
        ],
    )
    out += ["## 1. Ingest throughput, end to end (and 5. worker memory)", ""]
    out += [f"Parameters: `{json.dumps(ing['parameters'])}`", ""]
    out += _table(
        ["path", "events/s", "awfdrs ÷ path"],
        [
            ["awfdrs: client → IngestEvents → stored, incidents upserted and started",
             _rate(ing["awfdrs_events_per_s"]), "—"],
            ["floor: raw asyncpg, same rows, set-based, no Temporal",
             _rate(ing["floor_events_per_s"]), f"{ing['ratio_to_floor']:.2f}"],
            ["naive: per event lookup, create, incident, commit",
             _rate(ing["naive_events_per_s"]), f"{ing['ratio_to_naive']:.1f}"],
        ],
    )  # fmt: skip
    out += [
        f"Peak RSS of the worker during the awfdrs run: **{ing['worker_peak_rss_mb']:.0f} MB**."
    ]
    cpu = ing.get("cpu_seconds_per_1k_events", {})
    if cpu:
        out += [
            "",
            f"CPU during the awfdrs run ({ing['cpu_cores_busy']:.2f} of "
            f"{results['machine']['cpus']} cores busy on average; "
            f"{ing['incident_workflows_started']:,} incident workflows started), "
            "seconds per 1,000 events:",
            "",
        ]
        out += _table(["component", "CPU s / 1k events"], [[k, f"{v:.3f}"] for k, v in cpu.items()])
    if ing.get("profile"):
        components = sorted({c for row in ing["profile"] for c in row["cpu_seconds_per_1k_events"]})
        out += [
            "Profile (same stack, smaller runs): the mix as above, then twice the batches in "
            "flight, then payloads 1.5 KB larger. CPU seconds per 1,000 events:",
            "",
        ]
        out += _table(
            ["variant", "bytes/event", "batches/1k events", "in flight", "events/s", *components],
            [
                [row["variant"], f"{row['bytes_per_event']:.0f}",
                 f"{row['batches_per_1k_events']:.2f}", str(row["concurrency"]),
                 _rate(row["events_per_s"]),
                 *(f"{row['cpu_seconds_per_1k_events'].get(c, 0):.3f}" for c in components)]
                for row in ing["profile"]
            ],
        )  # fmt: skip
    out += ["", "## 2. Detection latency", ""]
    out += [
        f"Parameters: `{json.dumps(lat['parameters'])}`; achieved "
        f"{_rate(lat['achieved_events_per_s'])} events/s, {lat['incidents']} incidents opened.",
        "",
    ]
    out += _table(
        ["measure", "p50", "p99"],
        [
            ["ingest call returned → incident workflow running",
             _ms(lat["after_return_p50_s"]), _ms(lat["after_return_p99_s"])],
            ["ingest call made → incident workflow running",
             _ms(lat["from_call_p50_s"]), _ms(lat["from_call_p99_s"])],
        ],
    )  # fmt: skip
    out += [
        f"{lat['running_before_return_share']:.0%} of the incident workflows had completed "
        "their first workflow task before the ingest call returned: `IngestEvents` starts "
        "them before it answers.",
        "",
        "## 3. Incident throughput",
        "",
        f"Parameters: `{json.dumps(life['parameters'], ensure_ascii=False)}`",
        "",
    ]
    kinds = ", ".join(
        f"{k.removeprefix('EVENT_TYPE_').lower()} {v:g}"
        for k, v in life["history_event_types_per_incident"].items()
    )
    out += [
        f"**{life['incidents_per_s']:.1f} incidents/s** through NEW → RESOLVED. Per incident: "
        f"{life['history_events_per_incident']:.0f} history events "
        f"({kinds}), {life['temporal_actions_per_incident']:.0f} Temporal actions.",
        "",
    ]
    if life.get("runs"):
        runs = [*life["runs"][:1], *([life["wide"]] if life.get("wide") else []),
                *life["runs"][1:]]  # fmt: skip
        components = sorted({c for run in runs for c in run["cpu_ms_per_incident"]})
        out += [
            "Incidents of one affected request with the suite's one worker process (the target "
            "is read here), incidents of twenty requests (each sent on its own, under its own "
            "key), then one-request incidents with more worker processes on the same task "
            "queue. CPU milliseconds per incident:",
            "",
        ]
        out += _table(
            ["worker processes", "requests/incident", "incidents/s", "requests/s", "cores busy",
             *components],
            [
                [str(run["workers"]), str(run.get("requests_per_incident", 1)),
                 f"{run['incidents_per_s']:.1f}",
                 f"{run.get('requests_per_s', run['incidents_per_s']):.1f}",
                 f"{run['cpu_cores_busy']:.2f} of {box['cpus']}",
                 *(f"{run['cpu_ms_per_incident'].get(c, 0):.1f}" for c in components)]
                for run in runs
            ],
        )  # fmt: skip
    out += [
        "## 4. Scale",
        "",
        f"Parameters: `{json.dumps(sc['parameters'])}`; {sc['events_stored']:,} events stored, "
        f"{sc['events_table_bytes'] / 2**30:.2f} GiB with indexes, loaded in "
        f"{sc['load_seconds']:.0f} s.",
        "",
    ]
    out += _table(
        ["hot query (its repository, as awfdrs_app)", "p50", "p99", "plan (EXPLAIN)"],
        [
            [name, f"{q['p50_ms']:.2f} ms", f"{q['p99_ms']:.2f} ms", q["plan"]]
            for name, q in sc["queries"].items()
        ],
    )
    out += _table(
        ["ingest", "empty database", "loaded", "loaded ÷ empty"],
        [
            ["awfdrs end to end", _rate(sc["ingest_empty_events_per_s"]),
             _rate(sc["ingest_loaded_events_per_s"]), f"{sc['ingest_ratio_loaded_to_empty']:.2f}"],
            ["floor (persistence only)", _rate(sc["floor_empty_events_per_s"]),
             _rate(sc["floor_loaded_events_per_s"]), f"{sc['floor_ratio_loaded_to_empty']:.2f}"],
        ],
    )  # fmt: skip
    out += http_markdown(results)
    if results.get("analysis"):
        out += ["## Where the time goes", "", results["analysis"], ""]
    return "\n".join(out)


def http_markdown(results: dict[str, Any]) -> list[str]:
    web = results["http"]
    steady = web["steady"]
    out = ["## 6. Ingest over HTTP (the API as its own process)", ""]
    out += [f"Parameters: `{json.dumps(web['parameters'])}`", ""]
    out += _table(
        ["path", "events/s", "HTTP ÷ path"],
        [
            ["HTTP: POST /v1/events → stored, incidents upserted, outbox written",
             _rate(web["http_events_per_s"]), "—"],
            ["floor: raw asyncpg, same rows, set-based", _rate(web["floor_events_per_s"]),
             f"{web['ratio_to_floor']:.2f}"],
        ],
    )  # fmt: skip
    out += [
        f"Request latency in that run: p50 {_ms(web['throughput_request_p50_s'])}, p99 "
        f"{_ms(web['throughput_request_p99_s'])}. Peak RSS of the API process: "
        f"**{web['api_peak_rss_mb']:.0f} MB**. CPU seconds per 1,000 events "
        f"({web['cpu_cores_busy']:.2f} cores busy):",
        "",
    ]
    out += _table(
        ["component", "CPU s / 1k events"],
        [[k, f"{v:.3f}"] for k, v in web["cpu_seconds_per_1k_events"].items()],
    )
    out += [
        f"Steady load `{json.dumps(steady['parameters'])}`: achieved "
        f"{_rate(steady['achieved_events_per_s'])} events/s in {steady['requests']} requests, "
        f"{steady['incidents']} incidents opened (started once the throughput run's "
        f"outbox had drained, {steady.get('backlog_drained_after_s', 0):.0f} s after it).",
        "",
    ]
    out += _table(
        ["measure", "p50", "p99"],
        [
            ["request latency", _ms(steady["request_p50_s"]), _ms(steady["request_p99_s"])],
            ["2xx → incident workflow running (outbox + dispatcher)",
             _ms(steady["detection_p50_s"]), _ms(steady["detection_p99_s"])],
        ],
    )  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, under two minutes")
    parser.add_argument("--output", type=Path, default=Path("docs"), help="where to write")
    parser.add_argument("--work-dir", type=Path, default=Path(".awfdrs/bench"))
    parser.add_argument(
        "--only", action="append", choices=list(BENCHMARKS), help="run just this one (repeatable)"
    )
    args = parser.parse_args()
    results = asyncio.run(run(args.quick, args.work_dir, args.only))
    if args.only:
        sys.stdout.flush()
        os._exit(0)
    notes = args.output / "BENCHMARKS-analysis.md"
    if notes.exists():
        results["analysis"] = notes.read_text().strip()
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "BENCHMARKS.json").write_text(json.dumps(results, indent=2, default=str))
    (args.output / "BENCHMARKS.md").write_text(markdown(results))
    print(f"wrote {args.output / 'BENCHMARKS.md'} and BENCHMARKS.json")
    sys.stdout.flush()
    os._exit(0)  # the SDK's native runtime may abort the interpreter at exit (issue 300)


if __name__ == "__main__":
    main()
