"""Verifying and spending the credential of an operator's command (see :mod:`awfdrs.signing`).

An activity, not workflow code: the signing key is a secret of the worker's settings and must
never reach a workflow's history, checking an expiry needs the wall clock, and a credential is
spent (recorded as used) in PostgreSQL, so a copy read out of the history is worth nothing.

A credential is spent in a transaction of its own, committed before the command is judged: a
command then refused (the two-person rule, a plan replaced meanwhile) has used its credential
up all the same, so a copy of it cannot be replayed once circumstances change. The use it is
spent on is named by the worker, never by the sender (the activity's run and id: the same for
Temporal's retries of one activity, new for any signal or update sent again).
"""

from __future__ import annotations

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


def verify_or_refuse(
    signer: CommandSigner | None, check: CredentialCheck, *, allow_expired: bool = False
) -> Verified:
    """The verified credential, or a non-retryable ``CommandRefused`` saying why not."""
    if signer is None:
        raise refused(
            f"{check.command} refused: this worker has no AWFDRS_COMMAND_SIGNING_KEY, so it "
            "cannot verify who asks"
        )
    scope = Scope(check.tenant_id, check.command, check.subject, check.plan_id)
    try:
        return signer.verify(check.credential, scope, allow_expired=allow_expired)
    except CommandRefused as error:
        raise refused(str(error)) from None


def use_key() -> str:
    """What a credential is spent on: this activity, across its retries, and nothing else."""
    info = activity.info()
    return f"{info.workflow_run_id}/{info.activity_id}"


async def redeem(
    sessions: async_sessionmaker[AsyncSession],
    signer: CommandSigner | None,
    check: CredentialCheck,
    use: str,
) -> Verified:
    """Verify the credential and spend it on ``use``, committed at once; refused when it does
    not verify or was spent on anything else. An expired one passes only for the use it was
    spent on (a retry after a commit whose answer was lost)."""
    verified = verify_or_refuse(signer, check, allow_expired=True)
    async with tenant_session(sessions, check.tenant_id) as session:
        spent = SpentCredentialRepository(session, tenant_id=check.tenant_id)
        if verified.expired:
            if await spent.find_use(verified.jti) == use:
                return verified
            raise refused(f"{check.command}: the credential has expired")
        if not await spent.spend(
            jti=verified.jti,
            use_key=use,
            command=check.command,
            principal=verified.principal,
            expires_at=verified.expires_at,
        ):
            raise refused(
                f"{check.command}: this credential was already used; a credential is good for "
                "one command (send the command again through the API)"
            )
    return verified


class PrincipalActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], signer: CommandSigner | None
    ) -> None:
        self._sessions = sessions
        self._signer = signer

    @activity.defn(name="verify_credential")
    async def verify(self, check: CredentialCheck) -> str:
        """The principal of an incident command's credential, verified and spent; the command
        is then recorded in the tenant's audit chain, unless the two-person rule refuses it."""
        verified = await redeem(self._sessions, self._signer, check, use_key())
        if check.refuse_principal and same_principal(verified.principal, check.refuse_principal):
            raise refused(check.refusal or f"{check.command} refused for {verified.principal}")
        async with tenant_session(self._sessions, check.tenant_id) as session:
            await AuditRepository(session, tenant_id=check.tenant_id).record_command(
                verified.principal, check.command, ("incident", check.subject), check.args
            )
        return verified.principal
