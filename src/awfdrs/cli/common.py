"""What every command shares: settings (with the local stack's), the database connections,
the runner that turns a failure into one line, and parsing of ``key=value`` and durations.

Printing is in :mod:`awfdrs.cli.output`, failures in :mod:`awfdrs.cli.errors`, names and id
prefixes in :mod:`awfdrs.cli.resolve`."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.cli.errors import describe_failure, fail
from awfdrs.config import APP_ROLE, ENV_PREFIX, Settings, load_settings
from awfdrs.errors import ConfigError

T = TypeVar("T")

STACK_FILE = "stack.json"
PID_KEY = "pid"  # in the stack file: the awfdrs up that wrote it
DEFAULT_DATA_DIR = Path(".awfdrs")


def stack_file(data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}STACK_FILE", data_dir / STACK_FILE))


def write_stack_file(data_dir: Path, values: dict[str, str]) -> Path:
    """Tell commands in other terminals where ``awfdrs up`` put PostgreSQL and Temporal; the
    file names this process (``pid``), which alone removes it (:func:`remove_stack_file`)."""
    path = stack_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)  # it holds the stack's command signing key
    path.chmod(0o600)
    path.write_text(json.dumps({**values, PID_KEY: os.getpid()}, indent=2))
    # It may carry the credentials key and database passwords: the owner's only.
    path.chmod(0o600)
    return path


def remove_stack_file(data_dir: Path) -> None:
    """Remove the stack file if this process wrote it; another stack's is left alone."""
    path = stack_file(data_dir)
    try:
        owner = json.loads(path.read_text()).get(PID_KEY)
    except (OSError, ValueError):
        return
    if owner == os.getpid():
        path.unlink(missing_ok=True)


def _stack_values() -> dict[str, Any]:
    """What a running ``awfdrs up`` wrote; nothing when there is none, or when the process
    that wrote the file is gone (a stack that crashed leaves it behind)."""
    from awfdrs.devstack.lock import pid_alive

    path = stack_file()
    if not path.is_file():
        return {}
    values: dict[str, Any] = json.loads(path.read_text())
    pid = values.pop(PID_KEY, None)
    if isinstance(pid, int) and not pid_alive(pid):
        return {}
    return values


def cli_settings() -> Settings:
    """``AWFDRS_*`` variables first; what is unset comes from a running ``awfdrs up``."""
    overrides: dict[str, Any] = {}
    for key, value in _stack_values().items():
        if f"{ENV_PREFIX}{key.upper()}" not in os.environ:
            overrides[key] = value
    return load_settings(**overrides)


def require_database_url(settings: Settings) -> str:
    """The application URL; when unset, what to run to have one."""
    if settings.database_url is not None:
        return settings.database_url
    path = stack_file()
    found = "the awfdrs up that wrote it has stopped" if path.is_file() else "none is running"
    raise ConfigError(
        f"{ENV_PREFIX}DATABASE_URL is not set, and no local stack was found ({path}: {found}): "
        "start one with `make run` or `awfdrs up` in this folder, or set "
        f"{ENV_PREFIX}DATABASE_URL"
    )


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

    app_url = require_database_url(settings)
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
