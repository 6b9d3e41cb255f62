"""What every command shares: settings (with the local stack's), one-line failures, output."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.config import APP_ROLE, ENV_PREFIX, Settings, load_settings
from awfdrs.contracts import describe_validation_error
from awfdrs.errors import AwfdrsError, ConfigError, ConflictError

T = TypeVar("T")
# Piped output is read by people and greps alike: no 80-column truncation of ids.
_WIDTH = None if sys.stdout.isatty() else 220
console = Console(highlight=False, soft_wrap=True, width=_WIDTH)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

STACK_FILE = "stack.json"
DEFAULT_DATA_DIR = Path(".awfdrs")


def stack_file(data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}STACK_FILE", data_dir / STACK_FILE))


def write_stack_file(data_dir: Path, values: dict[str, str]) -> Path:
    """Tell commands in other terminals where ``awfdrs up`` put PostgreSQL and Temporal."""
    path = stack_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)  # it holds the stack's command signing key
    path.chmod(0o600)
    path.write_text(json.dumps(values, indent=2))
    # It may carry the credentials key and database passwords: the owner's only.
    path.chmod(0o600)
    return path


def cli_settings() -> Settings:
    """``AWFDRS_*`` variables first; what is unset comes from a running ``awfdrs up``."""
    path = stack_file()
    overrides: dict[str, Any] = {}
    if path.is_file():
        for key, value in json.loads(path.read_text()).items():
            if f"{ENV_PREFIX}{key.upper()}" not in os.environ:
                overrides[key] = value
    return load_settings(**overrides)


def fail(message: str) -> NoReturn:
    errors.print(f"awfdrs: {message}", markup=False)
    raise typer.Exit(1)


def _where(url: str | None) -> str:
    if url is None:
        return "PostgreSQL"
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "localhost"
    return f"PostgreSQL at {host}{':' + str(parsed.port) if parsed.port else ''}/{parsed.database}"


CONFLICTS = {
    "uq_tenants_name": "a tenant with this name already exists",
    "uq_workflows_tenant_id_name": "this tenant already has a workflow with this name",
    "uq_vendors_name": "a vendor with this name already exists",
}


def describe_failure(error: BaseException, settings: Settings | None) -> str:
    """One line saying what went wrong and where, instead of a traceback."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError
    from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
    from temporalio.service import RPCError

    if isinstance(error, ConflictError) and error.constraint in CONFLICTS:
        return CONFLICTS[error.constraint]
    if isinstance(error, AwfdrsError):
        return str(error)
    if isinstance(error, ValidationError):
        return describe_validation_error(error)
    if isinstance(error, WorkflowUpdateFailedError | WorkflowFailureError):
        cause = error.cause
        return str(getattr(cause, "message", None) or cause or error)
    if isinstance(error, RPCError):
        return f"Temporal refused: {error.message}"
    temporal = settings.temporal_address if settings else "the configured address"
    if isinstance(error, RuntimeError) and "connect" in str(error).lower():
        return f"cannot reach Temporal at {temporal}"
    database = _where(settings.database_url if settings else None)
    if isinstance(error, ConnectionError | OSError | TimeoutError):
        return f"cannot reach {database}: {error}"
    if isinstance(error, asyncpg.PostgresError | DBAPIError):
        first = str(getattr(error, "orig", None) or error).splitlines()[0]
        return f"{database}: {first}"
    return f"{type(error).__name__}: {error}"


def run(command: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """Run an async command; any failure becomes one line on stderr and exit code 1."""
    settings: Settings | None = None
    try:
        settings = cli_settings()
        return asyncio.run(command(settings))
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as error:
        fail(describe_failure(error, settings))


def emit_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        text = value.model_dump_json(indent=2)
    else:
        text = json.dumps(value, indent=2, default=str)
    typer.echo(text)


@dataclass
class Databases:
    """Session factories: ``app`` as awfdrs_app (RLS applies), ``owner`` for cross-tenant views."""

    app: async_sessionmaker[AsyncSession]
    owner: async_sessionmaker[AsyncSession]
    owner_configured: bool = True

    @property
    def admin(self) -> async_sessionmaker[AsyncSession]:
        """The deployment administrator's connection: creating tenants and changing the
        vendor catalog are refused to the application role (migration 0009)."""
        if not self.owner_configured:
            raise ConfigError(
                "this is a deployment administrator's command: it needs the owner's connection "
                f"in {ENV_PREFIX}MIGRATION_DATABASE_URL (the application role may not create "
                "tenants or change vendors)"
            )
        return self.owner


@asynccontextmanager
async def databases(settings: Settings) -> AsyncIterator[Databases]:
    from awfdrs.db.session import build_engine, make_sessionmaker

    app_url = settings.require_database_url()
    engines: list[AsyncEngine] = [build_engine(app_url, settings)]
    owner_url = settings.migration_database_url
    if owner_url and owner_url != app_url:
        engines.append(build_engine(owner_url, settings))
    try:
        owner_configured = len(engines) > 1 or make_url(app_url).username != APP_ROLE
        yield Databases(
            make_sessionmaker(engines[0]), make_sessionmaker(engines[-1]), owner_configured
        )
    finally:
        for engine in engines:
            await engine.dispose()


async def resolve_tenant(dbs: Databases, value: str) -> uuid.UUID:
    """A tenant id, from an id or a name (names need the owner connection)."""
    from awfdrs.admin import find_tenant_by_name

    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    tenant = await find_tenant_by_name(dbs.owner, value)
    if tenant is None:
        raise ConfigError(
            f"tenant {value!r} not found (a tenant name needs AWFDRS_MIGRATION_DATABASE_URL; "
            "an id works with the application role alone)"
        )
    return tenant.id


async def resolve_workflow(dbs: Databases, tenant_id: uuid.UUID, value: str) -> uuid.UUID:
    from awfdrs.db.repositories import WorkflowRepository
    from awfdrs.db.session import tenant_session

    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    async with tenant_session(dbs.app, tenant_id) as session:
        workflow = await WorkflowRepository(session, tenant_id=tenant_id).find_by_name(value)
    if workflow is None:
        raise ConfigError(f"workflow {value!r} not found for tenant {tenant_id}")
    return workflow.id


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value that reads as JSON (numbers, true, null) is taken as such."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{pair!r}: expected key=value")
        try:
            parsed[key.strip()] = json.loads(raw)
        except ValueError:
            parsed[key.strip()] = raw
    return parsed


def parse_duration(value: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d`` → seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = value.strip().lower()
    unit = units.get(text[-1:])
    try:
        seconds = float(text[:-1] if unit else text) * (unit or 1)
    except ValueError:
        raise ConfigError(f"duration {value!r}: use 90s, 15m, 2h or 1d") from None
    if seconds <= 0:
        raise ConfigError(f"duration {value!r}: must be positive")
    return seconds
