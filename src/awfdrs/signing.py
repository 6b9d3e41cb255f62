"""Signed operator commands: the credential that lets a command resume automation.

Stopping needs no credential: anyone with Temporal access may activate a kill switch, reject a
plan, resolve or ignore an incident. Whatever starts or resumes automation (approving a plan,
releasing a kill switch) must carry a short-lived token that the worker verifies, so access to
the Temporal namespace alone cannot approve. The API signs one per command for the principal it
authenticated; the token names that principal, the tenant, the command, what it acts on (an
incident, or a kill-switch scope) and, for an approval, the plan. A token is useless for any
other command, and good for one use: the worker records its id (``jti``) in the transaction of
its effect, so a token copied out of a workflow's history is already spent; it also expires in
minutes.

A JWT (HS256, PyJWT) with a key from the settings (``AWFDRS_COMMAND_SIGNING_KEY``) shared by
the API and the workers. Whoever holds that key can sign as anyone: it is a deployment secret,
like the database owner's password.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from awfdrs.errors import AwfdrsError

ALGORITHM = "HS256"
AUDIENCE = "awfdrs-worker"
ISSUER = "awfdrs"
# Long enough for an update that waits for its workflow's worker; the spent ids need keeping
# only this long.
TTL_SECONDS = 300
MIN_KEY_BYTES = 32

APPROVE = "approve"
REJECT = "reject"
RESOLVE = "resolve"
IGNORE = "ignore"
RELEASE = "release"
ACTIVATE = "activate"


class CommandRefused(AwfdrsError):
    """The command's credential is missing, forged, expired or for something else."""


def new_signing_key() -> str:
    return secrets.token_urlsafe(48)


@dataclass(frozen=True)
class Scope:
    """What a token may act on: one tenant, one command, and its subject (an incident id, or
    a kill-switch scope: a workflow id, a switch id, or ``tenant``), and for approvals the
    plan that was reviewed."""

    tenant_id: uuid.UUID
    command: str
    subject: str
    plan_id: str | None = None


@dataclass(frozen=True)
class Verified:
    """A credential that verified: its principal, its id and when it expires."""

    principal: str
    jti: str
    expires_at: datetime
    expired: bool = False


class CommandSigner:
    """Signs and verifies command tokens with one key (the API signs; workers verify)."""

    def __init__(self, key: str) -> None:
        if len(key.encode()) < MIN_KEY_BYTES:
            raise ValueError(f"the command signing key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def sign(self, scope: Scope, actor: str, *, ttl: float = TTL_SECONDS) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": actor,
            "tid": str(scope.tenant_id),
            "cmd": scope.command,
            "obj": scope.subject,
            "iat": now,
            "exp": now + int(ttl),
            "jti": str(uuid.uuid4()),
        }
        if scope.plan_id is not None:
            claims["plan"] = scope.plan_id
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str | None, scope: Scope, *, allow_expired: bool = False) -> Verified:
        """Who the token was signed for, if it is valid for exactly ``scope``. The caller
        spends it (``jti``): a token is good for one use. ``allow_expired``: an expired token
        comes back with ``expired`` set (the caller accepts it only for the use it was already
        spent on: an activity retried after its commit)."""
        if not token:
            raise CommandRefused(
                f"{scope.command} needs a signed credential: send it through the awfdrs API "
                "(or the CLI with AWFDRS_API_URL and AWFDRS_API_KEY); access to Temporal alone "
                "may stop automation, never resume it"
            )
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={
                    "require": ["exp", "iat", "sub", "aud", "iss", "jti"],
                    "verify_exp": not allow_expired,
                },
            )
        except jwt.ExpiredSignatureError:
            raise CommandRefused(f"{scope.command}: the credential has expired") from None
        except jwt.InvalidTokenError as error:
            message = f"{scope.command}: the credential is not valid ({error})"
            raise CommandRefused(message) from None
        expected = {
            "tid": str(scope.tenant_id),
            "cmd": scope.command,
            "obj": scope.subject,
            "plan": scope.plan_id,
        }
        for claim, value in expected.items():
            if claims.get(claim) != value:
                raise CommandRefused(
                    f"{scope.command}: the credential was signed for another {_noun(claim)}"
                )
        actor, jti = claims["sub"], claims.get("jti")
        if not isinstance(actor, str) or not actor:
            raise CommandRefused(f"{scope.command}: the credential names no principal")
        if not isinstance(jti, str) or not 0 < len(jti) <= 64:
            raise CommandRefused(f"{scope.command}: the credential has no valid id (jti)")
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        return Verified(actor, jti, expires_at, expired=expires_at <= datetime.now(UTC))


def kill_switch_subject(switch_id: uuid.UUID | None, workflow_id: uuid.UUID | None) -> str:
    """The subject a kill-switch command acts on: one switch, a workflow's, or the tenant's."""
    if switch_id is not None:
        return f"switch:{switch_id}"
    if workflow_id is not None:
        return f"workflow:{workflow_id}"
    return "tenant"


def _noun(claim: str) -> str:
    return {"tid": "tenant", "cmd": "command", "obj": "subject", "plan": "plan"}[claim]


def signer_or_none(key: str | None) -> CommandSigner | None:
    return CommandSigner(key) if key else None
