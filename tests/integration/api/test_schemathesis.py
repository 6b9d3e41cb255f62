"""Property-based: the API against its own /openapi.json, bounded (a few examples per
operation). Any 5xx, or a response that does not match the documented status codes, content
types and schemas, fails the run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sysconfig
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.api.keys import Role
from tests.integration.api.conftest import Sender, make_sender

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)
EXAMPLES = int(os.environ.get("AWFDRS_SCHEMATHESIS_EXAMPLES", "15"))


async def test_the_api_conforms_to_its_own_openapi_document(
    api_url: str, sender: Sender, tmp_path: Path
) -> None:
    await conforms(api_url, sender.key, tmp_path)


async def test_the_operator_api_conforms_for_a_viewer(
    api_url: str, committed_sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """With a viewer key the operator reads answer 200 (their response models are checked)
    and the acts 403; with an acting key the acts would wait on kill switch workflows that no
    worker runs here (the ingest run above sees the operator endpoints answer 403)."""
    viewer = await make_sender(committed_sessions, role=Role.VIEWER)
    await conforms(api_url, viewer.key, tmp_path, include="/v1/(incidents|kill-switches|vendors)")


async def conforms(api_url: str, key: str, tmp_path: Path, include: str | None = None) -> None:
    binary = os.path.join(sysconfig.get_path("scripts"), "schemathesis")
    command = [
        binary, "run", f"{api_url}/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(EXAMPLES),
        "--phases", "examples,coverage,fuzzing",
        "--seed", "11",
        "--request-timeout", "20",
        "--header", f"Authorization: Bearer {key}",
        "--report-dir", str(tmp_path),
        *(["--include-path-regex", include] if include else []),
    ]  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run,
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,  # its cache (.schemathesis/) goes there, not into the work tree
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "passed" in done.stdout, done.stdout[-3000:]
    print(done.stdout[-1500:])
