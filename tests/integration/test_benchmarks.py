"""The benchmark suite's quick mode, as CI's smoke test: it runs end to end and computes every
figure. Timings are not asserted (the machine is shared); docs/BENCHMARKS.md has the full run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_quick_benchmarks_finish_and_compute_their_ratios(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.run", "--quick"),
            *("--output", str(tmp_path), "--work-dir", str(tmp_path / "work")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((tmp_path / "BENCHMARKS.json").read_text())
    assert results["mode"] == "quick"
    figures = [
        results["ingest"]["ratio_to_floor"],
        results["ingest"]["ratio_to_naive"],
        results["ingest"]["worker_peak_rss_mb"],
        results["latency"]["from_call_p99_s"],
        results["lifecycle"]["incidents_per_s"],
        results["lifecycle"]["wide"]["requests_per_s"],
        results["scale"]["ingest_ratio_loaded_to_empty"],
        *(q["p99_ms"] for q in results["scale"]["queries"].values()),
        results["http"]["ratio_to_floor"],
        results["http"]["api_peak_rss_mb"],
        results["http"]["steady"]["request_p99_s"],
        results["http"]["steady"]["detection_p99_s"],
    ]
    assert all(isinstance(f, float) and math.isfinite(f) and f > 0 for f in figures), figures
    assert all(q["uses_expected_index"] for q in results["scale"]["queries"].values())
    assert set(results["targets"]) >= {
        "ingest ≥ 0.5 x floor",
        "lifecycle ≥ 20 incidents/s (1 request, one worker)",
        "HTTP ingest ≥ 0.5 x floor",
    }
    assert results["lifecycle"]["wide"]["requests_per_incident"] == 20
    assert "| target | measured | met |" in (tmp_path / "BENCHMARKS.md").read_text()
