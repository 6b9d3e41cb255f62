from __future__ import annotations

import pytest

from awfdrs.config import load_settings, normalise_database_url
from awfdrs.errors import ConfigError
from awfdrs.remediation.credentials import CredentialCipher, new_key


def test_plain_postgres_urls_are_switched_to_asyncpg() -> None:
    assert normalise_database_url("postgresql://u:p@h:5/db") == "postgresql+asyncpg://u:p@h:5/db"
    assert normalise_database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"


def test_settings_read_the_awfdrs_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWFDRS_DATABASE_URL", "postgresql://app@db:5432/awfdrs")
    monkeypatch.setenv("AWFDRS_TASK_QUEUE", "other")
    monkeypatch.setenv("AWFDRS_DB_POOL_SIZE", "3")
    settings = load_settings()
    assert settings.database_url == "postgresql+asyncpg://app@db:5432/awfdrs"
    assert settings.effective_migration_url() == settings.database_url
    assert settings.task_queue == "other"
    assert settings.db_pool_size == 3


def test_migration_url_overrides_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWFDRS_DATABASE_URL", "postgresql://app@db/awfdrs")
    monkeypatch.setenv("AWFDRS_MIGRATION_DATABASE_URL", "postgresql://owner@db/awfdrs")
    assert load_settings().effective_migration_url() == "postgresql+asyncpg://owner@db/awfdrs"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AWFDRS_DB_POOL_SIZE", "many"),
        ("AWFDRS_DB_POOL_SIZE", "0"),
        ("AWFDRS_DATABASE_URL", "mysql://root@db/awfdrs"),
        ("AWFDRS_TEMPORAL_ADDRESS", "localhost"),
        ("AWFDRS_DB_POOL_TIMEOUT", "-1"),
        ("AWFDRS_ANALYZER", "not a class path"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_missing_database_url_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWFDRS_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="AWFDRS_DATABASE_URL is not set"):
        load_settings().require_database_url()


def test_credentials_keys_rotate_and_a_missing_or_bad_key_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = new_key(), new_key()
    monkeypatch.setenv("AWFDRS_CREDENTIALS_KEYS", f"{new}, {old}")
    assert load_settings().credentials_keys is not None
    token = CredentialCipher(old).encrypt({"Authorization": "Bearer t"})
    both = CredentialCipher.from_settings(load_settings())
    rotated = both.rotate(token)
    assert CredentialCipher(new).decrypt(rotated) == {"Authorization": "Bearer t"}
    with pytest.raises(ConfigError, match="none of the configured keys"):
        CredentialCipher(old).decrypt(rotated)
    with pytest.raises(ConfigError, match="AWFDRS_CREDENTIALS_KEYS is not set"):
        CredentialCipher(None).encrypt({"Authorization": "Bearer t"})
    monkeypatch.setenv("AWFDRS_CREDENTIALS_KEYS", f"{new},not-a-key")
    with pytest.raises(ConfigError, match="AWFDRS_CREDENTIALS_KEYS: key 2 is not a Fernet key"):
        load_settings()
