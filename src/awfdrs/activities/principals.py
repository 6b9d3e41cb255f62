"""Verifying and spending the credential of an operator's command (see :mod:`awfdrs.signing`).

An activity, not workflow code: the signing key is a secret of the worker's settings and must
never reach a workflow's history, checking an expiry needs the wall clock, and a credential is
spent (recorded as used) in PostgreSQL, so a copy read out of the history is worth nothing.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from awfdrs.contracts import CredentialCheck
from awfdrs.db.repositories import AuditRepository, SpentCredentialRepository
from awfdrs.db.session import tenant_session
from awfdrs.signing import CommandRefused, CommandSigner, Scope, Verified
from awfdrs.words import same_principal

REFUSED = "CommandRefused"


def refused(message: str) -> ApplicationError:
    return ApplicationError(message, type=REFUSED, non_retryable=True)


def verify_or_refuse(signer: CommandSigner | None, check: CredentialCheck) -> Verified:
    """The verified credential, or a non-retryable ``CommandRefused`` saying why not."""
    if signer is None:
        raise refused(
            f"{check.command} refused: this worker has no AWFDRS_COMMAND_SIGNING_KEY, so it "
            "cannot verify who asks"
        )
    scope = Scope(check.tenant_id, check.command, check.subject, check.plan_id)
    try:
        return signer.verify(check.credential, scope)
    except CommandRefused as error:
        raise refused(str(error)) from None


async def spend_or_refuse(
    session: AsyncSession, tenant_id: uuid.UUID, verified: Verified, command: str, use_key: str
) -> None:
    """Spend the credential on ``use_key`` (in the caller's transaction, with its effect)."""
    spent = await SpentCredentialRepository(session, tenant_id=tenant_id).spend(
        jti=verified.jti,
        use_key=use_key,
        command=command,
        principal=verified.principal,
        expires_at=verified.expires_at,
    )
    if not spent:
        raise refused(
            f"{command}: this credential was already used; a credential is good for one "
            "command (send the command again through the API)"
        )


class PrincipalActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], signer: CommandSigner | None
    ) -> None:
        self._sessions = sessions
        self._signer = signer

    @activity.defn(name="verify_credential")
    async def verify(self, check: CredentialCheck) -> str:
        """The principal of an incident command's credential, once verified and spent; the
        command is recorded in the tenant's audit chain in the same transaction."""
        verified = verify_or_refuse(self._signer, check)
        if check.refuse_principal and same_principal(verified.principal, check.refuse_principal):
            raise refused(check.refusal or f"{check.command} refused for {verified.principal}")
        async with tenant_session(self._sessions, check.tenant_id) as session:
            await spend_or_refuse(session, check.tenant_id, verified, check.command, check.use_key)
            await AuditRepository(session, tenant_id=check.tenant_id).record_command(
                verified.principal,
                check.command,
                ("incident", check.subject),
                check.args,
            )
        return verified.principal
