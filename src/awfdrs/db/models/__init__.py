"""The tables; importing this package registers them all on ``Base.metadata``."""

from awfdrs.db.base import Base, BaseModel
from awfdrs.db.models.actions import Action
from awfdrs.db.models.api_keys import ApiKey
from awfdrs.db.models.audit import AuditEntry, AuditHead
from awfdrs.db.models.decisions import Decision
from awfdrs.db.models.events import Event
from awfdrs.db.models.fuse_episodes import FuseEpisode
from awfdrs.db.models.incidents import Incident
from awfdrs.db.models.kill_switches import KillSwitch
from awfdrs.db.models.outbox import OutboxEntry
from awfdrs.db.models.remediation_requests import RemediationRequest, RequestKey
from awfdrs.db.models.spent_credentials import SpentCredential
from awfdrs.db.models.tenants import Tenant
from awfdrs.db.models.vendor_calls import VendorCall
from awfdrs.db.models.vendors import Vendor, VendorConnection
from awfdrs.db.models.workflow_event_counts import WorkflowEventCount
from awfdrs.db.models.workflows import Workflow

__all__ = [
    "Action",
    "ApiKey",
    "AuditEntry",
    "AuditHead",
    "Base",
    "BaseModel",
    "Decision",
    "Event",
    "FuseEpisode",
    "Incident",
    "KillSwitch",
    "OutboxEntry",
    "RemediationRequest",
    "RequestKey",
    "SpentCredential",
    "Tenant",
    "Vendor",
    "VendorCall",
    "VendorConnection",
    "Workflow",
    "WorkflowEventCount",
]
