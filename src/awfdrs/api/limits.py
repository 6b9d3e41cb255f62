"""Limits the edge enforces itself: body size while reading, tenants' quotas, requests in flight.

None of them is left to a proxy in front: the service must hold on its own when exposed
directly, and each refusal says which limit was met.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from awfdrs.api.errors import ApiError


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"request body exceeds the limit of {limit} bytes ({_size(limit)}); send fewer events "
        "per request",
    )


async def read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit``: a declared Content-Length
    over the limit is refused before reading, and a chunked or lying body is counted while it
    streams, so an oversized one is never held in memory whole."""
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length: not a number") from None
        if length > limit:
            raise too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


@dataclass
class _Bucket:
    tokens: float
    at: float


class Quotas:
    """A token bucket of events per tenant, in this process (each API replica keeps its own,
    so N replicas behind a balancer allow up to N times the rate; see docs/API.md).

    A request is admitted when the bucket holds a token per event (or is full, for a batch
    larger than the burst) and then pays for all its events; a batch larger than the burst
    takes the bucket below zero, and that debt holds the tenant's next requests back.
    """

    def __init__(self) -> None:
        self._buckets: dict[uuid.UUID, _Bucket] = {}
        self._clock = time.monotonic

    def take(self, tenant_id: uuid.UUID, events: int, rate: float, burst: float) -> float | None:
        """None when admitted (and charged), else the seconds until it would be."""
        now = self._clock()
        bucket = self._buckets.get(tenant_id)
        if bucket is None:
            bucket = self._buckets[tenant_id] = _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        needed = min(float(events), burst)
        if events > 0 and bucket.tokens < needed:
            return (needed - bucket.tokens) / rate
        bucket.tokens -= events
        return None


class InFlightLimit:
    """ASGI middleware: at most ``limit`` HTTP requests in this process at once; the next is
    answered 503 with Retry-After at once, before its body is read. Queueing without bound
    would turn a burst into timeouts for everyone; a quick 503 lets senders back off and
    lets a load balancer pick another replica. Health checks are never refused."""

    def __init__(self, app: ASGIApp, limit: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            body = (
                b'{"error":"overloaded","message":"this API process is handling its limit of '
                + str(self.limit).encode()
                + b' requests at once; retry after Retry-After"}'
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"retry-after", b"1"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
