from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.enums import GateControl, IncidentStatus


class MetricsRepository:
    """Counts across all tenants, and nothing else: the SQL functions behind it are SECURITY
    DEFINER and return aggregates only, so the application role learns no tenant's rows."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def incident_counts(self) -> dict[IncidentStatus, int]:
        rows = await self.session.execute(
            text("SELECT status, incidents FROM awfdrs_incident_counts()")
        )
        return {IncidentStatus(status): int(count) for status, count in rows.all()}

    async def held_counts(self) -> dict[GateControl, int]:
        """Open incidents whose latest decision was held, by the control that held it."""
        rows = await self.session.execute(text("SELECT gate, incidents FROM awfdrs_held_counts()"))
        counts = dict.fromkeys(GateControl, 0)
        for gate, count in rows.all():
            counts[GateControl(gate)] = int(count)
        return counts
