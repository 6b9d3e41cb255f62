"""Timeouts and retry policies the workflows share; all bounded (the default retries forever)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

DB_TIMEOUT = timedelta(seconds=60)
# About ten minutes of retries: a database restart or failover is ridden out, a broken schema is
# not retried for ever.
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=15),
    maximum_attempts=50,
    non_retryable_error_types=["BatchRejected", "NotFoundError", "ValueError"],
)
