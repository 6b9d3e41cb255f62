"""Attempts of one request must never overlap at the vendor. The lease is ``timeout`` from the
start of the claim, but the HTTP call is bounded only per network read (httpx's timeout is per
connect / read / write, not total), and a cancelled attempt waits for its call to finish."""

from __future__ import annotations

import select
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from awfdrs.db.repositories import VendorRepository
from awfdrs.devstack.servers import FlakyVendor
from tests.e2e.test_remediation_promises import only_incident, payment
from tests.support.factories import admin_sessions
from tests.support.pipeline import Stack, eventually


@dataclass
class Seen:
    key: str | None
    arrived: float
    until: float = 0.0


class TricklingVendor:
    """Answers 200 at once, then sends its 12-byte body one byte a second: each network read
    is quick, the whole answer takes 12 s."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def close(self) -> None:
        self._stop = True
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            body += conn.recv(65536)
        seen = Seen(headers.get("idempotency-key"), time.time())
        with self._lock:
            self.seen.append(seen)
        payload = b'{"ok": true}'
        try:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
            )
            for byte in payload:
                # Wakes the moment the client hangs up, so ``until`` is when it gave up (a
                # once-a-second check reported calls in flight up to a second after they ended,
                # longer than the next attempt's backoff).
                readable, _, _ = select.select([conn], [], [], 1.0)
                if readable and _closed_by_peer(conn):
                    break  # the client gave up on this attempt: it is no longer in flight
                conn.sendall(bytes([byte]))
        except OSError:
            pass
        finally:
            seen.until = time.time()
            conn.close()

    def overlapping(self) -> list[tuple[Seen, Seen]]:
        with self._lock:
            calls = sorted(self.seen, key=lambda s: s.arrived)
        return [
            (a, b)
            for i, a in enumerate(calls)
            for b in calls[i + 1 :]
            if a.key == b.key and b.arrived < (a.until or time.time())
        ]


def _closed_by_peer(conn: socket.socket) -> bool:
    conn.setblocking(False)
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        conn.setblocking(True)


async def test_a_slow_answer_outliving_its_lease_is_never_overlapped_by_the_next_attempt(
    stack: Stack, vendor: FlakyVendor
) -> None:
    trickle = TricklingVendor()
    try:
        tenant = await stack.tenant(
            action_timeout_seconds=5, action_max_attempts=3, action_retry_initial_seconds=0.5
        )
        name = f"trickle-{uuid.uuid4().hex[:8]}"
        async with admin_sessions()() as session, session.begin():
            await VendorRepository(session).add(name=name, base_url=trickle.url)
        await stack.connect(tenant, name)
        await stack.client.ingest(tenant.id, [payment(tenant, "k", name, 1)])
        incident_id = await only_incident(stack, tenant)

        async def two_calls() -> bool | None:
            return True if len(trickle.seen) >= 2 else None

        try:
            await eventually(two_calls, 30, "a second attempt at the vendor")
        finally:
            await stack.client.resolve(incident_id, actor="review", reason="stop the test")
        keys = {s.key for s in trickle.seen}
        assert len(keys) == 1
        overlaps = trickle.overlapping()
        assert overlaps == [], (
            f"{len(overlaps)} pairs of attempts of one request in flight at once: "
            + "; ".join(
                f"the second arrived {b.arrived - a.arrived:.1f}s after the first, which "
                + (f"lasted {a.until - a.arrived:.1f}s" if a.until else "was still in flight")
                for a, b in overlaps
            )
        )
    finally:
        trickle.close()


async def test_a_claim_that_waited_for_the_vendor_lock_never_overlaps_either(
    stack: Stack, vendor: FlakyVendor
) -> None:
    """``_claim`` takes ``now`` before it waits for the vendor's row lock and the lease is
    ``now + timeout``; the call then gets the full ``http_timeout`` from when it starts. A claim
    that waited a few seconds for the lock (other claims and records of that vendor hold it)
    leaves a call in flight after its lease ran out, and Temporal's next attempt takes it."""
    import asyncio

    from sqlalchemy import text

    from awfdrs.devstack.servers import Script

    vendor.script = Script(latency=20.0)  # the vendor hangs: each call ends at its timeout
    tenant = await stack.tenant(
        action_timeout_seconds=10, action_max_attempts=3, action_retry_initial_seconds=0.1
    )
    name = await stack.vendor()
    async with stack.sessions() as session, session.begin():
        vendor_id = (
            await session.execute(text("SELECT id FROM vendors WHERE name = :n"), {"n": name})
        ).scalar_one()
    locker = stack.sessions()
    await locker.begin()
    # What another claim or record of this tenant's connection to the vendor holds while its
    # transaction runs.
    await locker.execute(
        text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant.id)}
    )
    await locker.execute(
        text("SELECT 1 FROM vendor_connections WHERE vendor_id = :id FOR NO KEY UPDATE"),
        {"id": vendor_id},
    )
    try:
        await stack.client.ingest(tenant.id, [payment(tenant, "k", name, 1)])
        incident_id = await only_incident(stack, tenant)
        await asyncio.sleep(6.0)
    finally:
        await locker.rollback()
        await locker.close()

    async def two_calls() -> bool | None:
        # The vendor logs a call when it ends (here: when the client gives up on it).
        return True if len(vendor.requests) >= 2 else None

    try:
        await eventually(two_calls, 30, "two attempts at the vendor, both ended")
    finally:
        await stack.client.resolve(incident_id, actor="review", reason="stop the test")
    overlaps = vendor.overlapping()
    assert overlaps == [], (
        f"{len(overlaps)} pair(s) of attempts of one request in flight at once: the second "
        f"arrived {overlaps[0][1].arrived - overlaps[0][0].arrived:.1f}s after the first, "
        f"which the client held open for "
        f"{overlaps[0][0].connected_until - overlaps[0][0].arrived:.1f}s; executions per key: "
        f"{dict(vendor.executions())}"
    )
