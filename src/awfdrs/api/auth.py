"""Bearer keys → a principal (tenant, role, the tenant's quota), with a short cache.

Each presented key's row is read through ``awfdrs_api_key_lookup`` (the tenant is not known yet,
so row-level security would show nothing) and the tenant's settings in that tenant's own
transaction. Both are cached per key prefix for :data:`CACHE_SECONDS`, so a hot sender costs no
query per request, and a revocation takes effect within that time; an expiry is checked
against the cached expiry on every request, so it takes effect on the second.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.api.errors import ApiError
from awfdrs.api.keys import (
    ACT_ROLES,
    INGEST_ROLES,
    READ_ROLES,
    Role,
    impersonates,
    matches,
    split_key,
)
from awfdrs.contracts import TenantSettings
from awfdrs.db.repositories import (
    ApiKeyDirectory,
    ApiKeyRepository,
    KeyRecord,
    TenantRepository,
)
from awfdrs.db.session import tenant_session

log = logging.getLogger("awfdrs.api.auth")
# Under the 5 s the issue allows between a revocation and its refusal, with room for a request
# that started just before the entry expired.
CACHE_SECONDS = 4.0
MAX_ENTRIES = 10_000
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="awfdrs"'}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key, its tenant and role, and the tenant's quota settings."""

    key_id: uuid.UUID
    tenant_id: uuid.UUID
    role: Role
    tenant_active: bool
    settings: TenantSettings
    key_name: str = ""
    key_prefix: str = ""

    @property
    def actor(self) -> str:
        """Who is recorded as having acted: the key's name (``key:<prefix>`` if it has none).
        Never taken from a request body, so a caller cannot act in someone else's name."""
        return self.key_name.strip() or f"key:{self.key_prefix}"


@dataclass
class _Entry:
    record: KeyRecord | None
    tenant_active: bool
    settings: TenantSettings
    fetched: float
    name: str = ""


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers=CHALLENGE)


def _usable(record: KeyRecord, entry: _Entry, prefix: str) -> Principal:
    """The principal of a key found and matched: 401 when it is revoked, expired, or named as
    a principal that is not a key."""
    if record.revoked_at is not None:
        raise unauthorized("the key was revoked")
    if record.expires_at is not None and record.expires_at <= datetime.now(UTC):
        raise unauthorized("the key has expired")
    if impersonates(entry.name):
        raise unauthorized(
            "the key's name starts with a reserved prefix (sso: or temporal:): "
            "create a new key with another name"
        )
    return Principal(
        key_id=record.id,
        tenant_id=record.tenant_id,
        role=Role(record.role),
        tenant_active=entry.tenant_active,
        settings=entry.settings,
        key_name=entry.name,
        key_prefix=prefix,
    )


class KeyCache:
    """Verifies presented keys; one database look-up per key prefix per cache period."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], ttl: float = CACHE_SECONDS
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._entries: dict[str, _Entry] = {}
        self._pending: dict[str, asyncio.Future[_Entry]] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def _fetch(self, prefix: str) -> _Entry:
        # The entry's age counts from before the read: a revocation committed while this
        # look-up waited for a connection is at most ``ttl`` old when the entry expires.
        started = time.monotonic()
        async with self._sessions() as session, session.begin():
            record = await ApiKeyDirectory(session).find_by_prefix(prefix)
        if record is None:
            return _Entry(None, False, TenantSettings(), started)
        async with tenant_session(self._sessions, record.tenant_id) as session:
            tenant = await TenantRepository(session, tenant_id=record.tenant_id).find(
                record.tenant_id
            )
            active = tenant is not None and tenant.is_active
            settings = TenantSettings.model_validate(tenant.settings if tenant else {})
            # The name is read here, under the tenant's row-level security, rather than
            # through the SECURITY DEFINER look-up: that function stays as narrow as it was.
            key = await ApiKeyRepository(session, tenant_id=record.tenant_id).find(record.id)
            name = key.name if key is not None else ""
        return _Entry(record, active, settings, started, name)

    async def _entry(self, prefix: str) -> tuple[_Entry, bool]:
        """(entry, fresh): fresh when read from the database for this call."""
        entry = self._entries.get(prefix)
        if entry is not None and time.monotonic() - entry.fetched < self._ttl:
            return entry, False
        pending = self._pending.get(prefix)
        if pending is not None:  # a burst on a cold key costs one look-up, not one per request
            return await asyncio.shield(pending), False
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._pending[prefix] = future
        try:
            entry = await self._fetch(prefix)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            del self._pending[prefix]
        future.set_result(entry)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()  # unknown prefixes sent by a scanner cannot grow it forever
        self._entries[prefix] = entry
        return entry, True

    async def authenticate(self, presented: str) -> Principal:
        """The principal of a presented key; :class:`ApiError` 401 naming what is wrong."""
        prefix = split_key(presented)
        if prefix is None:
            raise unauthorized("the key is malformed: expected awfdrs_<prefix>_<secret>")
        entry, fresh = await self._entry(prefix)
        record = entry.record
        if record is None or not matches(presented, record.secret_hash):
            raise unauthorized("the key is not valid")
        principal = _usable(record, entry, prefix)
        if fresh:
            task = asyncio.get_running_loop().create_task(self._mark_used(record.id))
            self._background.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._background.discard)
        return principal

    async def recheck(self, prefix: str, key_id: uuid.UUID) -> Principal:
        """The principal of a key already verified once (a console session holds its prefix and
        id, never its secret): 401 once it is revoked (within the cache period), expired, or no
        longer that key. Read through the same cache as :meth:`authenticate`."""
        entry, _ = await self._entry(prefix)
        record = entry.record
        if record is None or record.id != key_id:
            raise unauthorized("the key is not valid")
        return _usable(record, entry, prefix)

    async def _mark_used(self, key_id: uuid.UUID) -> None:
        try:
            async with self._sessions() as session, session.begin():
                await ApiKeyDirectory(session).mark_used(key_id)
        except Exception:  # last_used_at is informative; never fail a request over it
            log.debug("could not record the use of key %s", key_id, exc_info=True)


def bearer(authorization: str | None) -> str:
    """The key in ``Authorization: Bearer <key>``; 401 when absent or of another scheme."""
    if not authorization:
        raise unauthorized("missing Authorization: Bearer <key> header")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise unauthorized("the Authorization header must be Bearer <key>")
    return value.strip()


def require_ingest(principal: Principal) -> None:
    if principal.role not in INGEST_ROLES:
        raise ApiError(
            403,
            "forbidden",
            f"a {principal.role.value} key cannot send events; use a key with role ingest",
        )
    if not principal.tenant_active:
        raise ApiError(403, "tenant_inactive", f"tenant {principal.tenant_id} is inactive")


def require_reader(principal: Principal) -> None:
    """403 unless the key may read the operator API (viewer, operator, admin)."""
    if principal.role not in READ_ROLES:
        raise ApiError(
            403,
            "forbidden",
            f"a {principal.role.value} key cannot use the operator API; use a viewer, operator "
            "or admin key of this tenant",
        )


def require_actor(principal: Principal) -> None:
    """403 unless the key may act (operator, admin); a viewer only reads."""
    if principal.role not in ACT_ROLES:
        raise ApiError(
            403,
            "forbidden",
            f"a {principal.role.value} key can only read; acting needs an operator or admin key",
        )
