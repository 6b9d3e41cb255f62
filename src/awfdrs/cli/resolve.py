"""From what a person types to what the database keys on: names, ids, and unique id prefixes.

A name that is not found is answered with the closest existing names ("did you mean"); an id
prefix that matches several rows lists them, so the person can type one more character.
"""

from __future__ import annotations

import difflib
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from awfdrs.cli.common import Databases
from awfdrs.config import ENV_PREFIX
from awfdrs.errors import ConfigError

if TYPE_CHECKING:  # at run time imported where used, as the rest of this module does
    from awfdrs.db.repositories import ApiKeyRepository, KillSwitchRepository

# The demo and the tables print 8 characters; fewer than 4 would match too much to be useful.
MIN_PREFIX = 4
SHOWN_CANDIDATES = 10
_PREFIX = re.compile(r"^[0-9a-f-]+$")


def did_you_mean(kind: str, value: str, names: Iterable[str]) -> str:
    """``no tenant named 'acm'; did you mean 'acme'?`` (or the names there are, when few)."""
    known = sorted(set(names))
    close = difflib.get_close_matches(value, known, n=3, cutoff=0.6)
    message = f"no {kind} named {value!r}"
    if close:
        return f"{message}; did you mean {' or '.join(repr(c) for c in close)}?"
    if not known:
        return f"{message} (there is none yet)"
    if len(known) <= 5:
        return f"{message} (there are: {', '.join(known)})"
    return message


def as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def id_prefix(kind: str, value: str) -> str:
    """``value`` as the start of an id's text form; :class:`ConfigError` when it cannot be one."""
    prefix = value.strip().lower()
    if not _PREFIX.match(prefix):
        raise ConfigError(f"{kind} {value!r}: not an id or the start of one (hex digits)")
    if len(prefix.replace("-", "")) < MIN_PREFIX:
        raise ConfigError(f"{kind} {value!r}: give at least {MIN_PREFIX} characters of the id")
    return prefix


def one_match(kind: str, value: str, found: Sequence[uuid.UUID]) -> uuid.UUID:
    """The single id ``found`` for a prefix; not found and ambiguous become one line each."""
    if not found:
        raise ConfigError(f"no {kind} id starts with {value!r}")
    if len(found) > 1:
        shown = ", ".join(str(i) for i in found[:SHOWN_CANDIDATES])
        more = " …" if len(found) > SHOWN_CANDIDATES else ""
        raise ConfigError(
            f"{kind} id prefix {value!r} is ambiguous: it matches {shown}{more}; "
            "give more characters"
        )
    return found[0]


async def resolve_tenant(dbs: Databases, value: str) -> uuid.UUID:
    """A tenant id, from an id or a name (names need the owner connection)."""
    from awfdrs.admin import find_tenant_by_name, list_tenants

    found_id = as_uuid(value)
    if found_id is not None:
        return found_id
    if not dbs.owner_configured:
        raise ConfigError(
            f"tenant {value!r}: a tenant name needs the owner's connection in "
            f"{ENV_PREFIX}MIGRATION_DATABASE_URL; give the tenant's id instead"
        )
    tenant = await find_tenant_by_name(dbs.owner, value)
    if tenant is None:
        names = [t.name for t in await list_tenants(dbs.owner)]
        raise ConfigError(did_you_mean("tenant", value, names))
    return tenant.id


async def resolve_workflow(dbs: Databases, tenant_id: uuid.UUID, value: str) -> uuid.UUID:
    """A workflow id of the tenant, from an id or a name."""
    from awfdrs.db.repositories import WorkflowRepository
    from awfdrs.db.session import tenant_session

    found_id = as_uuid(value)
    if found_id is not None:
        return found_id
    async with tenant_session(dbs.app, tenant_id) as session:
        workflows = WorkflowRepository(session, tenant_id=tenant_id)
        workflow = await workflows.find_by_name(value)
        names = [w.name for w in await workflows.list_all()] if workflow is None else []
    if workflow is None:
        raise ConfigError(did_you_mean("workflow", value, names))
    return workflow.id


async def check_vendor(dbs: Databases, name: str) -> None:
    """:class:`ConfigError` with the closest names when the catalog has no vendor ``name``."""
    from awfdrs.db.repositories import VendorRepository

    async with dbs.app() as session:
        vendors = VendorRepository(session)
        if await vendors.find_by_name(name) is not None:
            return
        names = [v.name for v in await vendors.list_all()]
    raise ConfigError(did_you_mean("vendor", name, names))


async def resolve_incident(dbs: Databases, value: str) -> tuple[uuid.UUID, uuid.UUID | None]:
    """(incident id, its tenant) from an id or a unique prefix of one, across tenants (the
    owner connection); the tenant is None when a full id was given and no row was read."""
    from awfdrs.db.repositories import IncidentDirectory

    found_id = as_uuid(value)
    if found_id is not None:
        return found_id, None
    prefix = id_prefix("incident", value)
    async with dbs.owner() as session:
        found = await IncidentDirectory(session).list_by_id_prefix(prefix, SHOWN_CANDIDATES + 1)
    incident_id = one_match("incident", value, [i for i, _ in found])
    return incident_id, dict(found)[incident_id]


async def resolve_key(dbs: Databases, tenant_id: uuid.UUID, value: str) -> uuid.UUID:
    """An API key's id of the tenant, from an id or a unique start of one."""
    from awfdrs.db.repositories import ApiKeyRepository

    return await _resolve_in_tenant(dbs, tenant_id, value, "key", ApiKeyRepository)


async def resolve_switch(dbs: Databases, tenant_id: uuid.UUID, value: str) -> uuid.UUID:
    """A kill switch's id of the tenant, from an id or a unique start of one."""
    from awfdrs.db.repositories import KillSwitchRepository

    return await _resolve_in_tenant(dbs, tenant_id, value, "kill switch", KillSwitchRepository)


async def _resolve_in_tenant(
    dbs: Databases,
    tenant_id: uuid.UUID,
    value: str,
    noun: str,
    repository: type[ApiKeyRepository] | type[KillSwitchRepository],
) -> uuid.UUID:
    from awfdrs.db.session import tenant_session

    found_id = as_uuid(value)
    if found_id is not None:
        return found_id
    prefix = id_prefix(noun, value)
    async with tenant_session(dbs.app, tenant_id) as session:
        rows = await repository(session, tenant_id=tenant_id).list_by_id_prefix(
            prefix, SHOWN_CANDIDATES + 1
        )
    return one_match(noun, value, [row.id for row in rows])
