"""The console's session cookie, CSRF token and SSO sign-in tokens (pure: no server)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
import pytest

from awfdrs.api.keys import Role
from awfdrs.config import Settings
from awfdrs.console.session import SessionCodec, SignInRefused, SsoVerifier

SECRET = "unit-console-session-secret-0123456789abcdef"
SSO = "unit-console-sso-secret-0123456789abcdef0123"
ISSUER = "https://idp.example.test"


def _codec(secret: str = SECRET) -> SessionCodec:
    return SessionCodec(secret, hours=1)


def test_a_session_round_trips_without_the_key_and_a_forged_one_is_nobody() -> None:
    tenant, key_id = uuid.uuid4(), uuid.uuid4()
    cookie, issued = _codec().issue(
        kind="key", name="alice@ops", role=Role.OPERATOR, tenants=(tenant,), key_id=key_id,
        key_prefix="abc123",
    )  # fmt: skip
    read = _codec().read(cookie)
    assert read == issued
    assert read is not None
    assert (read.name, read.role, read.tenants, read.key_id) == (
        "alice@ops", Role.OPERATOR, (tenant,), key_id,
    )  # fmt: skip
    assert "awfdrs_" not in str(jwt.decode(cookie, options={"verify_signature": False}))
    assert _codec("another-secret-of-enough-length-0123456789").read(cookie) is None
    claims = jwt.decode(cookie, SECRET, algorithms=["HS256"], audience="awfdrs-console-session")
    claims["role"] = "admin"
    assert _codec().read(jwt.encode(claims, "not-the-secret-at-all-0123456789abcdef")) is None
    assert _codec().read("garbage") is None
    assert _codec().read(None) is None


def test_an_expired_session_is_nobody() -> None:
    codec = SessionCodec(SECRET, hours=1)
    cookie, _ = codec.issue(kind="key", name="a", role=Role.VIEWER, tenants=(uuid.uuid4(),),
                            not_after=int(time.time()) - 5)  # fmt: skip
    assert codec.read(cookie) is None


def test_the_csrf_token_belongs_to_one_session() -> None:
    codec = _codec()
    assert codec.csrf_ok("sid-1", codec.csrf("sid-1"))
    assert not codec.csrf_ok("sid-2", codec.csrf("sid-1"))
    assert not codec.csrf_ok("sid-1", "")
    assert not codec.csrf_ok("sid-1", None)
    assert not codec.csrf_ok("sid-1", "é" * 64)  # refused, not an error
    assert not _codec("another-secret-of-enough-length-0123456789").csrf_ok(
        "sid-1", codec.csrf("sid-1")
    )


def _sso(**claims: object) -> str:
    # A day, not a minute: the parametrized tokens are made when the suite is collected, and
    # the whole suite may run before they are checked.
    body = {"iss": ISSUER, "aud": "awfdrs-console", "sub": "sam@corp",
            "exp": int(time.time()) + 86_400, "awfdrs_role": "operator",
            "awfdrs_tenants": [str(uuid.UUID(int=1)), str(uuid.UUID(int=2))], **claims}  # fmt: skip
    return jwt.encode(body, SSO, algorithm="HS256")


def test_sso_tokens_of_the_trusted_issuer_sign_in_as_their_subject() -> None:
    verifier = SsoVerifier(Settings(console_sso_secret=SSO, console_sso_issuer=ISSUER))
    identity = verifier.verify(_sso())
    assert identity.actor == "sso:sam@corp"
    assert identity.role is Role.OPERATOR
    assert identity.tenants == (uuid.UUID(int=1), uuid.UUID(int=2))


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (_sso(iss="https://other.example"), "not valid"),
        (_sso(aud="someone-else"), "not valid"),
        (_sso(exp=int(time.time()) - 60), "expired"),
        (_sso(awfdrs_role="ingest"), "cannot use the console"),
        (_sso(awfdrs_role="root"), "no valid role"),
        (_sso(awfdrs_tenants=[]), "names no tenant"),
        (_sso(awfdrs_tenants=["not-a-uuid"]), "no valid role or tenant"),
        (jwt.encode({"iss": ISSUER, "sub": "x"}, "forged-secret-0123456789abcdef01"), "not valid"),
    ],
)
def test_sso_tokens_that_are_not_trusted_sign_nobody_in(token: str, why: str) -> None:
    verifier = SsoVerifier(Settings(console_sso_secret=SSO, console_sso_issuer=ISSUER))
    with pytest.raises(SignInRefused, match=why):
        verifier.verify(token)


def test_without_sso_settings_no_token_signs_in() -> None:
    verifier = SsoVerifier(Settings())
    assert not verifier.enabled
    with pytest.raises(SignInRefused, match="not configured"):
        verifier.verify(_sso())


def test_sso_with_the_providers_public_key_refuses_a_token_signed_with_that_key_as_a_secret(
    tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "idp.pem").write_bytes(public_pem)
    verifier = SsoVerifier(
        Settings(console_sso_public_key_file=str(tmp_path / "idp.pem"), console_sso_issuer=ISSUER)
    )
    claims = {"iss": ISSUER, "aud": "awfdrs-console", "sub": "rita", "exp": int(time.time()) + 60,
              "awfdrs_role": "viewer", "awfdrs_tenants": str(uuid.UUID(int=3))}  # fmt: skip
    identity = verifier.verify(jwt.encode(claims, private, algorithm="RS256"))
    assert (identity.actor, identity.role, identity.tenants) == (
        "sso:rita", Role.VIEWER, (uuid.UUID(int=3),),
    )  # fmt: skip
    # The public key is public: a token "signed" with it as an HMAC secret proves nothing.
    forged = _hs256_with(public_pem, claims)
    with pytest.raises(SignInRefused, match="not valid"):
        verifier.verify(forged)


def _hs256_with(secret: bytes, claims: dict[str, object]) -> str:
    """An HS256 token made by hand (PyJWT itself refuses a PEM key as an HMAC secret)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


@pytest.mark.parametrize(
    "subject",
    ["\u200b", "alice\u200b", "alice\u202e", "a\x7fb", "a\x85b", "a\u2028b", "a\u2029b", "a\x00b"],
)
def test_sso_subjects_with_control_or_format_characters_sign_nobody_in(subject: str) -> None:
    verifier = SsoVerifier(Settings(console_sso_secret=SSO, console_sso_issuer=ISSUER))
    with pytest.raises(SignInRefused, match="subject is not usable"):
        verifier.verify(_sso(sub=subject))
    assert verifier.verify(_sso(sub="Zoë O'Brien")).actor == "sso:Zoë O'Brien"


def test_a_session_never_outlives_the_bound_it_is_given() -> None:
    soon = int(time.time()) + 90
    _, session = _codec().issue(
        kind="sso", name="sso:sam", role=Role.VIEWER, tenants=(uuid.uuid4(),), not_after=soon
    )
    assert session.expires == soon
    _, later = _codec().issue(
        kind="sso", name="sso:sam", role=Role.VIEWER, tenants=(uuid.uuid4(),),
        not_after=int(time.time()) + 10**8,
    )  # fmt: skip
    assert later.expires <= int(time.time()) + 3600  # the configured hours, the lesser


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/console//evil.example",
        "/console/../x",
        "/console/%2e%2e/x",
        "https://evil",
        "/console\\evil",
        "/console/\\evil",
        "javascript:alert(1)",
        "/console/a\x00b",
        "/console/a\nb",
        "/queue",
        "",
        None,
        "/console/a b",
        "/console/a%00b",
        "/console/%5cevil",
        "/console/%2f%2fevil",
    ],
)
def test_sign_in_goes_back_only_to_a_console_path(target: str | None) -> None:
    from awfdrs.console.web import safe_next

    assert safe_next(target) is None


def test_sign_in_goes_back_to_an_incident_with_its_query() -> None:
    from awfdrs.console.web import safe_next

    path = f"/console/incidents/{uuid.UUID(int=5)}?tenant={uuid.UUID(int=6)}"
    assert safe_next(path) == path


def test_console_values_with_control_characters_or_out_of_range_are_refused() -> None:
    from awfdrs.console.web import BadInput, checked, sequence

    assert checked("reason", "two\r\nlines\tand a tab") == "two\r\nlines\tand a tab"
    for bad in ("\x00", "a\x7f", "a\x85", "x" * 10_001):
        with pytest.raises(BadInput, match=r"^reason: "):
            checked("reason", bad)
    assert sequence("before", "") is None
    assert sequence("before", str(2**63 - 1)) == 2**63 - 1
    for bad in ("0", "-99999999999999999999", str(2**63), "1.5", "x"):
        with pytest.raises(BadInput, match=r"^before: "):
            sequence("before", bad)


def test_a_refused_value_is_told_in_words_not_pydantics_text() -> None:
    from awfdrs.api.operator_schemas import ActivateSwitch
    from awfdrs.console.web import in_words

    with pytest.raises(ValueError, match="duration_seconds") as refused:
        ActivateSwitch(reason="r", duration_seconds=-5)
    told = in_words(refused.value)
    assert told.startswith("duration seconds: "), told
    assert "validation error" not in told
    assert "ActivateSwitch" not in told


def test_a_key_name_passing_for_another_kind_of_principal_is_recognised() -> None:
    from awfdrs.api.keys import impersonates

    for name in ("sso:bob", "SSO:bob", "\uff53so:bob", "temporal:ops", " sso:x"):
        assert impersonates(name), name
    for name in ("key:abc123", "bob", "ssobob", "alice@sso:corp"):
        assert not impersonates(name), name


async def test_whatever_a_console_route_lets_escape_is_shown_as_its_page() -> None:
    import httpx
    from fastapi import APIRouter, FastAPI
    from sqlalchemy.exc import DBAPIError

    from awfdrs.api.errors import ApiError
    from awfdrs.console.web import ConsoleRoute, console_state

    app = FastAPI()
    app.state.console = console_state(Settings())
    router = APIRouter(prefix="/console", route_class=ConsoleRoute)

    @router.get("/db")
    async def db() -> None:
        raise DBAPIError("SELECT 1", None, ValueError("invalid byte sequence"))

    @router.get("/api")
    async def api() -> None:
        raise ApiError(409, "conflict", "already done")

    @router.get("/things/{thing_id}")
    async def thing(thing_id: uuid.UUID) -> None:
        raise AssertionError("not reached")

    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        answers = {
            path: (await client.get(path), status, said)
            for path, status, said in [
                ("/console/db", 400, "the database refused"),
                ("/console/api", 409, "already done"),
                ("/console/things/not-a-uuid", 404, "no such page"),
            ]
        }
    for path, (answer, status, said) in answers.items():
        assert answer.status_code == status, (path, answer.text)
        assert answer.headers["content-type"].startswith("text/html"), path
        assert said in answer.text, (path, answer.text)
