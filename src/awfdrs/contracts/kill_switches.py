"""Kill switches: the signals, what is persisted, what the status query shows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from awfdrs.contracts.base import Actor, Contract, Reason


class KillSwitchSignal(BaseModel):
    """What the ``activate`` / ``release`` signals accept: deliberately lenient, so that a form
    filled in wrong in the Temporal UI arrives and is refused with its reason (visible in the
    ``status`` query and the workflow's details) instead of being dropped by the SDK."""

    model_config = ConfigDict(extra="allow")

    request_id: str | None = None
    workflow_id: str | None = None
    switch_id: str | None = None
    reason: str | None = None
    activated_by: str | None = None
    released_by: str | None = None
    credential: str | None = None
    expires_at: str | None = None
    duration_seconds: float | None = None


class ActivateKillSwitch(Contract):
    """Stop automation for the tenant (``workflow_id`` None) or one workflow."""

    reason: Reason
    activated_by: Actor
    workflow_id: uuid.UUID | None = None
    expires_at: AwareDatetime | None = None
    duration_seconds: float | None = Field(None, gt=0)
    request_id: str = Field(default_factory=lambda: str(uuid.uuid4()), max_length=64)
    # Optional: with a valid one (awfdrs.signing) the activator is a verified principal;
    # without, the name given is recorded as said at the Temporal door ("temporal:<name>").
    credential: str | None = Field(None, repr=False, max_length=4096)

    @model_validator(mode="after")
    def _one_expiry(self) -> ActivateKillSwitch:
        if self.expires_at is not None and self.duration_seconds is not None:
            raise ValueError("give expires_at or duration_seconds, not both")
        return self


class ReleaseKillSwitch(Contract):
    """Release one switch (``switch_id``) or every switch of a scope (``workflow_id``, None: the
    tenant-wide ones)."""

    released_by: Actor
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None
    workflow_id: uuid.UUID | None = None
    switch_id: uuid.UUID | None = None
    request_id: str = Field(default_factory=lambda: str(uuid.uuid4()), max_length=64)
    # Required: releasing resumes automation, so the worker verifies who asks (awfdrs.signing).
    credential: str | None = Field(None, repr=False, max_length=4096)


class KillSwitchInfo(Contract):
    switch_id: uuid.UUID
    tenant_id: uuid.UUID
    workflow_id: uuid.UUID | None
    reason: str
    activated_by: str
    activated_at: datetime
    expires_at: datetime | None = None


class KillSwitchRequest(Contract):
    """How a signal was handled: ``applied`` or ``refused`` with the message."""

    request_id: str
    kind: Literal["activate", "release"]
    outcome: Literal["pending", "applied", "refused"]
    message: str = ""
    switch_ids: list[uuid.UUID] = []


class KillSwitchStatus(Contract):
    tenant_id: uuid.UUID
    active: list[KillSwitchInfo]
    requests: list[KillSwitchRequest]


class KillSwitchInput(Contract):
    tenant_id: uuid.UUID
    requests: list[KillSwitchRequest] = []


class ActivateCommand(Contract):
    tenant_id: uuid.UUID
    switch_id: uuid.UUID
    activation: ActivateKillSwitch
    expires_at: datetime | None = None


class ReleaseCommand(Contract):
    tenant_id: uuid.UUID
    release: ReleaseKillSwitch


class TenantRef(Contract):
    tenant_id: uuid.UUID


class SwitchesChanged(Contract):
    """Result of persisting a kill-switch change: what is in force now."""

    changed: list[uuid.UUID]
    active: list[KillSwitchInfo]
    notified: int = 0
