"""Verifying a tenant's audit chain (pure: rows in, verdict out).

The hash is defined in migration 0007's ``awfdrs_audit_hash``; :func:`hash_input` is the same
definition in Python, and the two must stay byte for byte equal (docs/AUDIT.md)::

    prev_hash | seq | tenant_id | id | occurred_at | text(kind) | text(actor)
      | text(subject_type) | text(subject_id) | body_text

``occurred_at`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; ``text(x)`` is ``len(x):x`` or ``~``
for None; ``body_text`` is PostgreSQL's own ``body::text`` (jsonb's canonical text, which no
Python serialiser reproduces, so the verifier is handed it rather than re-encoding the body).
This module never recomputes a hash through the database: a verifier that asked PostgreSQL
would trust the very functions an attacker with the owner role could replace.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class ChainRow:
    """What the hash covers, as the database stored it."""

    seq: int
    id: uuid.UUID
    tenant_id: uuid.UUID
    occurred_at: datetime
    kind: str
    actor: str
    subject_type: str | None
    subject_id: str | None
    body_text: str
    prev_hash: str
    hash: str


def _field(value: str | None) -> str:
    return "~" if value is None else f"{len(value)}:{value}"


def _instant(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hash_input(row: ChainRow, prev_hash: str | None = None) -> str:
    """The text hashed for ``row`` (with ``prev_hash`` instead of the row's own, if given)."""
    return "|".join(
        (
            row.prev_hash if prev_hash is None else prev_hash,
            str(row.seq),
            str(row.tenant_id),
            str(row.id),
            _instant(row.occurred_at),
            _field(row.kind),
            _field(row.actor),
            _field(row.subject_type),
            _field(row.subject_id),
            row.body_text,
        )
    )


def row_hash(row: ChainRow) -> str:
    return hashlib.sha256(hash_input(row).encode()).hexdigest()


class Break(StrEnum):
    """What is wrong with the first broken row."""

    SEQ_GAP = "seq-gap"  # rows missing before it (or numbered out of order)
    PREV_HASH = "prev_hash"  # it does not name the hash of the row before it
    HASH = "hash"  # its content is not what its hash was computed over
    HEAD = "head"  # the chain ends elsewhere than its head says (a removed tail)
    TENANT = "tenant"  # a row of another tenant in this chain


@dataclass(frozen=True, slots=True)
class Broken:
    seq: int
    id: uuid.UUID | None
    reason: Break
    detail: str

    def describe(self) -> str:
        row = f"seq {self.seq}" + (f" (id {self.id})" if self.id else "")
        return f"chain broken at {row}: {self.reason.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """``rows`` checked; ``head`` the hash of the last good row; ``broken`` the first break."""

    rows: int
    head: str
    broken: Broken | None

    @property
    def intact(self) -> bool:
        return self.broken is None

    def describe(self) -> str:
        if self.broken is None:
            return f"chain intact: {self.rows} rows, head {self.head}"
        return self.broken.describe()

    def as_json(self) -> dict[str, object]:
        broken = self.broken
        return {
            "intact": self.intact,
            "rows": self.rows,
            "head": self.head,
            "broken": None
            if broken is None
            else {
                "seq": broken.seq,
                "id": str(broken.id) if broken.id else None,
                "reason": broken.reason.value,
                "detail": broken.detail,
            },
        }


class ChainVerifier:
    """Checks one tenant's rows in ``seq`` order, page by page; stops at the first break.

    Feed every row with :meth:`feed` (ascending ``seq``, as read), then :meth:`finish` with the
    chain's head, as ``(seq, hash)`` or None when the tenant has none.
    """

    def __init__(self, tenant_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self._seq = 0
        self._hash = GENESIS
        self._rows = 0
        self._broken: Broken | None = None

    @property
    def broken(self) -> Broken | None:
        return self._broken

    @property
    def last_seq(self) -> int:
        return self._seq

    def feed(self, rows: Iterable[ChainRow]) -> bool:
        """Check ``rows``; False once the chain is broken (later rows need not be read)."""
        for row in rows:
            if self._broken is not None:
                return False
            self._broken = self._check(row)
            if self._broken is None:
                self._seq, self._hash = row.seq, row.hash
                self._rows += 1
        return self._broken is None

    def _check(self, row: ChainRow) -> Broken | None:
        expected = self._seq + 1
        if row.tenant_id != self.tenant_id:
            return Broken(row.seq, row.id, Break.TENANT, f"row of tenant {row.tenant_id}")
        if row.seq != expected:
            missing = (
                f"seq {expected}" if row.seq == expected + 1 else f"seq {expected}..{row.seq - 1}"
            )
            detail = f"{missing} missing" if row.seq > expected else f"expected seq {expected}"
            return Broken(row.seq, row.id, Break.SEQ_GAP, detail)
        if row.prev_hash != self._hash:
            return Broken(
                row.seq,
                row.id,
                Break.PREV_HASH,
                f"prev_hash {row.prev_hash} but the row before has {self._hash}",
            )
        computed = row_hash(row)
        if computed != row.hash:
            return Broken(
                row.seq,
                row.id,
                Break.HASH,
                f"stored {row.hash} but its content hashes to {computed}",
            )
        return None

    def finish(self, head: tuple[int, str] | None) -> Verdict:
        if self._broken is None:
            self._broken = self._check_head(head)
        return Verdict(self._rows, self._hash, self._broken)

    def _check_head(self, head: tuple[int, str] | None) -> Broken | None:
        if head is None:
            if self._rows == 0:
                return None
            return Broken(self._seq, None, Break.HEAD, "rows exist but the chain has no head")
        seq, digest = head
        if seq > self._seq:
            return Broken(
                self._seq + 1,
                None,
                Break.HEAD,
                f"the head is at seq {seq} but the rows end at seq {self._seq}: "
                f"seq {self._seq + 1}..{seq} missing",
            )
        if seq < self._seq or digest != self._hash:
            return Broken(
                seq,
                None,
                Break.HEAD,
                f"the head says seq {seq} hash {digest}; the rows end at seq {self._seq} "
                f"hash {self._hash}",
            )
        return None


def verify(tenant_id: uuid.UUID, rows: Iterable[ChainRow], head: tuple[int, str] | None) -> Verdict:
    """The verdict on a whole chain held in memory (:class:`ChainVerifier` pages)."""
    verifier = ChainVerifier(tenant_id)
    verifier.feed(rows)
    return verifier.finish(head)
