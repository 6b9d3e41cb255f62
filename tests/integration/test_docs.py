"""The docs stay true to the code (README.md, docs/*.md, examples/README.md): every ```python
block runs as a program of its own against the test stack (PostgreSQL, a Temporal dev server, a
worker on the test's queue); every relative link resolves; every `awfdrs …` command names a real
command and only options it has; the README keeps `make test`, which .ci/run runs."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from tests.support.pipeline import Stack

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
BEGIN, END = "<!-- demo:begin -->", "<!-- demo:end -->"


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples/README.md"]


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCE.sub("", path.read_text())
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def python_blocks() -> list[tuple[str, str]]:
    found = []
    for path in markdown_files():
        for n, match in enumerate(BLOCK.finditer(path.read_text())):
            found.append((f"{path.relative_to(ROOT)}#{n}", match.group(1)))
    return found


def test_the_readme_keeps_its_test_command() -> None:
    """.ci/run runs `make test`, as the README tells a newcomer to."""
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make run" in readme
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")


def test_every_relative_link_in_the_docs_resolves() -> None:
    """Files and #anchors that README.md, docs/*.md and examples/README.md point at exist."""
    broken = []
    for path in markdown_files():
        for target in LINK.findall(FENCE.sub("", path.read_text())):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path
            if not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


async def test_every_python_block_in_the_docs_runs(
    stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    blocks = python_blocks()
    assert blocks, "no ```python block found: the test would check nothing"
    tenant = await stack.tenant(grouping_window_seconds=60)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "AWFDRS_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "AWFDRS_TASK_QUEUE": stack.client.task_queue,
        "TENANT_ID": str(tenant.id),
        "WORKFLOW_ID": str(tenant.workflow_id),
    }
    for name, code in blocks:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{name}:\n{done.stderr}"
        if "client.ingest" in code:  # the ingest example: its one event is accepted
            assert done.stdout.startswith("1 accepted; []"), f"{name}: {done.stdout}"


# `awfdrs` starting a command: at the start of a line (after VAR=value prefixes) or in $( … ).
INVOCATION = re.compile(r"(?:^[ \t]*(?:[A-Z_]+=\S*[ \t]+)*|\$\()awfdrs ([^`#)\n|]+)", re.MULTILINE)


def _invocations(text: str) -> list[str]:
    """Every `awfdrs …` command line in code blocks and inline code (continuations joined);
    the README's demo transcript is output, not commands."""
    if BEGIN in text:
        text = text.split(BEGIN, 1)[0] + text.split(END, 1)[1]
    code = [m.group(0).replace("\\\n", " ") for m in FENCE.finditer(text)]
    code += [
        span.replace("\n", " ")
        for span in re.findall(r"`([^`\n]*(?:\n[^`\n]*)?)`", FENCE.sub("", text))
    ]
    return [m.group(1).strip() for chunk in code for m in INVOCATION.finditer(chunk)]


def test_every_awfdrs_command_in_the_docs_exists_with_its_options() -> None:
    """Each `awfdrs <command> [--option …]` written in the README, docs/ and examples/ names a
    real command and only options it has (what a reader would paste)."""
    import typer.main

    from awfdrs.cli import app

    root = typer.main.get_command(app)
    wrong, checked = [], 0
    for path in markdown_files():
        for line in _invocations(path.read_text()):
            words = shlex.split(line.replace("[", " ").replace("]", " ").replace("…", ""))
            command: Any = root  # click's Command/Group (typer may carry its own click)
            where = "awfdrs"
            for word in words:
                if word.startswith("-") and word != "-":  # a lone - is stdin/stdout
                    name = word.split("=", 1)[0]
                    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
                    if name not in options:
                        wrong.append(f"{path.name}: `awfdrs {line}`: {where} has no {name}")
                elif hasattr(command, "commands"):
                    names = re.split(r"[|/]", word)
                    missing = [n for n in names if n not in command.commands]
                    if missing:
                        wrong.append(f"{path.name}: `awfdrs {line}`: no {where} {missing[0]}")
                        break
                    command, where = command.commands[names[0]], f"{where} {names[0]}"
            checked += 1
    assert checked > 30, checked
    assert wrong == []
