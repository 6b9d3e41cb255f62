"""API keys as text: making one, reading one back, hashing, and managing them for a tenant.

A key reads ``awfdrs_<prefix>_<secret>``: the 12-hex-digit prefix is public (it finds the row and
is what ``keys list`` shows), the secret is 256 random bits. Only SHA-256 of the whole key is
stored; the API compares digests with :func:`hmac.compare_digest`, so the time a wrong key takes
does not depend on how much of it was right.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.db.repositories import ApiKeyDirectory, ApiKeyRepository
from awfdrs.db.session import tenant_session
from awfdrs.errors import InvalidInputError, NotFoundError
from awfdrs.words import principal_key

KEY_PATTERN = re.compile(r"awfdrs_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
MAX_NAME = 255


class Role(StrEnum):
    """What a key may do. ``ingest`` sends events; the others are for the operator API."""

    INGEST = "ingest"
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


# Who may send events: the senders' own role, and admin (which may do everything).
INGEST_ROLES = frozenset({Role.INGEST, Role.ADMIN})
# The operator API: viewers read; operators also act; admin (for now) everything an operator
# can. An ingest key reads nothing: a leaked sender's key must not reveal incidents.
READ_ROLES = frozenset({Role.VIEWER, Role.OPERATOR, Role.ADMIN})
ACT_ROLES = frozenset({Role.OPERATOR, Role.ADMIN})
# Keys whose name is recorded as the actor of what they do: named by a person, not by default.
ACTING_ROLES = ACT_ROLES


RESERVED_PREFIXES = ("temporal:", "key:", "sso:")
# Names that stand for someone other than a key: temporal:<name> (the Temporal door) and
# sso:<subject> (a console SSO session). A key named so (created before ``sso:`` was reserved)
# is refused at authentication, so it cannot act as, or be recorded as, that person.
IMPERSONATING_PREFIXES = ("temporal:", "sso:")


def impersonates(name: str) -> bool:
    """True when a key's name passes for a principal that is not a key."""
    return principal_key(name).startswith(IMPERSONATING_PREFIXES)


def default_name(role: Role, prefix: str) -> str:
    """A key created without a name: an acting key's name is the actor recorded on every
    decision it makes, so it falls back to something that identifies the key, not its role."""
    return f"key:{prefix}" if role in ACTING_ROLES else f"{role.value} key"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def split_key(presented: str) -> str | None:
    """The prefix of a well-formed key, else None (nothing is looked up for a malformed one)."""
    match = KEY_PATTERN.fullmatch(presented)
    return match.group(1) if match else None


def matches(presented: str, stored_hash: str) -> bool:
    return hmac.compare_digest(digest(presented).encode(), stored_hash.encode())


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: everything but the secret."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    role: Role
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def as_json(self) -> dict[str, object]:
        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id),
            "name": self.name,
            "role": self.role.value,
            "prefix": self.prefix,
            "state": self.state(),
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


def _info(row: object) -> KeyInfo:
    return KeyInfo(
        id=row.id,  # type: ignore[attr-defined]
        tenant_id=row.tenant_id,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        role=Role(row.role),  # type: ignore[attr-defined]
        prefix=row.prefix,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        expires_at=row.expires_at,  # type: ignore[attr-defined]
        revoked_at=row.revoked_at,  # type: ignore[attr-defined]
        last_used_at=row.last_used_at,  # type: ignore[attr-defined]
    )


async def create_key(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    role: Role,
    *,
    name: str = "",
    expires_in: timedelta | None = None,
) -> tuple[str, KeyInfo]:
    """A new key for the tenant: the key text (shown once, never stored) and its record.

    Raises :class:`NotFoundError` when the tenant does not exist.
    """
    from awfdrs.db.repositories import TenantRepository

    if len(name) > MAX_NAME or "\x00" in name:
        raise InvalidInputError("name", f"at most {MAX_NAME} characters, no NUL")
    if principal_key(name).startswith(RESERVED_PREFIXES):
        # temporal:<name> marks a name typed at the Temporal door, key:<prefix> a key with no
        # name, sso:<subject> a person signed in to the console by SSO: a key named so could
        # pass for any of them.
        raise InvalidInputError("name", "must not start with temporal:, key: or sso:")
    prefix = secrets.token_hex(6)
    key = f"awfdrs_{prefix}_{secrets.token_urlsafe(32)}"
    assert split_key(key) == prefix
    async with tenant_session(sessions, tenant_id) as session:
        await TenantRepository(session, tenant_id=tenant_id).get_current()
        row = await ApiKeyRepository(session, tenant_id=tenant_id).add(
            name=name.strip() or default_name(role, prefix),
            role=role.value,
            prefix=prefix,
            secret_hash=digest(key),
            expires_at=datetime.now(UTC) + expires_in if expires_in else None,
        )
        return key, _info(row)


async def list_keys(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> list[KeyInfo]:
    async with tenant_session(sessions, tenant_id) as session:
        return [_info(r) for r in await ApiKeyRepository(session, tenant_id=tenant_id).list_all()]


async def revoke_key(sessions: async_sessionmaker[AsyncSession], key: str) -> KeyInfo:
    """Revoke a key by id or prefix; revoking it again keeps the first revocation time.

    The key's tenant is found through a SECURITY DEFINER function; the update runs in that
    tenant's transaction, under row-level security. :class:`NotFoundError` when unknown.
    """
    async with sessions() as session, session.begin():
        directory = ApiKeyDirectory(session)
        try:
            key_id: uuid.UUID | None = uuid.UUID(key)
        except ValueError:
            record = await directory.find_by_prefix(key.strip().lower())
            key_id = record.id if record else None
        tenant_id = await directory.find_tenant_of(key_id) if key_id else None
    if key_id is None or tenant_id is None:
        raise NotFoundError("ApiKey", key)
    async with tenant_session(sessions, tenant_id) as session:
        keys = ApiKeyRepository(session, tenant_id=tenant_id)
        row = await keys.get(key_id)
        if row.revoked_at is None:
            await keys.update(row, revoked_at=datetime.now(UTC))
        return _info(row)
