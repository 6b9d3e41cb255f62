"""Verifying the credential of a command that resumes automation (see :mod:`awfdrs.signing`).

An activity, not workflow code: the signing key is a secret of the worker's settings and must
never reach a workflow's history, and checking an expiry needs the wall clock.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from awfdrs.contracts import CredentialCheck
from awfdrs.signing import CommandRefused, CommandSigner, Scope

REFUSED = "CommandRefused"


def verify_or_refuse(signer: CommandSigner | None, check: CredentialCheck) -> str:
    """The verified principal, or a non-retryable ``CommandRefused`` saying why not."""
    if signer is None:
        raise ApplicationError(
            f"{check.command} refused: this worker has no AWFDRS_COMMAND_SIGNING_KEY, so it "
            "cannot verify who asks",
            type=REFUSED,
            non_retryable=True,
        )
    scope = Scope(check.tenant_id, check.command, check.subject, check.plan_id)
    try:
        return signer.verify(check.credential, scope)
    except CommandRefused as error:
        raise ApplicationError(str(error), type=REFUSED, non_retryable=True) from None


class PrincipalActivities:
    def __init__(self, signer: CommandSigner | None) -> None:
        self._signer = signer

    @activity.defn(name="verify_credential")
    async def verify(self, check: CredentialCheck) -> str:
        return verify_or_refuse(self._signer, check)
