"""The console's session cookie, its CSRF token, and SSO sign-in tokens.

- The session is a JWT (HS256, PyJWT) signed with ``AWFDRS_CONSOLE_SESSION_SECRET``, holding who
  signed in (a key's id and prefix, or an SSO subject), the tenant(s), the role and the expiry;
  never the key itself. A key's session is re-checked on every request through the API's own
  :class:`~awfdrs.api.auth.KeyCache`, so a revoked key's session dies within its cache period.
- CSRF: a synchronizer token derived from the session's random id with HMAC (nothing stored
  server-side); every POST must carry it, and the browser's ``Origin`` / ``Sec-Fetch-Site`` must
  say same-origin. Sign-in itself, before there is a session, uses a double-submit cookie.
- SSO: a JWT from an identity provider the deployment trusts (a shared HS256 secret or its PEM
  public key), with ``iss``, ``aud``, ``exp``, ``sub``, ``awfdrs_role`` and ``awfdrs_tenants``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt

from awfdrs.api.keys import READ_ROLES, Role
from awfdrs.config import Settings

COOKIE = "awfdrs_console"
PRE_COOKIE = "awfdrs_console_pre"
FLASH_COOKIE = "awfdrs_console_flash"
PATH = "/console"
SESSION_AUDIENCE = "awfdrs-console-session"
SESSION_ISSUER = "awfdrs-console"
SSO_ROLE_CLAIM = "awfdrs_role"
SSO_TENANTS_CLAIM = "awfdrs_tenants"
SSO_ALGORITHMS = ["RS256", "ES256", "EdDSA"]
MAX_SSO_TENANTS = 50


class SignInRefused(Exception):
    """What a person is told when signing in fails (never which part of a key was wrong)."""


@dataclass(frozen=True)
class ConsoleSession:
    """Who is signed in: a key (``key_id``/``key_prefix``) or an SSO subject."""

    sid: str
    kind: Literal["key", "sso"]
    name: str
    role: Role
    tenants: tuple[uuid.UUID, ...]
    expires: int
    key_id: uuid.UUID | None = None
    key_prefix: str | None = None


class SessionCodec:
    """Issues and reads session cookies and their CSRF tokens with one secret."""

    def __init__(self, secret: str, hours: float) -> None:
        self._secret = secret
        self._seconds = int(hours * 3600)

    def issue(
        self,
        *,
        kind: Literal["key", "sso"],
        name: str,
        role: Role,
        tenants: tuple[uuid.UUID, ...],
        key_id: uuid.UUID | None = None,
        key_prefix: str | None = None,
        not_after: int | None = None,
    ) -> tuple[str, ConsoleSession]:
        expires = int(time.time()) + self._seconds
        if not_after is not None:
            expires = min(expires, not_after)
        session = ConsoleSession(
            sid=secrets.token_urlsafe(18),
            kind=kind,
            name=name,
            role=role,
            tenants=tenants,
            expires=expires,
            key_id=key_id,
            key_prefix=key_prefix,
        )
        claims: dict[str, Any] = {
            "iss": SESSION_ISSUER,
            "aud": SESSION_AUDIENCE,
            "exp": expires,
            "sid": session.sid,
            "kind": kind,
            "name": name,
            "role": role.value,
            "tenants": [str(t) for t in tenants],
            "kid": str(key_id) if key_id else None,
            "kpx": key_prefix,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), session

    def read(self, token: str | None) -> ConsoleSession | None:
        """The session of a cookie; None when absent, forged, expired or malformed."""
        if not token:
            return None
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=SESSION_AUDIENCE,
                issuer=SESSION_ISSUER,
                options={"require": ["exp", "sid", "role", "tenants"]},
            )
            kind = claims["kind"]
            if kind not in ("key", "sso"):
                return None
            return ConsoleSession(
                sid=str(claims["sid"]),
                kind=kind,
                name=str(claims["name"]),
                role=Role(claims["role"]),
                tenants=tuple(uuid.UUID(t) for t in claims["tenants"]),
                expires=int(claims["exp"]),
                key_id=uuid.UUID(claims["kid"]) if claims.get("kid") else None,
                key_prefix=claims.get("kpx"),
            )
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
            return None

    def csrf(self, sid: str) -> str:
        """The session's CSRF token: only the holder of the secret can derive it from the id."""
        return hmac.new(self._secret.encode(), f"csrf:{sid}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, sid: str, presented: str | None) -> bool:
        # Bytes: compare_digest refuses (TypeError) a str with non-ASCII characters.
        return bool(presented) and hmac.compare_digest(
            self.csrf(sid).encode(), str(presented).encode("utf-8", "surrogatepass")
        )

    def flash(self, message: str, ok: bool) -> str:
        claims = {"m": message[:500], "ok": ok, "exp": int(time.time()) + 60}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def read_flash(self, token: str | None) -> tuple[str, bool] | None:
        if not token:
            return None
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            return None
        return str(claims.get("m", "")), bool(claims.get("ok"))


@dataclass(frozen=True)
class SsoIdentity:
    subject: str
    role: Role
    tenants: tuple[uuid.UUID, ...]
    expires: int

    @property
    def actor(self) -> str:
        """Who is recorded as acting: ``sso:<sub>``; the prefix keeps it apart from key names."""
        return f"sso:{self.subject}"


class SsoVerifier:
    """Verifies sign-in tokens of the identity provider the settings trust."""

    def __init__(self, settings: Settings) -> None:
        self._key: str | None = None
        self._algorithms: list[str] = []
        if settings.console_sso_public_key_file:
            self._key = Path(settings.console_sso_public_key_file).read_text()
            self._algorithms = SSO_ALGORITHMS
        elif settings.console_sso_secret:
            self._key = settings.console_sso_secret
            self._algorithms = ["HS256"]
        self._issuer = settings.console_sso_issuer
        self._audience = settings.console_sso_audience

    @property
    def enabled(self) -> bool:
        return self._key is not None and self._issuer is not None

    def verify(self, token: str) -> SsoIdentity:
        if not self.enabled or self._key is None:
            raise SignInRefused("single sign-on is not configured on this deployment")
        try:
            claims = jwt.decode(
                token.strip(),
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise SignInRefused("the sign-in token has expired") from None
        except jwt.InvalidTokenError:
            raise SignInRefused("the sign-in token is not valid for this console") from None
        subject = str(claims["sub"]).strip()
        raw_tenants = claims.get(SSO_TENANTS_CLAIM)
        if isinstance(raw_tenants, str):
            raw_tenants = [raw_tenants]
        try:
            role = Role(str(claims.get(SSO_ROLE_CLAIM)))
            tenants = tuple(dict.fromkeys(uuid.UUID(str(t)) for t in raw_tenants or []))
        except (ValueError, TypeError):
            raise SignInRefused("the sign-in token names no valid role or tenant") from None
        if role not in READ_ROLES:
            raise SignInRefused(f"a {role.value} cannot use the console")
        if not subject or not usable_subject(subject) or len(subject) > 200:
            raise SignInRefused("the sign-in token's subject is not usable")
        if not tenants or len(tenants) > MAX_SSO_TENANTS:
            raise SignInRefused("the sign-in token names no tenant")
        return SsoIdentity(subject, role, tenants, int(claims["exp"]))


# Control, format (zero-width, bidi overrides), line and paragraph separators: characters that
# make one subject look like another, or break the line it is shown or logged on.
UNUSABLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def usable_subject(subject: str) -> bool:
    return not any(unicodedata.category(c) in UNUSABLE_CATEGORIES for c in subject)


def session_secret(settings: Settings) -> str:
    """The configured secret, or one for this process alone (sessions end at its restart)."""
    return settings.console_session_secret or secrets.token_urlsafe(48)
