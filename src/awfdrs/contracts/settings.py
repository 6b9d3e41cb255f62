"""Settings that live as JSON on tenant and workflow rows."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    Field,
    HttpUrl,
    StringConstraints,
)

from awfdrs.contracts.base import Contract
from awfdrs.enums import (
    RemediationMode,
)
from awfdrs.lifecycle import IncidentParams


class TenantSettings(Contract):
    """A tenant's knobs, stored as JSON on its row; every field has a sensible default."""

    grouping_window_seconds: float = Field(30.0, ge=0, le=86_400)
    verification_window_seconds: float = Field(300.0, ge=0, le=7 * 86_400)
    approval_timeout_seconds: float = Field(3_600.0, gt=0, le=30 * 86_400)
    confidence_threshold: float = Field(0.8, ge=0, le=1)
    max_attempts: int = Field(3, ge=1, le=20)
    action_timeout_seconds: float = Field(30.0, gt=0, le=3_600)
    action_retry_initial_seconds: float = Field(1.0, gt=0, le=600)
    action_max_attempts: int = Field(5, ge=1, le=50)
    escalation_webhook_url: HttpUrl | None = None
    escalation_routing_key: Annotated[str, StringConstraints(max_length=255)] | None = None
    remediation_mode: RemediationMode = RemediationMode.LIVE
    budget_actions_per_hour: int = Field(30, ge=0, le=100_000)
    budget_window_seconds: float = Field(3_600.0, gt=0, le=7 * 86_400)
    fuse_max_open_incidents: int = Field(20, ge=1, le=100_000)
    fuse_window_seconds: float = Field(300.0, gt=0, le=86_400)
    held_recheck_seconds: float = Field(60.0, gt=0, le=86_400)
    max_deferral_seconds: float = Field(900.0, gt=0, le=7 * 86_400)
    # Approving a plan that is not reversible, and releasing a kill switch, need a second
    # principal: someone other than the first approver, or than the switch's activator.
    two_person_rule: bool = True
    # The HTTP edge's per-tenant quota, a token bucket of events (not requests): refilled at
    # this rate, holding at most ``ingest_burst`` (default: two seconds' worth).
    ingest_events_per_second: float = Field(2_000.0, gt=0, le=1_000_000)
    ingest_burst: int | None = Field(None, ge=1, le=10_000_000)

    @property
    def effective_ingest_burst(self) -> float:
        return float(self.ingest_burst or max(1.0, 2 * self.ingest_events_per_second))


class WorkflowSettings(Contract):
    """A workflow's own knobs (JSON on its row); unset ones fall back to the tenant's."""

    remediation_mode: RemediationMode | None = None


def incident_params(settings: TenantSettings) -> IncidentParams:
    """The tenant settings an incident workflow uses, fixed when it opens."""
    return IncidentParams(**settings.model_dump(include=set(IncidentParams.model_fields)))


# Settings that are secrets: shown as MASK wherever settings are read back (API, CLI).
SECRET_SETTINGS = ("escalation_routing_key",)
MASK = "***"


def masked_settings(settings: TenantSettings) -> dict[str, Any]:
    """The settings as JSON, each secret that is set replaced by ``***``."""
    shown = settings.model_dump(mode="json")
    for name in SECRET_SETTINGS:
        if shown.get(name):
            shown[name] = MASK
    return shown


__all__ = [
    "MASK",
    "SECRET_SETTINGS",
    "IncidentParams",
    "TenantSettings",
    "WorkflowSettings",
    "incident_params",
    "masked_settings",
]
