"""One repository per aggregate; tenant scope fixed at construction (vendors: global).

One vocabulary, so a reader knows what a method does from its first word
(``tests/unit/test_repository_vocabulary.py`` keeps it):

- ``get…`` returns the row or raises :class:`awfdrs.errors.NotFoundError`;
- ``find…`` returns one row (or value) or None;
- ``list…`` returns a collection (possibly empty), ``count…`` numbers;
- ``add…`` inserts; ``update…``/``delete`` change configuration rows;
- every other public method is a named domain command that changes state under a guard in the
  statement itself (``claim``, ``finish``, ``transition``, ``activate``, ``release``, ``spend``,
  …), listed in that test, so a new verb is a decision rather than an accident.

The seed document's own names (``get_by_id``, ``create``, ``update``, ``delete``,
``get_by_idempotency_key``, ``get_recent_events``, ``get_incidents_paginated``,
``get_incidents_by_status``, ``count_events``) stay as the seed describes them: ``get_by_id``
returns None when absent, like ``find``.
"""

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
