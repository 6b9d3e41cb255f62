"""The repositories' one vocabulary (see :mod:`awfdrs.db.repositories`): a method's first word
says what it does, and a new verb has to be added here on purpose."""

from __future__ import annotations

import inspect

import awfdrs.db.repositories as repositories

READS = ("get", "find", "list", "count")
WRITES = ("add", "update", "delete", "upsert", "insert")
SEED_NAMES = {
    "get_by_id", "create", "update", "delete", "get_by_idempotency_key", "get_recent_events",
    "get_incidents_paginated", "get_incidents_by_status", "count_events",
}  # fmt: skip
# Domain commands: each changes state under a guard written in its own statement.
COMMANDS = {
    "activate", "apply_evidence", "cancel_pending", "claim", "claim_escalation", "close",
    "defer", "done", "expire_due", "finish", "lock_for_activation", "lock_for_enforcement",
    "lock_key", "mark_escalated", "mark_used", "note_deferral", "note_escalation_error",
    "note_phase", "open", "record_attempt_error", "record_command", "release", "settle_unsent",
    "spend", "transition", "verify",
}  # fmt: skip


def _public_methods() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name in repositories.__all__:
        cls = getattr(repositories, name)
        if not inspect.isclass(cls) or not hasattr(cls, "__init__"):
            continue
        methods = {
            attr
            for attr, value in inspect.getmembers(cls, inspect.iscoroutinefunction)
            if not attr.startswith("_")
        }
        if methods:
            found[name] = methods
    return found


def test_every_repository_method_speaks_the_vocabulary() -> None:
    strays = {
        f"{cls}.{method}"
        for cls, methods in _public_methods().items()
        for method in methods
        if method not in SEED_NAMES
        and method not in COMMANDS
        and method.split("_")[0] not in READS + WRITES
    }
    assert not strays, f"name these by the rule in awfdrs.db.repositories: {sorted(strays)}"


def test_the_listed_commands_still_exist() -> None:
    every = set().union(*_public_methods().values())
    assert every >= COMMANDS, f"no longer a repository method: {sorted(COMMANDS - every)}"
    assert {"get_by_id", "get_incidents_paginated", "count_events"} <= every
