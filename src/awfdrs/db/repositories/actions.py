from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import aliased

from awfdrs.db.models import Action, Incident
from awfdrs.db.repositories.base import BaseRepository, MutableMixin
from awfdrs.enums import ActionStatus, ActionType, IncidentStatus


class ActionRepository(MutableMixin[Action], BaseRepository[Action]):
    """Remediation actions of the tenant and their guarded status moves."""

    model = Action

    async def list_for_incident(self, incident_id: uuid.UUID) -> Sequence[Action]:
        stmt = (
            self._select()
            .where(Action.incident_id == incident_id)
            .order_by(Action.created_at, Action.id)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def claim(self, action_id: uuid.UUID) -> Action | None:
        """Move PENDING (or a crashed IN_PROGRESS) to IN_PROGRESS and count the attempt.

        None when the action already reached SUCCEEDED or FAILED: it must not run again.
        ``started_at`` keeps the first attempt's time.
        """
        scoped = self._where_id(action_id).whereclause
        assert scoped is not None
        stmt = (
            update(Action)
            .where(scoped, Action.status.in_([ActionStatus.PENDING, ActionStatus.IN_PROGRESS]))
            .values(
                status=ActionStatus.IN_PROGRESS,
                attempts=Action.attempts + 1,
                started_at=func.coalesce(Action.started_at, func.clock_timestamp()),
            )
            .returning(Action)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def finish(
        self,
        action_id: uuid.UUID,
        *,
        status: ActionStatus,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Action | None:
        """Record the final outcome once; None when the action had already finished."""
        if not status.is_final:
            raise ValueError(f"{status} is not a final status")
        scoped = self._where_id(action_id).whereclause
        assert scoped is not None
        stmt = (
            update(Action)
            .where(scoped, Action.status.in_([ActionStatus.PENDING, ActionStatus.IN_PROGRESS]))
            .values(
                status=status,
                result=result,
                error=error,
                finished_at=func.clock_timestamp(),
            )
            .returning(Action)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def count_automatic_since(self, since: datetime) -> int:
        """Automatic actions (retries) the tenant ran or started since ``since``; shadow ones
        executed nothing and do not count."""
        stmt = self._scoped(func.count()).where(
            Action.action_type == ActionType.RETRY,
            Action.status != ActionStatus.SHADOWED,
            Action.created_at >= since,
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def note_deferral(self, action_id: uuid.UUID) -> Action:
        """Remember when the action first had to wait for its vendor; returns the row."""
        action = await self.get_for_update(action_id)
        if action.deferred_since is None:
            action.deferred_since = datetime.now(UTC)
            await self._flush()
        return action

    async def record_attempt_error(self, action_id: uuid.UUID, error: str) -> None:
        """Note a transient failure on an IN_PROGRESS action; Temporal will try again."""
        await self.update_where(action_id, error=error)

    async def outcome_counts(
        self,
        signature: str,
        action_type: ActionType,
        *,
        reanalysed: uuid.UUID | None = None,
    ) -> tuple[int, int]:
        """(worked, did not work) for earlier ``action_type`` actions on ``signature``'s incidents.

        An action worked when it succeeded, nothing was tried after it on its incident, and the
        incident was RESOLVED; it did not work when it failed or another action had to follow.
        The actions of ``reanalysed``, the incident being analysed again, did not work either:
        that is why it is analysed again. Others whose incident is still open are not counted.
        """
        later = aliased(Action)
        followed: ColumnElement[bool] = (
            select(later.id)
            .where(later.incident_id == Action.incident_id, later.created_at > Action.created_at)
            .exists()
        )
        succeeded = Action.status == ActionStatus.SUCCEEDED
        if reanalysed is not None:
            followed = or_(followed, Action.incident_id == reanalysed)
        stmt = (
            select(
                func.count().filter(
                    succeeded, ~followed, Incident.status == IncidentStatus.RESOLVED
                ),
                func.count().filter(or_(Action.status == ActionStatus.FAILED, followed)),
            )
            .join(Incident, Incident.id == Action.incident_id)
            .where(
                Action.tenant_id == self.tenant_id,
                Incident.tenant_id == self.tenant_id,
                Incident.signature == signature,
                Action.action_type == action_type,
                Action.status.in_([ActionStatus.SUCCEEDED, ActionStatus.FAILED]),
            )
        )
        worked, failed = (await self.session.execute(stmt)).one()
        return int(worked), int(failed)
