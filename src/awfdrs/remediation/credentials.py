"""Vendor connection credentials at rest: a Fernet token of the headers, never plaintext.

``AWFDRS_CREDENTIALS_KEYS`` lists Fernet keys, comma-separated. The first encrypts and every
one decrypts (:class:`cryptography.fernet.MultiFernet`), which is what rotation needs: put a new
key first, re-encrypt every connection (``awfdrs vendors rotate-credentials``), then remove the
old key. A connection's credentials are decrypted only in the worker, just before its call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from awfdrs.errors import ConfigError

VARIABLE = "AWFDRS_CREDENTIALS_KEYS"
MASK = "***"


def parse_keys(value: str) -> list[Fernet]:
    """The Fernets of a comma-separated key list; :class:`ConfigError` names a bad one by place."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    fernets = []
    for place, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise ConfigError(
                f"{VARIABLE}: key {place} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "make one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)"
            ) from None
    return fernets


def new_key() -> str:
    return Fernet.generate_key().decode()


class CredentialCipher:
    """Encrypts and decrypts a connection's credential headers with the configured keys.

    Without keys it still works for connections without credentials; any use that needs a key
    raises :class:`ConfigError` naming the variable, never a silent plaintext fallback.
    """

    def __init__(self, keys: str | None) -> None:
        self.set_keys(keys)

    def set_keys(self, keys: str | None) -> None:
        """Use another key list (a process normally restarts with the new setting instead)."""
        fernets = parse_keys(keys) if keys else []
        self._fernet = MultiFernet(fernets) if fernets else None

    @classmethod
    def from_settings(cls, settings: object) -> CredentialCipher:
        return cls(getattr(settings, "credentials_keys", None))

    def _need(self, what: str) -> MultiFernet:
        if self._fernet is None:
            raise ConfigError(f"{VARIABLE} is not set: cannot {what} vendor credentials")
        return self._fernet

    def encrypt(self, headers: Mapping[str, str]) -> bytes:
        return self._need("encrypt").encrypt(json.dumps(dict(headers)).encode())

    def decrypt(self, token: bytes) -> dict[str, str]:
        """The headers; :class:`ConfigError` when no configured key opens the token."""
        try:
            plain = self._need("decrypt").decrypt(bytes(token))
        except InvalidToken:
            raise ConfigError(
                f"{VARIABLE}: none of the configured keys decrypts these credentials (was the key "
                "they were encrypted with removed before `awfdrs vendors rotate-credentials`?)"
            ) from None
        found = json.loads(plain)
        assert isinstance(found, dict)
        return {str(k): str(v) for k, v in found.items()}

    def rotate(self, token: bytes) -> bytes:
        """The same credentials encrypted with the first key."""
        try:
            return self._need("rotate").rotate(bytes(token))
        except InvalidToken:
            raise ConfigError(
                f"{VARIABLE}: none of the configured keys decrypts a connection's credentials; "
                "keep the old key in the list until rotation has finished"
            ) from None


def masked(names: list[str]) -> dict[str, str]:
    """What views show of credentials: their header names, never a value."""
    return dict.fromkeys(names, MASK)
