"""A tenant's audit chain: read it, verify it, append an operator command to it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, cast, or_, select, text
from sqlalchemy import Text as TextType
from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.audit import ChainRow, ChainVerifier, Verdict
from awfdrs.db.models import AuditEntry, AuditHead

VERIFY_PAGE = 1000


class AuditRepository:
    """The chain of one tenant, ``seq`` ascending.

    Not built on ``BaseRepository``: rows are never added, updated or deleted through the ORM
    (migration 0007's functions append them; triggers refuse the rest), so only the tenant
    scoping is shared, applied once in :meth:`_select` as everywhere else. Row-level security
    applies as well on the application role.
    """

    def __init__(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def _select(self, *columns: Any) -> Select[Any]:
        return select(*(columns or (AuditEntry,))).where(AuditEntry.tenant_id == self.tenant_id)

    async def list(self, *, after_seq: int = 0, limit: int = 100) -> Sequence[AuditEntry]:
        """Rows with ``seq`` above ``after_seq``, oldest first: page with the last seq seen."""
        stmt = (
            self._select().where(AuditEntry.seq > after_seq).order_by(AuditEntry.seq).limit(limit)
        )
        found: Sequence[AuditEntry] = (await self.session.execute(stmt)).scalars().all()
        return found

    async def list_matching(
        self,
        *,
        kind: str | None = None,
        actor: str | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> Sequence[AuditEntry]:
        """Newest first; ``kind`` (the row's kind or an operator command's name) and ``actor``
        match a part, case-insensitively (the console's filters); ``before_seq`` pages back
        from the last seq shown."""
        stmt = self._select()
        if kind:  # the row's kind, or an operator command's name
            stmt = stmt.where(
                or_(
                    AuditEntry.kind.icontains(kind, autoescape=True),
                    AuditEntry.body["command"].astext.icontains(kind, autoescape=True),
                )
            )
        if actor:
            stmt = stmt.where(AuditEntry.actor.icontains(actor, autoescape=True))
        if before_seq is not None:
            stmt = stmt.where(AuditEntry.seq < before_seq)
        stmt = stmt.order_by(AuditEntry.seq.desc()).limit(limit)
        found: Sequence[AuditEntry] = (await self.session.execute(stmt)).scalars().all()
        return found

    async def find_head(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the chain's latest row; None before the tenant's first row."""
        stmt = select(AuditHead.seq, AuditHead.hash).where(AuditHead.tenant_id == self.tenant_id)
        row = (await self.session.execute(stmt)).one_or_none()
        return None if row is None else (row.seq, row.hash)

    async def list_chain(
        self, *, after_seq: int = 0, limit: int = VERIFY_PAGE
    ) -> Sequence[ChainRow]:
        """Rows as the hash covers them: ``body`` as PostgreSQL's own jsonb text."""
        stmt = (
            self._select(
                AuditEntry.seq,
                AuditEntry.id,
                AuditEntry.tenant_id,
                AuditEntry.occurred_at,
                AuditEntry.kind,
                AuditEntry.actor,
                AuditEntry.subject_type,
                AuditEntry.subject_id,
                cast(AuditEntry.body, TextType).label("body_text"),
                AuditEntry.prev_hash,
                AuditEntry.hash,
            )
            .where(AuditEntry.seq > after_seq)
            .order_by(AuditEntry.seq)
            .limit(limit)
        )
        rows = (await self.session.execute(stmt)).all()
        return [ChainRow(**row._mapping) for row in rows]

    async def verify(self, *, page: int = VERIFY_PAGE) -> Verdict:
        """Recompute the whole chain in Python and compare it with its head.

        The head is read first and rows are read up to it, so appends committed meanwhile
        (under READ COMMITTED each page sees them) are not mistaken for a broken tail.
        """
        head = await self.find_head()
        verifier = ChainVerifier(self.tenant_id)
        limit = head[0] if head is not None else None
        after = 0
        while True:
            rows = await self.list_chain(after_seq=after, limit=page)
            if limit is not None:
                rows = [row for row in rows if row.seq <= limit]
            if not rows or not verifier.feed(rows):
                break
            after = rows[-1].seq
            if limit is not None and after >= limit:
                break
        return verifier.finish(head)

    async def record_command(
        self,
        actor: str,
        command: str,
        subject: tuple[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Append ``operator.command`` by ``actor`` to the chain of the transaction's tenant.

        The session must be a :func:`~awfdrs.db.session.tenant_session` of this repository's
        tenant: the database refuses (``DBAPIError``, insufficient privilege) to append to any
        chain but the one of the tenant the transaction is set to. The append locks the
        chain's head until the transaction ends, so call this last, just before the commit
        (a transaction holding it while it waits for another row could deadlock with that
        row's writer committing); a rollback leaves no row.
        """
        subject_type, subject_id = subject if subject is not None else (None, None)
        stmt = select(AuditEntry).from_statement(
            text(
                "SELECT * FROM audit_record_command(:tenant, :actor, :command, :subject_type, "
                ":subject_id, CAST(:body AS jsonb))"
            )
        )
        params = {
            "tenant": self.tenant_id,
            "actor": actor,
            "command": command,
            "subject_type": subject_type,
            "subject_id": None if subject_id is None else str(subject_id),
            "body": json.dumps(body or {}, default=str),
        }
        entry: AuditEntry = (await self.session.execute(stmt, params)).scalar_one()
        return entry
