from __future__ import annotations

import uuid
from collections.abc import Sequence
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
        attempts: int | None = None,
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
                started_at=func.coalesce(Action.started_at, func.clock_timestamp()),
                **({"attempts": attempts} if attempts is not None else {}),
            )
            .returning(Action)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def record_attempt_error(self, action_id: uuid.UUID, error: str) -> None:
        """Note a transient failure on an IN_PROGRESS action; Temporal will try again."""
        await self.update_where(action_id, error=error)

    async def outcome_counts(
        self,
        signature: str,
        action_type: ActionType,
        *,
        current: uuid.UUID | None = None,
        again: bool = False,
    ) -> tuple[int, int]:
        """(worked, did not work) for earlier ``action_type`` actions on ``signature``'s incidents.

        An action worked when it succeeded, nothing was tried after it on its incident, and the
        incident was RESOLVED; it did not work when it failed or another action had to follow.
        The actions of ``current``, the incident being analysed, did not work either when it is
        analysed ``again`` (new failures after its requests succeeded); on a continuation round
        (more of its requests to send) they are its own history, not evidence, and are left
        out. Others whose incident is still open are not counted.
        """
        later = aliased(Action)
        followed: ColumnElement[bool] = (
            select(later.id)
            .where(later.incident_id == Action.incident_id, later.created_at > Action.created_at)
            .exists()
        )
        succeeded = Action.status == ActionStatus.SUCCEEDED
        mine = Action.incident_id == current
        if current is not None and again:
            followed = or_(followed, mine)
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
        if current is not None and not again:
            stmt = stmt.where(~mine)
        worked, failed = (await self.session.execute(stmt)).one()
        return int(worked), int(failed)
