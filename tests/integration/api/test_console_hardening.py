"""The console against what a review tried: a key passing for an SSO subject, an escalation
link clicked from another site, malformed values, SSO tokens naming tenants that do not exist
or expiring soon, a dead cookie at sign-out, and a plan replaced under an open page.

The API as a process serving the console over HTTP, real PostgreSQL, a Temporal dev server.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
import uuid
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import update

from awfdrs.api.keys import Role, create_key
from awfdrs.db.models import ApiKey
from awfdrs.db.session import tenant_session
from awfdrs.errors import InvalidInputError
from tests.integration.api.test_console_web import (  # noqa: F401  (fixtures)
    SSO_ISSUER,
    SSO_SECRET,
    _need_chromium,
    api_url,
    browserless,
    task_queue,
)
from tests.integration.api.test_operator import awaiting_approval, open_incident
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.console import Browserless
from tests.support.pipeline import Stack

FLASH = re.compile(r'id="flash"[^>]*>(.*?)</p>', re.S)


def _sso(sub: str, tenants: list[str], **claims: Any) -> str:
    body = {"iss": SSO_ISSUER, "aud": "awfdrs-console", "sub": sub,
            "exp": int(time.time()) + 300, "awfdrs_role": "operator",
            "awfdrs_tenants": tenants, **claims}  # fmt: skip
    return jwt.encode(body, SSO_SECRET, algorithm="HS256")


async def _sign_in(http: httpx.AsyncClient, **fields: str) -> httpx.Response:
    """Posts the sign-in form (its own token read from the page) with ``fields``."""
    query = f"?{urllib.parse.urlencode({'next': fields['next']})}" if "next" in fields else ""
    form = await http.get(f"/console/signin{query}")
    pre = re.search(r'name="pre" value="([^"]+)"', form.text)
    assert pre, form.text
    return await http.post("/console/signin", data={"pre": pre.group(1), **fields})


def _cookie_header(answer: httpx.Response, name: str) -> str:
    return next((c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{name}=")), "")


async def test_a_key_cannot_be_named_as_an_sso_subject_nor_sign_in_when_it_was(
    stack: Stack,
    api_url: str,  # noqa: F811
) -> None:
    tenant = await stack.tenant()
    for name in ("sso:bob", "SSO:bob", "\uff53so:bob"):
        with pytest.raises(InvalidInputError, match="sso:"):
            await create_key(stack.sessions, tenant.id, Role.OPERATOR, name=name)
    # A key named so before the prefix was reserved: it authenticates nowhere.
    key, info = await create_key(stack.sessions, tenant.id, Role.OPERATOR, name="bob-old")
    async with tenant_session(stack.sessions, tenant.id) as session:
        await session.execute(update(ApiKey).where(ApiKey.id == info.id).values(name="sso:bob"))
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        refused = await _sign_in(http, key=key)
        assert refused.status_code == 401, refused.text
        assert "reserved prefix" in refused.text
        assert not http.cookies.get("awfdrs_console")
        api = await http.get("/v1/incidents", headers={"Authorization": f"Bearer {key}"})
        assert api.status_code == 401, api.text


async def test_an_escalation_link_signs_in_and_lands_on_the_incident(
    stack: Stack,
    api_url: str,  # noqa: F811
) -> None:
    tenant, incident_id = await open_incident(stack)
    key, _ = await create_key(stack.sessions, tenant.id, Role.OPERATOR, name="carol")
    target = f"/console/incidents/{incident_id}"
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        # A link from Slack arrives without the cookie: to sign in, coming back here, and no
        # cookie is deleted (there was none).
        first = await http.get(target)
        assert first.status_code == 303
        assert first.headers["location"] == (
            f"/console/signin?{urllib.parse.urlencode({'next': target})}"
        )
        assert not _cookie_header(first, "awfdrs_console")
        signin = await http.get(first.headers["location"])
        assert f'name="next" value="{target}"' in signin.text
        done = await _sign_in(http, key=key, next=target)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == target
        # Lax: a top-level link from another site carries it (POSTs need the CSRF token).
        assert "samesite=lax" in _cookie_header(done, "awfdrs_console").lower()
        assert "carol" in (await http.get(target)).text
        # A dead cookie presented is dropped on the way to sign in.
        http.cookies.set("awfdrs_console", "not-a-session", path="/console")
        dead = await http.get(target)
        assert dead.status_code == 303
        assert _cookie_header(dead, "awfdrs_console"), "the dead cookie was not dropped"

    for evil in ("//evil.example", "/console/../x", "https://evil", "/console//evil.example",
                 "/console\\evil", "/console/%2e%2e/admin"):  # fmt: skip
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
            done = await _sign_in(http, key=key, next=evil)
            assert done.status_code == 303, (evil, done.text)
            assert done.headers["location"] == "/console/queue", evil


async def test_malformed_console_values_get_a_page_naming_the_field(
    stack: Stack,
    browserless: Browserless,  # noqa: F811
) -> None:
    tenant = await stack.tenant()
    t = str(tenant.id)
    key, _ = await create_key(stack.sessions, tenant.id, Role.ADMIN, name="dee-admin")
    await browserless.sign_in(key=key)
    await browserless.page("/console/controls")
    http = browserless.http
    for path, field in {
        "/console/audit?actor=%00": "actor",
        "/console/audit?kind=%00": "kind",
        "/console/audit?before=9223372036854775808": "before",
        "/console/audit?before=-99999999999999999999": "before",
        "/console/audit?before=0": "before",
        "/console/queue?workflow=%00": "workflow",
        "/console/queue?tenant=%00": "tenant",
        f"/console/incidents/{uuid.uuid4()}?tenant=%7F": "tenant",
    }.items():
        answer = await http.get(path)
        assert answer.status_code == 400, (path, answer.status_code, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html"), path
        shown = FLASH.search(answer.text)
        assert shown, (path, answer.text[:500])
        assert f"{field}:" in shown.group(1), (path, shown.group(1))
    assert (await http.get(f"/console/audit?before={2**63 - 1}")).status_code == 200

    fragment = await http.get(f"/console/queue/rows?workflow=%00&tenant={t}")
    assert (fragment.status_code, fragment.text) == (400, "workflow: contains control characters")

    for path in ("/console/incidents/not-a-uuid", "/console/incidents/not-a-uuid/live"):
        answer = await http.get(path)
        assert answer.status_code == 404, (path, answer.text[:300])
        assert "application/json" not in answer.headers["content-type"], path
    bad_path = await browserless.post("/console/incidents/not-a-uuid/approve", {"plan_id": "p"})
    assert bad_path.status_code == 404
    assert "text/html" in bad_path.headers["content-type"]

    for what, form, field in [
        ("vendor-stop", {"vendor": "\x00", "reason": "r"}, "vendor"),
        ("vendor-stop", {"vendor": "v" * 256, "reason": "r"}, "vendor"),
        ("vendor-stop", {"vendor": "", "reason": "r"}, "vendor"),
        ("vendor-release", {"vendor": "\x00"}, "vendor"),
        ("activate", {"reason": "r\x00"}, "reason"),
        ("release", {"switch_id": "not-a-uuid"}, "switch"),
        ("tenant-mode", {"mode": "bogus"}, "mode"),
    ]:
        answer = await browserless.post(f"/console/controls/{what}", {**form, "tenant": t})
        assert answer.status_code == 400, (what, form, answer.status_code, answer.text[:300])
        shown = FLASH.search(answer.text)
        assert shown, (what, form, answer.text[:500])
        assert f"{field}:" in shown.group(1), (what, form, shown.group(1))

    # A value refused by the API's own model is told in words, not pydantic's text.
    told = await browserless.post("/console/controls/activate",
                                  {"reason": "r", "minutes": "-5", "tenant": t})  # fmt: skip
    assert told.status_code == 303
    shown = FLASH.search(await browserless.page(told.headers["location"]))
    assert shown
    assert "duration seconds:" in shown.group(1)
    assert "validation error" not in shown.group(1)


async def test_an_sso_token_naming_tenants_that_do_not_exist(
    stack: Stack,
    api_url: str,  # noqa: F811
) -> None:
    tenant = await stack.tenant()
    ghost = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        refused = await _sign_in(http, sso_token=_sso("gus", [ghost]))
        assert refused.status_code == 401, refused.text
        assert "no tenant that exists" in refused.text
        assert not http.cookies.get("awfdrs_console")
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        done = await _sign_in(http, sso_token=_sso("gus", [ghost, str(tenant.id)]))
        assert done.status_code == 303, done.text
        landed = await http.get(done.headers["location"])
        assert landed.status_code == 200, landed.text[:300]
        shown = FLASH.search(landed.text)
        assert shown
        assert ghost in shown.group(1)
        assert "do not exist" in shown.group(1)
        for path in ("/console/queue", "/console/controls", "/console/audit"):
            assert (await http.get(path)).status_code == 200, path


async def test_an_sso_session_ends_when_the_providers_token_does(
    stack: Stack,
    api_url: str,  # noqa: F811
) -> None:
    tenant = await stack.tenant()
    expires = int(time.time()) + 120
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        done = await _sign_in(http, sso_token=_sso("tess", [str(tenant.id)], exp=expires))
        assert done.status_code == 303, done.text
        cookie = http.cookies.get("awfdrs_console")
        assert cookie
        claims = jwt.decode(cookie, options={"verify_signature": False})
        assert claims["exp"] == expires
        age = re.search(r"max-age=(\d+)", _cookie_header(done, "awfdrs_console").lower())
        assert age
        assert int(age.group(1)) <= 120


async def test_sign_out_always_clears_the_cookie_and_goes_to_sign_in(
    api_url: str,  # noqa: F811
) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        http.cookies.set("awfdrs_console", "dead.session.cookie", path="/console")
        out = await http.post("/console/signout", data={})
        assert out.status_code == 303, out.text
        assert out.headers["location"] == "/console/signin"
        assert _cookie_header(out, "awfdrs_console"), "the cookie was not cleared"
        nobody = await http.post("/console/signout", data={"csrf": "x"})
        assert (nobody.status_code, nobody.headers["location"]) == (303, "/console/signin")


async def test_a_same_site_post_is_still_refused(
    stack: Stack,
    browserless: Browserless,  # noqa: F811
) -> None:
    tenant = await stack.tenant()
    key, _ = await create_key(stack.sessions, tenant.id, Role.OPERATOR, name="sid-op")
    await browserless.sign_in(key=key)
    await browserless.page("/console/controls")
    form = {"reason": "from a sibling site", "tenant": str(tenant.id)}
    for site in ("same-site", "cross-site"):
        answer = await browserless.post(
            "/console/controls/activate", form, headers={"Sec-Fetch-Site": site}
        )
        assert answer.status_code == 403, (site, answer.text[:300])


async def test_a_replaced_plan_is_not_swapped_into_the_open_approve_form(
    stack: Stack,
    api_url: str,  # noqa: F811
) -> None:
    from playwright.async_api import Route, async_playwright

    _need_chromium()
    tenant, incident_id, plan_id = await awaiting_approval(stack)
    key, _ = await create_key(stack.sessions, tenant.id, Role.OPERATOR, name="erin")
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await (await browser.new_context()).new_page()
            await page.goto(f"{api_url}/console/signin")
            await page.get_by_label("Key (viewer, operator or admin)").fill(key)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url("**/console/queue")
            await page.goto(f"{api_url}/console/incidents/{incident_id}?tenant={tenant.id}")
            held = page.locator('form[action$="/approve"] input[name=plan_id]')
            assert await held.get_attribute("value") == plan_id

            # The workflow replaces its plan: the live fragment now carries another one.
            async def replaced(route: Route) -> None:
                answer = await route.fetch()
                body = (await answer.text()).replace(plan_id, "plan-replaced")
                await route.fulfill(response=answer, body=body)

            await page.route("**/live?*", replaced)
            banner = page.locator("#plan-changed")
            await banner.wait_for(state="visible", timeout=10_000)
            assert await banner.get_attribute("role") == "alert"
            text = await banner.inner_text()
            assert "The plan changed since you opened this page" in text
            assert await banner.get_by_role("link").count() == 1
            await asyncio.sleep(2.5)  # another poll: still not swapped
            assert await held.get_attribute("value") == plan_id
        finally:
            await browser.close()
