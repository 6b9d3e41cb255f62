"""A console session over plain HTTP (httpx): sign in, read pages, post forms with the CSRF
token a page carried; what a script, or an attacker with a session, can send."""

from __future__ import annotations

import re
from typing import Any

import httpx


class Browserless:
    """A console session over httpx: what a script (or an attacker) can send."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.csrf = ""

    async def sign_in(self, *, key: str | None = None, token: str | None = None) -> None:
        form = await self.http.get("/console/signin")
        pre = re.search(r'name="pre" value="([^"]+)"', form.text)
        assert pre, form.text
        answer = await self.http.post(
            "/console/signin",
            data={"pre": pre.group(1), "key": key or "", "sso_token": token or ""},
        )
        assert answer.status_code == 303, answer.text
        await self.page("/console/queue")

    async def page(self, path: str) -> str:
        answer = await self.http.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
        found = re.search(r'name="csrf" value="([^"]+)"', answer.text)
        if found:
            self.csrf = found.group(1)
        return answer.text

    async def post(self, path: str, data: dict[str, str], **kwargs: Any) -> httpx.Response:
        return await self.http.post(path, data={"csrf": self.csrf, **data}, **kwargs)
