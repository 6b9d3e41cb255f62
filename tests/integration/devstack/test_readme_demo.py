"""The README's demo transcript is a real run's: the demo is played over HTTP (as `make run` plays
it) and its output, ids, ports and times masked, must be the block between the README's
``<!-- demo:begin -->`` and ``<!-- demo:end -->`` markers.

Regenerate the block after changing the demo: ``AWFDRS_WRITE_README_DEMO=1 pytest
tests/integration/devstack/test_readme_demo.py`` (then read the diff: the README's
narrative around it says what the lines mean).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.client import AwfdrsClient
from tests.support.demo import play_demo

README = Path(__file__).resolve().parents[3] / "README.md"
BEGIN, END = "<!-- demo:begin -->", "<!-- demo:end -->"
UI = "http://localhost:8233"

_MASKS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"AwfdrsTenant%3D%22[^%]+%22"), "AwfdrsTenant%3D%22<id>%22"),
    (re.compile(r"http://127\.0\.0\.1:\d+"), "http://127.0.0.1:<port>"),
    (re.compile(r"ingest key \S+…"), "ingest key <prefix>…"),
    (re.compile(r"awfdrs-[0-9a-f]{8,}"), "awfdrs-<key>"),
    (re.compile(r"\bawfdrs_[0-9a-f]{12}_[A-Za-z0-9_-]+"), "awfdrs_<prefix>_<secret>"),
    (re.compile(r"\b(run|incident|decision|request|action|dedup_key) [0-9a-f]{6,8}\b"), r"\1 <id>"),
    (re.compile(r"\bX-Demo-Run\": \"[0-9a-f]+\""), 'X-Demo-Run": "<run>"'),
]
# Printed when an earlier run (of this database) left something open: not part of the story.
_NOT_COMPARED = ("an earlier demo run left open",)
# How long ANALYZING lasts is shorter than the demo's polling: it is seen on some runs only.
_TRANSIENT = re.compile(r"◌ incident <id> is ANALYZING$")


def mask(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or any(n in line for n in _NOT_COMPARED):
            continue
        for pattern, replacement in _MASKS:
            line = pattern.sub(replacement, line)
        lines.append(line)
    return lines


def compared(lines: list[str]) -> Counter[str]:
    """What must match: every line, as a multiset (three incidents report concurrently, so
    their lines interleave differently from run to run), but the transient status.
    A retry's confidence depends on the signature's history in this database (earlier demo
    runs of the same session count): its figures are not compared, the rest of the line is."""
    settled = "✔ every demo incident settled: "

    def parts(line: str) -> str:  # the closing line's parts come in the incidents' order
        if not line.startswith(settled):
            return line
        return settled + "; ".join(sorted(line.removeprefix(settled).split("; ")))

    history = re.compile(r"(no|\d+ of \d+) earlier retries of this signature( succeeded)?")
    return Counter(
        re.sub(r"\d\.\d\d", "0.NN", history.sub("<history>", parts(line)))
        for line in lines
        if not _TRANSIENT.search(line)
    )


def readme_block() -> list[str]:
    text = README.read_text()
    inner = text.split(BEGIN, 1)[1].split(END, 1)[0]
    return [line for line in inner.strip().splitlines() if not line.startswith("```")]


def write_readme_block(lines: list[str]) -> None:
    text = README.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(head + BEGIN + "\n```\n" + "\n".join(lines) + "\n```\n" + END + tail)


async def test_the_readme_transcript_is_what_the_demo_prints(
    demo_stack: tuple[AwfdrsClient, str],
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
) -> None:
    demo, text = await play_demo(demo_stack, committed_sessions, owner_engine, UI)
    lines = mask(text)
    # The README's narrative, checked against the vendor's own request log: three payments,
    # each sent twice (a 503, then a 200), each executed once; the two invoices paged.
    executed = demo.vendor.executions()
    assert len(executed) == 3
    assert set(executed.values()) == {1}
    assert sorted(r.status for r in demo.vendor.requests) == [200, 200, 200, 503, 503, 503]
    [page] = demo.receiver.events()  # one page for the invoices, listing both requests
    assert page["payload"]["source"] == "awfdrs/demo/invoicing"
    assert len(page["payload"]["custom_details"]["requests"]) == 2, page
    if os.environ.get("AWFDRS_WRITE_README_DEMO"):
        write_readme_block(lines)
    assert compared(readme_block()) == compared(lines), "\n".join(lines)
