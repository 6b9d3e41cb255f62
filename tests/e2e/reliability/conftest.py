from __future__ import annotations

from typing import Any

# Fast windows, short timeouts, no confidence bar, budget or fuse in the way: the tests inject
# the faults, they do not test the gate.
RELIABLE = {
    "grouping_window_seconds": 0.3,
    "confidence_threshold": 0.0,
    "verification_window_seconds": 0.5,
    "action_timeout_seconds": 3,
    "action_retry_initial_seconds": 0.2,
    "action_max_attempts": 20,
    "max_attempts": 5,
    "approval_timeout_seconds": 3600,
    "budget_actions_per_hour": 100_000,
    "fuse_max_open_incidents": 100_000,
    "max_deferral_seconds": 600,
}

# The vendor's default 60 calls a minute would make the runs wait on the rate limit, not on the
# faults they inject.
FAST_VENDOR: dict[str, Any] = {"rate_limit_per_minute": 6000}
