"""docker-compose.yml checked against the code (no Docker engine runs here to start it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from awfdrs.cli import app
from awfdrs.config import ENV_PREFIX, Settings
from awfdrs.constants import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_VARIABLE = re.compile(r"\$\{[A-Z_]+:\?[^}]+\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return {k: str(v) for k, v in env.items()}


def test_every_awfdrs_variable_is_a_setting(compose: dict[str, Any]) -> None:
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    used = {
        key
        for service in compose["services"].values()
        for key in _environment(service)
        if key.startswith(ENV_PREFIX)
    }
    assert used, "the awfdrs services set no AWFDRS_ variables"
    assert used <= known, f"not settings: {sorted(used - known)}"


def test_the_commands_the_services_run_exist() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["awfdrs"]' in dockerfile
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    compose_file: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose_file["services"]
    for name in ("worker", "migrate"):
        assert services[name]["build"] == "."
        assert services[name]["command"][0] in commands, name
    assert services["worker"]["command"] == ["worker"]
    assert services["migrate"]["command"] == ["migrate"]


def test_the_worker_has_what_it_needs_and_can_scale(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for needed in ("postgres", "temporal", "temporal-schema", "temporal-namespace", "migrate",
                   "temporal-ui"):  # fmt: skip
        assert needed in services, needed
    worker = services["worker"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["temporal"]["condition"] == "service_healthy"
    # Neither a fixed host port nor a fixed name: `--scale worker=3` can start three.
    assert "ports" not in worker
    assert "container_name" not in worker
    env = _environment(worker)
    assert env["AWFDRS_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "@postgres:5432/awfdrs" in env["AWFDRS_DATABASE_URL"]
    assert env["AWFDRS_DATABASE_URL"].startswith("postgresql://awfdrs_app:")
    assert env["AWFDRS_METRICS_PORT"] in [str(p) for p in worker["expose"]]
    assert "healthcheck" in services["postgres"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert services["temporal"]["environment"]["DB"] == "postgres12"


def test_no_password_has_a_default(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if "PASSWORD" in key or "PWD" in key:
                assert REQUIRED_VARIABLE.fullmatch(value), f"{name}.{key} has a default"
            for secret in re.findall(r"://[^:/]+:([^@]+)@", value):
                assert REQUIRED_VARIABLE.fullmatch(secret), f"{name}.{key} embeds a password"


def test_the_schema_job_is_idempotent_and_covers_both_databases(compose: dict[str, Any]) -> None:
    script = compose["services"]["temporal-schema"]["command"][0]
    for schema in ("temporal/versioned", "visibility/versioned"):
        assert f'update-schema -d "$$schema/{schema}"' in script
    assert script.count("|| echo") >= 3  # re-running on an existing database is not an error


def test_the_search_attributes_are_registered_by_migrate() -> None:
    # `awfdrs migrate` registers them (ensure_search_attributes); the compose file runs it.
    assert len(SEARCH_ATTRIBUTES) <= 10  # SQL visibility allows ten custom Keyword attributes


def test_the_api_service_needs_only_postgres_and_is_health_checked(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["build"] == "."
    assert api["command"] == ["api"]
    env = _environment(api)
    assert env["AWFDRS_API_HOST"] == "0.0.0.0"
    assert f"{env['AWFDRS_API_PORT']}:{env['AWFDRS_API_PORT']}" in api["ports"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Ingest must keep answering while Temporal is down: the api does not wait for it.
    assert "temporal" not in api["depends_on"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert "8000" in (ROOT / "Dockerfile").read_text()
