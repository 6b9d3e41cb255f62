"""The operator API's vendor routes: the key's tenant's vendor connections.

Everything here acts on the connection of the key's tenant only: another tenant's connection is
not addressable (a vendor the tenant has no connection to is a 404), so an operator can stop
its own tenant's calls to a vendor and nobody else's. Credentials are write-only: ``PUT``
takes them (admin keys), and no answer carries a value, only the header names with ``***``.
The deployment-wide stop of a vendor is not here: it is a deployment admin's, through the CLI.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from awfdrs.api.audit import record_command
from awfdrs.api.auth import Principal
from awfdrs.api.edge import authenticated, edge_of, respond, respond_list
from awfdrs.api.errors import ApiError
from awfdrs.api.keys import Role
from awfdrs.api.operator import ACT_ERRORS, READ_ERRORS, Actor, Reader, _errors, _guarded
from awfdrs.api.operator_schemas import ForceOpen
from awfdrs.errors import ConfigError, InvalidInputError
from awfdrs.remediation.credentials import CredentialCipher
from awfdrs.vendor_connections import ConnectionInfo

router = APIRouter(prefix="/v1", tags=["vendors"])
VendorName = Annotated[str, Path(min_length=1, max_length=255, description="Vendor name")]
HeaderName = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
]
HeaderValue = Annotated[str, Field(min_length=1, max_length=8192)]


async def admin(request: Request) -> Principal:
    principal = await authenticated(request)
    if principal.role is not Role.ADMIN:
        raise ApiError(
            403,
            "forbidden",
            f"a {principal.role.value} key cannot change a vendor connection or its credentials; "
            "this needs an admin key of this tenant",
        )
    return principal


Admin = Annotated[Principal, Depends(admin)]


class ConnectionView(BaseModel):
    """A connection of the key's tenant: where its retries go, its breaker and limits, and the
    names of its credential headers (values are never returned: ``***``)."""

    vendor: str
    base_url: str
    base_url_is_default: bool
    credentials: dict[str, str]
    breaker: str
    failure_count: int
    forced_open: bool
    forced_by: str | None
    forced_reason: str | None
    vendor_forced_open: bool
    rate_limit_per_minute: int
    rate_limit_window_seconds: float
    failure_threshold: int
    open_seconds: int
    half_open_max_calls: int
    failure_rate_threshold: float | None

    @classmethod
    def of(cls, info: ConnectionInfo) -> ConnectionView:
        return cls.model_validate(
            {
                "vendor": info.vendor,
                "base_url": info.base_url,
                "base_url_is_default": info.base_url_is_default,
                "credentials": info.credentials,
                "breaker": info.breaker,
                "failure_count": info.failure_count,
                "forced_open": info.forced_open,
                "forced_by": info.forced_by,
                "forced_reason": info.forced_reason,
                "vendor_forced_open": info.vendor_forced_open,
                **info.settings,
            }
        )


class ConnectionBody(BaseModel):
    """The connection to create or change; what is left out stays as it is (a new connection
    takes the vendor's defaults). ``credentials`` replaces the stored headers as a whole
    (``{}`` removes them)."""

    model_config = ConfigDict(extra="forbid")

    base_url: AnyHttpUrl | None = None
    credentials: dict[HeaderName, HeaderValue] | None = Field(default=None, max_length=20)
    rate_limit_per_minute: int | None = Field(default=None, gt=0, le=1_000_000)
    rate_limit_window_seconds: float | None = Field(default=None, gt=0, le=86_400)
    failure_threshold: int | None = Field(default=None, gt=0, le=1_000_000)
    open_seconds: int | None = Field(default=None, ge=0, le=86_400)
    half_open_max_calls: int | None = Field(default=None, gt=0, le=1000)
    failure_rate_threshold: float | None = Field(default=None, gt=0, le=1)


@router.get(
    "/vendors",
    response_model=list[ConnectionView],
    responses=READ_ERRORS,
    summary="The key's tenant's vendor connections with their breakers (no credential values)",
)
async def get_vendors(request: Request, principal: Reader) -> Response:
    return respond_list(await connections_of(request, principal))


async def connections_of(request: Request, principal: Principal) -> list[ConnectionView]:
    """The principal's tenant's vendor connections with their breakers (API and console)."""
    from awfdrs.vendor_connections import list_connections

    async def connections() -> list[ConnectionView]:
        found = await list_connections(edge_of(request).sessions, principal.tenant_id)
        return [ConnectionView.of(c) for c in found]

    return await _guarded(connections())


@router.post(
    "/vendors/{name}/force-open",
    response_model=ConnectionView,
    responses=ACT_ERRORS,
    summary="Stop the key's tenant's calls to a vendor until released (other tenants go on)",
)
async def force_open(
    request: Request, principal: Actor, name: VendorName, body: ForceOpen
) -> Response:
    return respond(await stop_connection(request, principal, name, body))


async def stop_connection(
    request: Request, principal: Principal, name: str, body: ForceOpen
) -> ConnectionView:
    """Force the principal's tenant's connection to ``name`` open, recorded in the audit (API
    and console; the caller has checked the role). 404 when the tenant has no such one."""
    from awfdrs.vendor_connections import force_connection_open

    async def act() -> ConnectionView:
        info = await force_connection_open(
            edge_of(request).sessions,
            principal.tenant_id,
            name,
            by=principal.actor,
            reason=body.reason,
        )
        await record_command(request, principal, "connection.force_open", ("vendor", name), body)
        return ConnectionView.of(info)

    return await _guarded(act())


@router.post(
    "/vendors/{name}/release",
    response_model=ConnectionView,
    responses=ACT_ERRORS,
    summary="End the key's tenant's forced stop of a vendor; its next call probes the vendor",
)
async def release_vendor(request: Request, principal: Actor, name: VendorName) -> Response:
    return respond(await release_stopped_connection(request, principal, name))


async def release_stopped_connection(
    request: Request, principal: Principal, name: str
) -> ConnectionView:
    """End the principal's tenant's forced stop of ``name``, recorded in the audit (API and
    console; the caller has checked the role)."""
    from awfdrs.vendor_connections import release_connection

    async def act() -> ConnectionView:
        info = await release_connection(edge_of(request).sessions, principal.tenant_id, name)
        await record_command(request, principal, "connection.release", ("vendor", name), None)
        return ConnectionView.of(info)

    return await _guarded(act())


@router.put(
    "/vendors/{name}/connection",
    response_model=ConnectionView,
    responses={**ACT_ERRORS, **_errors(503)},
    summary="Create or change the key's tenant's connection to a vendor (admin keys); "
    "credentials are write-only",
)
async def put_connection(
    request: Request, principal: Admin, name: VendorName, body: ConnectionBody
) -> Response:
    from awfdrs.vendor_connections import connect

    edge = edge_of(request)
    settings: dict[str, Any] = body.model_dump(exclude={"base_url", "credentials"})
    if body.base_url is not None:
        # Where a tenant's credentials and requests go is the deployment's decision: a key
        # could otherwise send them, or the worker's network position, anywhere.
        raise ApiError(
            400,
            "invalid",
            "base_url: a connection's address is set by the deployment administrator "
            "(awfdrs vendors connect --base-url); an admin key changes its credentials and "
            "limits",
        )

    async def act() -> ConnectionView:
        try:
            info = await connect(
                edge.sessions,
                principal.tenant_id,
                name,
                cipher=CredentialCipher.from_settings(edge.settings),
                base_url=str(body.base_url) if body.base_url is not None else None,
                credentials=body.credentials,
                **settings,
            )
        except ConfigError as error:
            raise ApiError(503, "not_configured", str(error)) from None
        except InvalidInputError:
            raise
        recorded = {**settings, "credential_names": sorted(body.credentials or {})}
        await record_command(request, principal, "connection.change", ("vendor", name), recorded)
        return ConnectionView.of(info)

    return respond(await _guarded(act()))
