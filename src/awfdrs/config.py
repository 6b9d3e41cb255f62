"""Settings read once from ``AWFDRS_*`` environment variables.

Nothing is read at import time: call :func:`get_settings` (cached) or :func:`load_settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from awfdrs.errors import ConfigError

if TYPE_CHECKING:
    from temporalio.service import TLSConfig

ENV_PREFIX = "AWFDRS_"
APP_ROLE = "awfdrs_app"


def normalise_database_url(value: str) -> str:
    """Return ``value`` as a SQLAlchemy URL on the asyncpg driver.

    ``postgresql://`` and ``postgres://`` (what ``psql`` and most platforms hand out) are accepted
    and switched to ``postgresql+asyncpg://``; any other scheme is refused.
    """
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL ({exc})") from None
    if url.drivername == "postgres":  # Heroku-style alias that SQLAlchemy no longer knows
        url = url.set(drivername="postgresql")
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"must be a PostgreSQL URL, got scheme {url.drivername!r}")
    if url.get_driver_name() not in ("asyncpg", "psycopg2", "psycopg"):
        raise ValueError(f"unsupported driver {url.get_driver_name()!r}; use postgresql://")
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    """The same database as a plain libpq DSN, for tools that speak asyncpg directly."""
    parsed: URL = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class Settings(BaseSettings):
    """Everything a worker, a client or the CLI needs to find PostgreSQL and Temporal."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None, description="Application role (awfdrs_app); RLS applies to it."
    )
    migration_database_url: str | None = Field(
        default=None, description="Owner role for migrations; defaults to DATABASE_URL."
    )
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)
    db_pool_timeout: float = Field(default=30.0, gt=0)
    temporal_address: str = Field(default="127.0.0.1:7233", min_length=3)
    temporal_namespace: str = Field(default="default", min_length=1)
    task_queue: str = Field(default="awfdrs", min_length=1)
    # A secured self-hosted cluster (TLS, mTLS) or Temporal Cloud (mTLS or an API key). Paths,
    # not PEM text, so secrets can stay in mounted files.
    temporal_tls: bool = Field(
        default=False, description="Connect to Temporal over TLS (implied by the other TLS_*)."
    )
    temporal_tls_ca_file: str | None = Field(
        default=None, description="CA bundle (PEM) that signed the server's certificate."
    )
    temporal_tls_cert_file: str | None = Field(
        default=None, description="Client certificate (PEM) for mTLS."
    )
    temporal_tls_key_file: str | None = Field(
        default=None, description="Client private key (PEM) for mTLS."
    )
    temporal_tls_server_name: str | None = Field(
        default=None, description="Server name to verify, when it differs from the address."
    )
    temporal_api_key: str | None = Field(
        default=None, description="API key (Temporal Cloud); implies TLS.", repr=False
    )
    command_signing_key: str | None = Field(
        default=None,
        min_length=32,
        repr=False,
        description="Signs and verifies the credential that approve and kill-switch release "
        "carry to the worker (the API and every worker need the same one). Unset on a worker: "
        "approvals and releases are refused.",
    )
    api_host: str = Field(default="127.0.0.1", min_length=1)
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_max_in_flight: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Requests handled at once per API process; more are answered 503 with "
        "Retry-After instead of queueing without bound.",
    )
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    analyzer: str = Field(
        default="awfdrs.analysis.rules:RulesAnalyzer",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:Class of the Analyzer that turns incidents into decisions.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve Prometheus metrics on this port."
    )
    metrics_sample_seconds: float = Field(default=15.0, gt=0, le=3600)
    dispatcher: bool = Field(
        default=True,
        description="Deliver the ingest outbox to incident workflows from this process. Several "
        "dispatchers may run (rows are claimed with SKIP LOCKED).",
    )
    console_url: str | None = Field(
        default=None,
        description="Where operators open an incident, with {incident_id}; escalations link it.",
    )
    temporal_ui_url: str | None = Field(
        default=None,
        description="The Temporal UI's address; escalations link the incident's workflow there.",
    )
    console_session_secret: str | None = Field(
        default=None,
        min_length=32,
        repr=False,
        description="Signs the web console's session cookies (every API process of a "
        "deployment needs the same one). Unset: each process makes its own at start, so "
        "sessions end when it restarts. `make run` keeps one in its state directory.",
    )
    console_session_hours: float = Field(
        default=8.0, gt=0, le=24 * 30, description="How long a console session lasts."
    )
    console_sso_secret: str | None = Field(
        default=None,
        min_length=32,
        repr=False,
        description="Sign-in tokens (JWT, HS256) from an identity provider sharing this secret "
        "are accepted by the console. Unset (and no public key): SSO is off.",
    )
    console_sso_public_key_file: str | None = Field(
        default=None,
        description="PEM public key (RS256/ES256) of the identity provider whose JWTs the "
        "console accepts.",
    )
    console_sso_issuer: str | None = Field(
        default=None, description="The `iss` an SSO token must carry (required when SSO is on)."
    )
    console_sso_audience: str = Field(
        default="awfdrs-console", min_length=1, description="The `aud` an SSO token must carry."
    )
    workflow_sandbox: bool = Field(
        default=False,
        description="Run workflows in Temporal's sandbox. Off by default: it costs about 7 ms "
        "of worker CPU per workflow started; the tests run with it and replay histories "
        "through it, which is where it catches mistakes.",
    )

    credentials_keys: str | None = Field(
        default=None,
        description="Fernet keys for vendor connection credentials at rest, comma-separated: "
        "the first encrypts, every one decrypts. Rotate by putting a new key first, running "
        "`awfdrs vendors rotate-credentials`, then removing the old key. `make run` generates "
        "one in its state directory when unset.",
    )

    @field_validator("credentials_keys")
    @classmethod
    def _credentials_keys(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from awfdrs.remediation.credentials import parse_keys

        parse_keys(value)  # a malformed key is refused at startup, not at the first call
        return value

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return None if value in (None, "") else normalise_database_url(value)

    @field_validator("temporal_address")
    @classmethod
    def _temporal_address(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:7233")
        return value

    @field_validator(
        "temporal_tls_cert_file",
        "temporal_tls_key_file",
        "temporal_tls_ca_file",
        "command_signing_key",
        "console_session_secret",
        "console_sso_secret",
        "console_sso_public_key_file",
        "console_sso_issuer",
        mode="before",
    )
    @classmethod
    def _unset_when_empty(cls, value: str | None) -> str | None:
        return None if value in (None, "") else value

    def temporal_tls_config(self) -> TLSConfig | bool:
        """What ``Client.connect(tls=...)`` takes: False, True (system roots) or a TLSConfig.

        Raises :class:`ConfigError` naming the variable when a file cannot be read or only one
        half of the client certificate pair is given.
        """
        from temporalio.service import TLSConfig

        files = (self.temporal_tls_ca_file, self.temporal_tls_cert_file, self.temporal_tls_key_file)
        if not any(files) and not self.temporal_tls_server_name:
            return self.temporal_tls or self.temporal_api_key is not None
        if bool(self.temporal_tls_cert_file) != bool(self.temporal_tls_key_file):
            raise ConfigError(
                f"{ENV_PREFIX}TEMPORAL_TLS_CERT_FILE and {ENV_PREFIX}TEMPORAL_TLS_KEY_FILE "
                "go together (mTLS needs both)"
            )

        def read(name: str, path: str | None) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise ConfigError(f"{ENV_PREFIX}{name}: cannot read {path}: {exc}") from None

        return TLSConfig(
            server_root_ca_cert=read("TEMPORAL_TLS_CA_FILE", self.temporal_tls_ca_file),
            client_cert=read("TEMPORAL_TLS_CERT_FILE", self.temporal_tls_cert_file),
            client_private_key=read("TEMPORAL_TLS_KEY_FILE", self.temporal_tls_key_file),
            domain=self.temporal_tls_server_name,
        )

    def escalation_links(self) -> dict[str, str]:
        """Where on-call looks, as templates with ``{incident_id}``, for escalation payloads."""
        links: dict[str, str] = {}
        if self.console_url:
            links["console"] = self.console_url
        if self.temporal_ui_url:
            ns = self.temporal_namespace
            links["temporal_ui"] = (
                f"{self.temporal_ui_url.rstrip('/')}/namespaces/{ns}/workflows/"
                "incident-{incident_id}"
            )
        return links

    def temporal_ui_link(self, incident_id: object) -> str | None:
        """The incident's workflow in the Temporal UI, when its address is known."""
        if not self.temporal_ui_url:
            return None
        return (
            f"{self.temporal_ui_url.rstrip('/')}/namespaces/{self.temporal_namespace}"
            f"/workflows/incident-{incident_id}"
        )

    def require_database_url(self) -> str:
        """The application URL, or a :class:`ConfigError` saying which variable to set."""
        if self.database_url is None:
            raise ConfigError(f"{ENV_PREFIX}DATABASE_URL is not set")
        return self.database_url

    def effective_migration_url(self) -> str:
        """Where migrations run: MIGRATION_DATABASE_URL, else DATABASE_URL."""
        if self.migration_database_url is not None:
            return self.migration_database_url
        return self.require_database_url()


def load_settings(**overrides: object) -> Settings:
    """Read the environment now; a bad value raises :class:`ConfigError` naming its variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}")
        raise ConfigError("; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return load_settings()
