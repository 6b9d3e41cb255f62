from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.enums import GateControl, IncidentStatus, Phase


class MetricsRepository:
    """Counts across all tenants, and nothing else: the SQL functions behind it are SECURITY
    DEFINER and return aggregates only, so the application role learns no tenant's rows."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count_by_status(self) -> dict[IncidentStatus, int]:
        rows = await self.session.execute(
            text("SELECT status, incidents FROM awfdrs_incident_counts()")
        )
        return {IncidentStatus(status): int(count) for status, count in rows.all()}

    async def count_by_phase(self) -> dict[Phase, int]:
        """Open incidents by the phase their workflow waits in."""
        rows = await self.session.execute(
            text("SELECT phase, incidents FROM awfdrs_phase_counts()")
        )
        return {Phase(phase): int(count) for phase, count in rows.all()}

    async def count_held_by_control(self) -> dict[GateControl, int]:
        """Open incidents held by a control (kill switch, fuse), and those waiting for an approval
        (counted under the control that asked for it: confidence or reversibility)."""
        rows = await self.session.execute(text("SELECT gate, incidents FROM awfdrs_held_counts()"))
        counts = dict.fromkeys(GateControl, 0)
        for gate, count in rows.all():
            counts[GateControl(gate)] = int(count)
        return counts
