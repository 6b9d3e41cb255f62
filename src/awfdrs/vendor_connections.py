"""Vendors and tenants' connections to them, as the CLI and the operator API manage them.

The vendor catalog is global (name, default base URL, default settings, a deployment-wide stop);
everything a tenant's retries use is its connection: base URL, credentials, rate limit and
breaker. Connection commands run as the application role inside the tenant's transaction, so
row-level security applies to them; the health view counts across tenants through a SECURITY
DEFINER function that returns counts only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.db.models import Vendor, VendorConnection
from awfdrs.db.models.vendors import CONNECTION_SETTINGS
from awfdrs.db.repositories import (
    AuditRepository,
    TenantDirectory,
    VendorConnectionRepository,
    VendorRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.errors import InvalidInputError, NotFoundError
from awfdrs.remediation import breaker
from awfdrs.remediation.credentials import CredentialCipher, masked

# Header names a connection may carry; the values are what must never be shown.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class VendorHealth:
    """A vendor of the catalog with its tenants' connections counted by breaker state."""

    id: uuid.UUID
    name: str
    base_url: str
    forced_open: bool
    forced_by: str | None
    forced_reason: str | None
    connections: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "base_url": self.base_url,
            "forced_open": self.forced_open,
            "forced_by": self.forced_by,
            "forced_reason": self.forced_reason,
            "connections": dict(sorted(self.connections.items())),
        }


@dataclass(frozen=True)
class ConnectionInfo:
    """A tenant's connection as views show it: credential header names, values masked."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    vendor: str
    base_url: str
    base_url_is_default: bool
    credentials: dict[str, str]
    breaker: str
    failure_count: int
    opened_at: datetime | None
    forced_open: bool
    forced_by: str | None
    forced_reason: str | None
    vendor_forced_open: bool
    blocked_until: datetime | None
    settings: dict[str, Any]

    @classmethod
    def of(cls, row: VendorConnection) -> ConnectionInfo:
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            vendor=row.name,
            base_url=row.effective_base_url,
            base_url_is_default=row.base_url is None,
            credentials=masked(list(row.credential_names)),
            breaker=row.circuit_breaker_state.value,
            failure_count=row.circuit_breaker_failure_count,
            opened_at=row.opened_at,
            forced_open=row.forced_open,
            forced_by=row.forced_by,
            forced_reason=row.forced_reason,
            vendor_forced_open=row.vendor.forced_open,
            blocked_until=row.blocked_until,
            settings={name: getattr(row, name) for name in CONNECTION_SETTINGS},
        )

    def as_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id),
            "vendor": self.vendor,
            "base_url": self.base_url,
            "base_url_is_default": self.base_url_is_default,
            "credentials": self.credentials,
            "breaker": self.breaker,
            "failure_count": self.failure_count,
            "opened_at": when(self.opened_at),
            "forced_open": self.forced_open,
            "forced_by": self.forced_by,
            "forced_reason": self.forced_reason,
            "vendor_forced_open": self.vendor_forced_open,
            "blocked_until": when(self.blocked_until),
            **self.settings,
        }


def parse_header(value: str) -> tuple[str, str]:
    """``'Name: value'`` as given to ``--header``; :class:`InvalidInputError` names the problem
    without echoing the value (it is a secret)."""
    name, sep, rest = value.partition(":")
    name, rest = name.strip(), rest.strip()
    if not sep or not name or not set(name) <= _TOKEN:
        # Without its colon the whole argument is in ``name``: the secret too. Never echoed.
        raise InvalidInputError(
            "header", "expected 'Name: value' (a header name, a colon, a value)"
        )
    check_header(name, rest)
    return name, rest


def check_header(name: str, value: str) -> None:
    if not name or not set(name) <= _TOKEN:
        raise InvalidInputError("credentials", "a name is not a header name (ASCII token)")
    if not value or not all(" " <= c <= "~" or c == "\t" for c in value):
        raise InvalidInputError(
            f"credentials.{name}", "the value must be non-empty printable ASCII on one line"
        )
    if name.lower() in ("host", "content-length", "transfer-encoding", "idempotency-key"):
        raise InvalidInputError(f"credentials.{name}", "set by awfdrs, not by a connection")


async def _vendor(session: AsyncSession, name: str) -> Vendor:
    vendor = await VendorRepository(session).find_by_name(name)
    if vendor is None:
        raise NotFoundError("Vendor", name)
    return vendor


async def _connection(
    session: AsyncSession, tenant_id: uuid.UUID, name: str, *, lock: bool = False
) -> VendorConnection:
    vendor = await _vendor(session, name)
    connections = VendorConnectionRepository(session, tenant_id=tenant_id)
    try:
        return await connections.get_for_vendor(vendor.id, lock=lock)
    except NotFoundError:
        raise NotFoundError("VendorConnection", f"{name} for this tenant") from None


async def connect(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    vendor_name: str,
    *,
    cipher: CredentialCipher,
    base_url: str | None = None,
    credentials: Mapping[str, str] | None = None,
    clear_credentials: bool = False,
    **settings: Any,
) -> ConnectionInfo:
    """Create the tenant's connection to a catalog vendor, or update it.

    A new connection copies the vendor's settings for what is not given; an update changes only
    what is given (``base_url=""`` goes back to the vendor's default). ``credentials`` replace
    the stored ones as a whole (encrypted with the first
    key; :class:`ConfigError` when no key is configured); ``None`` keeps them, unless the base
    URL changes: then the stored credentials are dropped with it.
    """
    unknown = set(settings) - set(CONNECTION_SETTINGS)
    if unknown:
        raise InvalidInputError(sorted(unknown)[0], "not a connection setting")
    given = {k: v for k, v in settings.items() if v is not None}
    if base_url and not base_url.startswith(("http://", "https://")):
        raise InvalidInputError("base_url", "must start with http:// or https://")
    values: dict[str, Any] = dict(given)
    if base_url is not None:
        values["base_url"] = base_url or None
    if credentials is not None:
        for name, value in credentials.items():
            check_header(name, value)
        values["credentials"] = cipher.encrypt(credentials) if credentials else None
        values["credential_names"] = sorted(credentials)
    elif clear_credentials:
        values["credentials"], values["credential_names"] = None, []
    async with tenant_session(sessions, tenant_id) as session:
        vendor = await _vendor(session, vendor_name)
        connections = VendorConnectionRepository(session, tenant_id=tenant_id)
        row = await connections.find_for_vendor(vendor.id)
        if row is None:
            defaults = {name: getattr(vendor, name) for name in CONNECTION_SETTINGS}
            row = await connections.add(vendor_id=vendor.id, **{**defaults, **values})
        else:
            moved = "base_url" in values and values["base_url"] != row.base_url
            if moved and credentials is None and row.credentials is not None:
                # Credentials follow the address they were given for: pointed elsewhere, they
                # would be sent to whoever answers there. They must be given again.
                values["credentials"], values["credential_names"] = None, []
            row = await connections.update(row, **values)
        await session.refresh(row, ["vendor"])
        return ConnectionInfo.of(row)


async def disconnect(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, vendor_name: str
) -> None:
    async with tenant_session(sessions, tenant_id) as session:
        row = await _connection(session, tenant_id, vendor_name)
        await VendorConnectionRepository(session, tenant_id=tenant_id).delete(row.id)


async def list_connections(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> list[ConnectionInfo]:
    async with tenant_session(sessions, tenant_id) as session:
        rows = await VendorConnectionRepository(session, tenant_id=tenant_id).list_all()
        return [ConnectionInfo.of(row) for row in rows]


async def force_connection_open(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    vendor_name: str,
    *,
    by: str,
    reason: str,
    audited: bool = False,
) -> ConnectionInfo:
    """Stop this tenant's calls to a vendor until :func:`release_connection`; other tenants'
    connections are untouched. ``audited``: append ``connection.force_open`` by ``by`` to the
    tenant's audit chain in the same transaction (the CLI's direct door; the API records the
    key's name itself)."""
    if not by.strip() or not reason.strip():
        raise InvalidInputError("by" if not by.strip() else "reason", "is required")
    async with tenant_session(sessions, tenant_id) as session:
        row = await _connection(session, tenant_id, vendor_name, lock=True)
        breaker.force_open(row, datetime.now(UTC), by=by, reason=reason)
        await session.flush()
        if audited:  # last: the append holds the chain's head until the commit
            await AuditRepository(session, tenant_id=tenant_id).record_command(
                by, "connection.force_open", ("vendor", vendor_name), {"reason": reason}
            )
        return ConnectionInfo.of(row)


async def release_connection(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    vendor_name: str,
    *,
    by: str | None = None,
    reason: str | None = None,
) -> ConnectionInfo:
    """End this tenant's forced stop; its next call probes the vendor (HALF_OPEN).

    With ``by``, who and why are appended to the tenant's audit chain in the same transaction
    (``operator.command`` ``connection.release``): the CLI's direct door. The API records the
    key's name itself, once the command has succeeded, and passes no ``by``.
    """
    if by is not None and not by.strip():
        raise InvalidInputError("by", "is required")
    async with tenant_session(sessions, tenant_id) as session:
        row = await _connection(session, tenant_id, vendor_name, lock=True)
        breaker.release(row, datetime.now(UTC))
        await session.flush()
        if by is not None:  # last: the append holds the chain's head until the commit
            await AuditRepository(session, tenant_id=tenant_id).record_command(
                by, "connection.release", ("vendor", vendor_name), {"reason": reason}
            )
        return ConnectionInfo.of(row)


async def vendor_health(sessions: async_sessionmaker[AsyncSession]) -> list[VendorHealth]:
    """Every vendor of the catalog with its connections counted by breaker state."""
    async with sessions() as session:
        vendors = VendorRepository(session)
        counts = await vendors.count_calls_by_vendor()
        return [
            VendorHealth(
                v.id,
                v.name,
                v.base_url,
                v.forced_open,
                v.forced_by,
                v.forced_reason,
                counts.get(v.id, {}),
            )
            for v in await vendors.list_all()
        ]


async def force_vendor_open(
    sessions: async_sessionmaker[AsyncSession], name: str, *, by: str, reason: str
) -> Vendor:
    """A deployment-wide stop: no worker calls ``name`` for any tenant until
    :func:`release_vendor`. The connections' own breakers are left as they are."""
    if not by.strip() or not reason.strip():
        raise InvalidInputError("by" if not by.strip() else "reason", "is required")
    async with sessions() as session, session.begin():
        vendors = VendorRepository(session)
        locked = await vendors.get_for_update((await _vendor(session, name)).id)
        await vendors.update(
            locked,
            forced_open=True,
            forced_by=by,
            forced_reason=reason,
            forced_at=datetime.now(UTC),
        )
        return locked


async def release_vendor(sessions: async_sessionmaker[AsyncSession], name: str) -> Vendor:
    """End the deployment-wide stop; each connection goes on from its own breaker state."""
    async with sessions() as session, session.begin():
        vendors = VendorRepository(session)
        locked = await vendors.get_for_update((await _vendor(session, name)).id)
        await vendors.update(locked, forced_open=False)
        return locked


async def rotate_credentials(
    app: async_sessionmaker[AsyncSession],
    owner: async_sessionmaker[AsyncSession],
    cipher: CredentialCipher,
) -> int:
    """Re-encrypt every tenant's connection credentials with the first configured key; returns
    how many were rewritten. Listing tenants needs the owner connection; each tenant's rows are
    rewritten as the application role in that tenant's transaction. Safe to run again (a token
    already under the first key is simply re-encrypted)."""
    async with owner() as session:
        tenants: Sequence[uuid.UUID] = [t.id for t in await TenantDirectory(session).list()]
    rotated = 0
    for tenant_id in tenants:
        async with tenant_session(app, tenant_id) as session:
            connections = VendorConnectionRepository(session, tenant_id=tenant_id)
            for row in await connections.list_all():
                if row.credentials is None:
                    continue
                locked = await connections.get_for_update(row.id)
                assert locked.credentials is not None
                await connections.update(locked, credentials=cipher.rotate(locked.credentials))
                rotated += 1
    return rotated
