"""One incident's state in words, for the Temporal UI, the CLI, the API and the console."""

from __future__ import annotations

from datetime import UTC, datetime

from awfdrs.enums import Phase
from awfdrs.lifecycle.state import IncidentState, Value


class Description(Value):
    """``headline``: one line; ``waiting_for``: what must happen for it to move on, or None
    while it moves by itself; ``needs_a_human``: the console's first queue."""

    headline: str
    waiting_for: str | None
    needs_a_human: bool
    requests: str


def waiting_for(state: IncidentState) -> str | None:
    match state.phase:
        case Phase.AWAITING_APPROVAL:
            plan = state.plan.plan_id if state.plan else "?"
            return f"approval of {plan}"
        case Phase.HELD:
            return state.held_by.value if state.held_by else "a control"
        case Phase.AWAITING_OPERATOR:
            return "an operator to resolve"
        case Phase.GROUPING | Phase.VERIFYING:
            return "the window to close" if state.deadline else None
        case _:
            return None


def describe(state: IncidentState, now: datetime | None = None) -> Description:
    until = ""
    if state.deadline is not None and state.phase in (
        Phase.GROUPING,
        Phase.VERIFYING,
        Phase.AWAITING_APPROVAL,
        Phase.HELD,
    ):
        until = f" (until {state.deadline.astimezone(UTC).isoformat(timespec='seconds')})"
    return Description(
        headline=f"{state.details}{until}",
        waiting_for=waiting_for(state),
        needs_a_human=state.phase.needs_a_human,
        requests=state.tally.words(),
    )


def markdown(state: IncidentState, title: str) -> str:
    """What the Temporal UI shows as the workflow's current details."""
    described = describe(state)
    lines = [
        f"**{state.status.value}** · {state.severity.value} · {state.phase.value} · "
        f"attempt {state.attempt}",
        described.headline,
        f"Requests: {described.requests}",
    ]
    if state.plan is not None:
        lines.append(f"Plan `{state.plan.plan_id}`: {state.plan.words()}")
        lines.extend(f"- {r.words()} (key `{r.idempotency_key}`)" for r in state.plan.requests)
    if described.waiting_for:
        lines.append(f"Waiting for: {described.waiting_for}")
    return "  \n".join(lines)
