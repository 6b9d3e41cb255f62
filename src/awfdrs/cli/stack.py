"""``awfdrs up``, ``awfdrs worker``, ``awfdrs migrate``."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated

import typer

from awfdrs import logs
from awfdrs.cli.common import DEFAULT_DATA_DIR, remove_stack_file, run, write_stack_file
from awfdrs.config import Settings


async def until_stopped(work: Awaitable[None] | None = None) -> None:
    """Wait for SIGINT / SIGTERM; ``work`` runs meanwhile and its failure ends the wait."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if work is not None:
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
        elif (error := task.exception()) is not None:
            raise error
    await stop.wait()


def up(
    demo: Annotated[bool, typer.Option(help="Play the bundled demo once everything runs.")] = False,
    data_dir: Annotated[
        Path, typer.Option(help="Where the embedded PostgreSQL and Temporal keep their data.")
    ] = DEFAULT_DATA_DIR,
) -> None:
    """Start everything locally: Temporal dev server with UI, PostgreSQL, migrations, a worker
    and the HTTP API (AWFDRS_API_HOST / AWFDRS_API_PORT, 127.0.0.1:8000 by default).

    PostgreSQL is AWFDRS_DATABASE_URL's when set, else an embedded one in DATA_DIR. Other
    awfdrs commands, in other terminals of this folder, find this stack by themselves.
    Ctrl-C stops what was started.

    Example: awfdrs up --demo
    """
    logs.configure(log_format="console", expected_retries_quiet=demo)

    async def command(settings: Settings) -> None:
        from awfdrs.client import AwfdrsClient, connect_temporal
        from awfdrs.db.session import build_engine, make_sessionmaker
        from awfdrs.devstack.demo import Demo
        from awfdrs.devstack.lock import stack_lock
        from awfdrs.devstack.stack import local_stack

        # Before anything starts: a second stack in this folder would share the embedded
        # PostgreSQL's data, and stopping it removed the first one's stack file.
        with stack_lock(data_dir):
            async with local_stack(settings, data_dir) as stack:
                running = stack.settings
                found = write_stack_file(
                    data_dir,
                    {
                        "database_url": running.require_database_url(),
                        "migration_database_url": stack.owner_url,
                        "temporal_address": running.temporal_address,
                        "temporal_namespace": running.temporal_namespace,
                        "task_queue": running.task_queue,
                        # Local CLI commands sign approvals and releases with the stack's key: the
                        # folder's owner is this stack's deployment administrator.
                        "command_signing_key": running.command_signing_key or "",
                        # So `awfdrs vendors connect` in another terminal encrypts with the
                        # same key.
                        **(
                            {"credentials_keys": running.credentials_keys}
                            if running.credentials_keys
                            else {}
                        ),
                        **({"api_url": stack.api_url} if stack.api_url else {}),
                    },
                )
                ui = f", UI {stack.ui_url}" if stack.ui_url else ""
                typer.echo(f"awfdrs is up: Temporal {running.temporal_address}{ui}")
                if stack.api_url:
                    typer.echo(
                        f"HTTP API {stack.api_url} (OpenAPI: {stack.api_url}/openapi.json); "
                        "create a key with: awfdrs keys create --tenant demo --role ingest"
                    )
                    how = "awfdrs keys create --tenant demo --role operator"
                    signin = " (the demo prints a key to sign in with)" if demo else f"; key: {how}"
                    typer.echo(f"Console {stack.api_url}/console{signin}")
                typer.echo(f"other awfdrs commands in this folder use it (see {found})")
                app_engine = build_engine(running.require_database_url(), running)
                owner_engine = build_engine(stack.owner_url, running)
                player: Demo | None = None
                work: Awaitable[None] | None = None
                if demo:
                    client = AwfdrsClient(await connect_temporal(running), running.task_queue)
                    player = Demo(
                        client,
                        make_sessionmaker(app_engine),
                        make_sessionmaker(owner_engine),
                        stack.ui_url,
                        api_url=stack.api_url,
                    )

                    async def play(demo: Demo) -> None:
                        await demo.play()
                        typer.echo("The stack stays up for the UI; press Ctrl-C to stop.")

                    work = play(player)
                else:
                    typer.echo("Press Ctrl-C to stop.")
                try:
                    await until_stopped(work)
                finally:
                    if player is not None:
                        player.close()
                    await app_engine.dispose()
                    await owner_engine.dispose()
                    remove_stack_file(data_dir)
                typer.echo("stopping…")

    run(command)


def worker() -> None:
    """Run a worker: every workflow and activity on AWFDRS_TASK_QUEUE, until SIGTERM / Ctrl-C.

    Example: AWFDRS_DATABASE_URL=postgresql://awfdrs_app@db/awfdrs awfdrs worker
    """
    from awfdrs.worker import run_worker

    async def command(settings: Settings) -> None:
        logs.configure(settings.log_level, settings.log_format)
        await run_worker(settings)

    run(command)


def api(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: AWFDRS_API_HOST, 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port [default: AWFDRS_API_PORT, 8000]; 0 picks a free one")
    ] = None,
) -> None:
    """Serve the HTTP edge: events in four formats, per-tenant keys, /openapi.json, /healthz.

    Example: AWFDRS_DATABASE_URL=postgresql://awfdrs_app@db/awfdrs awfdrs api --port 8000
    """
    from awfdrs.cli.common import cli_settings, require_database_url
    from awfdrs.cli.errors import describe_failure, fail

    try:
        settings = cli_settings()
        logs.configure(settings.log_level, settings.log_format)
        require_database_url(settings)
        from awfdrs.api.server import run_api

        run_api(settings, host or settings.api_host, settings.api_port if port is None else port)
    except Exception as error:
        fail(describe_failure(error, None))


def migrate() -> None:
    """Apply the database migrations as the owner, give awfdrs_app the password of
    AWFDRS_DATABASE_URL (when it has one), and register Temporal's search attributes.

    Example: AWFDRS_MIGRATION_DATABASE_URL=postgresql://owner@db/awfdrs awfdrs migrate
    """

    async def command(settings: Settings) -> None:
        from awfdrs.client import connect_temporal
        from awfdrs.db import migrate as migrations
        from awfdrs.temporal_admin import ensure_search_attributes

        owner = settings.effective_migration_url()
        await asyncio.to_thread(migrations.upgrade, owner)
        typer.echo("database migrated to head")
        if settings.database_url and await migrations.sync_app_password(
            owner, settings.database_url
        ):
            typer.echo("awfdrs_app password set from AWFDRS_DATABASE_URL")
        added = await ensure_search_attributes(await connect_temporal(settings))
        typer.echo(f"search attributes: {'added ' + ', '.join(added) if added else 'all present'}")

    run(command)
