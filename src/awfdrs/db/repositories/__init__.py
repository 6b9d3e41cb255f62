"""One repository per aggregate; tenant scope fixed at construction (vendors: global)."""

from awfdrs.db.repositories.actions import ActionRepository
from awfdrs.db.repositories.api_keys import ApiKeyDirectory, ApiKeyRepository, KeyRecord
from awfdrs.db.repositories.audit import AuditRepository
from awfdrs.db.repositories.decisions import DecisionRepository
from awfdrs.db.repositories.events import EventRepository
from awfdrs.db.repositories.fuse_episodes import FuseEpisodeRepository
from awfdrs.db.repositories.incidents import (
    IncidentDirectory,
    IncidentRepository,
    IncidentTouch,
)
from awfdrs.db.repositories.kill_switches import KillSwitchRepository
from awfdrs.db.repositories.metrics import MetricsRepository
from awfdrs.db.repositories.outbox import Claimed, Notice, OutboxQueue, OutboxRepository
from awfdrs.db.repositories.requests import RequestRepository
from awfdrs.db.repositories.spent_credentials import SpentCredentialRepository
from awfdrs.db.repositories.tenants import TenantDirectory, TenantRepository
from awfdrs.db.repositories.vendor_calls import VendorCallRepository
from awfdrs.db.repositories.vendor_connections import VendorConnectionRepository
from awfdrs.db.repositories.vendors import VendorRepository
from awfdrs.db.repositories.workflows import WorkflowRepository

__all__ = [
    "ActionRepository",
    "ApiKeyDirectory",
    "ApiKeyRepository",
    "AuditRepository",
    "Claimed",
    "DecisionRepository",
    "EventRepository",
    "FuseEpisodeRepository",
    "IncidentDirectory",
    "IncidentRepository",
    "IncidentTouch",
    "KeyRecord",
    "KillSwitchRepository",
    "MetricsRepository",
    "Notice",
    "OutboxQueue",
    "OutboxRepository",
    "RequestRepository",
    "SpentCredentialRepository",
    "TenantDirectory",
    "TenantRepository",
    "VendorCallRepository",
    "VendorConnectionRepository",
    "VendorRepository",
    "WorkflowRepository",
]
