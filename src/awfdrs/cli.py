"""The ``awfdrs`` command. Every command reads the same ``AWFDRS_*`` settings."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from awfdrs import logs
from awfdrs.config import Settings, load_settings
from awfdrs.errors import AwfdrsError

T = TypeVar("T")

app = typer.Typer(
    help="awfdrs: detect failures in business workflows and remediate them safely.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _fail(message: str) -> NoReturn:
    typer.echo(f"awfdrs: {message}", err=True)
    raise typer.Exit(1)


def describe_failure(error: BaseException, settings: Settings | None) -> str:
    """One line saying what went wrong and where, instead of a traceback."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError, OperationalError
    from temporalio.service import RPCError

    if isinstance(error, AwfdrsError):
        return str(error)
    if isinstance(error, RPCError | RuntimeError) and "connect" in str(error).lower():
        where = settings.temporal_address if settings else "Temporal"
        return f"cannot reach Temporal at {where}: {error}"
    if isinstance(error, OSError | asyncpg.PostgresError | OperationalError | DBAPIError):
        return f"PostgreSQL error: {str(error).splitlines()[0]}"
    return f"{type(error).__name__}: {error}"


def run(command: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """Run an async command; any failure becomes one line on stderr and exit code 1."""
    settings: Settings | None = None
    try:
        settings = load_settings()
        return asyncio.run(command(settings))
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as error:
        _fail(describe_failure(error, settings))


async def until_stopped(work: Awaitable[None] | None = None) -> None:
    """Wait for SIGINT / SIGTERM (after ``work``, when given)."""
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
        elif task.exception():
            raise task.exception()  # type: ignore[misc]
    await stop.wait()


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Play the bundled demo once everything runs.")] = False,
    data_dir: Annotated[
        Path, typer.Option(help="Where the embedded PostgreSQL and Temporal keep their data.")
    ] = Path(".awfdrs"),
) -> None:
    """Start everything locally: Temporal dev server with UI, PostgreSQL, migrations, a worker.

    PostgreSQL is AWFDRS_DATABASE_URL's when set, else an embedded one in DATA_DIR. Ctrl-C stops
    what was started.

    Example: awfdrs up --demo
    """
    logs.configure(expected_retries_quiet=demo)

    async def command(settings: Settings) -> None:
        from awfdrs.client import AwfdrsClient, connect_temporal
        from awfdrs.db.session import build_engine, make_sessionmaker
        from awfdrs.devstack.demo import Demo
        from awfdrs.devstack.stack import local_stack

        async with local_stack(settings, data_dir) as stack:
            typer.echo(
                f"awfdrs is up: Temporal {stack.settings.temporal_address}"
                + (f", UI {stack.ui_url}" if stack.ui_url else "")
            )
            demo_run: Awaitable[None] | None = None
            if demo:
                app_engine = build_engine(stack.settings.require_database_url(), stack.settings)
                owner_engine = build_engine(stack.owner_url, stack.settings)
                client = AwfdrsClient(
                    await connect_temporal(stack.settings), stack.settings.task_queue
                )
                player = Demo(
                    client,
                    make_sessionmaker(app_engine),
                    make_sessionmaker(owner_engine),
                    stack.ui_url,
                )

                async def play() -> None:
                    await player.play()
                    typer.echo("The stack stays up for the UI; press Ctrl-C to stop.")

                demo_run = play()
            else:
                typer.echo("Press Ctrl-C to stop.")
            try:
                await until_stopped(demo_run)
            finally:
                if demo:
                    player.close()
                    await app_engine.dispose()
                    await owner_engine.dispose()
            typer.echo("stopping…")

    run(command)


@app.command()
def worker() -> None:
    """Run a worker: every workflow and activity on AWFDRS_TASK_QUEUE, until SIGTERM / Ctrl-C.

    Example: AWFDRS_DATABASE_URL=postgresql://awfdrs_app@db/awfdrs awfdrs worker
    """
    from awfdrs.worker import run_worker

    async def command(settings: Settings) -> None:
        logs.configure(settings.log_level)
        await run_worker(settings)

    run(command)


@app.command()
def migrate() -> None:
    """Apply the database migrations (as the owner) and register Temporal's search attributes.

    Example: AWFDRS_MIGRATION_DATABASE_URL=postgresql://owner@db/awfdrs awfdrs migrate
    """

    async def command(settings: Settings) -> None:
        from awfdrs.client import connect_temporal
        from awfdrs.db import migrate as migrations
        from awfdrs.temporal_admin import ensure_search_attributes

        await asyncio.to_thread(migrations.upgrade, settings.effective_migration_url())
        typer.echo("database migrated to head")
        added = await ensure_search_attributes(await connect_temporal(settings))
        typer.echo(f"search attributes: {'added ' + ', '.join(added) if added else 'all present'}")

    run(command)


def main() -> None:
    status = 0
    try:
        app()
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK's native runtime may abort the interpreter at exit (sdk-python issue 300).
    os._exit(status)
