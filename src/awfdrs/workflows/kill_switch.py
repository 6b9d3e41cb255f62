"""``KillSwitchWorkflow``: one per tenant, ``kill-switch-<tenant id>``, driven by signals.

``activate`` and ``release`` take plain JSON (the Temporal UI's signal form, the ``temporal``
CLI, ``awfdrs.client``). Each request is validated here and persisted by an activity; one that
is missing its reason or actor is refused, and the refusal is visible in the ``status`` query
and the workflow's current details. PostgreSQL holds the truth: this workflow serialises the
tenant's changes, expires switches on time and wakes what they held.
"""

from __future__ import annotations

import contextlib
from collections import deque
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from awfdrs.activities.kill_switches import KillSwitchActivities
    from awfdrs.constants import KILL_SWITCH_WORKFLOW
    from awfdrs.contracts import (
        ActivateCommand,
        ActivateKillSwitch,
        KillSwitchInfo,
        KillSwitchInput,
        KillSwitchRequest,
        KillSwitchSignal,
        KillSwitchStatus,
        ReleaseCommand,
        ReleaseKillSwitch,
        SwitchesChanged,
        TenantRef,
        describe_validation_error,
    )
    from awfdrs.workflows.policies import DB_RETRY, DB_TIMEOUT

KEPT_REQUESTS = 50
HISTORY_LIMIT = 2_000


@workflow.defn(name=KILL_SWITCH_WORKFLOW)
class KillSwitchWorkflow:
    @workflow.init
    def __init__(self, tenant: KillSwitchInput) -> None:
        self._tenant_id = tenant.tenant_id
        self._requests: deque[KillSwitchRequest] = deque(tenant.requests, maxlen=KEPT_REQUESTS)
        self._queue: deque[tuple[str, ActivateKillSwitch | ReleaseKillSwitch]] = deque()
        self._active: list[KillSwitchInfo] = []
        self._loaded = False

    @workflow.signal(
        description='Stop automation: {"reason", "activated_by", "workflow_id"?, '
        '"expires_at"? | "duration_seconds"?}'
    )
    def activate(self, request: KillSwitchSignal) -> None:
        self._accept("activate", request)

    @workflow.signal(
        description='Let automation resume: {"released_by", "reason"?, "workflow_id"? | '
        '"switch_id"?}; without either, the tenant-wide switches'
    )
    def release(self, request: KillSwitchSignal) -> None:
        self._accept("release", request)

    @workflow.query(description="Switches in force and how recent requests were handled.")
    def status(self) -> KillSwitchStatus:
        return KillSwitchStatus(
            tenant_id=self._tenant_id, active=self._active, requests=list(self._requests)
        )

    def _accept(self, kind: str, request: KillSwitchSignal) -> None:
        fields = request.model_dump(exclude_none=True)
        fields.setdefault("request_id", str(workflow.uuid4()))
        if any(r.request_id == fields["request_id"] for r in self._requests):
            return  # a client re-sent a signal it was not sure had arrived
        model: type[ActivateKillSwitch] | type[ReleaseKillSwitch] = (
            ActivateKillSwitch if kind == "activate" else ReleaseKillSwitch
        )
        allowed = set(model.model_fields)
        unknown = sorted(set(fields) - allowed)
        try:
            if unknown:
                raise ValueError(f"{', '.join(unknown)}: not a field of {kind}")
            command = model.model_validate({k: v for k, v in fields.items() if k in allowed})
        except (ValidationError, ValueError) as error:
            message = (
                describe_validation_error(error)
                if isinstance(error, ValidationError)
                else str(error)
            )
            self._record(fields["request_id"], kind, "refused", f"{kind} refused: {message}")
            workflow.logger.warning("kill switch %s refused: %s", kind, message)
            return
        self._record(command.request_id, kind, "pending")
        self._queue.append((kind, command))

    def _record(
        self,
        request_id: str,
        kind: str,
        outcome: str,
        message: str = "",
        switch_ids: list[object] | None = None,
    ) -> None:
        entry = KillSwitchRequest.model_validate(
            {
                "request_id": request_id,
                "kind": kind,
                "outcome": outcome,
                "message": message,
                "switch_ids": switch_ids or [],
            }
        )
        kept = [r for r in self._requests if r.request_id != request_id]
        self._requests = deque([*kept, entry], maxlen=KEPT_REQUESTS)
        self._publish(message if outcome == "refused" else None)

    def _publish(self, refusal: str | None = None) -> None:
        lines = [f"**{len(self._active)} kill switch(es) in force**"]
        for switch in self._active:
            scope = f"workflow `{switch.workflow_id}`" if switch.workflow_id else "whole tenant"
            until = f" until {switch.expires_at.isoformat()}" if switch.expires_at else ""
            lines.append(f"- {scope}{until}: {switch.reason} ({switch.activated_by})")
        if refusal:
            lines.append(f"Last refused: {refusal}")
        workflow.set_current_details("  \n".join(lines))

    @workflow.run
    async def run(self, tenant: KillSwitchInput) -> None:
        self._apply(
            await workflow.execute_activity_method(
                KillSwitchActivities.list_active,
                TenantRef(tenant_id=self._tenant_id),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )
        )
        while True:
            expiry = self._next_expiry()
            timeout = (expiry - workflow.now()).total_seconds() if expiry else None
            if timeout is None or timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: bool(self._queue) or self._should_continue_as_new(),
                        timeout=timeout,
                        timeout_summary="next kill switch expiry",
                    )
            if expiry is not None and workflow.now() >= expiry:
                await self._expire()
                if (self._next_expiry() or workflow.now()) < workflow.now():
                    # The database's clock has not reached the expiry yet: ask again shortly.
                    await workflow.sleep(1)
            while self._queue:
                kind, command = self._queue.popleft()
                await self._persist(kind, command)
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._queue:
                    workflow.continue_as_new(
                        KillSwitchInput(tenant_id=self._tenant_id, requests=list(self._requests))
                    )

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return not self._queue and (
            info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_LIMIT
        )

    def _next_expiry(self) -> datetime | None:
        expiries = [s.expires_at for s in self._active if s.expires_at is not None]
        return min(expiries) if expiries else None

    def _apply(self, changed: SwitchesChanged) -> None:
        self._active = changed.active
        self._publish()

    async def _expire(self) -> None:
        self._apply(
            await workflow.execute_activity_method(
                KillSwitchActivities.expire,
                TenantRef(tenant_id=self._tenant_id),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
                summary="expire kill switches",
            )
        )

    async def _persist(self, kind: str, command: ActivateKillSwitch | ReleaseKillSwitch) -> None:
        try:
            if isinstance(command, ActivateKillSwitch):
                expires_at = command.expires_at
                if command.duration_seconds is not None:
                    expires_at = workflow.now() + timedelta(seconds=command.duration_seconds)
                changed = await workflow.execute_activity_method(
                    KillSwitchActivities.activate,
                    ActivateCommand(
                        tenant_id=self._tenant_id,
                        switch_id=workflow.uuid4(),
                        activation=command,
                        expires_at=expires_at,
                    ),
                    start_to_close_timeout=DB_TIMEOUT,
                    retry_policy=DB_RETRY,
                    summary=f"activate: {command.reason}",
                )
                message = f"activated by {command.activated_by}"
            else:
                changed = await workflow.execute_activity_method(
                    KillSwitchActivities.release,
                    ReleaseCommand(tenant_id=self._tenant_id, release=command),
                    start_to_close_timeout=DB_TIMEOUT,
                    retry_policy=DB_RETRY,
                    summary=f"release by {command.released_by}",
                )
                message = (
                    f"released {len(changed.changed)} switch(es), "
                    f"woke {changed.notified} incident(s)"
                    if changed.changed
                    else "nothing in force matched: no switch released"
                )
        except ActivityError as error:
            cause = error.cause
            text = cause.message if isinstance(cause, ApplicationError) else str(error)
            self._record(command.request_id, kind, "refused", f"{kind} refused: {text}")
            return
        self._apply(changed)
        self._record(command.request_id, kind, "applied", message, list(changed.changed))
