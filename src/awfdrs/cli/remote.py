"""The operator commands through the operator API instead of PostgreSQL and Temporal.

With ``AWFDRS_API_URL`` and ``AWFDRS_API_KEY`` both set, ``incidents list/show/approve/reject/
resolve/ignore`` and ``kill-switch activate/release/list`` send HTTP requests with the key: the
operator needs no database or Temporal credentials, the tenant is the key's, and the actor
recorded is the key's name (so ``--by`` is refused: it could only disagree with the key).
Only the environment turns this on, never ``.awfdrs/stack.json``: which credentials a command
uses should not change because ``awfdrs up`` runs in the folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import typer

from awfdrs.cli.errors import fail

URL_VARIABLE = "AWFDRS_API_URL"
KEY_VARIABLE = "AWFDRS_API_KEY"
# A kill switch answer waits until the switch is persisted (up to 60 s in the API).
TIMEOUT = 90.0


@dataclass(frozen=True)
class Remote:
    url: str
    key: str


def remote() -> Remote | None:
    """The API to go through, or None to use PostgreSQL and Temporal directly."""
    url = os.environ.get(URL_VARIABLE, "").strip()
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if url and key:
        return Remote(url.rstrip("/"), key)
    if url or key:
        missing = KEY_VARIABLE if url else URL_VARIABLE
        fail(f"{missing} is not set: going through the API needs both {URL_VARIABLE} and "
             f"{KEY_VARIABLE} (unset both to use the database and Temporal directly)")  # fmt: skip
    return None


def refuse_by(by: str | None, target: Remote | None) -> None:
    """``--by`` names the actor only without the API; through it, the key is the actor."""
    if target is not None and by is not None:
        raise typer.BadParameter(
            f"not accepted through the API ({KEY_VARIABLE} is set): the actor recorded is the "
            "key's name; drop --by",
            param_hint="--by",
        )
    if target is None and not (by or "").strip():
        raise typer.BadParameter(
            f"required without the API (or set {URL_VARIABLE} and {KEY_VARIABLE})",
            param_hint="--by",
        )


def refuse_tenant(tenant: str | None, target: Remote | None) -> None:
    if target is not None and tenant is not None:
        raise typer.BadParameter(
            f"not accepted through the API ({KEY_VARIABLE} is set): the tenant is the key's; "
            "drop --tenant",
            param_hint="--tenant",
        )
    if target is None and tenant is None:
        raise typer.BadParameter(
            f"required without the API (or set {URL_VARIABLE} and {KEY_VARIABLE})",
            param_hint="--tenant",
        )


def _refusal(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return str(response.text)[:500]
    if isinstance(body, dict) and isinstance(body.get("detail"), list):  # a 422: name the field
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []) if p != 'body')}: {d.get('msg')}"
            for d in body["detail"]
        )
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return str(body)[:500]


def call(
    target: Remote,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """One request with the key; a refusal becomes one line on stderr and exit code 1."""
    import httpx

    try:
        response = httpx.request(
            method,
            f"{target.url}{path}",
            json=body,
            params={k: v for k, v in (params or {}).items() if v is not None},
            headers={"Authorization": f"Bearer {target.key}"},
            timeout=TIMEOUT,
        )
    except httpx.HTTPError as error:
        fail(f"cannot reach the API at {target.url}: {error}")
    if response.status_code >= 400:
        fail(f"the API refused (HTTP {response.status_code}): {_refusal(response)}")
    return response.json()
