from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import aliased

from awfdrs.db.models import Action, Decision, Incident
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
        claimed = await self._update_returning(
            Action.id == action_id,
            Action.status.in_([ActionStatus.PENDING, ActionStatus.IN_PROGRESS]),
            status=ActionStatus.IN_PROGRESS,
            attempts=Action.attempts + 1,
            started_at=func.coalesce(Action.started_at, func.clock_timestamp()),
        )
        return claimed[0] if claimed else None

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
        finished = await self._update_returning(
            Action.id == action_id,
            Action.status.in_([ActionStatus.PENDING, ActionStatus.IN_PROGRESS]),
            status=status,
            result=result,
            error=error,
            finished_at=func.clock_timestamp(),
            started_at=func.coalesce(Action.started_at, func.clock_timestamp()),
            **({"attempts": attempts} if attempts is not None else {}),
        )
        return finished[0] if finished else None

    async def record_attempt_error(self, action_id: uuid.UUID, error: str) -> None:
        """Note a transient failure on an IN_PROGRESS action; Temporal will try again."""
        await self.update_where(action_id, error=error)

    async def count_by_outcome(
        self,
        signature: str,
        action_type: ActionType,
        *,
        current: uuid.UUID | None = None,
        again: bool = False,
    ) -> tuple[int, int]:
        """(worked, did not work) for earlier ``action_type`` actions on ``signature``'s incidents.

        An action did not work when it failed, or when its incident had to be analysed again
        after it (a later decision of a higher attempt) or went to a human (a later escalation
        or manual action). Another round of the same attempt sends more of the incident's
        requests: it says nothing against the one before. An action worked when it succeeded,
        nothing of that kind followed, and its incident was RESOLVED; a success whose incident
        is still open is not counted yet. The actions of ``current``, the incident being
        analysed, did not work either when it is analysed ``again`` (new failures after its
        requests succeeded); on a continuation round they are its own history, left out.
        """
        mine = aliased(Decision)
        later, theirs = aliased(Action), aliased(Decision)
        followed: ColumnElement[bool] = (
            select(later.id)
            .join(theirs, theirs.id == later.decision_id)
            .where(
                later.incident_id == Action.incident_id,
                later.created_at > Action.created_at,
                or_(
                    theirs.attempt > mine.attempt,
                    later.action_type.in_([ActionType.ESCALATE, ActionType.MANUAL]),
                ),
            )
            .exists()
        )
        succeeded = Action.status == ActionStatus.SUCCEEDED
        is_current = Action.incident_id == current
        if current is not None and again:
            followed = or_(followed, is_current)
        stmt = (
            select(
                func.count().filter(
                    succeeded, ~followed, Incident.status == IncidentStatus.RESOLVED
                ),
                func.count().filter(or_(Action.status == ActionStatus.FAILED, followed)),
            )
            .join(Incident, Incident.id == Action.incident_id)
            .join(mine, mine.id == Action.decision_id)
            .where(
                Action.tenant_id == self.tenant_id,
                Incident.tenant_id == self.tenant_id,
                Incident.signature == signature,
                Action.action_type == action_type,
                Action.status.in_([ActionStatus.SUCCEEDED, ActionStatus.FAILED]),
            )
        )
        if current is not None and not again:
            stmt = stmt.where(~is_current)
        worked, failed = (await self.session.execute(stmt)).one()
        return int(worked), int(failed)
