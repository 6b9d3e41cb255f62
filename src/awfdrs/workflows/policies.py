"""Timeouts and retry policies the workflows share; all bounded (the default retries forever)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Errors that another attempt cannot fix: bad data, a violated constraint, a missing row.
PERMANENT_ERRORS = [
    "BatchRejected",
    "NotFoundError",
    "ValueError",
    "ValidationError",
    "ConflictError",
    "InvalidTransitionError",
    "DataError",
    "IntegrityError",
    "ProgrammingError",
    "RequestCannotBeSent",
]

DB_TIMEOUT = timedelta(seconds=60)
# About ten minutes of retries (regular activities): a database restart or failover is ridden
# out, a broken schema is not retried for ever.
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=15),
    maximum_attempts=50,
    non_retryable_error_types=PERMANENT_ERRORS,
)

# Local activities hold the workflow task while they run: an update is not even handled until
# the one running ends (measured: a 5 s local activity delayed an update's answer by 4 s). So
# each gets a budget of seconds; past it, the workflow waits on a durable timer and tries again,
# which lets updates, queries and worker shutdown through in between. Healthy, they take ms.
LOCAL_TIMEOUT = timedelta(seconds=2)
LOCAL_BUDGET = timedelta(seconds=3)
# The attempts are bounded too: measured on the dev server, a local activity failing fast
# with a retryable error (connection refused) went on retrying every 4 s far past its
# schedule-to-close, holding the workflow task ("Workflow task duration exceeded 5 seconds")
# and never reaching the durable timer. Five attempts span the 3 s budget (0, 0.2, 0.6, 1.4, 3).
LOCAL_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=4),
    maximum_attempts=5,
    non_retryable_error_types=PERMANENT_ERRORS,
)
# Between those tries: doubling from 1 s, at most a minute.
LOCAL_BACKOFF_FIRST = timedelta(seconds=1)
LOCAL_BACKOFF_MAX = timedelta(seconds=60)
